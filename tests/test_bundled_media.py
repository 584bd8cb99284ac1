"""The committed demo streams under ``fixtures/media/vod`` are complete, consistent and decryptable.

The HLS titles are read with ``m3u8``, the DASH title's MPD with ``mpegdash``. Pure Python: no network and
no ffmpeg. ``fixtures/media/generate.py`` makes (and deeply verifies,
with ffmpeg) these files; this test guards what is committed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import m3u8
import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from mpegdash.parser import MPEGDASHParser

MEDIA = Path(__file__).resolve().parent.parent / "fixtures" / "media"
VOD = MEDIA / "vod"
PREMIUM = VOD / "title-9000"
TRAILER = VOD / "free-trailer"
DASH = VOD / "dash-9000"
DASH_SECONDS = 16.0
DASH_MANIFEST = DASH / "manifest.mpd"
TITLE_SECONDS = {PREMIUM.name: 12.0, TRAILER.name: 6.0}
SIZE_BUDGET = 5 * 1024 * 1024
TS_PACKET = 188
TS_SYNC = 0x47


@dataclass(frozen=True)
class Loaded:
    path: Path
    playlist: Any  # m3u8.M3U8 (the library is untyped)

    @property
    def rel(self) -> str:
        return str(self.path.relative_to(VOD))


def resolve(title_dir: Path, base: Path, uri: str) -> Path:
    """A playlist URI as a local path; it must be relative and stay inside its title."""
    assert uri, "empty URI"
    assert "://" not in uri and not uri.startswith(("/", "data:")), f"URI is not relative: {uri!r}"
    path = (base / uri).resolve()
    assert path.is_relative_to(title_dir.resolve()), f"{uri!r} escapes {title_dir.name}"
    return path


def walk(master: Path) -> list[Loaded]:
    """The master and every playlist it references (variants, renditions, I-frame playlists)."""
    title_dir = master.parent
    seen: list[Loaded] = []
    todo = [master.resolve()]
    while todo:
        path = todo.pop(0)
        if any(x.path == path for x in seen):
            continue
        playlist = m3u8.load(str(path))
        seen.append(Loaded(path, playlist))
        uris = [p.uri for p in playlist.playlists]
        uris += [m.uri for m in playlist.media if m.uri]
        uris += [p.uri for p in playlist.iframe_playlists]
        todo += [resolve(title_dir, path.parent, str(u)) for u in uris]
    return seen


def media_playlists(master: Path, *, iframes: bool) -> Iterator[Loaded]:
    for loaded in walk(master):
        if not loaded.playlist.is_variant and bool(loaded.playlist.is_i_frames_only) == iframes:
            yield loaded


def aes128_cbc_decrypt(data: bytes, key: bytes, iv: bytes) -> bytes:
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    padded = decryptor.update(data) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    return unpadder.update(padded) + unpadder.finalize()


def segment_iv(key: Any, media_sequence_number: int) -> bytes:
    """RFC 8216 5.2: the IV attribute if present, else the Media Sequence Number (big-endian, 16 bytes)."""
    if key.iv:
        iv_hex = str(key.iv)
        assert iv_hex[:2] in ("0x", "0X") and len(iv_hex) == 34, f"bad IV {iv_hex}"
        return bytes.fromhex(iv_hex[2:])
    return media_sequence_number.to_bytes(16, "big")


def assert_ts(data: bytes, what: str) -> None:
    assert data, f"{what}: empty"
    assert len(data) % TS_PACKET == 0, f"{what}: {len(data)} bytes is not a whole number of TS packets"
    bad = [i for i in range(0, len(data), TS_PACKET) if data[i] != TS_SYNC]
    assert not bad, f"{what}: no 0x47 sync byte at offsets {bad[:5]}"


def crc32_mpeg2(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
            crc &= 0xFFFFFFFF
    return crc


def assert_starts_with_valid_psi(ts: bytes, what: str) -> None:
    """The first TS packet carries a whole PSI section (ffmpeg opens every segment with SDT/PAT)
    whose CRC32 checks. This proves the first AES block was decrypted with the right IV: a wrong IV
    only garbles the first 16 bytes, where sync bytes and padding would not notice it.
    """
    pkt = ts[:TS_PACKET]
    assert pkt[1] & 0x40, f"{what}: first TS packet has no payload_unit_start_indicator"
    assert (pkt[3] >> 4) & 0x3 == 0x1, f"{what}: first TS packet has an adaptation field"
    section = pkt[5 + pkt[4] :]
    section_length = ((section[1] & 0x0F) << 8) | section[2]
    assert 3 + section_length <= len(section), f"{what}: first PSI section spans packets"
    assert crc32_mpeg2(section[: 3 + section_length]) == 0, f"{what}: PSI CRC32 mismatch (wrong IV?)"


def pes_payloads(ts: bytes) -> dict[int, bytes]:
    """Concatenated TS payloads per PID (enough to look inside a PES without a demuxer)."""
    out: dict[int, bytearray] = {}
    for i in range(0, len(ts), TS_PACKET):
        pkt = ts[i : i + TS_PACKET]
        pid = ((pkt[1] & 0x1F) << 8) | pkt[2]
        control = (pkt[3] >> 4) & 0x3
        start = 4 + (1 + pkt[4] if control & 0x2 else 0)
        if control & 0x1 and start < TS_PACKET:
            out.setdefault(pid, bytearray()).extend(pkt[start:])
    return {pid: bytes(payload) for pid, payload in out.items()}


def has_idr(ts: bytes) -> bool:
    """True if some PES in ``ts`` is a video PES (stream_id 0xE0..0xEF) carrying an H.264 IDR slice."""
    for payload in pes_payloads(ts).values():
        if payload[:3] != b"\x00\x00\x01" or not 0xE0 <= payload[3] <= 0xEF:
            continue
        pos = 0
        while (pos := payload.find(b"\x00\x00\x01", pos)) != -1 and pos + 3 < len(payload):
            if payload[pos + 3] & 0x1F == 5:
                return True
            pos += 3
    return False


def peak_bps(loaded: Loaded) -> float:
    rates = []
    for seg in loaded.playlist.segments:
        size = resolve(VOD, loaded.path.parent, str(seg.uri)).stat().st_size
        rates.append(size * 8 / float(seg.duration))
    return max(rates)


MASTERS = [PREMIUM / "master.m3u8", TRAILER / "master.m3u8"]
master_ids = [m.parent.name for m in MASTERS]


@pytest.mark.parametrize("master", MASTERS, ids=master_ids)
def test_every_playlist_parses_and_adds_up(master: Path) -> None:
    assert master.is_file(), f"missing {master}; run fixtures/media/generate.py"
    loaded = walk(master)
    assert loaded[0].playlist.is_variant
    expected = TITLE_SECONDS[master.parent.name]
    video_counts = set()
    for x in loaded[1:]:
        pl = x.playlist
        assert not pl.is_variant, f"{x.rel}: nested master"
        assert pl.is_endlist and pl.playlist_type == "vod", f"{x.rel}: not a VOD playlist"
        assert pl.segments, f"{x.rel}: no segments"
        total = sum(float(s.duration) for s in pl.segments)
        assert total == pytest.approx(expected, abs=0.05), f"{x.rel}: {total} s"
        assert all(round(float(s.duration)) <= pl.target_duration for s in pl.segments), x.rel
        if not pl.is_i_frames_only and "/v" in x.rel:
            video_counts.add(len(pl.segments))
    assert len(video_counts) == 1, f"video renditions differ in segment count: {video_counts}"


@pytest.mark.parametrize("master", MASTERS, ids=master_ids)
def test_every_referenced_uri_exists(master: Path) -> None:
    title_dir = master.parent
    checked = 0
    for x in walk(master):
        pl, base = x.playlist, x.path.parent
        uris = [str(s.uri) for s in pl.segments]
        uris += [str(k.uri) for k in pl.keys if k is not None and k.uri]
        uris += [str(m.uri) for m in pl.segment_map or []]
        for uri in uris:
            assert resolve(title_dir, base, uri).is_file(), f"{x.rel}: missing {uri}"
            checked += 1
    assert checked > 0


def test_premium_master_shape() -> None:
    master = m3u8.load(str(PREMIUM / "master.m3u8"))
    assert master.version >= 4
    assert master.is_independent_segments
    variants = master.playlists
    assert len(variants) >= 3
    for v in variants:
        info = v.stream_info
        codecs = str(info.codecs).split(",")
        assert any(c.startswith("avc1.4d") for c in codecs), f"{v.uri}: not H.264 Main: {codecs}"
        assert "mp4a.40.2" in codecs, f"{v.uri}: no AAC-LC in {codecs}"
        assert info.resolution and info.bandwidth and info.average_bandwidth and info.frame_rate == 25
        assert info.average_bandwidth <= info.bandwidth
        assert info.audio == "aud"
        w, h = info.resolution
        assert w % 2 == 0 and h % 2 == 0
    assert len({v.stream_info.resolution for v in variants}) == len(variants), "duplicate resolutions"

    audio = [m for m in master.media if m.type == "AUDIO"]
    assert len(audio) == 2 and {m.group_id for m in audio} == {"aud"}
    assert [m.default for m in audio].count("YES") == 1
    assert len({m.language for m in audio}) == 2 and all(m.uri for m in audio)

    iframes = master.iframe_playlists
    assert len(iframes) == len(variants)
    variant_res = {v.stream_info.resolution for v in variants}
    for p in iframes:
        info = p.iframe_stream_info
        assert info.bandwidth and str(info.codecs).startswith("avc1.") and "mp4a" not in str(info.codecs)
        assert info.resolution in variant_res


def test_trailer_is_clear_fmp4() -> None:
    master = m3u8.load(str(TRAILER / "master.m3u8"))
    assert len(master.playlists) >= 2 and not master.iframe_playlists
    for v in master.playlists:
        codecs = str(v.stream_info.codecs)
        assert codecs.startswith("avc1.") and codecs.endswith(",mp4a.40.2"), codecs
    for x in media_playlists(TRAILER / "master.m3u8", iframes=False):
        pl = x.playlist
        assert pl.version >= 6, f"{x.rel}: EXT-X-MAP needs EXT-X-VERSION 6"
        assert all(k is None or k.method == "NONE" for k in pl.keys), f"{x.rel}: trailer must be clear"
        assert len(pl.segment_map) == 1, f"{x.rel}: expected one EXT-X-MAP"
        init = resolve(TRAILER, x.path.parent, str(pl.segment_map[0].uri)).read_bytes()
        assert init[4:8] == b"ftyp" and b"moov" in init, f"{x.rel}: init segment is not ISO BMFF"
        for seg in pl.segments:
            head = resolve(TRAILER, x.path.parent, str(seg.uri)).read_bytes()[:8]
            assert head[4:8] in (b"styp", b"moof"), f"{x.rel} {seg.uri}: not a CMAF fragment"


@pytest.mark.parametrize("name", ["v144", "v270", "v360", "a-en", "a-fr"], ids=lambda n: f"title-9000/{n}")
def test_premium_segments_are_aes128_and_decrypt_to_ts(name: str) -> None:
    path = PREMIUM / name / "index.m3u8"
    pl = m3u8.load(str(path))
    first_sequence = int(pl.media_sequence or 0)
    for offset, seg in enumerate(pl.segments):
        key = seg.key
        assert key is not None and key.method == "AES-128", f"{seg.uri}: not AES-128"
        assert key.keyformat in (None, "identity")
        key_bytes = resolve(PREMIUM, path.parent, str(key.uri)).read_bytes()
        assert len(key_bytes) == 16
        cipher = resolve(PREMIUM, path.parent, str(seg.uri)).read_bytes()
        assert len(cipher) % 16 == 0
        assert cipher[0] != TS_SYNC or cipher[TS_PACKET] != TS_SYNC, f"{seg.uri} looks unencrypted"
        clear = aes128_cbc_decrypt(cipher, key_bytes, segment_iv(key, first_sequence + offset))
        assert_ts(clear, f"{name}/{seg.uri} decrypted")
        assert_starts_with_valid_psi(clear, f"{name}/{seg.uri} decrypted")


@pytest.mark.parametrize("name", ["v144", "v270", "v360"], ids=lambda n: f"title-9000/{n}")
def test_iframe_byte_ranges_are_clear_keyframes(name: str) -> None:
    path = PREMIUM / name / "iframes.m3u8"
    pl = m3u8.load(str(path))
    assert pl.is_i_frames_only and pl.version >= 4
    end_of_previous: dict[Path, int] = {}
    for i, seg in enumerate(pl.segments):
        assert seg.key is None or seg.key.method == "NONE", "I-frame ranges must point at clear media"
        assert seg.byterange, f"entry {i} has no EXT-X-BYTERANGE"
        length_s, _, offset_s = str(seg.byterange).partition("@")
        target = resolve(PREMIUM, path.parent, str(seg.uri))
        # RFC 8216 4.3.2.2: without @offset the range starts where the previous one of this resource ended.
        length = int(length_s)
        offset = int(offset_s) if offset_s else end_of_previous.get(target, 0)
        data = target.read_bytes()
        assert offset >= 0 and offset + length <= len(data), f"entry {i}: {seg.byterange} out of bounds"
        assert offset >= end_of_previous.get(target, 0), f"entry {i}: overlaps the previous range"
        end_of_previous[target] = offset + length
        chunk = data[offset : offset + length]
        assert chunk[0] == TS_SYNC, f"entry {i}: does not start on a TS sync byte"
        assert_ts(chunk, f"{name} I-frame {i}")
        assert has_idr(chunk), f"entry {i}: no H.264 IDR slice in the range"


def test_master_bandwidth_covers_measured_peaks() -> None:
    for master_path in MASTERS:
        loaded = {x.path: x for x in walk(master_path)}
        master = loaded[master_path.resolve()].playlist
        audio_peak = max(
            (peak_bps(loaded[(master_path.parent / m.uri).resolve()]) for m in master.media if m.uri),
            default=0.0,
        )
        for v in master.playlists:
            measured = peak_bps(loaded[(master_path.parent / v.uri).resolve()]) + audio_peak
            declared = int(v.stream_info.bandwidth)
            assert declared >= math.floor(measured), f"{master_path.parent.name}/{v.uri}: {declared} < {measured}"


def test_key_is_the_fixed_demo_key() -> None:
    assert (PREMIUM / "key.key").read_bytes() == bytes.fromhex("00112233445566778899aabbccddeeff")


def test_size_budget() -> None:
    files = [p for p in MEDIA.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    total = sum(p.stat().st_size for p in files)
    assert total <= SIZE_BUDGET, f"fixtures/media is {total} bytes, budget {SIZE_BUDGET}"


# --------------------------------------------------------------------------------------------- dash-9000


def dash_timeline(template: Any) -> list[tuple[int, int]]:
    """(start, duration) per segment from a SegmentTemplate's SegmentTimeline (`S@t`, `@d`, `@r`)."""
    out: list[tuple[int, int]] = []
    now = 0
    for s in template.segment_timelines[0].Ss:
        now = int(s.t) if s.t is not None else now
        for _ in range(int(s.r or 0) + 1):
            out.append((now, int(s.d)))
            now += int(s.d)
    return out


