"""The DASH rewriter against golden files, the mpegdash parser (reading only), properties, and bad input.

Golden cases live in fixtures/dash/ (see its README): `<case>.mpd` rewritten by `golden_rewrite` and
rendered with `TOKENS` must equal `<case>.expected.mpd` byte for byte.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mpegdash.parser import MPEGDASHParser

from gateway.manifests.dash import URI_PLACES, RewriteUri, UriPlace, prepare_mpd
from gateway.manifests.errors import ManifestError
from gateway.manifests.template import Rewrite, Slot
from gateway.manifests.uris import is_rewritable_reference, with_query_slot

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "dash"
CASES = sorted(p.name.removesuffix(".mpd") for p in FIXTURES.glob("*.mpd") if ".expected" not in p.name)
TOKENS = {Slot.PLAYLIST: "PLAYLIST-TOKEN", Slot.MEDIA: "MEDIA-TOKEN"}
LICENSE_TAGS = frozenset({"Laurl", "Certurl", "Authzurl"})


def golden_rewrite(uri: str, place: UriPlace) -> Rewrite | None:
    """The documented golden callback: relative and http(s) values get `token=`; absolute license URLs don't."""
    if not is_rewritable_reference(uri):
        return None
    if place.tag in LICENSE_TAGS and ("://" in uri or uri.startswith("//")):
        return None
    return with_query_slot(uri, "token", place.slot)


def render_case(case: str) -> bytes:
    return prepare_mpd((FIXTURES / f"{case}.mpd").read_bytes(), golden_rewrite).render(TOKENS)


def test_there_are_golden_cases() -> None:
    assert len(CASES) >= 4


@pytest.mark.parametrize("case", CASES)
def test_golden_output(case: str) -> None:
    assert render_case(case) == (FIXTURES / f"{case}.expected.mpd").read_bytes()


def _identity(uri: str, place: UriPlace) -> Rewrite:
    return Rewrite(uri, None)


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.mpd")))
@pytest.mark.parametrize("callback", [_identity, lambda uri, place: None], ids=["same-text", "none"])
def test_identity_callbacks_keep_every_byte(name: str, callback: RewriteUri) -> None:
    data = (FIXTURES / name).read_bytes()
    prepared = prepare_mpd(data, callback)
    assert prepared.slots == ()
    assert prepared.render({}) == data


def test_golden_cases_reach_every_place_but_a_few_documented_ones() -> None:
    seen: set[UriPlace] = set()

    def record(uri: str, place: UriPlace) -> None:
        seen.add(place)

    for case in CASES:
        prepare_mpd((FIXTURES / f"{case}.mpd").read_bytes(), record)
    assert seen <= URI_PLACES
    unreached = {(place.tag, place.attribute) for place in URI_PLACES - seen}
    # Covered by unit tests below, or rare enough not to need a golden file.
    assert unreached == {
        ("Certurl", None),
        ("Authzurl", None),
        ("Period", "xlink:href"),
        ("EventStream", "xlink:href"),
        ("InitializationSet", "xlink:href"),
        ("CryptoPeriod", "keyUriTemplate"),  # fixtures/dash/places (tests/http/test_dash_places.py)
    }


# --- the mpegdash package (reading only: it fetches URLs and opens files named by its argument) -------


def _mpegdash_values(text: str) -> list[tuple[str, Slot]]:
    """Every URI mpegdash reports, with the slot the golden callback gives it."""
    assert text.lstrip("\ufeff").startswith("<") and "<MPD" in text  # never let it treat text as a URL/path
    mpd: Any = MPEGDASHParser.parse(text)
    found: list[tuple[str | None, Slot]] = [(loc.text, Slot.PLAYLIST) for loc in mpd.locations or ()]
    levels: list[Any] = [mpd]
    for period in mpd.periods or ():
        levels.append(period)
        for adaptation_set in period.adaptation_sets or ():
            levels += [adaptation_set, *(adaptation_set.representations or ())]
    for level in levels:
        found += [(base.base_url_value, Slot.MEDIA) for base in level.base_urls or ()]
        for template in getattr(level, "segment_templates", None) or ():
            names = ("media", "initialization", "index", "bitstream_switching")
            found += [(getattr(template, name), Slot.MEDIA) for name in names]
        for segment_list in getattr(level, "segment_lists", None) or ():
            for url in segment_list.segment_urls or ():
                found += [(url.media, Slot.MEDIA), (url.index, Slot.MEDIA)]
            found += [(url.source_url, Slot.MEDIA) for url in segment_list.bitstream_switchings or ()]
        for base in [*(getattr(level, "segment_lists", None) or ()), *(getattr(level, "segment_bases", None) or ())]:
            urls = [*(base.initializations or ()), *(base.representation_indexes or ())]
            found += [(url.source_url, Slot.MEDIA) for url in urls]
    return [(value.strip(), slot) for value, slot in found if value]


