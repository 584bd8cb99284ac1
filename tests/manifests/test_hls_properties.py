"""Property tests: playlists generated from a small grammar of every line kind the rewriter meets.

Each generated line carries the text the rewriter must produce for it under `mark` (every URI becomes
`<uri|>` when rendered with token "|"), so one run checks both that URIs are found and that every other
line — and every byte around a URI — is left alone.
"""

from __future__ import annotations

import string
from random import Random

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config import Route
from gateway.http.links import make_uri_rewriter
from gateway.manifests.errors import ManifestError
from gateway.manifests.hls import PLAIN_RELATIVE, URI_PLACES, UriPlace, prepare_playlist
from gateway.manifests.template import PreparedManifest, Rewrite, Slot

ALL_TOKENS = {Slot.PLAYLIST: "|", Slot.MEDIA: "|"}

# Tag -> its URI attribute names. Other attributes are drawn so as never to collide with these.
URI_ATTRIBUTES = {
    "EXT-X-KEY": ("URI",),
    "EXT-X-SESSION-KEY": ("URI",),
    "EXT-X-MAP": ("URI",),
    "EXT-X-PART": ("URI",),
    "EXT-X-PRELOAD-HINT": ("URI",),
    "EXT-X-SESSION-DATA": ("URI",),
    "EXT-X-MEDIA": ("URI",),
    "EXT-X-I-FRAME-STREAM-INF": ("URI",),
    "EXT-X-IMAGE-STREAM-INF": ("URI",),
    "EXT-X-RENDITION-REPORT": ("URI",),
    "EXT-X-CONTENT-STEERING": ("SERVER-URI",),
    "EXT-X-DATERANGE": ("X-ASSET-URI", "X-ASSET-LIST"),
}
VALUE_TAGS = ("EXT-X-PREFETCH", "EXT-X-TWITCH-PREFETCH")

Line = tuple[str, str]  # (input, expected under `mark`)

uris = st.text(string.ascii_letters + string.digits + "-._~/?&=%:@!$'()*+;,[]", min_size=1, max_size=24)
spaces = st.sampled_from(["", "", " ", "\t", " \t "])
safe_text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\r\n\x00"), max_size=30)
raw_text = st.binary(max_size=30).map(
    lambda b: b.replace(b"\r", b"").replace(b"\n", b"").replace(b"\x00", b"").decode("utf-8", "surrogateescape")
)


def _same(text: str) -> Line:
    return text, text


@st.composite
def uri_lines(draw: st.DrawFn) -> Line:
    lead, uri, trail = draw(spaces), draw(uris), draw(spaces)
    return f"{lead}{uri}{trail}", f"{lead}<{uri}|>{trail}"


@st.composite
def attribute_lines(draw: st.DrawFn) -> Line:
    tag = draw(st.sampled_from(sorted(URI_ATTRIBUTES)))
    names = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-", min_size=1, max_size=10).filter(
        lambda name: name not in URI_ATTRIBUTES[tag]
    )
    values = st.one_of(
        st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.x-", max_size=12),
        st.text(st.characters(exclude_characters='"\r\n\x00', exclude_categories=["Cs"]), max_size=15).map(
            lambda text: f'"{text}"'
        ),
    )
    pairs = draw(st.dictionaries(names, values, max_size=4))
    before = [f"{name}={value}" for name, value in pairs.items()]
    after = list(before)
    for attribute in draw(st.lists(st.sampled_from(URI_ATTRIBUTES[tag]), unique=True, min_size=1)):
        lead, uri, trail = draw(spaces), draw(uris), draw(spaces)
        at = draw(st.integers(0, len(before)))
        before.insert(at, f'{attribute}="{lead}{uri}{trail}"')
        after.insert(at, f'{attribute}="{lead}<{uri}|>{trail}"')
    return f"#{tag}:{','.join(before)}", f"#{tag}:{','.join(after)}"


@st.composite
def value_lines(draw: st.DrawFn) -> Line:
    tag, lead, uri, trail = draw(st.sampled_from(VALUE_TAGS)), draw(spaces), draw(uris), draw(spaces)
    return f"#{tag}:{lead}{uri}{trail}", f"#{tag}:{lead}<{uri}|>{trail}"


other_lines = st.one_of(
    spaces.map(_same),
    raw_text.filter(lambda text: not text.startswith("EXT")).map(lambda text: _same(f"#{text}")),
    st.tuples(st.floats(0, 20, allow_nan=False), safe_text).map(lambda d: _same(f"#EXTINF:{d[0]},{d[1]}")),
    raw_text.map(lambda text: _same(f"#EXT-X-Z-UNKNOWN:{text}")),
    st.sampled_from(["#EXT-X-KEY:METHOD=NONE", "#EXT-X-TARGETDURATION:6", "#EXT-X-ENDLIST"]).map(_same),
    st.sampled_from(['#EXT-X-DATERANGE:ID="a",X-COM-URI="https://x.example/"', "#EXT-X-MAP"]).map(_same),
)


