"""Request-path normalisation and whole-segment prefix matching: the ACL's security boundary.

A request path is checked in its *decoded* form and forwarded to the origin in one canonical encoded form,
so what the origin resolves is exactly what was checked. Anything an origin might resolve differently
from us (dot segments, encoded separators, `//`, backslashes, control bytes, path parameters, invalid or
overlong UTF-8, double encoding, Windows trailing dots, Unicode look-alikes) is refused, not "fixed".
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import quote

from gateway.errors import Denial, TokenDenied

MAX_PATH_BYTES = 4096
MAX_SEGMENTS = 64

# RFC 3986 pchar minus ';' (path parameters are refused) and '%' (we re-encode it ourselves).
_SEGMENT_SAFE = "-._~!$&'()*+,=:@"
SEGMENT_SAFE = _SEGMENT_SAFE  # what the canonical encoding leaves raw in a segment (dialects encode patterns alike)
_PERCENT = re.compile(rb"%([0-9A-Fa-f]{2})")
_BAD_RAW = re.compile(rb"[\x00-\x20\x7f-\xff\\;#?\"<>`{}|^]")
_BAD_DECODED = re.compile(r"[\x00-\x1f\x7f/\\;]")
# A literal '%' is a file-name character ('100%.ts', 'a%b'), but one that reads as an escape once decoded
# ('%252e' -> '%2e') is double encoding: an origin or proxy that decodes again would see another path.
_ESCAPE_AFTER_DECODING = re.compile(r"%[0-9A-Fa-f]{2}")
_LOOKALIKE_SEPARATORS = ("/", "\\")
# The common case, taken without decoding: unreserved/sub-delim segments that are not dot-only and do not
# end in '.'. Anything else goes through the full check below.
_PLAIN_CHARS = r"A-Za-z0-9_~!$&'()*+,=:@\-"
_PLAIN_PATH = re.compile(rf"(?:/[{_PLAIN_CHARS}.]*[{_PLAIN_CHARS}])*/?")


@dataclass(frozen=True, slots=True)
class CheckedPath:
    """A path that passed normalisation: `decoded` is what the ACL matches, `encoded` what the origin gets."""

    decoded: str
    encoded: str

    @property
    def is_directory(self) -> bool:
        return self.decoded.endswith("/")


def _refuse(detail: str, untrusted_path: bytes | str) -> TokenDenied:
    shown = untrusted_path if isinstance(untrusted_path, str) else untrusted_path.decode("latin-1")
    return TokenDenied(Denial.ACL, detail, {"path": shown[:200]})


def normalise_path(untrusted_path: bytes | str) -> CheckedPath:
    """Check a raw request path (ASGI `raw_path`, no query) and return its canonical forms.

    Raises TokenDenied(acl) for anything that is not a plain, absolute, unambiguous path.
    """
    raw = untrusted_path.encode("latin-1") if isinstance(untrusted_path, str) else untrusted_path
    if len(raw) > MAX_PATH_BYTES:
        raise _refuse(f"path longer than {MAX_PATH_BYTES} bytes", raw)
    if not raw.startswith(b"/"):
        raise _refuse("request target is not an origin-form path starting with '/'", raw)
    if _PLAIN_PATH.fullmatch(text := raw.decode("latin-1")) and raw.count(b"/") <= MAX_SEGMENTS:
        return CheckedPath(decoded=text, encoded=text)
    bad = _BAD_RAW.search(raw)
    if bad:
        raise _refuse(f"path contains a forbidden byte {bad.group()!r}", raw)
    if raw.count(b"%") != len(_PERCENT.findall(raw)):
        raise _refuse("path contains a malformed percent-escape", raw)
    raw_segments = raw[1:].split(b"/")
    if len(raw_segments) > MAX_SEGMENTS:
        raise _refuse(f"path has more than {MAX_SEGMENTS} segments", raw)
    segments: list[str] = []
    for index, raw_segment in enumerate(raw_segments):
        # Decode each segment on its own, so an encoded '/' stays inside its segment and is refused there.
        try:
            segment = _PERCENT.sub(lambda m: bytes([int(m.group(1), 16)]), raw_segment).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _refuse("path is not valid UTF-8 once percent-decoded", raw) from exc
        if not segment:
            if index == len(raw_segments) - 1:
                segments.append(segment)
                continue  # a trailing slash: a directory request
            raise _refuse("path contains an empty segment ('//')", raw)
        _check_segment(segment, raw)
        segments.append(segment)
    encoded = "/" + "/".join(quote(segment, safe=_SEGMENT_SAFE) for segment in segments)
    return CheckedPath(decoded="/" + "/".join(segments), encoded=encoded)


def _check_segment(segment: str, raw: bytes) -> None:
    bad = _BAD_DECODED.search(segment)
    if bad:
        raise _refuse(f"path segment contains an encoded {bad.group()!r}", raw)
    if _ESCAPE_AFTER_DECODING.search(segment):
        raise _refuse("path segment is double-encoded (a '%XX' escape once decoded)", raw)
    if segment.strip(".") == "":
        raise _refuse("path contains a dot segment", raw)
    if segment.endswith((".", " ")):
        raise _refuse("path segment ends with '.' (resolved away by some file systems)", raw)
    if not segment.isascii():
        folded = unicodedata.normalize("NFKC", segment)
        if any(sep in folded for sep in _LOOKALIKE_SEPARATORS) or folded.strip(".") == "" or folded != segment:
            raise _refuse("path segment is not in Unicode normal form (look-alike characters)", raw)


@lru_cache(maxsize=4096)
def canonical_prefix(prefix: str) -> str:
    """Validate a grant prefix: an absolute, normalised directory path ending in '/' (or '/' itself)."""
    if not prefix.startswith("/") or not prefix.endswith("/"):
        raise ValueError(f"path prefix must start and end with '/': {prefix!r}")
    try:
        checked = normalise_path(quote(prefix, safe="/" + _SEGMENT_SAFE))
    except TokenDenied as exc:
        raise ValueError(f"path prefix is not a plain path: {prefix!r} ({exc.detail})") from exc
    if checked.decoded != prefix:
        raise ValueError(f"path prefix is not normalised: {prefix!r}")
    return prefix


def prefix_covers(prefix: str, checked: CheckedPath) -> bool:
    """Whole-segment match: '/vod/title-9000/' covers '/vod/title-9000/a.ts', not '/vod/title-90001/a.ts'."""
    return checked.decoded.startswith(prefix)
