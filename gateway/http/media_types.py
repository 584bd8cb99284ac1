"""Content types by file extension, set explicitly: Python's tables map `.ts` and `.key` wrongly."""

from __future__ import annotations

import posixpath

PLAYLIST_EXTENSIONS = frozenset({".m3u8", ".m3u"})
MPD_EXTENSIONS = frozenset({".mpd", ".mpp"})  # an MPD, an MPD Patch document

CONTENT_TYPES: dict[str, str] = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".m3u": "application/vnd.apple.mpegurl",
    ".mpd": "application/dash+xml",
    ".mpp": "application/dash-patch+xml",
    ".ts": "video/mp2t",
    ".m4s": "video/iso.segment",
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".m4a": "audio/mp4",
    ".cmfv": "video/mp4",
    ".cmfa": "audio/mp4",
    ".aac": "audio/aac",
    ".mp3": "audio/mpeg",
    ".ac3": "audio/ac3",
    ".ec3": "audio/eac3",
    ".vtt": "text/vtt",
    ".webvtt": "text/vtt",
    ".srt": "application/x-subrip",
    ".key": "application/octet-stream",
    ".bin": "application/octet-stream",
    ".json": "application/json",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
}


def extension(path: str) -> str:
    return posixpath.splitext(path)[1].lower()


# Origin types a browser may render as a document or script on the gateway's own origin (where its session
# cookies live): never passed on for a file we do not know; it goes out as opaque bytes instead.
_ACTIVE_TYPES = ("text/html", "application/xhtml", "image/svg", "text/javascript", "application/javascript",
                 "application/ecmascript", "text/xml", "application/xml", "text/xsl", "multipart/")  # fmt: skip


def content_type_for(path: str, origin_type: str | None = None) -> str:
    """Our table first, then what the origin said unless a browser could run it, then octet-stream.
    Responses also carry `X-Content-Type-Options: nosniff`, so the type given is the type used."""
    known = CONTENT_TYPES.get(extension(path))
    if known is not None:
        return known
    if origin_type and not origin_type.strip().lower().startswith(_ACTIVE_TYPES):
        return origin_type
    return "application/octet-stream"


def is_hls_playlist(path: str) -> bool:
    return extension(path) in PLAYLIST_EXTENSIONS


def is_manifest(path: str) -> bool:
    ext = extension(path)
    return ext in PLAYLIST_EXTENSIONS or ext in MPD_EXTENSIONS


def may_be_remote_element(path: str) -> bool:
    """Whether `path` may name a DASH remote element (an xlinked Period, AdaptationSet, …): no manifest and
    no file type of ours (media, keys, JSON). Remote elements have no extension of their own (`.xml`,
    `period.php`, none); a playlist-scoped token presented for one opens it as an MPD fragment."""
    return extension(path) not in CONTENT_TYPES


def is_key(path: str) -> bool:
    return extension(path) == ".key"
