"""Lossless MPEG-DASH MPD rewriter (ISO/IEC 23009-1), the DASH counterpart of `gateway.manifests.hls`.

`prepare_mpd` finds every URI-bearing place (docs/uri-places.md lists them) and asks the same kind
of callback as `prepare_playlist` what to write there. expat is used only to locate values; replacements
are spliced into the original bytes, so the output differs from the input only inside rewritten values.

Places (`UriPlace(tag=<element local name>, attribute=<attribute or None for text>, slot)`):

* `BaseURL` text at every level (MEDIA); `Location` and `PatchLocation` text (PLAYLIST: they are MPDs);
* `SegmentTemplate@media|initialization|index|bitstreamSwitching` — templates (MEDIA). Only on
  SegmentTemplate: `@bitstreamSwitching` of Period/AdaptationSet is a boolean;
* `SegmentURL@media|index`, `Initialization|RepresentationIndex|BitstreamSwitching@sourceURL` (MEDIA);
* `xlink:href` of Period, AdaptationSet, EventStream, SegmentList, InitializationSet (PLAYLIST: a remote
  element is an MPD fragment, to be rewritten by this same function), except the value
  `urn:mpeg:dash:resolve-to-zero:2013`, which is never reported;
* ContentProtection license places: text of `dashif:Laurl|Certurl|Authzurl` (`https://dashif.org/CPS`)
  and `clearkey:Laurl` (MEDIA). They are reported; a callback should tokenize only *relative* ones (which
  resolve through the gateway) — an absolute license URL is a DRM vendor's and must not get our token.

Elements count in the MPD namespace (`urn:mpeg:dash:schema:mpd:2011`, also the early upper-case
spelling) or in no namespace. Not reported (left byte-identical): UTCTiming, ContentSteering, Event
payloads, descriptor `@value`s, `ms:laurl`, `cenc:pssh`/`mspr:pro` blobs, every `@schemeIdUri`.

BaseURL and relative leaves (ISO/IEC 23009-1 §5.6): a query on a BaseURL is lost by RFC 3986 resolution
(`https://cdn/a/?token=x` + `seg.m4s` is `https://cdn/a/seg.m4s`), so a token on BaseURL alone never reaches
segments. This rewriter just reports every place; the gateway's callback tokenizes the leaves (templates,
SegmentURL, sourceURL) *and* the BaseURLs (a BaseURL is itself fetched when it names a single-segment file).

Escaping: what the callback returns is XML-escaped for its context (`&amp;`, the quote used, `<`; control
characters are percent-encoded), and in SegmentTemplate values every `$` the callback introduced is
written `$$` while the template's own `$Identifier$`s and `$$`s stay as they were. A token slot is
written raw: tokens are base64url / URL-safe (`[A-Za-z0-9_=.~-]`), so they need no XML or `$` escaping.

`PreparedManifest.reloaded` is True for `MPD@type="dynamic"` (players reload it every
minimumUpdatePeriod), False for a static MPD (the default type) and for an xlinked fragment.

Refused with ManifestError: input over `max_bytes`, bytes that are not UTF-8 (an XML declaration naming
another encoding is ignored: the document is read as UTF-8), XML that is not (namespace-)well-formed —
undeclared prefixes included, although shaka's lenient reader accepts them — and any DOCTYPE.
"""

from __future__ import annotations

import re

from gateway.manifests.dash_lexical import NS_SEPARATOR, Found, attribute_escape, locate_values, text_escape
from gateway.manifests.errors import ManifestError
from gateway.manifests.hls import RewriteUri, UriPlace
from gateway.manifests.template import PreparedManifest, Slot

__all__ = ["URI_PLACES", "RewriteUri", "UriPlace", "prepare_mpd"]

_MPD_NAMESPACES = ("urn:mpeg:dash:schema:mpd:2011", "urn:mpeg:DASH:schema:MPD:2011")
_XLINK_HREF = "http://www.w3.org/1999/xlink" + NS_SEPARATOR + "href"
RESOLVE_TO_ZERO = "urn:mpeg:dash:resolve-to-zero:2013"
_PLAYLIST, _MEDIA = Slot.PLAYLIST, Slot.MEDIA

# Local element name -> {attribute name: slot}, for elements in the MPD namespace (or none).
_ATTRIBUTE_SLOTS: dict[str, dict[str, Slot]] = {
    "SegmentTemplate": {name: _MEDIA for name in ("media", "initialization", "index", "bitstreamSwitching")},
    "SegmentURL": {"media": _MEDIA, "index": _MEDIA},
    "Initialization": {"sourceURL": _MEDIA},
    "RepresentationIndex": {"sourceURL": _MEDIA},
    "BitstreamSwitching": {"sourceURL": _MEDIA},
}
_XLINK_ELEMENTS = ("Period", "AdaptationSet", "EventStream", "SegmentList", "InitializationSet")
_TEXT_SLOTS = {"BaseURL": _MEDIA, "Location": _PLAYLIST, "PatchLocation": _PLAYLIST}
_LICENSE_ELEMENTS = {
    "https://dashif.org/CPS": ("Laurl", "Certurl", "Authzurl"),
    "http://dashif.org/guidelines/clearKey": ("Laurl",),
}


def _qualified(namespace: str, local: str) -> str:
    return f"{namespace}{NS_SEPARATOR}{local}" if namespace else local


