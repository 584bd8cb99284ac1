"""Lossless, line-oriented HLS playlist rewriter (RFC 8216, draft-pantos-hls-rfc8216bis).

`prepare_playlist` finds every URI-bearing place (docs/uri-places.md lists them) and asks a callback
what to write there; it never decides scheme or host policy itself. Every other byte is kept: unknown tags,
comments (even with URLs), attribute order and quoting, blank lines, LF/CRLF per line, a BOM, a missing
final newline, whitespace around URI lines. The result is a `PreparedManifest`: built once per origin
version, rendered per request by joining in that request's tokens.

Places and their token slots:

* URI lines — variant playlists in a Multivariant Playlist (PLAYLIST), segments otherwise (MEDIA);
* quoted `URI` of EXT-X-KEY, -SESSION-KEY, -MAP, -PART, -PRELOAD-HINT, -SESSION-DATA (MEDIA) and of
  EXT-X-MEDIA, -I-FRAME-STREAM-INF, -IMAGE-STREAM-INF, -RENDITION-REPORT (PLAYLIST);
* EXT-X-CONTENT-STEERING `SERVER-URI` and EXT-X-DATERANGE `X-ASSET-URI` / `X-ASSET-LIST` (PLAYLIST);
* the tag value of `#EXT-X-PREFETCH:` and `#EXT-X-TWITCH-PREFETCH:` (MEDIA).

Unquoted `URI=` values are not rewritten (rfc8216bis §4.2: a URI attribute is a quoted string), nor is a
line that starts with `#` after leading whitespace (an indented tag or comment, not a URI).

Variables (rfc8216bis §4.3): `{$name}` references to earlier EXT-X-DEFINE NAME/VALUE variables are
substituted before the callback sees a URI, and the concrete URI is written out (the DEFINE lines stay,
inert). References to IMPORT/QUERYPARAM variables, whose values this playlist does not hold, reach the
callback verbatim (`"{$name}" in uri`); a callback should decide whether it can safely append to such a
URI — a QUERYPARAM value may carry its own `?`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from gateway.manifests.errors import ManifestError
from gateway.manifests.hls_lexical import (
    MAX_LINE_CHARS,
    SUBSTITUTION_GROWTH_FACTOR,
    SUBSTITUTION_MIN_BUDGET,
    Variables,
    decode_playlist,
    parse_attribute_list,
)
from gateway.manifests.template import PreparedManifest, Rewrite, Slot
from gateway.manifests.uris import URI_TRIM_CHARS

__all__ = [
    "MAX_LINE_CHARS",
    "URI_PLACES",
    "RewriteUri",
    "UriPlace",
    "is_master_playlist",
    "prepare_playlist",
]


@dataclass(frozen=True, slots=True)
class UriPlace:
    """Where a URI sits: `tag` (None for a URI line), `attribute` (None for a line or tag value), slot."""

    tag: str | None
    attribute: str | None
    slot: Slot


RewriteUri = Callable[[str, UriPlace], Rewrite | None]
"""Called with each URI (trimmed, variables substituted) and its place; None leaves it byte-identical.

