"""HLS lexical layer (RFC 8216 §4.1, rfc8216bis §4.2–4.3): input checks, attribute lists, variables.

Everything here reports positions into the original text instead of building values, so the rewriter can
splice new URIs in and leave every other byte as it was.
"""

from __future__ import annotations

import re

from gateway.manifests.errors import ManifestError

# Longest line accepted. Real lines are short; the longest legitimate ones are data: URIs (PSSH boxes,
# inline asset lists) of a few KiB. A longer line means the body is not a playlist.
MAX_LINE_CHARS = 256 * 1024
# EXT-X-DEFINE substitution may add at most this many times the playlist's own size (and at least
# SUBSTITUTION_MIN_BUDGET characters): a long base URL on every segment line fits, a 100 KB playlist that
# references a long value thousands of times (a 200 MB response) does not.
SUBSTITUTION_GROWTH_FACTOR = 8
SUBSTITUTION_MIN_BUDGET = 1024 * 1024

UTF8_BOM = "\ufeff"
_HEADER = re.compile(r"#EXTM3U(?:[ \t\r\n]|\Z)")
_LONE_CR = re.compile(r"\r(?!\n|\Z)")

# rfc8216bis §4.2: AttributeName=AttributeValue, comma separated; quoted strings have no escapes and may
# contain commas. Spaces around names and "=" are not allowed by the spec but are tolerated, as players
# do (hls.js trims names), so a deployed `METHOD=AES-128, URI="…"` still has its URI found.
# Names are matched case-sensitively later, so lower-case names parse but never name a URI place.
# Possessive quantifiers: no backtracking, so a hostile line costs linear time.
_ATTRIBUTE = re.compile(r'[ \t]*+([A-Za-z0-9_-]++)[ \t]*+=[ \t]*+(?:"([^"]*+)"|([^",]*+))[ \t]*+(?:,|\Z)')
_BLANK = re.compile(r"[ \t]*+\Z")

# (name, value start, value end, quoted); for a quoted value the span excludes the quotes.
AttributeSpan = tuple[str, int, int, bool]

# rfc8216bis §4.3: a variable reference is "{$" name "}", names are [a-zA-Z0-9-_].
_VARIABLE_NAME = re.compile(r"[a-zA-Z0-9_-]+\Z")
_VARIABLE_REFERENCE = re.compile(r"\{\$([a-zA-Z0-9_-]+)\}")


def decode_playlist(data: bytes, *, max_bytes: int | None, max_line_chars: int) -> str:
    """Check `data` is something a line rewriter may touch and decode it losslessly.

    UTF-8 with "surrogateescape", so any byte sequence survives `encode("utf-8", "surrogateescape")`.
    Raises ManifestError: over `max_bytes`, a NUL byte (binary, and the rewriter's own slot marker), no
    `#EXTM3U` header after an optional BOM, a CR not followed by LF (the line structure would be
    ambiguous), or a line longer than `max_line_chars`.
    """
    if max_bytes is not None and len(data) > max_bytes:
        raise ManifestError(f"playlist is {len(data)} bytes, over the {max_bytes}-byte limit")
    if b"\x00" in data:
        line_no = data.count(b"\n", 0, data.index(b"\x00")) + 1
        raise ManifestError("NUL byte: not a text playlist", line_no=line_no)
    text = data.decode("utf-8", "surrogateescape")
    if not _HEADER.match(text, 1 if text.startswith(UTF8_BOM) else 0):
        raise ManifestError("does not start with #EXTM3U", line_no=1, line=text[:40])
    if "\r" in text and text.count("\r") != text.count("\r\n"):
        lone = _LONE_CR.search(text)
        if lone is not None:
            raise ManifestError("CR not followed by LF", line_no=text.count("\n", 0, lone.start()) + 1)
    if len(text) > max_line_chars:
        _check_line_lengths(text, max_line_chars)
    return text


def _check_line_lengths(text: str, max_line_chars: int) -> None:
    # Jump to the last newline within reach instead of visiting every line: a few steps per playlist.
    start, size = 0, len(text)
    while size - start > max_line_chars:
        newline = text.rfind("\n", start, start + max_line_chars + 1)
        if newline < 0:
            raise ManifestError(
                f"line longer than {max_line_chars} characters",
                line_no=text.count("\n", 0, start) + 1,
                line=text[start : start + 40],
            )
        start = newline + 1


