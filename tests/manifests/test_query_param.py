"""The standards' declarations for queryparam delivery, spliced into the origin's bytes (nothing else moves)."""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree

import pytest

from gateway.manifests.errors import ManifestError
from gateway.manifests.hls import prepare_playlist
from gateway.manifests.query_param import declare_hls_query_param, declare_mpd_query_param

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
DEFINE = '#EXT-X-DEFINE:QUERYPARAM="token"'


@pytest.mark.parametrize(
    ("playlist", "expected"),
    [
        # a version line right after the header stays there (raised to 11), the DEFINE follows it
        (b"#EXTM3U\n#EXT-X-VERSION:3\n#EXTINF:4,\na.ts\n", f"#EXTM3U\n#EXT-X-VERSION:11\n{DEFINE}\n#EXTINF:4,\na.ts\n"),
        # a version elsewhere is raised where it is; the DEFINE goes right after #EXTM3U; CRLF and BOM kept
        (
            b"\xef\xbb\xbf#EXTM3U\r\n#EXT-X-TARGETDURATION:4\r\n#EXT-X-VERSION:7\r\na.ts",
            f"\ufeff#EXTM3U\r\n{DEFINE}\r\n#EXT-X-TARGETDURATION:4\r\n#EXT-X-VERSION:11\r\na.ts",
        ),
        # no version: one is added (rfc8216bis §8: QUERYPARAM needs 11 or higher); a higher one is kept
        (b"#EXTM3U\na.ts\n", f"#EXTM3U\n#EXT-X-VERSION:11\n{DEFINE}\na.ts\n"),
        (b"#EXTM3U\n#EXT-X-VERSION:12", f"#EXTM3U\n#EXT-X-VERSION:12\n{DEFINE}\n"),
        # already declared: unchanged (a gateway in front of a gateway adds nothing twice)
        (f"#EXTM3U\n#EXT-X-VERSION:11\n{DEFINE}\na.ts\n".encode(), f"#EXTM3U\n#EXT-X-VERSION:11\n{DEFINE}\na.ts\n"),
    ],
)
def test_hls_declaration(playlist: bytes, expected: str) -> None:
    assert declare_hls_query_param(playlist, "token").decode() == expected


def test_hls_declaration_keeps_every_other_line() -> None:
    original = (FIXTURES / "hls" / "master.m3u8").read_bytes()
    declared = declare_hls_query_param(original, "token")
    removed = [line for line in original.decode().splitlines() if line not in declared.decode().splitlines()]
    assert removed == ["#EXT-X-VERSION:7"]
    assert declared.decode().splitlines()[:2] == ["#EXTM3U", DEFINE]


def test_a_conflicting_variable_is_refused_by_the_rewriter() -> None:
    declared = declare_hls_query_param(b'#EXTM3U\n#EXT-X-DEFINE:NAME="token",VALUE="x"\na.ts\n', "token")
    with pytest.raises(ManifestError, match="defined twice"):
        prepare_playlist(declared, lambda uri, place: None, max_bytes=1 << 20)


def test_hls_refuses_a_name_players_cannot_substitute_and_a_non_playlist() -> None:
    with pytest.raises(ValueError, match="HLS variable name"):
        declare_hls_query_param(b"#EXTM3U\n", "to.ken")
    with pytest.raises(ManifestError):
        declare_hls_query_param(b"<MPD/>", "token")


MPD_NS = "{urn:mpeg:dash:schema:mpd:2011}"


@pytest.mark.parametrize("name", ["multi_level_baseurl.mpd", "dynamic_live.mpd", "segment_list.mpd"])
def test_mpd_descriptors_are_added_and_nothing_else_changes(name: str) -> None:
    original = (FIXTURES / "dash" / name).read_bytes()
    declared = declare_mpd_query_param(original, request_param=True)
    lines = original.decode().splitlines(keepends=True)
    added = [line for line in declared.decode().splitlines(keepends=True) if line not in lines]
    assert len(added) == 3 and declared.replace("".join(added).encode(), b"") == original  # CRLF kept too
    root = ElementTree.fromstring(declared)  # noqa: S314 (our fixture)
    children = [child.tag.removeprefix(MPD_NS) for child in root]
    at = children.index("SupplementalProperty")
    assert children[at : at + 3] == ["SupplementalProperty", "SupplementalProperty", "RequestParam"]
    # where the schema puts SupplementalProperty: before UTCTiming, else last
    assert children[at + 3 :][:1] in (["UTCTiming"], []) and "UTCTiming" not in children[:at]
    param = root.find(f"{MPD_NS}RequestParam")
    assert param is not None and param.attrib == {
        "queryTemplate": "$querypart$",
        "useMPDUrlQuery": "true",
        "includeInRequests": "segment xlink mpd mpdpatch",
    }


def test_mpd_with_a_prefixed_namespace_and_a_fragment() -> None:
    prefixed = b'<m:MPD xmlns:m="urn:mpeg:dash:schema:mpd:2011"><m:Period/></m:MPD>'
    declared = declare_mpd_query_param(prefixed)
    assert b'<m:SupplementalProperty schemeIdUri="urn:mpeg:dash:urlparam:2016"' in declared
    root = ElementTree.fromstring(declared)  # noqa: S314 (our fixture)
    assert [child.tag for child in root].count(f"{MPD_NS}SupplementalProperty") == 2
    fragment = b'<Period xmlns="urn:mpeg:dash:schema:mpd:2011" id="p1"/>'
    assert declare_mpd_query_param(fragment) == fragment  # an xlinked Period: its MPD says it all


def test_mpd_refuses_a_doctype_and_malformed_xml() -> None:
    with pytest.raises(ManifestError, match="DOCTYPE"):
        declare_mpd_query_param(b'<!DOCTYPE MPD [<!ENTITY x "y">]><MPD>&x;</MPD>')
    with pytest.raises(ManifestError, match="well-formed"):
        declare_mpd_query_param(b"<MPD><Period></MPD>")
