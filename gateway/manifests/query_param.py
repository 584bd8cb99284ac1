"""The standards' own token propagation: one manifest for every viewer, the token taken from its own URL.

    HLS   `#EXT-X-DEFINE:QUERYPARAM="<param>"` (rfc8216bis §4.4.2.3) defines the variable `<param>` from the
          query of the URL the playlist was loaded with, and `?<param>={$<param>}` on every URI hands it on.
          A playlist with a QUERYPARAM definition must declare `EXT-X-VERSION` 11 or higher (§8).
    DASH  ISO/IEC 23009-1 Annex I descriptors on the MPD: `urn:mpeg:dash:urlparam:2016` `ExtUrlQueryInfo`
          (with `includeInRequests`) and `urn:mpeg:dash:urlparam:2014` `UrlQueryInfo`, both
          `useMPDUrlQuery="true" queryTemplate="$querypart$"`: the player appends the MPD URL's query to
          its requests. Optionally the 6th edition's `RequestParam` element (shaka reads it, also for MPD
          refreshes).

dash.js and shaka take the *first* urlparam descriptor they find, so the 2016 one (which also covers MPD,
patch and xlink requests) comes first; a player that knows only 2014 finds its own. Both are inserted where
the MPD schema puts SupplementalProperty (after Periods, before UTCTiming/LeapSecondInformation), each with
its own namespace declaration, so the rest of the document keeps its bytes.

Pure and lexical like the rewriters: the header/descriptors are spliced into the origin's bytes before they
are prepared; nothing else changes.
"""

from __future__ import annotations

import re
from xml.parsers import expat

from gateway.manifests.errors import ManifestError
from gateway.manifests.hls_lexical import UTF8_BOM

__all__ = [
    "HLS_QUERYPARAM_VERSION",
    "INCLUDE_IN_REQUESTS",
    "declare_hls_query_param",
    "declare_mpd_query_param",
    "hls_variable_reference",
    "is_variable_name",
]

HLS_QUERYPARAM_VERSION = 11
# Which requests carry the MPD URL's query (ISO/IEC 23009-1 Annex I.3, ExtUrlQueryInfo@includeInRequests).
INCLUDE_IN_REQUESTS = "segment xlink mpd mpdpatch"
URLPARAM_2014 = "urn:mpeg:dash:urlparam:2014"
URLPARAM_2016 = "urn:mpeg:dash:urlparam:2016"
_SCHEMA_2014 = "urn:mpeg:dash:schema:urlparam:2014"
_SCHEMA_2016 = "urn:mpeg:dash:schema:urlparam:2016"

# rfc8216bis §4.2: a variable name is [a-zA-Z0-9-_].
_VARIABLE_NAME = re.compile(r"[A-Za-z0-9_-]+\Z")
_VERSION = re.compile(r"^#EXT-X-VERSION:[ \t]*(\d+)[ \t]*\r?$", re.MULTILINE)
_DEFINE_QUERYPARAM = re.compile(r'^#EXT-X-DEFINE:(?:.*,)?QUERYPARAM="([^"]*)"', re.MULTILINE)
# MPD children that the schema puts after SupplementalProperty.
_AFTER_SUPPLEMENTAL = frozenset({"UTCTiming", "LeapSecondInformation"})


def is_variable_name(name: str) -> bool:
    return _VARIABLE_NAME.match(name) is not None


def hls_variable_reference(name: str) -> str:
    """`{$name}`: what a URI carries in place of the token."""
    return "{$" + name + "}"


def declare_hls_query_param(body: bytes, name: str) -> bytes:
    """`body` with `#EXT-X-DEFINE:QUERYPARAM="<name>"` after `#EXTM3U` (and an `EXT-X-VERSION` directly
    after it), and `EXT-X-VERSION` raised to 11 (added when absent). A playlist that already defines this
    QUERYPARAM is returned unchanged; a NAME/IMPORT of the same name is refused by the rewriter afterwards.
    Line endings follow the header line's (LF or CRLF); a BOM stays first."""
    if not is_variable_name(name):
        raise ValueError(f"{name!r} is not an HLS variable name ([A-Za-z0-9_-]+)")
    text = body.decode("utf-8", "surrogateescape")
    bom = UTF8_BOM if text.startswith(UTF8_BOM) else ""
    text = text[len(bom) :]
    if not text.startswith("#EXTM3U"):
        raise ManifestError("not an HLS playlist: no #EXTM3U header", line_no=1)
    if any(found.group(1) == name for found in _DEFINE_QUERYPARAM.finditer(text)):
        return body
    version = _VERSION.search(text)
    if version is not None and int(version.group(1)) < HLS_QUERYPARAM_VERSION:
        text = f"{text[: version.start(1)]}{HLS_QUERYPARAM_VERSION}{text[version.end(1) :]}"
        version = _VERSION.search(text)
    insert_at = _after_line(text, 0)
    newline = "\r\n" if text[insert_at - 2 : insert_at] == "\r\n" else "\n"
    if insert_at == len(text) and not text.endswith("\n"):
        text += newline
        insert_at = len(text)
    header = f'#EXT-X-DEFINE:QUERYPARAM="{name}"{newline}'
    if version is None:
        header = f"#EXT-X-VERSION:{HLS_QUERYPARAM_VERSION}{newline}{header}"
    elif version.start() == insert_at:  # a version line right after #EXTM3U stays there, the DEFINE after it
        insert_at = _after_line(text, insert_at)
        if not text.endswith("\n") and insert_at == len(text):
            text += newline
            insert_at = len(text)
    return (bom + text[:insert_at] + header + text[insert_at:]).encode("utf-8", "surrogateescape")


