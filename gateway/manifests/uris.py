"""URI helpers for rewrite callbacks: which references may be rewritten, and where a token goes.

Pure string functions (no `urllib` round trips), so a URI's existing bytes — percent-encoding, parameter
order, CDN tokens such as Akamai's `hdntl=exp=…~acl=/*~hmac=…` — stay exactly as the origin wrote them.
"""

from __future__ import annotations

import re

from gateway.manifests.template import Rewrite, Slot

# RFC 3986 §3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":". A relative reference cannot
# have a colon in its first path segment, so a match at the start of a reference *is* its scheme.
_SCHEME_NAME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*\Z")
_REWRITABLE_SCHEMES = frozenset({"http", "https"})
# The WHATWG URL parser (what players use) strips leading/trailing C0 controls and spaces.
URI_TRIM_CHARS = "".join(map(chr, range(0x21)))
_PARAM_FORBIDDEN = re.compile(r"[\x00-\x20\"#&=?\x7f]")
_checked_params: set[str] = set()


def is_rewritable_reference(uri: str) -> bool:
    """True for relative references and http(s) URIs: the only values a token may be put on.

    False for an empty or fragment-only reference (it names the playlist itself), and for every other
    scheme: `skd:` (FairPlay key ids), `data:` (inline keys, PSSH boxes, asset lists), `urn:`, and
    Windows paths such as `C:\\HLS\\seg.ts`, whose drive letter parses as a scheme. Scheme-relative
    (`//host/x`), root-relative and path-relative references are rewritable.
    """
    if uri[:1] <= " ":
        uri = uri.lstrip(URI_TRIM_CHARS)
    if not uri or uri[0] == "#":
        return False
    colon = uri.find(":")
    if colon < 0:
        return True
    scheme = uri[:colon]
    if _SCHEME_NAME.match(scheme) is None:
        return True  # a colon later in the path or query ("a/b:c", "x?t=1:2") is not a scheme
    return scheme.lower() in _REWRITABLE_SCHEMES


_TAB_OR_NEWLINE = str.maketrans("", "", "\t\n\r")


def as_browsers_read(uri: str) -> str:
    """`uri` as the WHATWG URL parser (every browser player) reads it against an http(s) base.

    ASCII tabs and newlines anywhere are dropped and a backslash is a slash, so `\\\\host/x`, `/\\host/x`
    and `/<TAB>/host/x` all name another host (`//host/x`). A policy deciding where a URI points must look
    at this form; the origin's bytes are what it keeps when it leaves a URI alone.
    """
    if "\\" in uri or "\t" in uri or "\n" in uri or "\r" in uri:
        return uri.translate(_TAB_OR_NEWLINE).replace("\\", "/")
    return uri


def with_query_slot(uri: str, param: str, slot: Slot) -> Rewrite:
    """Put `param=<token of slot>` at the end of `uri`'s query, before any `#fragment`.

    Any existing `param` (with or without a value) is removed, so a token parameter is never duplicated;
    every other parameter keeps its bytes and order. A trailing `&` or a bare `?` is reused rather than
    doubled. The fragment goes to `tail`, so the token lands before it.

    >>> with_query_slot("a.ts?hdntl=exp=1~acl=/*~hmac=ab&", "token", Slot.MEDIA).head
    'a.ts?hdntl=exp=1~acl=/*~hmac=ab&token='
    """
    if param not in _checked_params:
        _check_param(param)
    fragment_at = uri.find("#")
    if fragment_at >= 0:
        uri, fragment = uri[:fragment_at], uri[fragment_at:]
    else:
        fragment = ""
    query_at = uri.find("?")
    if query_at < 0:
        return Rewrite(f"{uri}?{param}=", slot, fragment)  # positional: measurably cheaper
    query = uri[query_at + 1 :]
    if param in query:
        prefix = param + "="
        query = "&".join(p for p in query.split("&") if p != param and not p.startswith(prefix))
    query = query.rstrip("&")
    separator = "&" if query else ""
    return Rewrite(f"{uri[: query_at + 1]}{query}{separator}{param}=", slot, fragment)


def with_query_credentials(uri: str, params: tuple[str, ...], slot: Slot) -> Rewrite:
    """Append a whole credential (`a=1&b=2`, the token of `slot`) to `uri`'s query, before any `#fragment`.

    The multi-parameter form of `with_query_slot`, for a CDN dialect's credential (CloudFront's
    `Policy`/`Signature`/`Key-Pair-Id`, Google's `URLPrefix`/`Expires`/`KeyName`/`Signature`): any of
    `params` already on the URI is removed first, since an edge refuses a repeated security parameter.

    >>> with_query_credentials("a.ts?x=1&Signature=old", ("Policy", "Signature"), Slot.MEDIA).head
    'a.ts?x=1&'
    """
    fragment_at = uri.find("#")
    if fragment_at >= 0:
        uri, fragment = uri[:fragment_at], uri[fragment_at:]
    else:
        fragment = ""
    path, question, query = uri.partition("?")
    if not question:
        return Rewrite(f"{path}?", slot, fragment)
    if any(param in query for param in params):
        query = "&".join(p for p in query.split("&") if p.partition("=")[0] not in params)
    query = query.rstrip("&")
    return Rewrite(f"{path}?{query}{'&' if query else ''}", slot, fragment)


def _check_param(param: str) -> None:
    # Validated once per distinct name: this runs for every URI of every playlist.
    if not param or _PARAM_FORBIDDEN.search(param):
        raise ValueError(f"query parameter name {param!r} is empty or contains a reserved character")
    _checked_params.add(param)
