"""The DASH rewriter as the gateway runs it (query writer's callback, effective bases, patch operations) on
arbitrary bytes and on mutated real MPDs, patches and remote elements (issue 12.7).

Promised for every input: ManifestError or a rewrite (never another exception); every byte outside the
located URI values is the origin's; a rewritten document rewritten again gains no second token; the output
is bounded by the input plus one token per slot.
"""

from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.config import Route
from gateway.http.links import make_uri_rewriter
from gateway.http.writers.base import prepare_manifest
from gateway.manifests.dash import located_places, prepare_mpd
from gateway.manifests.dash_lexical import Found
from gateway.manifests.errors import ManifestError
from gateway.manifests.template import Slot
from tests.fuzz import FUZZ
from tests.fuzz.mutations import mutated

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
REAL = sorted(
    p
    for pattern in ("dash/*.mpd", "dash/places/*", "dash/walk/*", "dash/origin/**/*.mpd", "media/vod/*/*.mpd")
    for p in FIXTURES.glob(pattern)
    if ".expected" not in p.name and p.suffix in (".mpd", ".mpp", ".xml")
)
CORPUS = [p.read_bytes() for p in REAL]
ROUTE = Route(mount="/vod/", origin="https://origin.example/vod/")
URL = "https://origin.example/vod/title/manifest.mpd"
TOKEN = "AWwEZGV2MWsU1WgBDXZvZC9kYXNoLTkwMDAISDRJZDlQ"  # the length of a real session token
TOKENS = {Slot.PLAYLIST: TOKEN, Slot.MEDIA: TOKEN}
PER_SLOT = len(TOKEN) + len("&amp;token=")
REWRITER = make_uri_rewriter(manifest_origin_url=URL, route=ROUTE, token_param="token")


def rewrite(data: bytes) -> tuple[bytes, int]:
    prepared = prepare_manifest(URL, data, REWRITER, max_bytes=1 << 20, route=ROUTE)
    return prepared.render(TOKENS), len(prepared.slots)


def check_promises(data: bytes) -> None:
    try:
        once, slots = rewrite(data)
    except ManifestError:
        return  # the typed refusal; anything else fails the test
    assert prepare_mpd(data, lambda uri, place: None, document_url=URL, is_ours=lambda url: True).render({}) == data
    # Lossless: the output has the same located values, and every byte between them is the input's.
    before, after = located_places(data), located_places(once)
    assert [f.element for f in before] == [f.element for f in after]
    assert _between(data, before) == _between(once, after)
    assert rewrite(once)[0] == once  # idempotent: no second token
    assert len(once) <= 2 * len(data) + PER_SLOT * slots + 64  # bounded


def _between(data: bytes, located: list[Found]) -> list[bytes]:
    """The bytes outside the located values: before the first, between each two, after the last."""
    edges = [0, *(edge for found in located for edge in (found.start, found.end)), len(data)]
    return [data[start:end] for start, end in zip(edges[0::2], edges[1::2], strict=True)]


def test_the_corpus_has_mpds_patches_and_remote_elements() -> None:
    assert {p.suffix for p in REAL} == {".mpd", ".mpp", ".xml"} and len(REAL) >= 12


@pytest.mark.parametrize("path", REAL, ids=[p.name for p in REAL])
def test_every_real_document_keeps_the_promises(path: Path) -> None:
    data = path.read_bytes()
    assert rewrite(data)[1] > 0
    check_promises(data)


@FUZZ
@given(mutated(CORPUS))
def test_mutated_real_documents(data: bytes) -> None:
    check_promises(data)


@FUZZ
@given(st.binary(max_size=2048))
def test_arbitrary_bytes(data: bytes) -> None:
    check_promises(data)


VALUES = st.lists(
    st.sampled_from(
        [
            "https://origin.example/vod/", "https://cdn.other.example/", "//evil.example/", "\\\\evil.example/",
            "a/", "../", "/vod/t/", "seg-", "$Number%05d$", "$RepresentationID$", "$$", "$", "?x=1", "&", "#f",
            "token=old", " ", "\t", "data:,x", "urn:x", "<", '"', "'", "é",
        ]
    ),
    max_size=6,
).map("".join)  # fmt: skip
TEXT_ELEMENTS = ["BaseURL", "Location", "PatchLocation", "dashif:Laurl"]
ATTRIBUTES = [
    ("SegmentTemplate", "media"),
    ("SegmentTemplate", "initialization"),
    ("SegmentURL", "media"),
    ("sea:CryptoPeriod", "keyUriTemplate"),
    ("Period", "xlink:href"),
    ("Initialization", "sourceURL"),
]
CONTAINERS = ["Period", "AdaptationSet", "Representation", "SegmentList", "ContentProtection", "add", "Other"]
OPERATIONS = ["replace sel='/MPD/BaseURL[1]/text()'", "add sel='/MPD/Period/SegmentTemplate' type='@media'",
              "replace sel=\"/MPD/Period[@id='a/b']/SegmentTemplate/@initialization\""]  # fmt: skip
NAMESPACES = (
    ' xmlns:xlink="http://www.w3.org/1999/xlink" xmlns:dashif="https://dashif.org/CPS"'
    ' xmlns:sea="urn:mpeg:dash:schema:sea:2012"'
)


def _leaf(draw: st.DrawFn) -> str:
    value = escape(draw(VALUES), {'"': "&quot;"})
    kind = draw(st.integers(0, 2))
    if kind == 0:
        name = draw(st.sampled_from(TEXT_ELEMENTS))
        return f"<{name}>{value}</{name}>"
    if kind == 1:
        element, attribute = draw(st.sampled_from(ATTRIBUTES))
        return f'<{element} {attribute}="{value}"/>'
    operation = draw(st.sampled_from(OPERATIONS))
    return f"<{operation}>{value}</{operation.split()[0]}>"


@st.composite
def documents(draw: st.DrawFn, depth: int = 0) -> str:
    """A well-formed MPD or patch with places nested at random (the effective-base and patch paths)."""
    children = [
        draw(documents(depth + 1)) if depth < 3 and draw(st.booleans()) else _leaf(draw)
        for _ in range(draw(st.integers(0, 4)))
    ]
    if depth == 0:
        root = draw(st.sampled_from(["MPD", "Patch"]))
        namespace = "urn:mpeg:dash:schema:mpd:2011" if root == "MPD" else "urn:mpeg:dash:schema:mpd-patch:2020"
        return f'<{root} xmlns="{namespace}"{NAMESPACES}>{"".join(children)}</{root}>'
    name = draw(st.sampled_from(CONTAINERS))
    return f"<{name}>{''.join(children)}</{name}>"


@FUZZ
@given(documents())
def test_generated_documents(text: str) -> None:
    data = text.encode()
    rewrite(data)  # well-formed by construction: never refused
    check_promises(data)
