"""Live DASH from the live origin: the dynamic MPD, MPD patches (ISO/IEC 23009-1 §5.15) and looped fMP4.

Read back with independent parts: `mpegdash` for the MPD, ElementTree for patches (applied by a small
RFC 5261 interpreter below, for the selector forms the origin writes), ffprobe for the media, on a
simulated clock hours into the stream.
"""

from __future__ import annotations

import itertools
import re
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from mpegdash.parser import MPEGDASHParser

from gateway.dev.live_origin import LiveConfig, LiveStream, SimulatedClock
from gateway.dev.live_origin.dash import LiveDash, LiveDashConfig, PatchError
from gateway.dev.live_origin.dash_source import DashSource, load_dash_source
from gateway.dev.live_origin.fmp4 import boxes, fragment_info, restamp
from gateway.dev.live_origin.server import build_live_app
from gateway.dev.live_origin.source import load_vod_source
from tests.support.paths import REPO
from tests.support.servers import require_tool

TITLE = REPO / "fixtures" / "media" / "vod" / "dash-9000"
START = 1_750_000_000.0
NOW = START + 3 * 3600 + 0.25
MPD_NS = {"m": "urn:mpeg:dash:schema:mpd:2011"}
BASE = "http://origin.test/live/dash-9000/"


@pytest.fixture(scope="module")
def source() -> DashSource:
    return load_dash_source(TITLE)


@pytest.fixture(scope="module")
def live(source: DashSource) -> LiveDash:
    return LiveDash(LiveDashConfig(start_time=START, time_shift_buffer_seconds=30), source)


def parse(document: bytes) -> ET.Element:
    """Our own simulator's output (no DTD, no entities), read by ElementTree."""
    return ET.fromstring(document)  # noqa: S314


def timelines(mpd: bytes) -> dict[str, list[tuple[int, int]]]:
    """(t, d) of every S, per Representation id."""
    root = parse(mpd)
    out: dict[str, list[tuple[int, int]]] = {}
    for rep in root.iterfind(".//m:Representation", MPD_NS):
        found = rep.iterfind("m:SegmentTemplate/m:SegmentTimeline/m:S", MPD_NS)
        out[rep.attrib["id"]] = [(int(s.attrib["t"]), int(s.attrib["d"])) for s in found]
    return out


def test_the_mpd_is_dynamic_with_a_sliding_gapless_timeline(live: LiveDash, source: DashSource) -> None:
    mpd_bytes = live.mpd(NOW)
    mpd = MPEGDASHParser.parse(mpd_bytes.decode())
    assert mpd.type == "dynamic" and mpd.minimum_update_period == "PT2S" and mpd.time_shift_buffer_depth == "PT30S"
    assert mpd.availability_start_time == "2025-06-15T15:06:40.000Z" and mpd.publish_time.endswith(".250Z")
    assert mpd.id == "dash-9000" and [loc.text for loc in mpd.locations] == ["manifest.mpd"]
    root = parse(mpd_bytes)
    assert root.find("m:PatchLocation", MPD_NS).text == f"patch-{round(NOW * 1000)}.mpp"  # type: ignore[union-attr]
    for track in source.tracks:
        for rep in track.representations:
            segments = timelines(mpd_bytes)[rep.id]
            ends = [t + d for t, d in segments]
            assert all(ends[i] == segments[i + 1][0] for i in range(len(segments) - 1)), "gapless"
            now_ticks = (round(NOW * 1000) - round(START * 1000)) * track.timescale // 1000
            assert ends[-1] <= now_ticks < ends[-1] + max(track.durations), "the newest complete segment is last"
            assert ends[-1] - segments[0][0] <= 30 * track.timescale + max(track.durations)
            assert segments[0][0] >= ends[-1] - 30 * track.timescale, "timeShiftBufferDepth bounds the window"


def test_segments_loop_with_decode_times_moved_on_by_whole_loops(live: LiveDash, source: DashSource) -> None:
    for track in source.tracks:
        rep = track.representations[0]
        for t, _ in timelines(live.mpd(NOW))[rep.id]:
            data = live.segment_bytes(rep.id, t, NOW)
            loops, offset = divmod(t, track.loop_ticks)
            index = track.starts.index(offset)
            info = fragment_info(data)
            assert info.base_media_decode_time == rep.decode_times[index] + loops * track.loop_ticks
            assert [b.type for b in boxes(data)] == [b"styp", b"moof", b"mdat"]  # sidx dropped
            original = rep.segments[index]
            assert data.endswith(original[next(b for b in boxes(original) if b.type == b"mdat").start :])


