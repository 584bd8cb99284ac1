"""The strict CBOR codec agrees with cbor2 on everything it accepts, and refuses what CAT verification must refuse."""

from __future__ import annotations

import contextlib
from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.tokens.dialects.support.cat_cbor import TOKEN_TAGS, CborError, Tagged, decode, encode

keys = st.integers(-(2**63), 2**64 - 1) | st.text(max_size=8)
scalars = st.integers(-(2**64), 2**64 - 1) | st.binary(max_size=40) | st.text(max_size=20) | st.booleans() | st.none()
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(keys, inner, max_size=4)
        | st.builds(Tagged, st.sampled_from(sorted(TOKEN_TAGS)), inner)
    ),
    max_leaves=20,
)


def to_cbor2(value: Any) -> Any:
    if isinstance(value, Tagged):
        return cbor2.CBORTag(value.tag, to_cbor2(value.value))
    if isinstance(value, list):
        return [to_cbor2(item) for item in value]
    if isinstance(value, dict):
        return {key: to_cbor2(item) for key, item in value.items()}
    return value


@settings(max_examples=200, deadline=None)
@given(values)
def test_encoding_matches_cbor2_byte_for_byte_and_decodes_back(value: Any) -> None:
    data = encode(value)
    assert data == cbor2.dumps(to_cbor2(value))
    assert decode(data) == value


@given(st.floats(allow_nan=False) | st.floats(width=32, allow_nan=False) | st.floats(width=16, allow_nan=False))
def test_floats_written_by_cbor2_decode(value: float) -> None:
    assert decode(cbor2.dumps(value)) == value


@settings(max_examples=300)
@given(st.binary(max_size=64))
def test_arbitrary_bytes_decode_or_raise_cbor_error_only(data: bytes) -> None:
    with contextlib.suppress(CborError):
        decode(data)


@pytest.mark.parametrize(
    ("hex_input", "message"),
    [
        ("9f0102ff", "indefinite"),
        ("5f4101ff", "indefinite"),
        ("a201010102", "duplicate map key 1"),
        ("d9010382a0a0", "tag 259"),
        ("c11a5bd5cc00", "tag 1"),
        ("f7", "simple value 23"),
        ("f0", "simple value 16"),
        ("0101", "1 trailing bytes"),
        ("5a00000010", "input ends"),
        ("9b00000000ffffffff", "container longer"),
        ("a14101f6", "neither an integer nor a text string"),
        ("a1f5f6", "neither an integer nor a text string"),
        ("62c328", "not UTF-8"),
        ("1c", "reserved"),
        ("81" * 20 + "00", "nesting deeper"),
    ],
)
def test_refuses_what_a_strict_decoder_must(hex_input: str, message: str) -> None:
    with pytest.raises(CborError, match=message):
        decode(bytes.fromhex(hex_input))


def test_allowed_tags_are_per_call_and_non_shortest_heads_are_read() -> None:
    with pytest.raises(CborError, match="tag 61"):
        decode(bytes.fromhex("d83d00"), allowed_tags=frozenset({52}))
    assert decode(bytes.fromhex("1800")) == 0  # a legal, if wasteful, head: MACs cover the bytes as sent
    with pytest.raises(CborError, match="cannot encode float"):
        encode(1.5)
