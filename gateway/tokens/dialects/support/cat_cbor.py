"""The strict CBOR (RFC 8949) subset a Common Access Token uses, encoder and decoder.

Hand-written rather than `cbor2` because verification needs a decoder that refuses, not tolerates
indefinite lengths, duplicate map keys, map keys other than int/text, tags outside an allow-list
(61 CWT, 17 COSE_Mac0, 18 COSE_Sign1, 52/54 RFC 9164 IP; so tag-259 "Map" and the like are errors),
simple values other than false/true/null, nesting deeper than 16, lengths beyond the input, and
trailing bytes. Byte strings come back as the exact bytes received, so a MAC or signature is always
checked over what was sent, never over a re-encoding. The encoder writes definite, shortest-form
heads and keeps map insertion order (claims go in the order of docs/dialects/cat.md's table); it never
writes floats.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Union

TAG_CWT = 61
TAG_MAC0 = 17
TAG_SIGN1 = 18
TAG_IPV4 = 52
TAG_IPV6 = 54
TOKEN_TAGS = frozenset({TAG_CWT, TAG_MAC0, TAG_SIGN1, TAG_IPV4, TAG_IPV6})
MAX_DEPTH = 16

CborValue = Union[int, float, bytes, str, bool, None, list["CborValue"], dict["CborKey", "CborValue"], "Tagged"]
CborKey = int | str


class CborError(ValueError):
    """Input that is not in the accepted CBOR subset."""


@dataclass(frozen=True, slots=True)
class Tagged:
    tag: int
    value: CborValue


def _head(major: int, argument: int) -> bytes:
    if argument < 24:
        return bytes([major << 5 | argument])
    for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if argument < 1 << (8 * size):
            return bytes([major << 5 | info]) + argument.to_bytes(size, "big")
    raise CborError(f"integer {argument} does not fit in 64 bits")


def encode(value: object) -> bytes:
    """Deterministic encoding of ints, bytes, text, lists, maps (insertion order), Tagged, bools, None."""
    if value is False or value is True or value is None:
        return {False: b"\xf4", True: b"\xf5", None: b"\xf6"}[value]
    if isinstance(value, int):
        return _head(0, value) if value >= 0 else _head(1, -1 - value)
    if isinstance(value, bytes):
        return _head(2, len(value)) + value
    if isinstance(value, str):
        raw = value.encode("utf-8")
        return _head(3, len(raw)) + raw
    if isinstance(value, Tagged):
        return _head(6, value.tag) + encode(value.value)
    if isinstance(value, Mapping):
        return _head(5, len(value)) + b"".join(encode(k) + encode(v) for k, v in value.items())
    if isinstance(value, Sequence):
        return _head(4, len(value)) + b"".join(encode(item) for item in value)
    raise CborError(f"cannot encode {type(value).__name__}")


class _Decoder:
    def __init__(self, data: bytes, allowed_tags: frozenset[int]) -> None:
        self.data = data
        self.pos = 0
        self.allowed_tags = allowed_tags

    def take(self, count: int) -> bytes:
        if count > len(self.data) - self.pos:
            raise CborError("input ends inside an item")
        chunk = self.data[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def argument(self, info: int) -> int:
        if info < 24:
            return info
        if info < 28:
            return int.from_bytes(self.take(1 << (info - 24)), "big")
        raise CborError("indefinite length or reserved additional information")

    def item(self, depth: int) -> CborValue:
        if depth > MAX_DEPTH:
            raise CborError(f"nesting deeper than {MAX_DEPTH}")
        initial = self.take(1)[0]
        major, info = initial >> 5, initial & 0x1F
        if major == 7:
            return self.simple(info)
        argument = self.argument(info)
        if major == 0:
            return argument
        if major == 1:
            return -1 - argument
        if major == 2:
            return self.take(argument)
        if major == 3:
            try:
                return self.take(argument).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise CborError("text string is not UTF-8") from exc
        if major == 6:
            if argument not in self.allowed_tags:
                raise CborError(f"tag {argument} is not allowed here")
            return Tagged(argument, self.item(depth + 1))
        if argument > len(self.data) - self.pos:  # every item takes at least one byte
            raise CborError("container longer than the input")
        if major == 4:
            return [self.item(depth + 1) for _ in range(argument)]
        return self.map(argument, depth)

    def map(self, count: int, depth: int) -> dict[CborKey, CborValue]:
        result: dict[CborKey, CborValue] = {}
        for _ in range(count):
            key = self.item(depth + 1)
            if isinstance(key, bool) or not isinstance(key, int | str):
                raise CborError(f"map key {key!r} is neither an integer nor a text string")
            if key in result:
                raise CborError(f"duplicate map key {key!r}")
            result[key] = self.item(depth + 1)
        return result

    def simple(self, info: int) -> CborValue:
        if info in (20, 21, 22):
            return (False, True, None)[info - 20]
        formats = {25: ">e", 26: ">f", 27: ">d"}
        if info in formats:
            return float(struct.unpack(formats[info], self.take(struct.calcsize(formats[info])))[0])
        raise CborError(f"simple value {info} is not allowed")


def decode(data: bytes, *, allowed_tags: frozenset[int] = TOKEN_TAGS) -> CborValue:
    """Decode exactly one item that fills `data`; raise CborError on anything outside the subset."""
    decoder = _Decoder(data, allowed_tags)
    value = decoder.item(0)
    if decoder.pos != len(data):
        raise CborError(f"{len(data) - decoder.pos} trailing bytes after the item")
    return value
