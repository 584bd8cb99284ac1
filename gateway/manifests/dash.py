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
  resolve through the gateway) — an absolute license URL is a DRM vendor's and must not get our token;
* `sea:CryptoPeriod@keyUriTemplate` (23009-4 segment encryption key; MEDIA, a template);
* MPD Patch documents (`urn:mpeg:dash:schema:mpd-patch:2020`): the places of their `<add>`/`<replace>`
  payloads (in the patch or the MPD namespace), and the text of an operation on one attribute or text
  (`sel=".../SegmentTemplate/@media"`, `type="@initialization"`, `sel=".../BaseURL/text()"`), reported as
  that attribute's or element's place.

Elements count in the MPD namespace (`urn:mpeg:dash:schema:mpd:2011`, also the early upper-case
spelling) or in no namespace. Not reported (left byte-identical): UTCTiming, ContentSteering, Event
payloads, descriptor `@value`s, `ms:laurl`, `cenc:pssh`/`mspr:pro` blobs, every `@schemeIdUri`.

BaseURL and relative leaves (ISO/IEC 23009-1 §5.6): a query on a BaseURL is lost by RFC 3986 resolution
(`https://cdn/a/?token=x` + `seg.m4s` is `https://cdn/a/seg.m4s`), so a token on BaseURL alone never reaches
segments. This rewriter just reports every place; the gateway's callback tokenizes the leaves (templates,
SegmentURL, sourceURL) *and* the BaseURLs (a BaseURL is itself fetched when it names a single-segment file).

Effective bases: given the document's URL and an `is_ours` predicate, every place is resolved through
the BaseURLs in scope (`EffectiveBases`) and left byte-identical unless every URL it may resolve to is ours.

Escaping: what the callback returns is XML-escaped for its context (`&amp;`, the quote used, `<`; control
characters are percent-encoded), and in template values every `$` the callback introduced is written `$$`
while the template's own bytes from its first to its last `$` stay as they were. A token slot is
written raw: tokens are base64url / URL-safe (`[A-Za-z0-9_=.~-]`), so they need no XML or `$` escaping.

`PreparedManifest.reloaded` is True for `MPD@type="dynamic"` (players reload it every
minimumUpdatePeriod) and for a Patch document (patches exist only for dynamic MPDs), False for a static MPD
(the default type) and for an xlinked fragment. `kept_through_patches` is True for a dynamic MPD with a
PatchLocation: a player applying patches may keep its URIs for the session (shaka keeps the init section's
even when a patch restates `@initialization`), while what a patch restates rolls like an MPD reload's.

Refused with ManifestError: input over `max_bytes`, bytes that are not UTF-8 (an XML declaration naming
another encoding is ignored: the document is read as UTF-8), XML that is not (namespace-)well-formed —
undeclared prefixes included, although shaka's lenient reader accepts them — and any DOCTYPE.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from urllib.parse import urljoin

from gateway.manifests.dash_lexical import NS_SEPARATOR, Found, attribute_escape, locate_values, text_escape
from gateway.manifests.errors import ManifestError
from gateway.manifests.hls import RewriteUri, UriPlace
from gateway.manifests.template import PreparedManifest, Slot
from gateway.manifests.uris import as_browsers_read

__all__ = ["BASE_URL_BESIDE_ANOTHER_HOST", "URI_PLACES", "RewriteUri", "UriPlace", "located_places", "prepare_mpd"]

_MPD_NAMESPACES = ("urn:mpeg:dash:schema:mpd:2011", "urn:mpeg:DASH:schema:MPD:2011")
# An MPD Patch document (23009-1 5.15, `.mpp`): its root, its RFC 5261 operations and (as livesim2 writes
# them) the MPD elements of their payloads are in this namespace; payloads may also use the MPD namespace.
PATCH_NAMESPACE = "urn:mpeg:dash:schema:mpd-patch:2020"
_NAMESPACES = ("", *_MPD_NAMESPACES, PATCH_NAMESPACE)
_SEA_NAMESPACE = "urn:mpeg:dash:schema:sea:2012"  # 23009-4 segment encryption: CryptoPeriod@keyUriTemplate
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
_TEMPLATE_TAGS = frozenset({"SegmentTemplate", "CryptoPeriod"})  # values in which `$` is template syntax
_KEY_TEMPLATE = UriPlace("CryptoPeriod", "keyUriTemplate", _MEDIA)
# A BaseURL on the gateway's origin beside an alternative on another host (see EffectiveBases): the relative
# places below both keep their bytes (no token may reach the other host), so a token for this alternative
# must travel in its path. The callback gets its effective absolute URL, not its raw value.
BASE_URL_BESIDE_ANOTHER_HOST = UriPlace("BaseURL", "#beside-another-host", _MEDIA)


