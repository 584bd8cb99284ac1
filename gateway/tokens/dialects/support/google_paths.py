"""How Google's edges spell paths in a token, and how a request path is matched against them (pure).

Two spellings meet at a Google edge: the path as the request carries it (percent-encoded, in whatever case and
with whatever optional escapes the client chose) and the path as the signer wrote it into `URLPrefix` (base64
of the prefix URL) or `PathGlobs` (the token's own text). Both are brought to one canonical form before they are
compared: every escape of a byte that may stand for itself is decoded, and every byte outside RFC 3986 pchar is
encoded with upper-case hex, exactly as `gateway.tokens.acl.normalise_path(...).encoded` spells a request path.
Escapes of bytes a request path never carries decoded ('/', '%', '\\', ';', '?', '#', controls) stay escaped, so
a token naming `a%2Fb` never matches `a/b`: canonicalising can only narrow what a token covers, never widen it.

`PathGlobs` is a token field, so some characters must not appear literally in a glob (Google's field rules):
`~` separates the token's fields, `,` and `!` separate globs, `*` is the wildcard, and `&` would end the token's
query parameter. A path carrying one of them is written with its escape (`%7E`, `%2C`, `%21`, `%2A`, `%26`).
Only a literal `*` is a wildcard; `%2A` matches a `*` in the path.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from gateway.errors import TokenDenied, UnsupportedGrant
from gateway.tokens.acl import normalise_path

GLOB_ESCAPES = {"~": "%7E", ",": "%2C", "!": "%21", "*": "%2A", "&": "%26"}
MAX_GLOBS = 5  # Google: at most five globs in one PathGlobs field
_PCHAR = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,=:@/")
_KEEP_ESCAPED = frozenset(b"/%\\;?#") | frozenset(range(0x20)) | {0x7F}
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")


def canonical(path: str) -> str:
    """The canonical percent-encoding of a path (or a piece of one): see the module notes.

    A raw non-ASCII character counts as its UTF-8 bytes; a '%' that starts no escape is a literal '%' (%25).
    """
    out: list[str] = []
    data = path.encode("utf-8")
    i = 0
    while i < len(data):
        byte = data[i]
        if byte == 0x25 and _ESCAPE.fullmatch(data[i : i + 3].decode("latin-1")):
            byte, i = int(data[i + 1 : i + 3], 16), i + 3
            if byte in _KEEP_ESCAPED:
                out.append(f"%{byte:02X}")
                continue
        else:
            i += 1
        out.append(chr(byte) if byte in _PCHAR else f"%{byte:02X}")
    return "".join(out)


def glob_literal(path: str) -> str:
    """A path as a glob matching exactly it: canonical, with the field-syntax characters escaped."""
    return "".join(GLOB_ESCAPES.get(char, char) for char in canonical(path))


def prefix_glob(encoded_prefix: str) -> str:
    """The glob for everything under a directory prefix: `/vod/a~b/` -> `/vod/a%7Eb/*`."""
    return glob_literal(encoded_prefix) + "*"


def resource_glob(pattern: str) -> str:
    """A custom resource in Google's glob syntax (`*` = any run of characters) as the field carries it.

    Each literal run is spelt canonically with the field characters escaped; refused (UnsupportedGrant) unless it
    is an absolute path with no query, fragment, dot segment or other form a request path could not take.
    """
    if not pattern.startswith("/") or any(char in pattern for char in "?#"):
        raise UnsupportedGrant(f"a PathGlobs resource is an absolute path without '?' or '#': {pattern!r}")
    try:
        normalise_path(canonical(pattern.replace("*", "x")))
    except TokenDenied as exc:
        raise UnsupportedGrant(f"a PathGlobs resource must be a plain path: {pattern!r} ({exc.detail})") from None
    return "*".join(glob_literal(piece) for piece in pattern.split("*"))


def split_globs(field: str) -> list[str]:
    """The globs of a PathGlobs value (separated by ',' or '!')."""
    return re.split(r"[,!]", field)


def glob_matches(glob: str, canonical_path: str) -> bool:
    """Does `glob` (as a token carries it) match a request path in canonical form? `*` matches across '/'."""
    pieces = [canonical(piece) for piece in glob.split("*")]
    if len(pieces) == 1:
        return pieces[0] == canonical_path
    first, *middle, last = pieces
    if not canonical_path.startswith(first) or len(canonical_path) < len(first) + len(last):
        return False
    position, end = len(first), len(canonical_path) - len(last)
    for piece in middle:  # leftmost placement of each piece is optimal when every gap is '*'
        found = canonical_path.find(piece, position, end)
        if found < 0:
            return False
        position = found + len(piece)
    return canonical_path.endswith(last)


def glob_directory(glob: str) -> str | None:
    """'/vod/caf%C3%A9/*' -> the canonical directory '/vod/caf%C3%A9/' it covers whole; None for other globs."""
    if not glob.endswith("/*") or "*" in glob[:-1]:
        return None
    return canonical(glob[:-1])


def canonical_url(url: str) -> str:
    """`scheme://host` + the canonical path + the query as given (a URLPrefix compared in canonical form)."""
    parts = urlsplit(url)
    path, _, query = url[len(f"{parts.scheme}://{parts.netloc}") :].partition("?")
    return f"{parts.scheme}://{parts.netloc}{canonical(path)}" + (f"?{query}" if "?" in url else "")


def url_prefix_matches(prefix_url: str, raw_url: str, canonical_request_url: str) -> bool:
    """A URLPrefix covers the request when the URL as received, or both in canonical form, start with it."""
    return raw_url.startswith(prefix_url) or canonical_request_url.startswith(canonical_url(prefix_url))
