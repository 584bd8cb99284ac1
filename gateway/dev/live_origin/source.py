"""Load a VOD HLS directory (MPEG-TS, clear or AES-128) into memory, decrypted, for looping.

This is the simulator's only file I/O. The master playlist is read line by line; every rendition it
references (variant URI lines and `EXT-X-MEDIA` URIs) becomes a named rendition, named after the
directory holding its playlist (`v144/index.m3u8` -> `v144`). Media playlists are parsed with the
`m3u8` package from text (never `m3u8.load`, which would also fetch URLs). Segments are decrypted
once with the source key (explicit IV, or the implicit media-sequence IV) so the live model can
re-encrypt them with its own rotating keys.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import m3u8

from gateway.dev.live_origin.crypto import decrypt_aes128, sequence_iv

TS_PACKET = 188
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_URI_ATTR = re.compile(r'URI="([^"]*)"')


@dataclass(frozen=True)
class SourceRendition:
    """One rendition's loop: clear TS segments and their durations in seconds."""

    name: str
    durations: tuple[float, ...]
    clear_segments: tuple[bytes, ...]


@dataclass(frozen=True)
class VodSource:
    """A loaded VOD title. `reference` names the first variant, whose durations set the clock."""

    name: str
    master_lines: tuple[str, ...]
    renditions: tuple[SourceRendition, ...]
    reference: str

    def rendition(self, name: str) -> SourceRendition:
        for rendition in self.renditions:
            if rendition.name == name:
                return rendition
        raise KeyError(name)


def rendition_name(uri: str) -> str:
    """`v144/index.m3u8` -> `v144`; `low.m3u8` -> `low`. One safe path segment, or ValueError."""
    path = PurePosixPath(uri.split("?", 1)[0])
    name = path.parent.name if str(path.parent) not in ("", ".") else path.stem
    if not _NAME.fullmatch(name) or name == "keys":
        raise ValueError(f"cannot derive a rendition name from URI {uri!r} (got {name!r})")
    return name


def live_master_lines(master_text: str) -> tuple[tuple[str, ...], list[tuple[str, str]], str]:
    """Rewrite a VOD master for live: rendition URIs become `<name>/index.m3u8`.

    I-frame playlists are dropped (the simulator does not produce live trick-play). Returns the new
    lines, the (name, source URI) pairs in order of appearance, and the first variant's name.
    """
    lines: list[str] = []
    found: list[tuple[str, str]] = []
    first_variant = ""
    after_stream_inf = False
    for line in master_text.splitlines():
        if line.startswith("#EXT-X-I-FRAME-STREAM-INF"):
            continue
        if line.startswith("#EXT-X-MEDIA:") and (match := _URI_ATTR.search(line)):
            name = rendition_name(match.group(1))
            found.append((name, match.group(1)))
            line = f"{line[: match.start(1)]}{name}/index.m3u8{line[match.end(1) :]}"
        elif line.startswith("#EXT-X-STREAM-INF"):
            after_stream_inf = True
        elif after_stream_inf and line.strip() and not line.startswith("#"):
            name = rendition_name(line.strip())
            found.append((name, line.strip()))
            first_variant = first_variant or name
            line = f"{name}/index.m3u8"
            after_stream_inf = False
        lines.append(line)
    while lines and not lines[-1].strip():
        lines.pop()  # dropping the I-frame lines can leave blank lines at the end
    names = [name for name, _ in found]
    if not first_variant or len(set(names)) != len(names):
        raise ValueError(f"master needs at least one variant and unique rendition names, got {names}")
    return tuple(lines), found, first_variant


def _load_rendition(name: str, playlist_path: Path) -> SourceRendition:
    playlist = m3u8.loads(playlist_path.read_text(encoding="utf-8"))
    if playlist.is_endlist is not True or not playlist.segments:
        raise ValueError(f"{playlist_path}: not a finished VOD playlist with segments")
    first_sequence = int(playlist.media_sequence or 0)
    keys: dict[Path, bytes] = {}
    durations: list[float] = []
    clear: list[bytes] = []
    for index, segment in enumerate(playlist.segments):
        if segment.init_section is not None or segment.byterange:
            raise ValueError(f"{playlist_path}: only whole MPEG-TS segments are supported (no MAP/BYTERANGE)")
        data = (playlist_path.parent / str(segment.uri)).read_bytes()
        key = segment.key
        if key is not None and str(key.method) == "AES-128":
            key_path = (playlist_path.parent / str(key.uri)).resolve()
            key_bytes = keys.setdefault(key_path, key_path.read_bytes())
            iv = bytes.fromhex(str(key.iv)[2:]) if key.iv else sequence_iv(first_sequence + index)
            data = decrypt_aes128(data, key_bytes, iv)
        elif key is not None and str(key.method) != "NONE":
            raise ValueError(f"{playlist_path}: unsupported key method {key.method}")
        if not data or data[0] != 0x47 or len(data) % TS_PACKET:
            raise ValueError(f"{playlist_path} segment {segment.uri}: not whole 188-byte TS packets")
        durations.append(float(segment.duration))
        clear.append(data)
    return SourceRendition(name, tuple(durations), tuple(clear))


def load_vod_source(directory: Path | str) -> VodSource:
    """Read `<directory>/master.m3u8` and every rendition it names."""
    root = Path(directory)
    lines, found, reference = live_master_lines((root / "master.m3u8").read_text(encoding="utf-8"))
    renditions = tuple(_load_rendition(name, root / uri) for name, uri in found)
    counts = {len(r.durations) for r in renditions}
    if len(counts) != 1:
        raise ValueError(f"{root}: renditions have different segment counts {sorted(counts)}")
    return VodSource(root.name, lines, renditions, reference)
