"""`with_query_slot` and `is_rewritable_reference`: where a token goes, and which URIs may carry one."""

from __future__ import annotations

import pytest

from gateway.manifests.template import Rewrite, Slot
from gateway.manifests.uris import is_rewritable_reference, with_query_slot


@pytest.mark.parametrize(
    ("uri", "head", "tail"),
    [
        ("seg.ts", "seg.ts?token=", ""),
        ("seg.ts?", "seg.ts?token=", ""),
        ("seg.ts?a=1", "seg.ts?a=1&token=", ""),
        ("seg.ts?a=1&", "seg.ts?a=1&token=", ""),
        ("seg.ts?a=1&&", "seg.ts?a=1&token=", ""),
        ("seg.ts?token=old", "seg.ts?token=", ""),
        ("seg.ts?token", "seg.ts?token=", ""),
        ("seg.ts?token=1&a=2&token=3", "seg.ts?a=2&token=", ""),
        ("seg.ts?a=1&token=old&b=2", "seg.ts?a=1&b=2&token=", ""),
        ("seg.ts?tokenize=1&xtoken=2&token2=3", "seg.ts?tokenize=1&xtoken=2&token2=3&token=", ""),
        (
            "seg.ts?hdntl=exp=1748185200~acl=/*~hmac=0a1b&",
            "seg.ts?hdntl=exp=1748185200~acl=/*~hmac=0a1b&token=",
            "",
        ),
        ("p.m3u8?_HLS_msn=5&_HLS_part=1&_HLS_skip=YES", "p.m3u8?_HLS_msn=5&_HLS_part=1&_HLS_skip=YES&token=", ""),
        ("seg.ts#t=10", "seg.ts?token=", "#t=10"),
        ("seg.ts?a=1#cell=core?x&y", "seg.ts?a=1&token=", "#cell=core?x&y"),
        ("seg.ts?token=1#frag", "seg.ts?token=", "#frag"),
        ("seg.ts?a=%20b&c=%3D", "seg.ts?a=%20b&c=%3D&token=", ""),
        ("https://cdn.example/a/b.ts?x=1", "https://cdn.example/a/b.ts?x=1&token=", ""),
        ("", "?token=", ""),
    ],
)
def test_with_query_slot_places_one_token_before_the_fragment(uri: str, head: str, tail: str) -> None:
    assert with_query_slot(uri, "token", Slot.MEDIA) == Rewrite(head=head, slot=Slot.MEDIA, tail=tail)


def test_with_query_slot_keeps_the_slot_kind() -> None:
    assert with_query_slot("v.m3u8", "t", Slot.PLAYLIST).slot is Slot.PLAYLIST


def test_with_query_slot_only_removes_the_named_parameter_case_sensitively() -> None:
    assert with_query_slot("s.ts?Token=1&TOKEN=2", "token", Slot.MEDIA).head == "s.ts?Token=1&TOKEN=2&token="


def test_with_query_slot_output_renders_to_a_single_token() -> None:
    rewrite = with_query_slot("s.ts?token=a&b=1&token=c#f", "token", Slot.MEDIA)
    assert f"{rewrite.head}NEW{rewrite.tail}" == "s.ts?b=1&token=NEW#f"


@pytest.mark.parametrize("param", ["", "a=b", "a&b", "a?b", "a#b", "a b", 'a"b', "a\nb"])
def test_with_query_slot_rejects_parameter_names_that_would_break_the_query(param: str) -> None:
    with pytest.raises(ValueError, match="query parameter name"):
        with_query_slot("s.ts", param, Slot.MEDIA)


@pytest.mark.parametrize(
    "uri",
    [
        "seg.ts",
        "../1M/index.m3u8",
        "/vod/t/seg.ts",
        "//cdn.example/seg.ts",
        "http://cdn.example/seg.ts",
        "https://cdn.example/seg.ts",
        "HTTPS://CDN.EXAMPLE/seg.ts",
        "a/b:c.ts",
        "seg.ts?t=1:2",
        "?part=2",
        "{$base}/seg.ts",
        "  seg.ts",
        "ch001-audio_312640_eng=312000.m3u8",
    ],
)
def test_relative_and_http_references_are_rewritable(uri: str) -> None:
    assert is_rewritable_reference(uri)


@pytest.mark.parametrize(
    "uri",
    [
        "",
        "   ",
        "#fragment-only",
        "skd://key-server.example/keys?KeyId=1",
        "data:text/plain;base64,AAAA",
        "urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed",
        "ftp://files.example/seg.ts",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "C:\\HLS Video\\test1.ts",
        "c:/HLS/seg.ts",
        "seg:1.ts",
        " data:,x",
    ],
)
def test_other_schemes_and_windows_paths_are_not_rewritable(uri: str) -> None:
    assert not is_rewritable_reference(uri)
