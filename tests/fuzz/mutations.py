"""Mutations of real inputs: what a broken packager, a lying origin or an attacker's script produces."""

from __future__ import annotations

from hypothesis import strategies as st

# Bytes that matter to the parsers: line ends, quotes, attribute syntax, XML markup, template and
# variable syntax, NUL and high bytes.
INTERESTING = [
    b"\n",
    b"\r",
    b"\r\n",
    b'"',
    b",",
    b"=",
    b":",
    b"#",
    b"<",
    b">",
    b"&",
    b"$",
    b"{$",
    b"}",
    b"\x00",
    b"\xff",
]


@st.composite
def mutated(draw: st.DrawFn, originals: list[bytes]) -> bytes:
    """One of `originals` with 1-4 random edits: delete, insert, replace, duplicate or swap a span."""
    data = bytearray(draw(st.sampled_from(originals)))
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        start = draw(st.integers(0, len(data) - 1))
        end = min(len(data), start + draw(st.integers(0, 64)))
        piece = draw(st.one_of(st.sampled_from(INTERESTING), st.binary(min_size=1, max_size=16)))
        kind = draw(st.sampled_from(["delete", "insert", "replace", "duplicate", "swap"]))
        if kind == "delete":
            del data[start:end]
        elif kind == "insert":
            data[start:start] = piece
        elif kind == "replace":
            data[start:end] = piece
        elif kind == "duplicate":
            data[start:start] = data[start:end]
        else:
            other = draw(st.integers(0, len(data) - 1))
            first, second = sorted((start, other))
            data[first:second] = data[first:second][::-1]
    return bytes(data)