@pytest.mark.parametrize("case", CASES)
def test_mpegdash_reads_every_output_and_sees_a_token_on_every_uri(case: str) -> None:
    before = _mpegdash_values((FIXTURES / f"{case}.mpd").read_text(encoding="utf-8"))
    after = _mpegdash_values(render_case(case).decode())
    assert len(after) == len(before) > 0
    for (old, slot), (new, _) in zip(before, after, strict=True):
        if is_rewritable_reference(old):
            assert f"token={TOKENS[slot]}" in new, new
            assert new.count("token=") == 1, new
        else:
            assert new == old


# --- behaviour ------------------------------------------------------------------------------------

MPD_OPEN = '<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" xmlns:xlink="http://www.w3.org/1999/xlink">'


def _prepare(body: str, callback: RewriteUri | None = None) -> str:
    """`body` inside an MPD element, rewritten with a `t=` token (P for playlist slots, M for media)."""

    def append(uri: str, place: UriPlace) -> Rewrite:
        return with_query_slot(uri, "t", place.slot)

    data = f"{MPD_OPEN}{body}</MPD>".encode()
    out = prepare_mpd(data, callback or append).render({Slot.PLAYLIST: "P", Slot.MEDIA: "M"}).decode()
    return out.removeprefix(MPD_OPEN).removesuffix("</MPD>")


def test_the_callback_gets_decoded_trimmed_values_and_places() -> None:
    calls: list[tuple[str, UriPlace]] = []

    def record(uri: str, place: UriPlace) -> None:
        calls.append((uri, place))

    body = (
        '<Period bitstreamSwitching="true" xlink:href=" p.xml "><AdaptationSet bitstreamSwitching="false">'
        "<SegmentTemplate media='a&amp;b&#36;$$.m4s' bitstreamSwitching='bs.mp4'/>"
        "<BaseURL>\n  x/?a=1&amp;b=2 \n</BaseURL><BaseURL/><BaseURL>  </BaseURL>"
        '</AdaptationSet></Period><foo:BaseURL xmlns:foo="urn:other">no</foo:BaseURL><PatchLocation>p</PatchLocation>'
    )
    prepare_mpd(f"{MPD_OPEN}{body}</MPD>".encode(), record)
    assert calls == [
        ("p.xml", UriPlace("Period", "xlink:href", Slot.PLAYLIST)),
        ("a&b$$$.m4s", UriPlace("SegmentTemplate", "media", Slot.MEDIA)),
        ("bs.mp4", UriPlace("SegmentTemplate", "bitstreamSwitching", Slot.MEDIA)),
        ("x/?a=1&b=2", UriPlace("BaseURL", None, Slot.MEDIA)),
        ("p", UriPlace("PatchLocation", None, Slot.PLAYLIST)),
    ]


def test_values_are_escaped_for_their_quote_and_dollars_for_templates() -> None:
    def hostile(uri: str, place: UriPlace) -> Rewrite:
        return Rewrite(f"/$x/{uri}?a=\"'<&$\t", Slot.MEDIA, "#$&")

    out = _prepare(
        "<SegmentTemplate media='s-$Number%05d$-$$.m4s' index=\"i-$RepresentationID$\"/>"
        "<SegmentURL media='u$.m4s'/><BaseURL>b</BaseURL>",
        hostile,
    )
    assert out == (
        "<SegmentTemplate media='/$$x/s-$Number%05d$-$$.m4s?a=\"&apos;&lt;&amp;$$%09M#$$&amp;'"
        ' index="/$$x/i-$RepresentationID$?a=&quot;\'&lt;&amp;$$%09M#$$&amp;"/>'
        "<SegmentURL media='/$x/u$.m4s?a=\"&apos;&lt;&amp;$%09M#$&amp;'/>"
        "<BaseURL>/$x/b?a=\"'&lt;&amp;$%09M#$&amp;</BaseURL>"
    )


def test_a_template_keeps_its_identifiers_when_the_callback_replaces_the_host() -> None:
    def strip_host(uri: str, place: UriPlace) -> Rewrite:
        return with_query_slot(uri.removeprefix("https://origin.example"), "t", place.slot)

    out = _prepare('<SegmentTemplate media="https://origin.example/v/$RepresentationID$/$Time$.m4s?p=$$"/>', strip_host)
    assert out == '<SegmentTemplate media="/v/$RepresentationID$/$Time$.m4s?p=$$&amp;t=M"/>'