def dash_files(template: Any, rep_id: str) -> tuple[str, list[str]]:
    """The init segment and the media segments a player requests for one Representation."""
    init = str(template.initialization).replace("$RepresentationID$", rep_id)
    media = str(template.media).replace("$RepresentationID$", rep_id)
    start = int(template.start_number if template.start_number is not None else 1)
    count = len(dash_timeline(template))
    return init, [media.replace("$Number%05d$", f"{n:05d}") for n in range(start, start + count)]


def dash_representations() -> Iterator[tuple[Any, Any, Any]]:
    """(AdaptationSet, Representation, its SegmentTemplate) for every Representation of the MPD."""
    mpd = MPEGDASHParser.parse(str(DASH_MANIFEST))
    for aset in mpd.periods[0].adaptation_sets:
        for rep in aset.representations:
            templates = rep.segment_templates or aset.segment_templates
            assert templates, f"{rep.id}: no SegmentTemplate"
            yield aset, rep, templates[0]


def test_dash_mpd_is_static_and_durations_add_up() -> None:
    assert DASH_MANIFEST.is_file(), f"missing {DASH_MANIFEST}; run fixtures/media/generate.py"
    mpd = MPEGDASHParser.parse(str(DASH_MANIFEST))
    assert mpd.type == "static" and len(mpd.periods) == 1
    assert mpd.media_presentation_duration == "PT16.000S"
    sets = mpd.periods[0].adaptation_sets
    assert [a.content_type for a in sets] == ["video", "audio"]
    video, audio = sets
    assert len(video.representations) >= 2 and len(audio.representations) == 1
    counts = set()
    for aset, rep, template in dash_representations():
        assert "$RepresentationID$" in template.initialization, "init named per Representation"
        assert "$Number%05d$" in template.media and "$RepresentationID$" in template.media
        timeline = dash_timeline(template)
        starts = [start for start, _ in timeline]
        assert starts[0] == 0 and starts[1:] == [s + d for s, d in timeline[:-1]], f"{rep.id}: gaps in the timeline"
        seconds = sum(d for _, d in timeline) / int(template.timescale)
        if aset.content_type == "video":
            assert seconds == DASH_SECONDS, f"{rep.id}: {seconds} s"
            assert str(rep.codecs).startswith("avc1.4d"), f"{rep.id}: not H.264 Main: {rep.codecs}"
        else:
            assert seconds == pytest.approx(DASH_SECONDS, abs=0.15), f"{rep.id}: {seconds} s"
            assert rep.codecs == "mp4a.40.2"
        assert all(d / int(template.timescale) <= 2.05 for _, d in timeline), f"{rep.id}: segment > 2 s"
        counts.add(len(timeline))
    assert len(counts) == 1, f"Representations differ in segment count: {counts}"
    sizes = [(r.width, r.height) for r in video.representations]
    assert len(set(sizes)) == len(sizes) and all(w * 9 == h * 16 for w, h in sizes), sizes