A callback may also declare `plain_relative_suffix: str`: what it does to a *plain relative* URI line
(`PLAIN_RELATIVE`: unreserved characters and '/', not starting with '/'), which is then written as
`uri + suffix` + a slot of the line's kind without calling it. It must be exactly what the call would
return (`Rewrite(uri + suffix, place.slot)`): the common segment line, handled at C speed."""

PLAIN_RELATIVE = re.compile(r"[A-Za-z0-9_~.\-][A-Za-z0-9_~.\-/]*")

_PLAYLIST, _MEDIA = Slot.PLAYLIST, Slot.MEDIA
_MEDIA_LINE = UriPlace(None, None, _MEDIA)
_VARIANT_LINE = UriPlace(None, None, _PLAYLIST)


def _uri_attribute(tag: str, slot: Slot) -> tuple[str, dict[str, UriPlace]]:
    return "URI=", {"URI": UriPlace(tag, "URI", slot)}


# Tag name -> (a substring any rewritable line of that tag contains, {attribute name: place}).
# The substring is a cheap pre-filter: `#EXT-X-KEY:METHOD=NONE` is never parsed.
_ATTRIBUTE_PLACES: dict[str, tuple[str, dict[str, UriPlace]]] = {
    "EXT-X-KEY": _uri_attribute("EXT-X-KEY", _MEDIA),
    "EXT-X-SESSION-KEY": _uri_attribute("EXT-X-SESSION-KEY", _MEDIA),
    "EXT-X-MAP": _uri_attribute("EXT-X-MAP", _MEDIA),
    "EXT-X-PART": _uri_attribute("EXT-X-PART", _MEDIA),
    "EXT-X-PRELOAD-HINT": _uri_attribute("EXT-X-PRELOAD-HINT", _MEDIA),
    "EXT-X-SESSION-DATA": _uri_attribute("EXT-X-SESSION-DATA", _MEDIA),
    "EXT-X-MEDIA": _uri_attribute("EXT-X-MEDIA", _PLAYLIST),
    "EXT-X-I-FRAME-STREAM-INF": _uri_attribute("EXT-X-I-FRAME-STREAM-INF", _PLAYLIST),
    "EXT-X-IMAGE-STREAM-INF": _uri_attribute("EXT-X-IMAGE-STREAM-INF", _PLAYLIST),
    "EXT-X-RENDITION-REPORT": _uri_attribute("EXT-X-RENDITION-REPORT", _PLAYLIST),
    "EXT-X-CONTENT-STEERING": (
        "SERVER-URI=",
        {"SERVER-URI": UriPlace("EXT-X-CONTENT-STEERING", "SERVER-URI", _PLAYLIST)},
    ),
    "EXT-X-DATERANGE": (
        "X-ASSET-",
        {
            "X-ASSET-URI": UriPlace("EXT-X-DATERANGE", "X-ASSET-URI", _PLAYLIST),
            "X-ASSET-LIST": UriPlace("EXT-X-DATERANGE", "X-ASSET-LIST", _PLAYLIST),
        },
    ),
}
# Community low-latency extensions whose whole tag value is a URI.
_VALUE_PLACES: dict[str, UriPlace] = {
    "EXT-X-PREFETCH": UriPlace("EXT-X-PREFETCH", None, _MEDIA),
    "EXT-X-TWITCH-PREFETCH": UriPlace("EXT-X-TWITCH-PREFETCH", None, _MEDIA),
}
URI_PLACES: tuple[UriPlace, ...] = (
    _MEDIA_LINE,
    _VARIANT_LINE,
    *(place for _, places in _ATTRIBUTE_PLACES.values() for place in places.values()),
    *_VALUE_PLACES.values(),
)
"""Every place the rewriter hands to the callback."""

# Tags only a Multivariant Playlist has. Searching for "\n#..." gives the regex a literal prefix to scan
# for; a "^" anchor with re.M would try a match at every character.
_MULTIVARIANT_TAG = re.compile(r"\n#EXT-X-(?:STREAM-INF|I-FRAME-STREAM-INF|IMAGE-STREAM-INF|MEDIA):")
# A media playlist the player will not reload (RFC 8216 §6.3.4: no reload once EXT-X-ENDLIST is seen; a
# VOD playlist "cannot change"). Tag names end at ":", whitespace or the line end.
_LOADED_ONCE_TAG = re.compile(r"\n#EXT-X-(?:ENDLIST(?![^\s:])|PLAYLIST-TYPE:VOD(?![^\s]))")
# Marks a token slot while lines are rewritten; input with NUL is rejected, so it cannot collide.
_SLOT_MARK = "\x00"
_LINE_ESCAPES = str.maketrans({"\r": "%0D", "\n": "%0A", "\x00": "%00"})
_QUOTED_ESCAPES = str.maketrans({'"': "%22", "\r": "%0D", "\n": "%0A", "\x00": "%00"})


def is_master_playlist(text: str) -> bool:
    """True if `text` has a tag only a Multivariant ("master") Playlist may contain at a line start."""
    return _MULTIVARIANT_TAG.search(text) is not None


def prepare_playlist(
    data: bytes,
    rewrite_uri: RewriteUri,
    *,
    max_bytes: int | None = None,
    max_line_chars: int = MAX_LINE_CHARS,
) -> PreparedManifest:
    """Rewrite every URI place of the playlist `data` through `rewrite_uri`, keeping all other bytes.

    Raises ManifestError for input over `max_bytes`, without an `#EXTM3U` header (after an optional UTF-8
    BOM), with NUL bytes, a lone CR or a line over `max_line_chars`; with both EXT-X-STREAM-INF and
    EXTINF (the slot of its URI lines would be ambiguous); for a malformed attribute list on a
    URI-bearing tag, an invalid EXT-X-DEFINE, or a reference to an undefined variable; and when
    EXT-X-DEFINE substitution would make a URI longer than `max_line_chars` or add more than
    SUBSTITUTION_GROWTH_FACTOR times the playlist's size (so the output, before tokens, is at most 9x the
    input, and at least 1 MiB of growth is always allowed).
    """
    text = decode_playlist(data, max_bytes=max_bytes, max_line_chars=max_line_chars)
    line_place = _MEDIA_LINE
    if "\n#EXT-X-STREAM-INF:" in text:
        # URI lines are variants. With EXTINF as well, no slot is safe: a segment would get the long-lived
        # playlist token, or a variant the short media token.
        extinf = text.find("\n#EXTINF:")
        if extinf >= 0:
            line_no = text.count("\n", 0, extinf) + 2
            raise ManifestError("EXTINF and EXT-X-STREAM-INF in one playlist", line_no=line_no)
        line_place = _VARIANT_LINE
    budget = max(SUBSTITUTION_MIN_BUDGET, SUBSTITUTION_GROWTH_FACTOR * len(text))
    splicer = _Splicer(rewrite_uri, Variables(budget=budget, max_chars=max_line_chars))
    slots = splicer.slots
    lines = text.split("\n")
    suffix = getattr(rewrite_uri, "plain_relative_suffix", None)
    plain = PLAIN_RELATIVE.fullmatch if suffix is not None else None
    marked_suffix, line_slot = f"{suffix}{_SLOT_MARK}", line_place.slot
    # Line 1 is the header (checked, and it may carry a BOM, which would look like a URI line).
    for index, line in enumerate(lines[1:], 1):
        if not line:
            continue
        if line[0] == "#":
            # Every URI-bearing tag starts "#EXT-X-"; EXTINF lines and comments stop here.
            if line.startswith("#EXT-X-"):
                new = splicer.tag(line, index + 1)
                if new is not None:
                    lines[index] = new
            continue
        if plain is not None and plain(line):  # hottest path: what the callback declared it does
            slots.append(line_slot)
            lines[index] = line + marked_suffix
            continue
        uri = line.strip(URI_TRIM_CHARS)
        if len(uri) != len(line) or "{$" in uri:
            # Whitespace, a CR, an indented tag or comment, or variables: the general path.
            if uri and uri[0] != "#":
                new = splicer.value(line, line_place, index + 1, quoted=False)
                if new is not None:
                    lines[index] = new
            continue
        # Hot path (a plain segment line), an inlined copy of `_Splicer.value` for a bare URI line.
        rewrite = rewrite_uri(uri, line_place)
        if rewrite is None:
            continue
        head, tail, slot = rewrite.head, rewrite.tail, rewrite.slot
        if not head.isprintable():
            head = head.translate(_LINE_ESCAPES)
        if tail and not tail.isprintable():
            tail = tail.translate(_LINE_ESCAPES)
        if slot is None:
            lines[index] = head + tail
        else:
            slots.append(slot)
            lines[index] = head + _SLOT_MARK + tail
    multivariant = is_master_playlist(text)
    reloaded = not multivariant and _LOADED_ONCE_TAG.search(text) is None  # a master is loaded once too
    text = "\n".join(lines)
    chunks = tuple(text.split(_SLOT_MARK)) if slots else (text,)
    return PreparedManifest(chunks=chunks, slots=tuple(slots), reloaded=reloaded, multivariant=multivariant)


class _Splicer:
    """Per-playlist state: the callback, the variables defined so far, the slots emitted so far."""

    __slots__ = ("rewrite_uri", "slots", "variables")

    def __init__(self, rewrite_uri: RewriteUri, variables: Variables) -> None:
        self.rewrite_uri = rewrite_uri
        self.slots: list[Slot] = []
        self.variables = variables

    def tag(self, line: str, line_no: int) -> str | None:
        """The new text of a `#EXT-X-` tag line, or None to keep it."""
        colon = line.find(":")
        if colon < 0:
            return None
        name = line[1:colon]
        attribute_places = _ATTRIBUTE_PLACES.get(name)
        if attribute_places is not None:
            needle, places = attribute_places
            return self.attributes(line, colon, places, line_no) if needle in line else None
        value_place = _VALUE_PLACES.get(name)
        if value_place is not None:
            new = self.value(line[colon + 1 :], value_place, line_no, quoted=False)
            return None if new is None else line[: colon + 1] + new
        if name == "EXT-X-DEFINE":
            body = line[:-1] if line.endswith("\r") else line
            self.variables.define(body, parse_attribute_list(body, colon + 1, line_no), line_no)
        return None

    def attributes(self, line: str, colon: int, places: dict[str, UriPlace], line_no: int) -> str | None:
        """Rewrite the quoted URI attributes named in `places`; everything between them is kept."""
        body = line[:-1] if line.endswith("\r") else line
        pieces: list[str] = []
        kept_until = 0
        for name, start, end, quoted in parse_attribute_list(body, colon + 1, line_no):
            place = places.get(name)
            if place is None or not quoted:
                continue
            new = self.value(body[start:end], place, line_no, quoted=True)
            if new is not None:
                pieces += (body[kept_until:start], new)
                kept_until = end
        if not pieces:
            return None
        pieces += (body[kept_until:], line[len(body) :])
        return "".join(pieces)

    def value(self, raw: str, place: UriPlace, line_no: int, *, quoted: bool) -> str | None:
        """`raw` with its trimmed URI replaced as the callback says (surrounding bytes kept), or None."""
        uri = raw.strip(URI_TRIM_CHARS)
        if not uri:
            return None
        rewrite = self.rewrite_uri(self.variables.substitute(uri, line_no) if "{$" in uri else uri, place)
        if rewrite is None:
            return None
        head, tail = rewrite.head, rewrite.tail
        # The callback's output must not end the line or, inside quotes, the quoted string. isprintable()
        # is a cheap screen: False for CR, LF and NUL (and some harmless characters the table keeps).
        if quoted:
            if '"' in head or not head.isprintable():
                head = head.translate(_QUOTED_ESCAPES)
            if tail and ('"' in tail or not tail.isprintable()):
                tail = tail.translate(_QUOTED_ESCAPES)
        else:
            if not head.isprintable():
                head = head.translate(_LINE_ESCAPES)
            if tail and not tail.isprintable():
                tail = tail.translate(_LINE_ESCAPES)
        if rewrite.slot is None:
            new = head + tail
        else:
            self.slots.append(rewrite.slot)
            new = head + _SLOT_MARK + tail
        if len(uri) == len(raw):
            return new
        lead = raw.find(uri)
        return raw[:lead] + new + raw[lead + len(uri) :]