def parse_attribute_list(text: str, start: int, line_no: int) -> list[AttributeSpan]:
    """Spans of the attributes of `text[start:]` (one line without its line ending).

    Raises ManifestError where quotes make the list ambiguous: an unterminated quoted string, text after
    a closing quote, a quote in a value or name that is not a quoted string. Quote-free junk between
    commas (an unquoted `CODECS=avc1.4d401f,mp4a.40.2` leaves `mp4a.40.2`) is skipped as players skip
    it; it cannot hide a URI, since only quoted values are rewritten. Trailing commas and spaces are fine.
    """
    spans: list[AttributeSpan] = []
    end = len(text)
    if _BLANK.match(text, start):
        return spans
    position = start
    while position < end:
        match = _ATTRIBUTE.match(text, position)
        if match is None:
            comma = text.find(",", position)
            junk_end = end if comma < 0 else comma
            if '"' in text[position:junk_end]:
                message = f"malformed attribute list at column {position + 1}"
                raise ManifestError(message, line_no=line_no, line=text)
            position = junk_end + 1
            continue
        if match.start(2) >= 0:
            spans.append((match.group(1), match.start(2), match.end(2), True))
        else:
            spans.append((match.group(1), match.start(3), match.end(3), False))
        position = match.end()
    return spans


class Variables:
    """EXT-X-DEFINE variables (rfc8216bis §4.4.2.3), in the order the playlist defines them.

    NAME/VALUE variables are known and substituted. IMPORT and QUERYPARAM variables take their values from
    the parent playlist or from the query of the URL the client used — neither is visible to a rewriter —
    so their references are left in place verbatim. A reference to a name not defined *before* it is an
    error, as in rfc8216bis and hls.js.
    """

    __slots__ = ("_budget", "_max_chars", "_values")

    def __init__(self, *, budget: int | None = None, max_chars: int = MAX_LINE_CHARS) -> None:
        """`budget`: how many characters substitution may add in total (None: unbounded); `max_chars`:
        the longest a substituted value may be."""
        self._values: dict[str, str | None] = {}
        self._budget = budget
        self._max_chars = max_chars

    def define(self, line: str, attributes: list[AttributeSpan], line_no: int) -> None:
        """Record one EXT-X-DEFINE whose attribute `spans` index into `line`."""
        found = {name: (line[start:end], quoted) for name, start, end, quoted in attributes}
        kinds = [kind for kind in ("NAME", "IMPORT", "QUERYPARAM") if kind in found]
        if len(kinds) != 1:
            raise ManifestError("EXT-X-DEFINE needs exactly one of NAME, IMPORT, QUERYPARAM", line_no=line_no)
        name, name_quoted = found[kinds[0]]
        value, value_quoted = found.get("VALUE", (None, True))
        if not name_quoted or not value_quoted or not _VARIABLE_NAME.match(name):
            raise ManifestError(f"EXT-X-DEFINE with an invalid variable name {name!r}", line_no=line_no)
        if (kinds[0] == "NAME") != (value is not None):
            raise ManifestError("EXT-X-DEFINE: VALUE goes with NAME, and only with NAME", line_no=line_no)
        if name in self._values:
            raise ManifestError(f"EXT-X-DEFINE: variable {name!r} defined twice", line_no=line_no)
        self._values[name] = value

    def substitute(self, value: str, line_no: int) -> str:
        """`value` with every known `{$name}` replaced; unknown-valued (IMPORT/QUERYPARAM) refs kept."""

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in self._values:
                raise ManifestError(f"reference to undefined variable {name!r}", line_no=line_no)
            known = self._values[name]
            return match.group(0) if known is None else known

        result = _VARIABLE_REFERENCE.sub(replace, value)
        if len(result) > self._max_chars:
            raise ManifestError(
                f"EXT-X-DEFINE substitution makes a value of {len(result)} characters (limit {self._max_chars})",
                line_no=line_no,
            )
        if self._budget is not None:
            self._budget -= len(result) - len(value)
            if self._budget < 0:
                raise ManifestError(
                    "EXT-X-DEFINE substitution grows the playlist past "
                    f"{SUBSTITUTION_GROWTH_FACTOR}x its size (at least {SUBSTITUTION_MIN_BUDGET} characters)",
                    line_no=line_no,
                )
        return result