def test_dash_every_referenced_file_exists_and_nothing_else() -> None:
    referenced = {DASH_MANIFEST.name}
    for _, rep, template in dash_representations():
        init, segments = dash_files(template, str(rep.id))
        head = (DASH / init).read_bytes()
        assert head[4:8] == b"ftyp" and b"moov" in head, f"{init}: not an ISO BMFF init segment"
        for name in segments:
            assert (DASH / name).read_bytes()[4:8] in (b"styp", b"moof"), f"{name}: not a media segment"
        assert not referenced & {init, *segments}, "every segment URL is distinct (browsers cache by URL)"
        referenced.update([init, *segments])
    present = {str(p.relative_to(DASH)) for p in DASH.rglob("*") if p.is_file()}
    assert present == referenced, f"unreferenced {sorted(present - referenced)}, missing {sorted(referenced - present)}"


def test_dash_bandwidth_covers_measured_peaks() -> None:
    for _, rep, template in dash_representations():
        _, segments = dash_files(template, str(rep.id))
        durations = [d / int(template.timescale) for _, d in dash_timeline(template)]
        peak = max((DASH / n).stat().st_size * 8 / d for n, d in zip(segments, durations, strict=True))
        assert int(rep.bandwidth) >= math.floor(peak), f"{rep.id}: {rep.bandwidth} < {peak}"
