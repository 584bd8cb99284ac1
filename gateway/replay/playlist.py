"""HLS parsing for the simulated player.

Masters are parsed with the `m3u8` package. Media playlists are reloaded every target duration for
hours, and `m3u8.loads` costs ~1.5-3 ms for a 30-60 segment DVR playlist (more than the gateway spends
serving it), so reloads go through a small line scanner that reads only what a player needs; the first
load of every rendition (and every reload with `strict`) is cross-checked against `m3u8`, and any
disagreement is reported as a parse mismatch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import m3u8

_ATTR = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^",]*)')


@dataclass(frozen=True, slots=True)
class Variant:
    url: str  # absolute, as the master wrote it (its playlist token included)
    bandwidth: int
    name: str
    audio_url: str | None  # the group's default alternate-audio playlist, if any


@dataclass(frozen=True, slots=True)
class Segment:
    msn: int
    duration: float
    uri: str  # as written (relative to the playlist)
    key_uri: str | None  # EXT-X-KEY in force (None: clear)
    map_uri: str | None  # EXT-X-MAP in force


@dataclass(frozen=True, slots=True)
class MediaPlaylist:
    target_duration: float
    media_sequence: int
    segments: tuple[Segment, ...]
    endlist: bool
    can_block_reload: bool
    last_part: str | None  # the newest LL-HLS part (EXT-X-PART URI) listed

    @property
    def last_msn(self) -> int:
        return self.segments[-1].msn if self.segments else self.media_sequence - 1

    def msn_behind_edge(self, seconds: float) -> int:
        """The segment playing `seconds` behind the end of the playlist (clamped to the first)."""
        remaining = seconds
        for segment in reversed(self.segments):
            remaining -= segment.duration
            if remaining <= 0:
                return segment.msn
        return self.segments[0].msn if self.segments else self.media_sequence


def attributes(line: str) -> dict[str, str]:
    return {key: value.strip('"') for key, value in _ATTR.findall(line.partition(":")[2])}


def rendition_name(url: str) -> str:
    """`…/v144/index.m3u8?token=…` -> `v144`; `…/low.m3u8` -> `low`."""
    path = urlsplit(url).path
    directory, _, file = path.rpartition("/")
    if file.startswith("index.") and directory:
        return directory.rpartition("/")[2]
    return file.rsplit(".", 1)[0]


def parse_master(text: str, master_url: str) -> list[Variant]:
    """Variants sorted by bandwidth, with absolute URLs; ValueError if there are none."""
    master = m3u8.loads(text)
    audio_defaults: dict[str, str] = {}
    for media in master.media:
        if media.type == "AUDIO" and media.uri and (media.default == "YES" or media.group_id not in audio_defaults):
            audio_defaults[str(media.group_id)] = urljoin(master_url, str(media.uri))
    variants = []
    for playlist in master.playlists:
        url = urljoin(master_url, str(playlist.uri))
        info = playlist.stream_info
        audio = audio_defaults.get(str(info.audio)) if info.audio else None
        variants.append(Variant(url, int(info.bandwidth or 0), rendition_name(url), audio))
    if not variants:
        raise ValueError("the master playlist lists no variants")
    return sorted(variants, key=lambda v: v.bandwidth)


def all_renditions(text: str, master_url: str) -> list[str]:
    """Absolute URLs of every media playlist a master names: variants and every EXT-X-MEDIA with a URI."""
    master = m3u8.loads(text)
    uris = [str(p.uri) for p in master.playlists] + [str(m.uri) for m in master.media if m.uri]
    return list(dict.fromkeys(urljoin(master_url, uri) for uri in uris))


def scan_media(text: str) -> MediaPlaylist:
    """What the player needs from a media playlist, in one pass over its lines."""
    target = 0.0
    sequence = 0
    segments: list[Segment] = []
    key: str | None = None
    init: str | None = None
    duration: float | None = None
    last_part: str | None = None
    endlist = can_block = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line[0] != "#":
            if duration is not None:
                segments.append(Segment(sequence + len(segments), duration, line, key, init))
                duration = None
            continue
        tag = line.partition(":")[0]
        if tag == "#EXTINF":
            duration = float(line[8:].partition(",")[0])
        elif tag == "#EXT-X-PART":
            last_part = attributes(line).get("URI") or last_part
        elif tag == "#EXT-X-KEY":
            attrs = attributes(line)
            key = None if attrs.get("METHOD") == "NONE" else attrs.get("URI")
        elif tag == "#EXT-X-MAP":
            init = attributes(line).get("URI")
        elif tag == "#EXT-X-MEDIA-SEQUENCE":
            sequence = int(line[22:])
        elif tag == "#EXT-X-TARGETDURATION":
            target = float(line[22:])
        elif tag == "#EXT-X-SKIP":
            sequence += int(attributes(line).get("SKIPPED-SEGMENTS", "0"))
        elif tag == "#EXT-X-SERVER-CONTROL":
            can_block = attributes(line).get("CAN-BLOCK-RELOAD") == "YES"
        elif tag == "#EXT-X-ENDLIST":
            endlist = True
    if target <= 0:
        raise ValueError("media playlist without EXT-X-TARGETDURATION")
    return MediaPlaylist(target, sequence, tuple(segments), endlist, can_block, last_part)


def cross_check(text: str, scanned: MediaPlaylist) -> str | None:
    """None if `m3u8` reads the same segments, sequence and keys; else what differs."""
    model = m3u8.loads(text)
    if int(model.media_sequence or 0) != scanned.media_sequence:
        return f"media sequence {model.media_sequence} vs {scanned.media_sequence}"
    complete = [s for s in model.segments if s.uri]  # m3u8 lists an LL-HLS segment in progress (parts only) too
    if len(complete) != len(scanned.segments):
        return f"{len(complete)} segments vs {len(scanned.segments)}"
    for theirs, ours in zip(complete, scanned.segments, strict=True):
        if str(theirs.uri) != ours.uri or abs(float(theirs.duration) - ours.duration) > 1e-6:
            return f"segment {ours.msn}: {theirs.uri} {theirs.duration} vs {ours.uri} {ours.duration}"
        key = theirs.key.uri if theirs.key is not None and theirs.key.method != "NONE" else None
        if key != ours.key_uri:
            return f"segment {ours.msn}: key {key} vs {ours.key_uri}"
    return None