def test_a_rewrite_without_slot_is_written_escaped() -> None:
    out = _prepare("<BaseURL>b/</BaseURL>", lambda uri, place: Rewrite("https://gw.example/?a=1&b=" + uri, None))
    assert out == "<BaseURL>https://gw.example/?a=1&amp;b=b/</BaseURL>"


def test_resolve_to_zero_booleans_and_other_namespaces_are_not_places() -> None:
    body = (
        '<Period xlink:href="urn:mpeg:dash:resolve-to-zero:2013" bitstreamSwitching="true"/>'
        '<Period><AdaptationSet bitstreamSwitching="true" xlink:href="as.xml"/></Period>'
        '<x:SegmentURL xmlns:x="urn:other" media="m"/><UTCTiming schemeIdUri="urn:x" value="https://t.example/"/>'
    )
    assert _prepare(body) == body.replace('"as.xml"', '"as.xml?t=P"')


def test_an_mpd_without_namespace_and_the_early_upper_case_namespace_are_rewritten() -> None:
    for opening in ("<MPD>", '<MPD xmlns="urn:mpeg:DASH:schema:MPD:2011">'):
        data = f"{opening}<BaseURL>a/</BaseURL></MPD>".encode()
        out = prepare_mpd(data, lambda uri, place: with_query_slot(uri, "t", place.slot)).render({Slot.MEDIA: "M"})
        assert out == f"{opening}<BaseURL>a/?t=M</BaseURL></MPD>".encode()


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('<MPD xmlns:xl="http://www.w3.org/1999/xlink"><Period xl:href="a" d=">"/></MPD>', 'xl:href="a?t=P" d=">"'),
        ('<MPD><SegmentURL d="media=&quot;x&quot;" media="a&#10;b"/></MPD>', 'media="a%0Ab?t=M"'),
        ('<m:MPD xmlns:m="urn:mpeg:dash:schema:mpd:2011"><m:BaseURL>x</m:BaseURL></m:MPD>', ">x?t=M<"),
    ],
    ids=["other-xlink-prefix", "references-in-values", "prefixed-mpd-namespace"],
)
def test_prefixes_and_references_are_resolved_by_namespace_and_value(source: str, expected: str) -> None:
    out = prepare_mpd(source.encode(), lambda uri, place: with_query_slot(uri, "t", place.slot))
    assert expected in out.render({Slot.PLAYLIST: "P", Slot.MEDIA: "M"}).decode()


def test_a_bom_and_non_ascii_text_are_kept() -> None:
    data = '\ufeff<?xml version="1.0"?>\r\n<MPD><!-- ü --><BaseURL>vidéo/</BaseURL></MPD>'.encode()
    out = prepare_mpd(data, lambda uri, place: with_query_slot(uri, "t", place.slot)).render({Slot.MEDIA: "M"})
    assert out == data.replace("vidéo/".encode(), "vidéo/?t=M".encode())


# --- refused input ----------------------------------------------------------------------------------

BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE MPD [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
    b"<MPD><BaseURL>&b;</BaseURL></MPD>"
)
XXE = b'<?xml version="1.0"?><!DOCTYPE MPD [<!ENTITY x SYSTEM "file:///etc/passwd">]><MPD><BaseURL>&x;</BaseURL></MPD>'


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (BILLION_LAUGHS, "DOCTYPE"),
        (XXE, "DOCTYPE"),
        (b'<!DOCTYPE MPD SYSTEM "http://dtd.example/mpd.dtd"><MPD/>', "DOCTYPE"),
        (b"<MPD><BaseURL>&x;</BaseURL></MPD>", "undefined entity"),
        (b"<MPD>\n  <BaseURL>a</Base>\n</MPD>", "line 2: not well-formed XML: mismatched tag (column 15)"),
        (b"<MPD><foo:bar/></MPD>", "unbound prefix"),
        (b"", "no element found"),
        (b"\r", "line 2: not well-formed XML: no element found"),  # expat counts a lone CR as a line end
        (b"<MPD>\r\r<a></MPD>", "line 3: not well-formed XML: mismatched tag"),
        (b"<MPD><BaseURL>caf\xe9/</BaseURL></MPD>", "not UTF-8"),
        (b"\xff\xfe<\x00M\x00P\x00D\x00/\x00>\x00", "not UTF-8"),
        (b"<MPD><BaseURL>a/<!-- b --></BaseURL></MPD>", "markup inside a URI element"),
        (b"<MPD><Location><![CDATA[a]]></Location></MPD>", "markup inside a URI element"),
    ],
)
def test_unsafe_or_malformed_input_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(ManifestError, match=re.escape(message)):
        prepare_mpd(data, golden_rewrite)