def test_segments_are_refused_until_complete_and_off_boundaries(live: LiveDash) -> None:
    track = live.source.tracks[0]
    last_t, last_d = timelines(live.mpd(NOW))["v144"][-1]
    with pytest.raises(LookupError, match="not available yet"):
        live.segment_bytes("v144", last_t + last_d, NOW)
    assert live.segment_bytes("v144", last_t + last_d, NOW + 2)  # once it is complete
    with pytest.raises(LookupError, match="starts at"):
        live.segment_bytes("v144", last_t + 1, NOW)
    assert track.loop_ticks == 8 * 25600


def test_restamp_rewrites_only_the_decode_time_and_sequence() -> None:
    original = (TITLE / "v144" / "seg-00003.m4s").read_bytes()
    out = restamp(original, base_media_decode_time=2**40 + 7, sequence_number=99)
    assert fragment_info(out).base_media_decode_time == 2**40 + 7 and fragment_info(out).sequence_number == 99
    sidx = next(b for b in boxes(original) if b.type == b"sidx")
    assert len(out) == len(original) - (sidx.end - sidx.start)
    version = original.index(b"tfdt") + 4  # a version-0 tfdt has a 32-bit time: it could not grow in place
    with pytest.raises(ValueError, match="version-1"):
        fragment_info(original[:version] + b"\0" + original[version + 1 :])


@pytest.mark.parametrize("elapsed", [0.4, 1.0, 2.0, 3.3, 7.9, 31.0, 58.0])
def test_a_patch_turns_the_old_mpd_into_the_new_one(live: LiveDash, elapsed: float) -> None:
    """Applying patch(P0 -> P1) to MPD(P0) gives MPD(P1), element for element."""
    old_time, new_time = NOW, NOW + elapsed
    patch = parse(live.patch(live.publish_ms(old_time), new_time))
    patched = apply_patch(parse(live.mpd(old_time)), patch)
    assert canonical(patched) == canonical(parse(live.mpd(new_time)))


def test_patch_refusals(source: DashSource) -> None:
    live = LiveDash(LiveDashConfig(start_time=START, patch_ttl_seconds=60), source)
    published = live.publish_ms(NOW)
    for original, now, status in (
        (published, NOW, 425),  # nothing newer yet
        (published, NOW + 71, 410),  # past ttl + grace
        (round(START * 1000) - 1, NOW, 404),  # before the stream
    ):
        with pytest.raises(PatchError) as refused:
            live.patch(original, now)
        assert refused.value.status == status
    no_patches = LiveDash(LiveDashConfig(start_time=START, patch_ttl_seconds=None), source)
    assert b"PatchLocation" not in no_patches.mpd(NOW)
    with pytest.raises(PatchError):
        no_patches.patch(published, NOW + 2)


@pytest.fixture
async def origin(live: LiveDash) -> AsyncIterator[tuple[httpx.AsyncClient, SimulatedClock]]:
    clock = SimulatedClock(NOW)
    hls = LiveStream(LiveConfig(start_time=START), load_vod_source(REPO / "fixtures" / "media" / "vod" / "title-9000"))
    app = build_live_app(hls, clock, dash=live)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        yield client, clock


