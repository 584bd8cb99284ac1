"""The pure live model: timeline, window, sequences, keys, LL-HLS, delta updates — in simulated time."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import m3u8
import pytest

from gateway.dev.live_origin import LiveConfig, LiveStream, LowLatencyConfig, VodSource, load_vod_source
from gateway.dev.live_origin.crypto import decrypt_aes128, encrypt_aes128, sequence_iv
from gateway.dev.live_origin.model import DirectiveError, PlaylistNotReady, Skip
from tests.support.paths import FIXTURES

TITLE = FIXTURES / "media" / "vod" / "title-9000"
START = 1_750_000_000.0
HOURS_3 = 3 * 3600.0
LL = LowLatencyConfig(part_target_seconds=0.5)


@pytest.fixture(scope="module")
def source() -> VodSource:
    return load_vod_source(TITLE)


def stream(source: VodSource, **overrides: Any) -> LiveStream:
    return LiveStream(LiveConfig(start_time=START, **overrides), source)


def parse(body: bytes) -> Any:
    playlist = m3u8.loads(body.decode())
    assert playlist.is_endlist is False
    return playlist


def full_segments(playlist: Any) -> list[Any]:
    return [s for s in playlist.segments if s.uri is not None]


def msn_of(uri: str) -> int:
    match = re.fullmatch(r"seg(\d+)(?:\.part\d+)?\.ts", uri)
    assert match, uri
    return int(match.group(1))


def last_part_line(body: bytes) -> tuple[int, int]:
    uri = re.findall(rb'#EXT-X-PART:.*URI="seg(\d+)\.part(\d+)\.ts"', body)[-1]
    return int(uri[0]), int(uri[1])


def test_source_loads_every_rendition_decrypted(source: VodSource) -> None:
    assert [r.name for r in source.renditions] == ["a-en", "a-fr", "v144", "v270", "v360"]
    assert source.reference == "v144"
    for rendition in source.renditions:
        assert len(rendition.clear_segments) == 6
        assert all(seg[0] == 0x47 and len(seg) % 188 == 0 for seg in rendition.clear_segments)


def test_master_points_at_live_renditions_and_drops_iframes(source: VodSource) -> None:
    master = m3u8.loads(stream(source).master_playlist().decode())
    assert [p.uri for p in master.playlists] == ["v144/index.m3u8", "v270/index.m3u8", "v360/index.m3u8"]
    assert [m.uri for m in master.media] == ["a-en/index.m3u8", "a-fr/index.m3u8"]
    assert not master.iframe_playlists


@pytest.mark.parametrize("offset", [0.0, 1.9, 2.0, 3599.99, HOURS_3 + 0.25, 10 * 24 * 3600.0 + 7.0])
def test_window_is_the_last_n_complete_segments_hours_in(source: VodSource, offset: float) -> None:
    live = stream(source, window_segments=6)
    playlist = parse(live.media_playlist("v360", START + offset))
    last = int(offset // 2.0) - 1  # the reference rendition's segments are exactly 2 s
    first = max(0, last - 5)
    assert playlist.media_sequence == first
    assert [s.uri for s in playlist.segments] == [f"seg{m}.ts" for m in range(first, last + 1)]
    assert playlist.target_duration == 2


def test_window_slides_one_segment_per_segment_duration(source: VodSource) -> None:
    live = stream(source)
    sequences = [parse(live.media_playlist("v144", START + HOURS_3 + 2.0 * k)).media_sequence for k in range(5)]
    assert sequences == [sequences[0] + k for k in range(5)]


def test_dvr_window_keeps_that_many_seconds(source: VodSource) -> None:
    live = stream(source, dvr_window_seconds=120.0)
    segments = parse(live.media_playlist("v144", START + HOURS_3 + 0.3)).segments
    assert len(segments) == 60
    assert sum(s.duration for s in segments) == pytest.approx(120.0)


@pytest.mark.parametrize("every", [None, 4])
def test_discontinuity_numbers_are_stable_across_reloads(source: VodSource, every: int | None) -> None:
    live = stream(source, discontinuity_every=every)
    seen: dict[int, tuple[int, str, float]] = {}
    for step in range(200):  # 100 s, many loop wraps, reloads twice per segment
        playlist = parse(live.media_playlist("a-fr", START + HOURS_3 + 0.5 * step))
        number = playlist.discontinuity_sequence or 0
        for offset, segment in enumerate(playlist.segments):
            msn = playlist.media_sequence + offset
            number += 1 if segment.discontinuity else 0
            assert segment.discontinuity == live.is_discontinuity(msn)
            facts = (number, segment.uri, segment.duration)
            assert seen.setdefault(msn, facts) == facts, f"MSN {msn} changed between reloads"
    wraps = [m for m in seen if live.is_discontinuity(m)]
    assert all(m % 6 == 0 or (every and m % every == 0) for m in wraps)
    assert any(m % 6 == 0 for m in wraps)
    assert all(seen[m][0] == seen[m - 1][0] + live.is_discontinuity(m) for m in seen if m - 1 in seen)


def test_key_rotation_every_n_segments_with_decryptable_segments(source: VodSource) -> None:
    live = stream(source, key_rotation_every=5, window_segments=12)
    body = live.media_playlist("v270", START + HOURS_3)
    playlist = parse(body)
    key_uris = set()
    for offset, segment in enumerate(playlist.segments):
        msn = playlist.media_sequence + offset
        assert segment.key.uri == f"../keys/{msn // 5}.key" and segment.key.iv is None
        key_uris.add(segment.key.uri)
        clear = decrypt_aes128(live.segment_bytes("v270", msn), live.key_bytes(msn // 5), sequence_iv(msn))
        assert clear[0] == 0x47
        assert clear == source.rendition("v270").clear_segments[msn % 6]
    # A KEY line at every rotation point, plus the one restated on the first segment.
    rotations = [m for m in range(playlist.media_sequence + 1, playlist.media_sequence + 12) if m % 5 == 0]
    assert body.count(b"#EXT-X-KEY:") == 1 + len(rotations)
    assert len(key_uris) >= 3 and len({live.key_bytes(n) for n in range(50)}) == 50


def test_without_rotation_one_key_and_clear_mode_has_none(source: VodSource) -> None:
    single = parse(stream(source).media_playlist("a-en", START + 100))
    assert {s.key.uri for s in single.segments} == {"../keys/0.key"}
    clear = stream(source, encrypt=False)
    assert b"EXT-X-KEY" not in clear.media_playlist("a-en", START + 100)
    assert clear.segment_bytes("a-en", 7) == source.rendition("a-en").clear_segments[1]


def test_parts_are_packet_aligned_and_rebuild_the_segment(source: VodSource) -> None:
    live = stream(source, ll_hls=LL, key_rotation_every=3)
    msn = 4000
    key, iv = live.key_bytes(live.key_index(msn)), sequence_iv(msn)
    parts = [decrypt_aes128(live.part_bytes("v360", msn, p), key, iv) for p in range(4)]
    assert all(part[0] == 0x47 and len(part) % 188 == 0 for part in parts)
    assert b"".join(parts) == decrypt_aes128(live.segment_bytes("v360", msn), key, iv)
    with pytest.raises(ValueError, match="out of range"):
        live.part_bytes("v360", msn, 4)


@pytest.mark.parametrize("offset", [HOURS_3, HOURS_3 + 0.49, HOURS_3 + 0.5, HOURS_3 + 1.99, HOURS_3 + 11.7])
def test_ll_hls_parts_hint_and_rendition_reports_agree(source: VodSource, offset: float) -> None:
    live = stream(source, ll_hls=LL, dvr_window_seconds=30.0)
    now = START + offset
    bodies = {name: live.media_playlist(name, now) for name in ("a-en", "a-fr", "v144", "v270", "v360")}
    for name, body in bodies.items():
        playlist = parse(body)
        assert playlist.server_control.can_block_reload == "YES"
        assert playlist.server_control.part_hold_back >= 2 * playlist.part_inf.part_target
        assert playlist.server_control.can_skip_until >= 6 * playlist.target_duration
        parts = [p for s in playlist.segments for p in s.parts]
        assert parts and all(p.duration <= playlist.part_inf.part_target for p in parts)
        last_msn, last_part = last_part_line(body)
        assert live.last_part(now) == (last_msn, last_part)
        next_part = (last_msn, last_part + 1) if last_part + 1 < 4 else (last_msn + 1, 0)
        assert playlist.preload_hint.uri == "seg{}.part{}.ts".format(*next_part)
        reports = {r.uri: (r.last_msn, r.last_part) for r in playlist.rendition_reports}
        assert set(reports) == {f"../{other}/index.m3u8" for other in bodies if other != name}
        for other, other_body in bodies.items():
            if other != name:
                assert reports[f"../{other}/index.m3u8"] == last_part_line(other_body)


def test_blocking_target_waits_for_the_part_and_rejects_far_targets(source: VodSource) -> None:
    live = stream(source, ll_hls=LL)
    now = START + HOURS_3 + 0.1
    last = live.last_part(now)
    assert last is not None
    msn = last[0]
    with pytest.raises(PlaylistNotReady) as pending:
        live.media_playlist("v144", now, msn=msn + 1, part=1)
    assert pending.value.available_at == live.available_at(msn + 1, 1)
    ready = live.media_playlist("v144", pending.value.available_at, msn=msn + 1, part=1)
    assert last_part_line(ready) == (msn + 1, 1)
    # Part index past the segment's last part means the next segment's first part.
    with pytest.raises(PlaylistNotReady) as wrapped:
        live.media_playlist("v144", now, msn=msn + 1, part=9)
    assert (wrapped.value.msn, wrapped.value.part) == (msn + 2, 0)
    assert live.media_playlist("v144", now, msn=msn - 3) == live.media_playlist("v144", now)
    with pytest.raises(DirectiveError, match="more than 2"):
        live.media_playlist("v144", now, msn=msn + 3)


def test_available_at_agrees_with_the_edge_at_every_boundary(source: VodSource) -> None:
    live = stream(source, ll_hls=LL)
    for msn in range(1_000_000, 1_000_013):
        for part in range(4):
            at = live.available_at(msn, part)
            assert live.is_available(msn, part, at) and not live.is_available(msn, part, at - 1e-5)
            assert live.last_part(at) == (msn, part)


@pytest.mark.parametrize("skip", [True, "v2"])
def test_delta_update_is_a_suffix_of_the_full_playlist(source: VodSource, skip: Skip) -> None:
    live = stream(source, ll_hls=LL, dvr_window_seconds=60.0, key_rotation_every=7)
    now = START + HOURS_3 + 1.3
    full, delta = parse(live.media_playlist("a-en", now)), parse(live.media_playlist("a-en", now, skip=skip))
    skipped = delta.skip.skipped_segments
    assert skipped > 0 and delta.media_sequence == full.media_sequence
    assert delta.discontinuity_sequence == full.discontinuity_sequence
    if skip == "v2":
        assert delta.skip.recently_removed_dateranges == ""

    def facts(segments: list[Any]) -> list[tuple[Any, ...]]:
        return [(s.uri, s.duration, s.key.uri, s.discontinuity, len(s.parts)) for s in segments]

    assert facts(full_segments(full)[skipped:]) == facts(full_segments(delta))
    # The in-progress segment (parts only; m3u8 gives it no key) is the same in both.
    assert [p.uri for p in full.segments[-1].parts] == [p.uri for p in delta.segments[-1].parts]
    # Only segments that ended at least CAN-SKIP-UNTIL before the last full segment's end were skipped.
    last_end = live.available_at(msn_of(full_segments(full)[-1].uri))
    assert live.available_at(full.media_sequence + skipped - 1) <= last_end - live.can_skip_until
    assert live.available_at(full.media_sequence + skipped) > last_end - live.can_skip_until


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"ll_hls": LL, "program_date_time": False},
        {"encrypt": False, "discontinuity_every": 5},
        {"ll_hls": LowLatencyConfig(part_target_seconds=0.33), "key_rotation_every": 2},
    ],
)
@pytest.mark.parametrize("offset", [-5.0, 0.0, 0.4, 2.0, 13.0, HOURS_3])
def test_every_playlist_parses(source: VodSource, overrides: dict[str, Any], offset: float) -> None:
    live = stream(source, **overrides)
    for name in ("a-en", "v144"):
        for skip in (False, True):
            playlist = parse(live.media_playlist(name, START + offset, skip=skip))
            assert playlist.target_duration == 2
            if playlist.program_date_time is not None:
                assert playlist.program_date_time.timestamp() == pytest.approx(START + 2.0 * playlist.media_sequence)


def test_before_the_first_segment_the_playlist_is_empty(source: VodSource) -> None:
    live = stream(source, ll_hls=LL)
    body = live.media_playlist("v144", START - 1)
    assert b"#EXTINF" not in body and b'PRELOAD-HINT:TYPE=PART,URI="seg0.part0.ts"' in body
    assert b"RENDITION-REPORT" not in body and live.last_part(START - 1) is None


def test_config_is_validated(source: VodSource) -> None:
    with pytest.raises(ValueError, match="target_duration 1 < longest"):
        stream(source, target_duration=1)
    with pytest.raises(ValueError, match=r"can_skip_until_seconds 6\.0 < 6 x target"):
        stream(source, ll_hls=LowLatencyConfig(can_skip_until_seconds=6.0))
    with pytest.raises(ValueError, match="window_segments must be >= 1, got 0"):
        LiveConfig(start_time=START, window_segments=0)
    with pytest.raises(ValueError, match="needs encrypt=True"):
        LiveConfig(start_time=START, key_rotation_every=3, encrypt=False)
    with pytest.raises(KeyError, match="unknown rendition"):
        stream(source).media_playlist("v9000", START)


def test_three_hour_run_is_fast_and_continuous(source: VodSource) -> None:
    live = stream(source, ll_hls=LL, dvr_window_seconds=120.0, key_rotation_every=5)
    began, previous_first, previous_last = time.perf_counter(), 0, -2  # nothing complete at 0.7 s
    for step in range(int(HOURS_3 / 2.0)):
        body = live.media_playlist("v144", START + 2.0 * step + 0.7)
        first = int(re.search(rb"#EXT-X-MEDIA-SEQUENCE:(\d+)", body).group(1))  # type: ignore[union-attr]
        last = int(re.findall(rb"\nseg(\d+)\.ts\n", body)[-1]) if b"#EXTINF" in body else -1
        assert previous_first <= first and last == previous_last + 1
        previous_first, previous_last = first, last
        if step % 500 == 0:
            parse(body)
    assert previous_last == 5398
    assert time.perf_counter() - began < 5.0


def write_clear_vod(root: Path) -> None:
    """A two-rendition clear TS title with flat playlist names (low.m3u8, high.m3u8)."""
    packet = b"\x47" + bytes(187)
    master = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nlow.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=2\nhigh.m3u8\n"
    (root / "master.m3u8").write_text(master)
    for name in ("low", "high"):
        lines = ["#EXTM3U", "#EXT-X-TARGETDURATION:4", "#EXT-X-PLAYLIST-TYPE:VOD"]
        for index, duration in enumerate((4.0, 3.0, 3.5)):
            (root / f"{name}{index}.ts").write_bytes(packet * (10 + index))
            lines += [f"#EXTINF:{duration},", f"{name}{index}.ts"]
        (root / f"{name}.m3u8").write_text("\n".join([*lines, "#EXT-X-ENDLIST", ""]))


def test_any_vod_directory_works(tmp_path: Path) -> None:
    write_clear_vod(tmp_path)
    live = LiveStream(LiveConfig(start_time=0.0, ll_hls=LL), load_vod_source(tmp_path))
    assert live.target_duration == 4 and live.timeline.parts_in(1) == 6
    playlist = parse(live.media_playlist("high", 10.5 * 3600))
    assert len(full_segments(playlist)) == 6 and playlist.part_inf.part_target == 0.5
    key, iv = live.key_bytes(0), sequence_iv(4)
    assert decrypt_aes128(live.segment_bytes("low", 4), key, iv) == (b"\x47" + bytes(187)) * 11
    assert encrypt_aes128(b"x", key, iv) != encrypt_aes128(b"x", key, sequence_iv(5))


def test_sources_that_cannot_loop_are_rejected(tmp_path: Path) -> None:
    write_clear_vod(tmp_path)
    (tmp_path / "low1.ts").write_bytes(b"\x47" * 100)
    with pytest.raises(ValueError, match="not whole 188-byte TS packets"):
        load_vod_source(tmp_path)
