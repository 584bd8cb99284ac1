"""Locating values in an XML document without re-serialising it (the lexical layer of the DASH rewriter).

`locate_values` runs `xml.parsers.expat` (namespace-aware) over the original bytes only to *find* things:
the byte span of chosen attribute values and of the text content of chosen elements. The caller splices
replacements into the original bytes, so everything else — declaration, comments, whitespace, attribute
order and quoting, prefixes, unknown markup, CRLF — is kept byte for byte.

Safety: a DOCTYPE (and so any entity declaration: XXE, "billion laughs") is refused before its internal
subset is read, and parameter entities are never parsed. Without a DTD only the five predefined entities
and character references exist, which `xml_unescape` decodes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import NamedTuple
from xml.parsers import expat

from gateway.manifests.errors import ManifestError

__all__ = ["Found", "attribute_escape", "locate_values", "text_escape", "xml_unescape"]

# expat reports names as "<namespace URI> <local name>" (or just the local name without a namespace).
NS_SEPARATOR = " "

# A start tag once expat has accepted it: names cannot contain whitespace, "=", "/" or ">", and values
# cannot contain their own quote character (or "<"), so these patterns are exact on well-formed input.
_TAG_NAME = re.compile(rb"<[^\s/>]+")
_ATTRIBUTE = re.compile(rb"\s+([^\s=/>]+)\s*=\s*(\"[^\"]*\"|'[^']*')")
_TAG_END = re.compile(rb"\s*(/?)>")
_REFERENCE = re.compile(r"&(?:(lt|gt|amp|quot|apos)|#([0-9]+)|#x([0-9a-fA-F]+));")
_PREDEFINED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"', "apos": "'"}
_XML_SPACE = " \t\r\n"
_LINE_BREAK = re.compile(rb"\r\n?|\n")
# Control characters in a URI are percent-encoded: XML cannot hold NUL, and attribute-value normalisation
# would turn a literal TAB/CR/LF into a space.
_CONTROLS = {c: f"%{c:02X}" for c in range(0x20)} | {0x7F: "%7F"}
_TEXT_ESCAPES = str.maketrans(_CONTROLS | {ord("&"): "&amp;", ord("<"): "&lt;", ord(">"): "&gt;"})
_ATTRIBUTE_ESCAPES = {
    quote: str.maketrans(_CONTROLS | {ord("&"): "&amp;", ord("<"): "&lt;", ord(quote): entity})
    for quote, entity in (('"', "&quot;"), ("'", "&apos;"))
}


class Found(NamedTuple):
    """A located value: `data[start:end]` is its raw text (inside the quotes for an attribute).

    `element` is expat's name of the element, `attribute` expat's name of the attribute (None for text
    content), `value` the decoded value with surrounding XML whitespace removed, `quote` the attribute's
    quote character (None for text), `lead`/`trail` the raw whitespace kept around the value. A NamedTuple:
    one is built per located value (a frozen dataclass's __init__ costs ~3x more).
    """

    element: str
    attribute: str | None
    start: int
    end: int
    value: str
    quote: str | None
    lead: int
    trail: int
    scope: tuple[int, ...] = ()


# Decides, from an element's expat name and attributes (name, value, name, value, ...), whether its text is a
# value to locate, and under which name to report it (Found.element); None: not located.
TextRule = Callable[[str, list[str]], str | None]


def xml_unescape(raw: str) -> str:
    """Decode the predefined entities and character references (the only ones possible without a DTD)."""

    def one(match: re.Match[str]) -> str:
        name, decimal, hexadecimal = match.groups()
        if name:
            return _PREDEFINED[name]
        return chr(int(decimal) if decimal else int(hexadecimal, 16))

    return _REFERENCE.sub(one, raw) if "&" in raw else raw


def text_escape(text: str) -> str:
    """`text` as XML character data."""
    # isprintable() is a cheap screen for control characters; most values need no escaping at all.
    if "&" in text or "<" in text or ">" in text or not text.isprintable():
        return text.translate(_TEXT_ESCAPES)
    return text


def attribute_escape(text: str, quote: str) -> str:
    """`text` as the content of an attribute value delimited by `quote`."""
    if "&" in text or "<" in text or quote in text or not text.isprintable():
        return text.translate(_ATTRIBUTE_ESCAPES[quote])
    return text


def _line_of(data: bytes, offset: int) -> tuple[int, str]:
    start = data.rfind(b"\n", 0, offset) + 1
    end = data.find(b"\n", offset)
    return data.count(b"\n", 0, offset) + 1, data[start : end if end >= 0 else len(data)].decode("utf-8", "replace")


def _refuse_dtd(*_: object) -> None:
    raise ManifestError("DOCTYPE declarations are refused (entities could expand or fetch external resources)")


def locate_values(
    data: bytes,
    attributes: Mapping[str, frozenset[str]],
    text_elements: frozenset[str],
    text_rules: Mapping[str, TextRule] | None = None,
) -> list[Found]:
    """Every value of `attributes[element]` and the text of every `text_elements` element, in document order.

    `text_rules[element]` decides per element occurrence whether its text is located too (see TextRule).

    Names are expat's namespace-qualified names (see NS_SEPARATOR). Raises ManifestError (with line and
    column) if `data` is not well-formed, namespace-well-formed XML, has a DOCTYPE, or a text element that
    contains markup (a comment, CDATA section or child element inside it: its value has no single span).
    """
    parser = expat.ParserCreate("UTF-8", NS_SEPARATOR)
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _refuse_dtd
    parser.EntityDeclHandler = _refuse_dtd
    parser.ordered_attributes = True
    found: list[Found] = []
    rules = text_rules or {}
    # (element name, name to report, start of its content, depth) while inside a text element.
    open_text: list[tuple[str, str, int, int]] = []
    # Serial numbers of the open elements: a value's `scope`.
    stack: list[int] = []
    serial = 0

    def start_element(name: str, attrs: list[str]) -> None:
        nonlocal serial
        serial += 1
        stack.append(serial)
        wanted = attributes.get(name)
        reported: str | None = name if name in text_elements else None
        if reported is None and name in rules:
            reported = rules[name](name, attrs)
        if reported is None and (wanted is None or wanted.isdisjoint(attrs[0::2])):
            return  # nothing to locate: skip lexing the start tag
        pos = parser.CurrentByteIndex
        match = _TAG_NAME.match(data, pos)
        assert match is not None  # expat has just reported a start tag here
        pos = match.end()
        names = attrs[0::2]
        index = 0
        while (match := _ATTRIBUTE.match(data, pos)) is not None:
            pos = match.end()
            raw_name = match.group(1)
            if raw_name == b"xmlns" or raw_name.startswith(b"xmlns:"):
                continue  # namespace declarations are not reported as attributes
            if index == len(names):
                break  # more attributes than expat reported: refused below rather than misplaced
            if wanted is not None and names[index] in wanted:
                start, end = match.span(2)
                found.append(_value(data, name, names[index], start + 1, end - 1, attrs[2 * index + 1], stack))
            index += 1
        end_match = _TAG_END.match(data, pos)
        if index != len(names) or end_match is None:
            raise ManifestError("start tag could not be located", line_no=_line_of(data, pos)[0])
        if reported is not None and not end_match.group(1):
            open_text.append((name, reported, end_match.end(), len(stack)))

    def end_element(name: str) -> None:
        if open_text and open_text[-1][0] == name and open_text[-1][3] == len(stack):
            _, reported, start, _ = open_text.pop()
            end = parser.CurrentByteIndex
            raw = data[start:end]
            if b"<" in raw:
                line_no, line = _line_of(data, start)
                raise ManifestError("markup inside a URI element is not supported", line_no=line_no, line=line)
            text = raw.decode("utf-8")
            found.append(_value(data, reported, None, start, end, xml_unescape(text.strip(_XML_SPACE)), stack))
        stack.pop()

    parser.StartElementHandler = start_element
    parser.EndElementHandler = end_element
    try:
        parser.Parse(data, True)
    except expat.ExpatError as error:
        lines = _LINE_BREAK.split(data)  # as expat counts lines: a lone CR ends one too
        line = lines[error.lineno - 1].decode("utf-8", "replace") if 0 < error.lineno <= len(lines) else None
        message = f"not well-formed XML: {expat.errors.messages[error.code]} (column {error.offset + 1})"
        raise ManifestError(message, line_no=error.lineno, line=line) from None
    return found


def _value(
    data: bytes, element: str, attribute: str | None, start: int, end: int, value: str, stack: list[int]
) -> Found:
    lead = trail = 0
    if start < end and (data[start] <= 0x20 or data[end - 1] <= 0x20):
        raw = data[start:end]
        lead = len(raw) - len(raw.lstrip())
        trail = len(raw) - len(raw.rstrip()) if lead < len(raw) else 0
    quote = None if attribute is None else chr(data[start - 1])
    return Found(element, attribute, start, end, value.strip(_XML_SPACE), quote, lead, trail, tuple(stack))