@st.composite
def playlists(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """(input, expected) bytes of a playlist with random line kinds, endings, BOM, final newline."""
    lines = [_same("\ufeff#EXTM3U" if draw(st.booleans()) else "#EXTM3U")]
    lines += draw(st.lists(st.one_of(other_lines, uri_lines(), attribute_lines(), value_lines()), max_size=25))
    endings = [draw(st.sampled_from(["\n", "\r\n"])) for _ in lines]
    if draw(st.booleans()):
        endings[-1] = ""
    source = "".join(line + end for (line, _), end in zip(lines, endings, strict=True))
    expected = "".join(line + end for (_, line), end in zip(lines, endings, strict=True))
    return source.encode("utf-8", "surrogateescape"), expected.encode("utf-8", "surrogateescape")


def identity(uri: str, place: UriPlace) -> Rewrite:
    return Rewrite(head=uri, slot=None)


def mark(uri: str, place: UriPlace) -> Rewrite:
    return Rewrite(head=f"<{uri}", slot=place.slot, tail=">")


@settings(max_examples=300)
@given(playlists())
def test_identity_rewrite_is_byte_identical(case: tuple[bytes, bytes]) -> None:
    source, _ = case
    assert prepare_playlist(source, identity).render({}) == source


@settings(max_examples=300)
@given(playlists())
def test_a_rewrite_changes_only_uris(case: tuple[bytes, bytes]) -> None:
    source, expected = case
    rendered = prepare_playlist(source, mark).render(ALL_TOKENS)
    assert rendered.split(b"\n") == expected.split(b"\n")


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_are_rewritten_losslessly_or_refused_with_manifest_error(tail: bytes) -> None:
    source = b"#EXTM3U\n" + tail
    try:
        rendered = prepare_playlist(source, identity).render({})
    except ManifestError:
        return
    assert rendered == source


@given(
    st.text(st.sampled_from("ab\x00é\udcff"), max_size=4),
    st.lists(st.tuples(st.sampled_from(Slot), st.text(st.sampled_from("ab\x00é"), max_size=4)), max_size=12),
    st.lists(st.text("xyz", max_size=3), min_size=len(Slot), max_size=len(Slot)),
)
def test_render_fills_each_slot_with_its_kinds_token(
    first: str, rest: list[tuple[Slot, str]], values: list[str]
) -> None:
    prepared = PreparedManifest(chunks=(first, *(chunk for _, chunk in rest)), slots=tuple(s for s, _ in rest))
    tokens = dict(zip(Slot, values, strict=True))
    naive = first + "".join(tokens[slot] + chunk for slot, chunk in rest)
    assert prepared.render(tokens) == naive.encode("utf-8", "surrogateescape")


class DeclaredSuffix:
    """A callback that declares what it does to a plain relative URI, so the rewriter skips calling it."""

    plain_relative_suffix = "?t="

    def __call__(self, uri: str, place: UriPlace) -> Rewrite:
        return Rewrite(uri + "?t=", place.slot) if PLAIN_RELATIVE.fullmatch(uri) else mark(uri, place)


DISTINCT_TOKENS = {Slot.PLAYLIST: "P", Slot.MEDIA: "M"}


@settings(max_examples=300)
@given(playlists(), st.lists(st.from_regex(PLAIN_RELATIVE, fullmatch=True), max_size=8), st.randoms())
def test_a_declared_suffix_writes_what_the_call_would(case: tuple[bytes, bytes], plain: list[str], rng: Random) -> None:
    source, _ = case
    lines = source.split(b"\n")
    for uri in plain:  # plain relative URI lines among the others (a master's variants or a media playlist's)
        lines.insert(rng.randint(1, len(lines)), uri.encode())
    source = b"\n".join(lines)
    declared = DeclaredSuffix()
    try:
        expected = prepare_playlist(source, lambda uri, place: declared(uri, place))  # no declaration: called
    except ManifestError:
        return
    prepared = prepare_playlist(source, declared)
    assert prepared == expected and prepared.render(DISTINCT_TOKENS) == expected.render(DISTINCT_TOKENS)


@given(st.from_regex(PLAIN_RELATIVE, fullmatch=True), st.sampled_from(URI_PLACES))
def test_the_query_rewriters_declared_suffix_is_its_answer(uri: str, place: UriPlace) -> None:
    route = Route(mount="/vod/", origin="http://origin.test/vod/")
    for param in ("token", "t", "hdnts"):
        rewriter = make_uri_rewriter(
            manifest_origin_url="http://origin.test/vod/a/index.m3u8", route=route, token_param=param
        )
        suffix = getattr(rewriter, "plain_relative_suffix", None)
        assert suffix == f"?{param}=" and rewriter(uri, place) == Rewrite(uri + suffix, place.slot)