def _qualified(namespace: str, local: str) -> str:
    return f"{namespace}{NS_SEPARATOR}{local}" if namespace else local


def _patch_key(local: str, attribute: str | None) -> str:
    """The name a patch operation's value is reported under: `<replace sel="…/SegmentTemplate/@media">`."""
    return f"patch:{local}/{attribute or ''}"


def _build_tables() -> tuple[dict[str, frozenset[str]], dict[tuple[str, str | None], UriPlace]]:
    attributes: dict[str, set[str]] = {}
    places: dict[tuple[str, str | None], UriPlace] = {}
    for namespace in _NAMESPACES:
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
    key_template = _qualified(_SEA_NAMESPACE, "CryptoPeriod")
    attributes[key_template] = {"keyUriTemplate"}
    places[key_template, "keyUriTemplate"] = _KEY_TEMPLATE
    # A patch operation whose value is one MPD attribute or text: the same place, reported under its own name.
    own = [place for (element, _), place in places.items() if NS_SEPARATOR not in element]
    places |= {(_patch_key(place.tag or "", place.attribute), None): place for place in own}
    return {element: frozenset(names) for element, names in attributes.items()}, places


_ATTRIBUTES, _PLACES = _build_tables()
# MPD@type is located too (it is no URI place): a dynamic MPD is reloaded by the player, a static one not.
_MPD_TYPE = {_qualified(namespace, "MPD"): frozenset({"type"}) for namespace in ("", *_MPD_NAMESPACES)}
# A Patch document (root `Patch`, its mpdId required) exists only for a dynamic MPD: it is reloaded too.
_PATCH_ROOT = _qualified(PATCH_NAMESPACE, "Patch")
_LOCATED_ATTRIBUTES = _ATTRIBUTES | _MPD_TYPE | {_PATCH_ROOT: frozenset({"mpdId"})}
_PATCH_LOCATIONS = frozenset(_qualified(namespace, "PatchLocation") for namespace in _NAMESPACES)
_TEXT_ELEMENTS = frozenset(
    element for element, attribute in _PLACES if attribute is None and not element.startswith("patch:")
)
_BASE_URLS = frozenset(_qualified(namespace, "BaseURL") for namespace in _NAMESPACES)
_PREDICATES = re.compile(r"\[[^\]]*\]")


def _patch_operation(name: str, attrs: list[str]) -> str | None:
    """For `<add>`/`<replace>`: the place its text is (RFC 5261 `sel=".../X/@attr"`, `type="@attr"`,
    `sel=".../X/text()"`), reported under `_patch_key`; None when its content is elements (they are
    located like any MPD's) or no URI place."""
    values = dict(zip(attrs[0::2], attrs[1::2], strict=False))
    steps = _PREDICATES.sub("", values.get("sel", "")).split("/")
    kind = values.get("type", "")
    if kind.startswith("@"):
        element, attribute = steps[-1], kind[1:]
    elif len(steps) > 1 and steps[-1].startswith("@"):
        element, attribute = steps[-2], steps[-1][1:]
    elif len(steps) > 1 and steps[-1] == "text()":
        element, attribute = steps[-2], ""
    else:
        return None
    key = _patch_key(element.rpartition(":")[2], attribute or None)
    return key if (key, None) in _PLACES else None


_TEXT_RULES = {
    _qualified(namespace, op): _patch_operation for namespace in ("", PATCH_NAMESPACE) for op in ("add", "replace")
}
URI_PLACES: frozenset[UriPlace] = frozenset(_PLACES.values())
"""Every place the rewriter can hand to the callback."""

# A template's own `$…$` tokens: `$$` and identifiers with an optional printf-style width (23009-1 §5.3.9.4.4).
_TEMPLATE_TOKEN = re.compile(r"\$(?:[A-Za-z]+(?:%0[0-9]+[diouxX])?)?\$")
# Marks a token slot while the document is assembled; NUL cannot occur in XML (and is escaped in values).
_SLOT_MARK = "\x00"


