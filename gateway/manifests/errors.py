"""The one error a manifest rewriter raises: the input is not a manifest it can rewrite safely.

Self-contained on purpose (no imports from the rest of the package), so `gateway/errors.py` can re-export
it as part of the gateway's error tree.
"""

from __future__ import annotations

_EXCERPT_CHARS = 120


class ManifestError(ValueError):
    """A manifest that is too large, malformed, or ambiguous to rewrite.

    `line_no` is 1-based, or None when the problem is the document as a whole (size, header). `line` is an
    excerpt of the offending line (at most 120 characters), or None. Never raised for I/O: rewriters do none.
    """

    line_no: int | None
    line: str | None

    def __init__(self, message: str, *, line_no: int | None = None, line: str | None = None) -> None:
        self.line_no = line_no
        self.line = None if line is None else _excerpt(line)
        where = "" if line_no is None else f"line {line_no}: "
        shown = "" if self.line is None else f" ({self.line!r})"
        super().__init__(f"{where}{message}{shown}")


def _excerpt(line: str) -> str:
    if len(line) <= _EXCERPT_CHARS:
        return line
    return line[: _EXCERPT_CHARS - 1] + "…"
