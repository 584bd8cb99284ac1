"""Load a static fMP4 DASH title (MPD + init and media segments) into memory, for looping as live DASH.

The MPD is read with `mpegdash` (our own bundled file; the gateway's rewriter never uses this reader).
Supported: one Period; per AdaptationSet one SegmentTemplate with a SegmentTimeline that starts at 0
and has no gaps (at AdaptationSet or Representation level), `initialization` and `media` templates using
`$RepresentationID$` and `$Number$` / `$Number%0Nd$`. Every media segment is checked by
`fmp4.fragment_info` (so `restamp` can loop it) and its decode time kept: a live segment's decode time is
its VOD one plus whole loops, so the VOD's offset between timeline and decode times is kept exactly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from mpegdash.nodes import AdaptationSet, SegmentTemplate
from mpegdash.parser import MPEGDASHParser

from gateway.dev.live_origin.fmp4 import fragment_info

_NUMBER = re.compile(r"\$Number(?:%0(\d+)d)?\$")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


@dataclass(frozen=True)
class DashRepresentation:
    id: str
    attributes: tuple[tuple[str, str], ...]  # Representation attributes for the live MPD, id first
    children: tuple[str, ...]  # child elements to restate (AudioChannelConfiguration), as XML
    init: bytes
    segments: tuple[bytes, ...]
    decode_times: tuple[int, ...]  # each segment's VOD tfdt


@dataclass(frozen=True)
class DashTrack:
    """One AdaptationSet: its Representations share one timeline (`starts`/`durations`, in `timescale`)."""

    id: str
    mime_type: str  # what its init and media segments are served as
    attributes: tuple[tuple[str, str], ...]
    children: tuple[str, ...]  # Role descriptors, as XML
    timescale: int
    durations: tuple[int, ...]
    representations: tuple[DashRepresentation, ...]

    @property
    def loop_ticks(self) -> int:
        return sum(self.durations)

    @property
    def starts(self) -> tuple[int, ...]:
        out, total = [], 0
        for duration in self.durations:
            out.append(total)
            total += duration
        return tuple(out)


@dataclass(frozen=True)
class DashSource:
    name: str
    tracks: tuple[DashTrack, ...]

    def representation(self, rep_id: str) -> tuple[DashTrack, DashRepresentation]:
        for track in self.tracks:
            for rep in track.representations:
                if rep.id == rep_id:
                    return track, rep
        raise KeyError(rep_id)


def _expand(template: str, rep_id: str, number: int | None = None) -> str:
    path = template.replace("$RepresentationID$", rep_id)
    if number is not None:
        path = _NUMBER.sub(lambda m: f"{number:0{int(m.group(1) or 0)}d}", path)
    if "$" in path or PurePosixPath(path).is_absolute() or ".." in PurePosixPath(path).parts:
        raise ValueError(f"unsupported template {template!r}")
    return path


def _timeline(template: SegmentTemplate) -> list[int]:
    timelines = template.segment_timelines or []
    if len(timelines) != 1:
        raise ValueError("every SegmentTemplate needs one SegmentTimeline")
    durations: list[int] = []
    for index, s in enumerate(timelines[0].Ss or []):
        if s.t is not None and int(s.t) != sum(durations):
            raise ValueError(f"SegmentTimeline S[{index}] t={s.t}: the timeline must start at 0 with no gaps")
        durations += [int(s.d)] * (1 + int(s.r or 0))
    if not durations or min(durations) <= 0:
        raise ValueError("a SegmentTimeline needs segments of positive duration")
    return durations


def _attributes(node: object, names: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    values = ((xml, getattr(node, attr, None)) for xml, attr in names)
    return tuple((xml, str(value)) for xml, value in values if value is not None)


_SET_ATTRIBUTES = (
    ("contentType", "content_type"),
    ("mimeType", "mime_type"),
    ("lang", "lang"),
    ("par", "par"),
    ("frameRate", "frame_rate"),
    ("maxWidth", "max_width"),
    ("maxHeight", "max_height"),
)
_REP_ATTRIBUTES = (
    ("codecs", "codecs"),
    ("bandwidth", "bandwidth"),
    ("width", "width"),
    ("height", "height"),
    ("sar", "sar"),
    ("frameRate", "frame_rate"),
    ("audioSamplingRate", "audio_sampling_rate"),
)


def _descriptors(element: str, found: list[object] | None) -> tuple[str, ...]:
    return tuple(
        f'<{element} schemeIdUri="{d.scheme_id_uri}" value="{d.value}"/>'  # type: ignore[attr-defined]
        for d in found or []
    )


def _track(root: Path, adaptation: AdaptationSet, index: int) -> DashTrack:
    set_templates = adaptation.segment_templates or []
    reps: list[DashRepresentation] = []
    durations: list[int] | None = None
    timescale: int | None = None
    for rep in adaptation.representations or []:
        templates = rep.segment_templates or set_templates
        if len(templates) != 1:
            raise ValueError(f"Representation {rep.id}: one SegmentTemplate is needed")
        template = templates[0]
        rep_durations, rep_timescale = _timeline(template), int(template.timescale or 1)
        if durations is not None and (rep_durations != durations or rep_timescale != timescale):
            raise ValueError(f"Representation {rep.id}: the Representations of a set must share one timeline")
        durations, timescale = rep_durations, rep_timescale
        rep_id = str(rep.id)
        if not _NAME.fullmatch(rep_id):
            raise ValueError(f"Representation id {rep_id!r} is not one safe path segment")
        first = int(template.start_number if template.start_number is not None else 1)
        init = (root / _expand(str(template.initialization), rep_id)).read_bytes()
        segments = tuple(
            (root / _expand(str(template.media), rep_id, first + k)).read_bytes() for k in range(len(durations))
        )
        decode_times = tuple(fragment_info(segment).base_media_decode_time for segment in segments)
        attributes = (("id", rep_id), *_attributes(rep, _REP_ATTRIBUTES))
        children = _descriptors("AudioChannelConfiguration", rep.audio_channel_configurations)
        reps.append(DashRepresentation(rep_id, attributes, children, init, segments, decode_times))
    if not reps or durations is None or timescale is None:
        raise ValueError(f"AdaptationSet {index} has no Representation")
    set_id = str(adaptation.id if adaptation.id is not None else index)
    return DashTrack(
        id=set_id,
        mime_type=str(adaptation.mime_type or "application/mp4"),
        attributes=(("id", set_id), *_attributes(adaptation, _SET_ATTRIBUTES)),
        children=_descriptors("Role", adaptation.roles),
        timescale=timescale,
        durations=tuple(durations),
        representations=tuple(reps),
    )


def load_dash_source(directory: Path | str, manifest: str = "manifest.mpd") -> DashSource:
    """Read `<directory>/<manifest>` (a static MPD) and every init and media segment it names."""
    root = Path(directory)
    mpd = MPEGDASHParser.parse((root / manifest).read_text(encoding="utf-8"))
    if (mpd.type or "static") != "static" or len(mpd.periods or []) != 1:
        raise ValueError(f"{root / manifest}: a static MPD with one Period is needed")
    tracks = tuple(_track(root, a, i) for i, a in enumerate(mpd.periods[0].adaptation_sets or []))
    ids = [rep.id for track in tracks for rep in track.representations]
    if not tracks or len(set(ids)) != len(ids):
        raise ValueError(f"{root / manifest}: needs AdaptationSets with unique Representation ids, got {ids}")
    return DashSource(root.name, tracks)