def located_places(data: bytes) -> list[Found]:
    """Every value `prepare_mpd` may rewrite (and MPD@type), with its byte span: outside these spans a
    rewritten MPD keeps the origin's bytes. Raises ManifestError like `prepare_mpd`."""
    return locate_values(data, _LOCATED_ATTRIBUTES, _TEXT_ELEMENTS, _TEXT_RULES)


def prepare_mpd(
    data: bytes,
    rewrite_uri: RewriteUri,
    *,
    max_bytes: int | None = None,
    document_url: str | None = None,
    is_ours: Callable[[str], bool] | None = None,
) -> PreparedManifest:
    """Rewrite every URI place of the MPD `data` through `rewrite_uri`, keeping all other bytes.

    The callback gets the decoded, whitespace-trimmed value (a template for SegmentTemplate places) and
    returns a `Rewrite` (or None to keep the value). A `Rewrite` without slot whose text equals the value
    also keeps the raw bytes (so an identity callback round-trips character references exactly).
    With `document_url` (where `data` was fetched) and `is_ours` (whether an absolute URL may carry the
    gateway's token), a place is only offered to the callback when every URL it can resolve to through the
    BaseURL hierarchy is ours (see `EffectiveBases`); the others keep their bytes.
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
    kept_through_patches = False  # see PreparedManifest
    patch = False  # a Patch document (its root comes first): the PatchLocation it restates is the next one
    located = located_places(data)
    bases = None if document_url is None or is_ours is None else EffectiveBases(located, document_url, is_ours)
    for found in located:
        if found.attribute == "type":
            reloaded = found.value == "dynamic"
            continue
        if found.element == _PATCH_ROOT:
            reloaded = patch = True  # what a patch restates replaces what the player had: its tokens may roll
            continue
        kept_through_patches |= not patch and found.attribute is None and found.element in _PATCH_LOCATIONS
        place = None
        if bases is not None and found.value:
            if not bases.all_ours(found):
                continue  # resolves (or may resolve) to another host: no token goes there
            beside = bases.beside_another_host(found)
            if beside is not None:
                found, place = found._replace(value=beside), BASE_URL_BESIDE_ANOTHER_HOST
        new = _rewrite(found, rewrite_uri, slots, place)
        if new is not None:
            pieces += (data[kept_until : found.start + found.lead].decode(), new)
            kept_until = found.end - found.trail
    pieces.append(data[kept_until:].decode())
    text = "".join(pieces)
    if not slots:
        return PreparedManifest(chunks=(text,), slots=(), reloaded=reloaded, kept_through_patches=kept_through_patches)
    chunks = tuple(text.split(_SLOT_MARK))
    return PreparedManifest(chunks, tuple(slots), reloaded=reloaded, kept_through_patches=kept_through_patches)


def _rewrite(found: Found, rewrite_uri: RewriteUri, slots: list[Slot], place: UriPlace | None) -> str | None:
    """The escaped replacement of one value (its surrounding whitespace excluded), or None to keep it."""
    uri = found.value
    if not uri or (found.attribute == _XLINK_HREF and uri == RESOLVE_TO_ZERO):
        return None
    place = place or _PLACES[found.element, found.attribute]
    rewrite = rewrite_uri(uri, place)
    if rewrite is None:
        return None
    head, slot, tail = rewrite
    if slot is None and head + tail == uri:
        return None
    if place.tag in _TEMPLATE_TAGS:
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
    """`text` with each `$` the callback introduced written `$$`; the template's own bytes stay as they were.

    The callback builds its text from the template (a host or prefix replaced, a query appended), so the
    template's span from its first to its last `$` is found in `text`, together with as much of what
    precedes it as `text` still holds; only `$`s outside that span are escaped. The origin's own `$$`,
    `$Number%05d$` and even a stray `$` are kept. If the callback rewrote that span itself, each `$` not
    part of one of the template's `$…$` tokens is escaped.
    """
    if "$" not in text:
        return text
    first, last = template.find("$"), template.rfind("$")
    if first < 0:
        return text.replace("$", "$$")
    if template[first : last + 1] not in text:
        return _escape_outside_tokens(text, template)
    # The smallest `start` with template[start:last + 1] in text: the ends of a contained string are
    # contained too, so the predicate is monotonic and bisection finds it.
    low, high = 0, first
    while low < high:
        middle = (low + high) // 2
        if template[middle : last + 1] in text:
            high = middle
        else:
            low = middle + 1
    at = text.find(template[low : last + 1])
    begin, end = at + first - low, at + last + 1 - low
    return text[:begin].replace("$", "$$") + text[begin:end] + text[end:].replace("$", "$$")


def _escape_outside_tokens(text: str, template: str) -> str:
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


# More alternatives than this for one place (BaseURLs multiplied down the levels): it is left alone rather
# than resolved, which bounds the work an origin's MPD can cause.
MAX_EFFECTIVE_BASES = 256


class EffectiveBases:
    """Where each located place resolves (ISO/IEC 23009-1 5.6): through the BaseURLs in scope.

    A place's BaseURLs in scope are the BaseURL children of its ancestors (MPD, Period, AdaptationSet,
    Representation; for a BaseURL itself, those above its parent); siblings are alternatives, so a place
    has one effective URL per path through them, each resolved from `document_url` downwards. Location,
    PatchLocation and xlink:href are also resolved against the document itself (players differ). A place
    is ours only if every one of those URLs is: a token must never reach a host a player may pick.
    """

    def __init__(self, located: Sequence[Found], document_url: str, is_ours: Callable[[str], bool]) -> None:
        self.document_url = document_url
        self.is_ours = is_ours
        self.groups: dict[int, list[str]] = {}
        for found in located:
            if found.attribute is None and found.element in _BASE_URLS and len(found.scope) > 1:
                self.groups.setdefault(found.scope[-2], []).append(as_browsers_read(found.value))
        self._resolved: dict[tuple[int, ...], tuple[tuple[str, ...], bool] | None] = {}

    def all_ours(self, found: Found) -> bool:
        place = _PLACES[found.element, found.attribute]
        ancestors = found.scope[:-2] if found.element in _BASE_URLS else found.scope
        resolved = self._bases(tuple(a for a in ancestors if a in self.groups))
        if resolved is None:
            return False
        bases, ours = resolved
        if place.slot is _PLAYLIST and bases != (self.document_url,):
            bases += (self.document_url,)
        value = as_browsers_read(found.value)
        if _is_relative_path(value):
            return ours  # resolves on each base's host (whether it climbs out of the route is the rim's call)
        return all(self._ours(_join(base, value)) for base in bases)

    def beside_another_host(self, found: Found) -> str | None:
        """For a BaseURL that is ours (`all_ours`) with a sibling that is not: its one effective URL (None
        otherwise, or when it has several)."""
        if found.attribute is not None or found.element not in _BASE_URLS or len(found.scope) < 2:
            return None
        resolved = self._bases(tuple(a for a in found.scope[:-2] if a in self.groups))
        siblings = self.groups[found.scope[-2]]
        if resolved is None or len(resolved[0]) != 1 or len(siblings) < 2:
            return None
        base = resolved[0][0]
        if all(self._ours(_join(base, sibling)) for sibling in siblings):
            return None
        return _join(base, as_browsers_read(found.value))

    def _bases(self, key: tuple[int, ...]) -> tuple[tuple[str, ...], bool] | None:
        if key in self._resolved:
            return self._resolved[key]
        bases: list[str] = [self.document_url]
        for parent in key:
            joined = {_join(base, value): None for base in bases for value in self.groups[parent]}
            bases = [base for base in joined if base is not None]
            if len(joined) > len(bases) or len(bases) > MAX_EFFECTIVE_BASES:
                self._resolved[key] = None  # unresolvable or too many: not ours
                return None
        result = tuple(bases), all(self._ours(base) for base in bases)
        self._resolved[key] = result
        return result

    def _ours(self, url: str | None) -> bool:
        if url is None:
            return False
        try:
            return self.is_ours(url)
        except ValueError:
            return False


def _join(base: str, reference: str) -> str | None:
    try:
        return urljoin(base, reference)
    except ValueError:  # e.g. an unterminated IPv6 literal
        return None


def _is_relative_path(reference: str) -> bool:
    """A reference that keeps its base's scheme and host: no scheme, not starting with '/'."""
    if reference.startswith("/"):
        return False
    end = min((i for i in (reference.find("/"), reference.find("?"), reference.find("#")) if i >= 0), default=None)
    return ":" not in reference[:end]