def test_input_over_max_bytes_is_refused_before_parsing() -> None:
    data = (FIXTURES / "segment_list.mpd").read_bytes()
    assert prepare_mpd(data, golden_rewrite, max_bytes=len(data)).slots
    with pytest.raises(ManifestError, match="exceeds the limit"):
        prepare_mpd(data, golden_rewrite, max_bytes=len(data) - 1)


# --- properties: random layout around a template MPD round-trips, and only URI values change -------

Piece = tuple[str, str]  # (input, expected when every place gets `t=T`)
spaces = st.sampled_from(["", " ", "\n", "\r\n\t", "  "])
comments = st.sampled_from(["", "<!-- https://c.example/?a=1&b=2 -->", "<!--<BaseURL>x</BaseURL>-->", "<?pi x?>"])


@st.composite
def attributes(draw: st.DrawFn, element: str, pairs: list[tuple[str, str, str]]) -> Piece:
    """A start tag's attributes in random order, quoting and spacing; pairs are (name, raw, raw expected)."""
    out_in, out_expected = [], []
    for name, raw, expected in draw(st.permutations(pairs)):
        quote = draw(st.sampled_from(['"', "'"]))
        around = draw(spaces), draw(spaces)
        lead = draw(st.sampled_from([" ", "\n    ", "\t"]))
        out_in.append(f"{lead}{name}{around[0]}={around[1]}{quote}{raw}{quote}")
        out_expected.append(f"{lead}{name}{around[0]}={around[1]}{quote}{expected}{quote}")
    tail = draw(spaces)
    return f"<{element}{''.join(out_in)}{tail}", f"<{element}{''.join(out_expected)}{tail}"


@st.composite
def template_mpds(draw: st.DrawFn) -> Piece:
    template_attributes = [
        ("timescale", "90000", "90000"),
        ("media", "seg-$Number%05d$.m4s?x=1&amp;y=$$", "seg-$Number%05d$.m4s?x=1&amp;y=$$&amp;t=T"),
        ("initialization", "init-$RepresentationID$.mp4", "init-$RepresentationID$.mp4?t=T"),
        ("startNumber", "1", "1"),
        ("data-x", "media.m4s", "media.m4s"),
        ("bitstreamSwitching", "bs.mp4", "bs.mp4?t=T"),
    ]
    set_attributes = [("id", "1", "1"), ("bitstreamSwitching", "true", "true"), ("mimeType", "video/mp4", "video/mp4")]
    template_open, template_expected = draw(attributes("SegmentTemplate", template_attributes))
    set_open, set_expected = draw(attributes("AdaptationSet", set_attributes))
    base_ws = draw(spaces), draw(spaces)
    parts: list[Piece] = [
        ('<?xml version="1.0" encoding="UTF-8"?>', '<?xml version="1.0" encoding="UTF-8"?>'),
        (draw(comments), ""),
        ('<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static">', ""),
        (f"<BaseURL>{base_ws[0]}v/{base_ws[1]}</BaseURL>", f"<BaseURL>{base_ws[0]}v/?t=T{base_ws[1]}</BaseURL>"),
        (draw(spaces), ""),
        ("<Period>", ""),
        (draw(comments), ""),
        (set_open + ">", set_expected + ">"),
        (draw(spaces), ""),
        (template_open + ">", template_expected + ">"),
        ('<SegmentTimeline><S t="0" d="180000" r="9"/></SegmentTimeline>', ""),
        ("</SegmentTemplate>", ""),
        (draw(comments), ""),
        ('<Representation id="r1" bandwidth="1"/>', ""),
        (draw(spaces), ""),
        ("</AdaptationSet></Period></MPD>", ""),
        (draw(spaces), ""),
    ]
    # An empty expected string means "the same as the input".
    return "".join(i for i, _ in parts), "".join(e or i for i, e in parts)


@given(template_mpds())
@settings(max_examples=150, deadline=None)
def test_random_layouts_round_trip_and_only_uri_values_change(case: Piece) -> None:
    source, expected = case
    data = source.encode()
    assert prepare_mpd(data, _identity).render({}) == data
    tokenized = prepare_mpd(data, lambda uri, place: with_query_slot(uri, "t", place.slot))
    assert tokenized.render({Slot.MEDIA: "T"}).decode() == expected