def _after_line(text: str, start: int) -> int:
    """Where the line that begins at `start` ends (after its newline; the end of `text` without one)."""
    end = text.find("\n", start)
    return len(text) if end < 0 else end + 1


def mpd_descriptors(*, request_param: bool, prefix: str = "", indent: str = "  ", newline: str = "\n") -> str:
    """The Annex I elements the MPD gets (`prefix`: the MPD namespace's prefix on the root, with its ':')."""
    query = 'queryTemplate="$querypart$" useMPDUrlQuery="true"'
    elements = [
        f'<{prefix}SupplementalProperty schemeIdUri="{URLPARAM_2016}" xmlns:up2016="{_SCHEMA_2016}">'
        f'<up2016:ExtUrlQueryInfo {query} includeInRequests="{INCLUDE_IN_REQUESTS}"/></{prefix}SupplementalProperty>',
        f'<{prefix}SupplementalProperty schemeIdUri="{URLPARAM_2014}" xmlns:up="{_SCHEMA_2014}">'
        f"<up:UrlQueryInfo {query}/></{prefix}SupplementalProperty>",
    ]
    if request_param:
        elements.append(f'<{prefix}RequestParam {query} includeInRequests="{INCLUDE_IN_REQUESTS}"/>')
    return "".join(indent + element + newline for element in elements)


def declare_mpd_query_param(body: bytes, *, request_param: bool = False) -> bytes:
    """`body` with the Annex I descriptors (and optionally `RequestParam`) as children of the root `MPD`.

    Refuses (ManifestError) what the DASH rewriter refuses: malformed XML and any DOCTYPE. An MPD fragment
    (an xlinked Period: its root is not MPD) is returned unchanged: the MPD that links it already says
    which requests carry the query.
    """
    root: list[str] = []  # the root's raw qualified name
    first_child: list[int] = []
    insert_at: list[int] = []
    depth = 0
    parser = expat.ParserCreate("UTF-8")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)

    def refuse_dtd(*_: object) -> None:
        raise ManifestError("DOCTYPE declarations are refused (entities could expand or fetch external resources)")

    def start(name: str, _attributes: object) -> None:
        nonlocal depth
        depth += 1
        if depth == 1:
            root.append(name)
        elif depth == 2:
            if not first_child:
                first_child.append(parser.CurrentByteIndex)
            if name.rpartition(":")[2] in _AFTER_SUPPLEMENTAL and not insert_at:
                insert_at.append(parser.CurrentByteIndex)

    def end(name: str) -> None:
        nonlocal depth
        if depth == 1 and not insert_at and body[parser.CurrentByteIndex : parser.CurrentByteIndex + 2] == b"</":
            insert_at.append(parser.CurrentByteIndex)
        depth -= 1

    parser.StartDoctypeDeclHandler = refuse_dtd
    parser.EntityDeclHandler = refuse_dtd
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    try:
        parser.Parse(body, True)
    except expat.ExpatError as error:
        raise ManifestError(f"not well-formed XML: {expat.errors.messages[error.code]}", line_no=error.lineno) from None
    if not root or root[0].rpartition(":")[2] != "MPD" or not insert_at:
        return body  # a fragment, or an empty <MPD/> (nothing to play)
    position = insert_at[0]
    prefix = root[0][: -len("MPD")]
    line_start = body.rfind(b"\n", 0, position) + 1
    if body[line_start:position].strip(b" \t") or not first_child:  # not alone on its line: inline
        block = mpd_descriptors(request_param=request_param, prefix=prefix, indent="", newline="")
        return body[:position] + block.encode() + body[position:]
    newline = "\r\n" if body[line_start - 2 : line_start] == b"\r\n" else "\n"
    child_line = body.rfind(b"\n", 0, first_child[0]) + 1
    indent = body[child_line : first_child[0]]
    if indent.strip(b" \t"):
        indent = b"  "
    block = mpd_descriptors(request_param=request_param, prefix=prefix, indent=indent.decode(), newline=newline)
    return body[:line_start] + block.encode() + body[line_start:]