def _build_tables() -> tuple[dict[str, frozenset[str]], dict[tuple[str, str | None], UriPlace]]:
    attributes: dict[str, set[str]] = {}
    places: dict[tuple[str, str | None], UriPlace] = {}
    for namespace in ("", *_MPD_NAMESPACES):
        for local, slots in _ATTRIBUTE_SLOTS.items():
            element = _qualified(namespace, local)
            attributes.setdefault(element, set()).update(slots)
            places |= {(element, name): UriPlace(local, name, slot) for name, slot in slots.items()}
        for local in _XLINK_ELEMENTS:
            element = _qualified(namespace, local)
            attributes.setdefault(element, set()).add(_XLINK_HREF)
            places[element, _XLINK_HREF] = UriPlace(local, "xlink:href", _PLAYLIST)
        places |= {(_qualified(namespace, n), None): UriPlace(n, None, slot) for n, slot in _TEXT_SLOTS.items()}
    for namespace, locals_ in _LICENSE_ELEMENTS.items():
        places |= {(_qualified(namespace, local), None): UriPlace(local, None, _MEDIA) for local in locals_}
    return {element: frozenset(names) for element, names in attributes.items()}, places


_ATTRIBUTES, _PLACES = _build_tables()
# MPD@type is located too (it is no URI place): a dynamic MPD is reloaded by the player, a static one not.
_MPD_TYPE = {_qualified(namespace, "MPD"): frozenset({"type"}) for namespace in ("", *_MPD_NAMESPACES)}
_LOCATED_ATTRIBUTES = _ATTRIBUTES | _MPD_TYPE
_TEXT_ELEMENTS = frozenset(element for element, attribute in _PLACES if attribute is None)
URI_PLACES: frozenset[UriPlace] = frozenset(_PLACES.values())
"""Every place the rewriter can hand to the callback."""

# A template's own `$…$` tokens: `$$` and identifiers with an optional printf-style width (23009-1 §5.3.9.4.4).
_TEMPLATE_TOKEN = re.compile(r"\$(?:[A-Za-z]+(?:%0[0-9]+[diouxX])?)?\$")
# Marks a token slot while the document is assembled; NUL cannot occur in XML (and is escaped in values).
_SLOT_MARK = "\x00"


def prepare_mpd(data: bytes, rewrite_uri: RewriteUri, *, max_bytes: int | None = None) -> PreparedManifest:
    """Rewrite every URI place of the MPD `data` through `rewrite_uri`, keeping all other bytes.

    The callback gets the decoded, whitespace-trimmed value (a template for SegmentTemplate places) and
    returns a `Rewrite` (or None to keep the value). A `Rewrite` without slot whose text equals the value
    also keeps the raw bytes (so an identity callback round-trips character references exactly).
    Raises ManifestError as described in the module docstring.
    """
    if max_bytes is not None and len(data) > max_bytes:
        raise ManifestError(f"MPD of {len(data)} bytes exceeds the limit of {max_bytes}")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        line_no = data.count(b"\n", 0, error.start) + 1
        raise ManifestError(f"MPD is not UTF-8 (byte offset {error.start})", line_no=line_no) from None
    slots: list[Slot] = []
    pieces: list[str] = []
    kept_until = 0
    reloaded = False  # MPD@type defaults to "static"; an xlinked fragment is resolved once
    for found in locate_values(data, _LOCATED_ATTRIBUTES, _TEXT_ELEMENTS):
        if found.attribute == "type":
            reloaded = found.value == "dynamic"
            continue
        new = _rewrite(found, rewrite_uri, slots)
        if new is not None:
            pieces += (data[kept_until : found.start + found.lead].decode(), new)
            kept_until = found.end - found.trail
    pieces.append(data[kept_until:].decode())
    text = "".join(pieces)
    if not slots:
        return PreparedManifest(chunks=(text,), slots=(), reloaded=reloaded)
    return PreparedManifest(chunks=tuple(text.split(_SLOT_MARK)), slots=tuple(slots), reloaded=reloaded)


def _rewrite(found: Found, rewrite_uri: RewriteUri, slots: list[Slot]) -> str | None:
    """The escaped replacement of one value (its surrounding whitespace excluded), or None to keep it."""
    uri = found.value
    if not uri or (found.attribute == _XLINK_HREF and uri == RESOLVE_TO_ZERO):
        return None
    place = _PLACES[found.element, found.attribute]
    rewrite = rewrite_uri(uri, place)
    if rewrite is None:
        return None
    head, slot, tail = rewrite
    if slot is None and head + tail == uri:
        return None
    if place.tag == "SegmentTemplate":
        head, tail = _template_escape(head, uri), _template_escape(tail, uri)
    if found.quote is None:
        head, tail = text_escape(head), text_escape(tail)
    else:
        head, tail = attribute_escape(head, found.quote), attribute_escape(tail, found.quote)
    if slot is None:
        return head + tail
    slots.append(slot)
    return head + _SLOT_MARK + tail


def _template_escape(text: str, template: str) -> str:
    """`text` with each `$` written `$$`, except the `$…$` tokens that `template` itself contains.

    The callback builds its head/tail from the template, so a token of the template found in them is
    kept as the template's (a callback that itself inserts e.g. `$Number$` literally is not supported).
    """
    if "$" not in text:
        return text
    own = set(_TEMPLATE_TOKEN.findall(template))
    out: list[str] = []
    pos = 0
    while (dollar := text.find("$", pos)) >= 0:
        out.append(text[pos:dollar])
        match = _TEMPLATE_TOKEN.match(text, dollar)
        if match is not None and match.group() in own:
            out.append(match.group())
            pos = match.end()
        else:
            out.append("$$")
            pos = dollar + 1
    out.append(text[pos:])
    return "".join(out)
