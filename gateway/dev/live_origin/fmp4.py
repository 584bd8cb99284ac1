"""Just enough ISO BMFF (ISO/IEC 14496-12) to loop fMP4 media segments as a live stream.

A VOD segment's decode times start again at every loop, a live one's never do: `restamp` rewrites the
`tfdt` baseMediaDecodeTime (and the `mfhd` sequence number) of a media segment in place, and drops its
`sidx` (a VOD index whose times would be stale; players of SegmentTemplate streams do not need it). Sizes
and `trun` data offsets stay valid: only 64-bit `tfdt` (version 1, what ffmpeg writes) is accepted, so
no box grows, and `sidx` sits before `moof`, whose data offsets are relative to `moof` itself
(default-base-is-moof) — checked by `fragment_info`, which the loader runs on every segment.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

_CONTAINERS = frozenset({b"moof", b"traf"})
_DEFAULT_BASE_IS_MOOF = 0x020000
_BASE_DATA_OFFSET_PRESENT = 0x000001


@dataclass(frozen=True)
class Box:
    type: bytes
    start: int  # offset of the box header
    header: int  # header length (8, or 16 with a 64-bit size)
    end: int

    @property
    def body(self) -> int:
        return self.start + self.header


def boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[Box]:
    """The boxes laid end to end in `data[start:end]`; ValueError on a size that does not fit."""
    end = len(data) if end is None else end
    offset = start
    while offset < end:
        if end - offset < 8:
            raise ValueError(f"truncated box header at byte {offset}")
        size, kind = struct.unpack_from(">I4s", data, offset)
        header = 8
        if size == 1:
            if end - offset < 16:
                raise ValueError(f"truncated 64-bit box size at byte {offset}")
            (size,) = struct.unpack_from(">Q", data, offset + 8)
            header = 16
        elif size == 0:
            size = end - offset
        if size < header or offset + size > end:
            raise ValueError(f"box {kind!r} at byte {offset} has size {size}, beyond its parent")
        yield Box(kind, offset, header, offset + size)
        offset += size


def _find(data: bytes, path: tuple[bytes, ...], start: int = 0, end: int | None = None) -> list[Box]:
    """Every box at `path` (e.g. (b"moof", b"traf", b"tfdt")) below `data[start:end]`."""
    found: list[Box] = []
    for box in boxes(data, start, end):
        if box.type != path[0]:
            continue
        if len(path) == 1:
            found.append(box)
        elif box.type in _CONTAINERS:
            found += _find(data, path[1:], box.body, box.end)
    return found


@dataclass(frozen=True)
class FragmentInfo:
    base_media_decode_time: int
    sequence_number: int


def fragment_info(data: bytes) -> FragmentInfo:
    """Check that `data` is one media segment `restamp` can rewrite, and read its decode time.

    One `moof` with one `traf`, a version-1 `tfdt`, track data addressed relative to the `moof`, and no
    `sidx` after the `moof` (dropping it then moves nothing the offsets point at).
    """
    top = list(boxes(data))
    kinds = [box.type for box in top]
    if kinds.count(b"moof") != 1 or b"mdat" not in kinds:
        raise ValueError(f"not a single-fragment media segment (top-level boxes {kinds})")
    moof = top[kinds.index(b"moof")]
    if any(box.type == b"sidx" and box.start > moof.start for box in top):
        raise ValueError("a sidx after the moof is not supported")
    tfdts, tfhds = _find(data, (b"moof", b"traf", b"tfdt")), _find(data, (b"moof", b"traf", b"tfhd"))
    mfhds = _find(data, (b"moof", b"mfhd"))
    if len(tfdts) != 1 or len(tfhds) != 1 or len(mfhds) != 1:
        raise ValueError("expected one traf with one tfhd and one tfdt, and one mfhd")
    (flags,) = struct.unpack_from(">I", data, tfhds[0].body)
    if flags & _BASE_DATA_OFFSET_PRESENT or not flags & _DEFAULT_BASE_IS_MOOF:
        raise ValueError("track data must be addressed relative to the moof (default-base-is-moof)")
    tfdt = tfdts[0]
    if data[tfdt.body] != 1 or tfdt.end - tfdt.body != 12:
        raise ValueError("only a version-1 (64-bit) tfdt is supported")
    (decode_time,) = struct.unpack_from(">Q", data, tfdt.body + 4)
    (sequence,) = struct.unpack_from(">I", data, mfhds[0].body + 4)
    return FragmentInfo(decode_time, sequence)


def restamp(data: bytes, *, base_media_decode_time: int, sequence_number: int) -> bytes:
    """`data` (checked by `fragment_info`) with a new decode time and sequence number, and no `sidx`."""
    if not 0 <= base_media_decode_time < 1 << 64:
        raise ValueError(f"decode time {base_media_decode_time} does not fit 64 bits")
    out = bytearray()
    for box in boxes(data):
        if box.type != b"sidx":
            out += data[box.start : box.end]
    (tfdt,) = _find(bytes(out), (b"moof", b"traf", b"tfdt"))
    (mfhd,) = _find(bytes(out), (b"moof", b"mfhd"))
    struct.pack_into(">Q", out, tfdt.body + 4, base_media_decode_time)
    struct.pack_into(">I", out, mfhd.body + 4, sequence_number % (1 << 32))
    return bytes(out)