# --- size -------------------------------------------------------------------------------------------


def big_segment_list_mpd(representations: int, segments: int) -> bytes:
    """A SegmentList MPD: `representations` Representations × (1 init + `segments` SegmentURLs)."""
    rows = ['<?xml version="1.0"?>\n<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static">\n<Period>\n']
    rows.append('<AdaptationSet mimeType="video/mp4">\n')
    for r in range(representations):
        rows.append(f'<Representation id="r{r}" bandwidth="{1000 + r}"><SegmentList duration="2">\n')
        rows.append(f'  <Initialization sourceURL="r{r}/init.mp4" range="0-800"/>\n')
        rows += [f'  <SegmentURL media="r{r}/seg-{s}.m4s?v=1" mediaRange="0-99"/>\n' for s in range(segments)]
        rows.append("</SegmentList></Representation>\n")
    rows.append("</AdaptationSet>\n</Period>\n</MPD>\n")
    return "".join(rows).encode()


def test_a_large_segment_list_is_prepared_quickly() -> None:
    data = big_segment_list_mpd(2000, 5)
    started = time.perf_counter()
    prepared = prepare_mpd(data, golden_rewrite)
    elapsed = time.perf_counter() - started
    assert len(prepared.slots) == 2000 * 6
    assert elapsed < 2.0  # ~0.1 s measured; generous for a loaded CI machine


# --- what the player will reload (the media-token lifetime follows it, see gateway/tokens/scoped.py) -----


@pytest.mark.parametrize(
    ("root", "reloaded"),
    [
        ('<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="dynamic" minimumUpdatePeriod="PT2S">', True),
        ("<MPD type='dynamic'>", True),
        ('<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static">', False),
        ('<MPD xmlns="urn:mpeg:dash:schema:mpd:2011">', False),  # @type defaults to static
        ('<MPD xmlns="urn:other" type="dynamic">', False),  # not an MPD
    ],
)
def test_dynamic_mpds_are_reloaded_and_static_ones_loaded_once(root: str, reloaded: bool) -> None:
    data = f"{root}<Period><BaseURL>a/</BaseURL></Period></MPD>".encode()
    assert prepare_mpd(data, lambda uri, place: None).reloaded is reloaded


def test_a_patch_document_is_reloaded_like_the_dynamic_mpd_it_patches() -> None:
    # Its media tokens must roll like the MPD's: a player applies patches for as long as the live MPD runs.
    patch = (
        b'<Patch xmlns="urn:mpeg:dash:schema:mpd-patch:2020" mpdId="live" originalPublishTime="2026-01-01T00:00:00Z"'
        b' publishTime="2026-01-01T00:00:02Z"><replace sel="/MPD/@publishTime">2026-01-01T00:00:02Z</replace>'
        b'<replace sel="/MPD/PatchLocation[1]"><PatchLocation>next.mpp</PatchLocation></replace>'
        b"</Patch>"
    )
    prepared = prepare_mpd(patch, lambda uri, place: None)
    assert prepared.reloaded and prepared.renews_its_uris  # what it restates replaces the player's copy
    assert not prepare_mpd(b'<Patch xmlns="urn:other" mpdId="x"/>', lambda uri, place: None).reloaded


@pytest.mark.parametrize(("patch_location", "renews"), [("", True), ("<PatchLocation>p.mpp</PatchLocation>", False)])
def test_a_dynamic_mpd_with_patches_keeps_its_uris_for_the_session(patch_location: str, renews: bool) -> None:
    # shaka applies patches and re-fetches an init section with the URI (and token) of the MPD it first
    # loaded: tokens written into a patched MPD cannot roll, a full reload (no PatchLocation) replaces them.
    data = (
        '<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="dynamic" minimumUpdatePeriod="PT2S">'
        f"{patch_location}<Period><BaseURL>a/</BaseURL></Period></MPD>"
    ).encode()
    prepared = prepare_mpd(data, lambda uri, place: None)
    assert prepared.reloaded and prepared.renews_its_uris is renews


def test_golden_static_and_dynamic_cases_say_what_they_are() -> None:
    def reloaded(case: str) -> bool:
        return prepare_mpd((FIXTURES / f"{case}.mpd").read_bytes(), lambda uri, place: None).reloaded

    assert reloaded("dynamic_live")
    assert not reloaded("ffmpeg_template_timeline")