async def test_the_origin_serves_mpd_patch_init_and_segments(
    origin: tuple[httpx.AsyncClient, SimulatedClock], tmp_path: Path
) -> None:
    client, clock = origin
    mpd = await client.get("manifest.mpd")
    assert mpd.status_code == 200 and mpd.headers["content-type"] == "application/dash+xml"
    location = parse(mpd.content).find("m:PatchLocation", MPD_NS).text  # type: ignore[union-attr]
    assert (await client.get(str(location))).status_code == 425
    clock.advance(2)
    patch = await client.get(str(location))
    assert patch.status_code == 200 and patch.headers["content-type"] == "application/dash-patch+xml"
    assert parse(patch.content).tag == "{urn:mpeg:dash:schema:mpd-patch:2020}Patch"
    for rep, segments in timelines(mpd.content).items():
        init = await client.get(f"{rep}/init.mp4")
        assert init.status_code == 200 and init.headers["content-type"] in ("video/mp4", "audio/mp4")
        t, d = segments[-1]
        assert (await client.get(f"{rep}/t{t}.m4s")).status_code == 200
        assert (await client.get(f"{rep}/t{t + d + d}.m4s")).status_code == 404
    assert (await client.get("nope/init.mp4")).status_code == 404
    assert (await client.get("http://origin.test/live/other/manifest.mpd")).status_code == 404

    # The media decodes as a stream across a loop wrap: init + 10 consecutive live segments (20 s > 16 s loop).
    ffprobe = require_tool("ffprobe")
    for rep in ("v144", "a-en"):
        recent = timelines(mpd.content)[rep][-10:]
        body = (await client.get(f"{rep}/init.mp4")).content
        for t, _ in recent:
            body += (await client.get(f"{rep}/t{t}.m4s")).content
        path = tmp_path / f"{rep}.mp4"
        path.write_bytes(body)
        probe = subprocess.run(
            [ffprobe, "-v", "error", "-show_entries", "packet=dts_time", "-of", "csv=p=0", str(path)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        times = [float(x) for x in probe.stdout.split() if re.fullmatch(r"[0-9.]+", x)]
        assert times[-1] - times[0] > 18, (rep, times[:3], times[-3:])
        steps_back = [b - a for a, b in itertools.pairwise(times) if b < a]
        # Video is strictly in order; audio restates its priming frame at each loop wrap (one AAC frame).
        assert steps_back == [] if rep == "v144" else len(steps_back) == 1 and -1024 / 48000 <= steps_back[0] < 0


# ---- a small RFC 5261 interpreter for the patches the origin writes ------------------------------------
_STEP = re.compile(r"^([A-Za-z]+)(?:\[(?:@id='([^']*)'|(\d+))\])?$")


def _select(root: ET.Element, sel: str) -> tuple[ET.Element, str | None]:
    """The element (and attribute name, for `/@x`) a selector names; only `/MPD/Name[@id='x']/Name[n]/@a`."""
    parts = sel.strip("/").split("/")
    attribute = parts.pop()[1:] if parts[-1].startswith("@") else None
    assert parts[0] == "MPD"
    node = root
    for part in parts[1:]:
        match = _STEP.match(part)
        assert match, part
        name, ident, position = match.groups()
        children = [c for c in node if c.tag == f"{{{MPD_NS['m']}}}{name}"]
        if ident is not None:
            children = [c for c in children if c.attrib.get("id") == ident]
        node = children[int(position) - 1 if position else 0]
    return node, attribute


def _parent(root: ET.Element, child: ET.Element) -> ET.Element:
    return next(p for p in root.iter() if child in list(p))


def apply_patch(mpd: ET.Element, patch: ET.Element) -> ET.Element:
    assert patch.attrib["mpdId"] == mpd.attrib["id"]
    assert patch.attrib["originalPublishTime"] == mpd.attrib["publishTime"]
    for op in patch:
        action = op.tag.split("}")[1]
        target, attribute = _select(mpd, op.attrib["sel"])
        if attribute is not None:
            assert action == "replace"
            target.attrib[attribute] = op.text or ""
        elif action == "remove":
            _parent(mpd, target).remove(target)
        elif action == "add":
            for child in op:
                target.append(_in_mpd_namespace(child))
        else:  # replace an element
            parent = _parent(mpd, target)
            index = list(parent).index(target)
            parent.remove(target)
            for offset, child in enumerate(op):
                parent.insert(index + offset, _in_mpd_namespace(child))
    assert mpd.attrib["publishTime"] == patch.attrib["publishTime"]
    return mpd


def _in_mpd_namespace(element: ET.Element) -> ET.Element:
    """Patch payloads are in the patch namespace (its default); the MPD's elements are in the MPD's."""
    copy = ET.Element(f"{{{MPD_NS['m']}}}{element.tag.split('}')[1]}", element.attrib)
    copy.text = element.text
    for child in element:
        copy.append(_in_mpd_namespace(child))
    return copy


def canonical(root: ET.Element) -> list[tuple[str, tuple[tuple[str, str], ...], str]]:
    return [(e.tag, tuple(sorted(e.attrib.items())), (e.text or "").strip()) for e in root.iter()]
