"""The HLS rewriter against hand-written golden files, the m3u8 parser, and malformed input.

Golden cases live in fixtures/hls/ (see its README): `<case>.m3u8` rewritten by `golden_rewrite` and
rendered with `TOKENS` must equal `<case>.expected.m3u8` byte for byte.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import m3u8
import pytest

from gateway.manifests.errors import ManifestError
from gateway.manifests.hls import URI_PLACES, UriPlace, is_master_playlist, prepare_playlist
from gateway.manifests.template import Rewrite, Slot
from gateway.manifests.uris import is_rewritable_reference, with_query_slot

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "hls"
CASES = sorted(p.name.removesuffix(".m3u8") for p in FIXTURES.glob("*.m3u8") if ".expected" not in p.name)
TOKENS = {Slot.PLAYLIST: "PLAYLIST-TOKEN", Slot.MEDIA: "MEDIA-TOKEN"}
ORIGIN_HOST = "origin.example"


def golden_rewrite(uri: str, place: UriPlace) -> Rewrite | None:
    """The documented golden callback: origin URIs become root-relative, other hosts stay, token added."""
    if not is_rewritable_reference(uri):
        return None
    split = urlsplit(uri)
    if split.scheme or uri.startswith("//"):
        if split.hostname != ORIGIN_HOST:
            return None
        path = uri[uri.index("//") + 2 + len(split.netloc) :]
        uri = path if path.startswith("/") else "/" + path
    return with_query_slot(uri, "token", place.slot)


def render_case(case: str) -> bytes:
    return prepare_playlist((FIXTURES / f"{case}.m3u8").read_bytes(), golden_rewrite).render(TOKENS)


def test_there_are_golden_cases() -> None:
    assert len(CASES) >= 10


@pytest.mark.parametrize("case", CASES)
def test_golden_output(case: str) -> None:
    assert render_case(case) == (FIXTURES / f"{case}.expected.m3u8").read_bytes()


def test_golden_cases_reach_every_uri_place() -> None:
    seen: set[UriPlace] = set()

    def record(uri: str, place: UriPlace) -> None:
        seen.add(place)

    for case in CASES:
        prepare_playlist((FIXTURES / f"{case}.m3u8").read_bytes(), record)
    assert seen == set(URI_PLACES)


# --- the m3u8 package (reading only) agrees on structure and sees a token on every URI it reports ----

M3U8_CASES = ["master", "vod_aes", "ll_hls_live", "interstitials", "queries_fragments", "lhls_prefetch"]


def _reported_uris(playlist: m3u8.M3U8) -> list[tuple[str, Slot]]:
    found: list[tuple[str, Slot]] = []
    for segment in playlist.segments:
        if segment.uri is not None:  # None: a trailing LL-HLS segment that so far only has parts
            found.append((segment.uri, Slot.MEDIA))
        found += [(part.uri, Slot.MEDIA) for part in segment.parts]
        if segment.init_section is not None:
            found.append((segment.init_section.uri, Slot.MEDIA))
    found += [(key.uri, Slot.MEDIA) for key in playlist.keys + playlist.session_keys if key and key.uri]
    found += [(data.uri, Slot.MEDIA) for data in playlist.session_data if data.uri]
    for playlists in (playlist.playlists, playlist.iframe_playlists, playlist.image_playlists):
        found += [(variant.uri, Slot.PLAYLIST) for variant in playlists]
    found += [(media.uri, Slot.PLAYLIST) for media in playlist.media if media.uri]
    found += [(report.uri, Slot.PLAYLIST) for report in playlist.rendition_reports]
    if playlist.preload_hint is not None:
        found.append((playlist.preload_hint.uri, Slot.MEDIA))
    if playlist.content_steering is not None:
        found.append((playlist.content_steering.uri, Slot.PLAYLIST))
    return found


@pytest.mark.parametrize("case", M3U8_CASES)
def test_m3u8_sees_the_same_segments_and_a_token_on_every_uri(case: str) -> None:
    before = m3u8.loads((FIXTURES / f"{case}.m3u8").read_text())
    after = m3u8.loads(render_case(case).decode())
    assert [(s.duration, s.byterange) for s in after.segments] == [(s.duration, s.byterange) for s in before.segments]
    assert [len(s.parts) for s in after.segments] == [len(s.parts) for s in before.segments]
    reported = _reported_uris(after)
    assert len(reported) == len(_reported_uris(before)) > 0
    for uri, slot in reported:
        if golden_rewrite(uri, UriPlace(None, None, slot)) is not None:  # i.e. the callback wanted it
            assert f"token={TOKENS[slot]}" in uri, uri


# --- behaviour ------------------------------------------------------------------------------------


def _prepare(text: str) -> bytes:
    """`text` rewritten with a `t=` query token: P for playlist slots, M for media slots."""

    def append(uri: str, place: UriPlace) -> Rewrite:
        return with_query_slot(uri, "t", place.slot)

    return prepare_playlist(text.encode(), append).render({Slot.PLAYLIST: "P", Slot.MEDIA: "M"})


def test_variant_lines_get_the_playlist_slot_and_segment_lines_the_media_slot() -> None:
    assert is_master_playlist("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n")
    assert not is_master_playlist("#EXTM3U\n#EXTINF:1,\ns.ts\n")
    assert _prepare("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n").endswith(b"v.m3u8?t=P\n")
    assert _prepare("#EXTM3U\n#EXTINF:1,\ns.ts\n").endswith(b"s.ts?t=M\n")


def test_the_callback_gets_concrete_uris_and_only_uris() -> None:
    calls: list[tuple[str, UriPlace]] = []

    def record(uri: str, place: UriPlace) -> None:
        calls.append((uri, place))

    text = (
        '#EXTM3U\n#EXT-X-DEFINE:NAME="h",VALUE="https://o.example"\n#EXT-X-FOO:URI="x"\n'
        '# https://comment.example/\n#EXT-X-KEY:METHOD=AES-128,KEYFORMAT="urn:x",URI=" {$h}/k "\n'
        "#EXTINF:1,https://title.example/\n  {$h}/s.ts\r\n"
    )
    prepare_playlist(text.encode(), record)
    assert calls == [
        ("https://o.example/k", UriPlace("EXT-X-KEY", "URI", Slot.MEDIA)),
        ("https://o.example/s.ts", UriPlace(None, None, Slot.MEDIA)),
    ]


def test_a_rewrite_without_slot_is_written_as_is() -> None:
    prepared = prepare_playlist(b"#EXTM3U\n#EXTINF:1,\ns.ts\n", lambda uri, place: Rewrite("/x/" + uri, None))
    assert prepared.slots == ()
    assert prepared.render({}) == b"#EXTM3U\n#EXTINF:1,\n/x/s.ts\n"


def test_rewritten_values_cannot_break_out_of_quotes_or_lines() -> None:
    def hostile(uri: str, place: UriPlace) -> Rewrite:
        return Rewrite(head=uri + '"\r\n#EXT-X-ENDLIST\x00', slot=Slot.MEDIA, tail='"\n')

    data = b'#EXTM3U\n#EXT-X-MAP:URI="i.mp4"\n#EXTINF:1,\ns.ts\n'
    out = prepare_playlist(data, hostile).render({Slot.MEDIA: "T"})
    assert out == (
        b'#EXTM3U\n#EXT-X-MAP:URI="i.mp4%22%0D%0A#EXT-X-ENDLIST%00T%22%0A"\n'
        b'#EXTINF:1,\ns.ts"%0D%0A#EXT-X-ENDLIST%00T"%0A\n'
    )


def test_quote_free_junk_in_an_attribute_list_is_skipped_like_players_do() -> None:
    text = '#EXTM3U\n#EXT-X-I-FRAME-STREAM-INF:CODECS=avc1.4d401f,mp4a.40.2,URI="i.m3u8", junk ,BANDWIDTH=1\n'
    assert _prepare(text).endswith(b'CODECS=avc1.4d401f,mp4a.40.2,URI="i.m3u8?t=P", junk ,BANDWIDTH=1\n')


def test_import_and_queryparam_references_reach_the_callback_verbatim() -> None:
    seen: list[str] = []
    text = '#EXTM3U\n#EXT-X-DEFINE:QUERYPARAM="tok"\n#EXT-X-DEFINE:IMPORT="b"\n#EXTINF:1,\n{$b}/s.ts?{$tok}\n'
    prepare_playlist(text.encode(), lambda uri, place: seen.append(uri))
    assert seen == ["{$b}/s.ts?{$tok}"]


# --- malformed input raises ManifestError ---------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "line_no", "message"),
    [
        (b"", 1, "#EXTM3U"),
        (b"\xef\xbb\xbf", 1, "#EXTM3U"),
        (b"#EXTINF:1,\ns.ts\n", 1, "#EXTM3U"),
        (b"#EXTM3UX\n", 1, "#EXTM3U"),
        (b"\x47\x40\x11\x10\x00\x42", 1, "NUL"),
        (b"#EXTM3U\n#EXTINF:1,\ns\x00.ts\n", 3, "NUL"),
        (b"#EXTM3U\r#EXTINF:1,\rs.ts\r", 1, "CR not followed by LF"),
        (b"#EXTM3U\n#EXTINF:1,\n" + b"s" * 300_000 + b"\n", 3, "longer than"),
        (b'#EXTM3U\n#EXT-X-KEY:METHOD=AES-128,URI="k.bin\n', 2, "malformed attribute list"),
        (b'#EXTM3U\n#EXT-X-MAP:URI="i.mp4"x\n', 2, "malformed attribute list"),
        (b'#EXTM3U\n#EXT-X-PART:DURATION=1,="p.mp4",URI="p.mp4"\n', 2, "malformed attribute list"),
        (b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n#EXTINF:1,\ns.ts\n", 4, "EXTINF"),
        (b"#EXTM3U\n#EXTINF:1,\n{$nope}/s.ts\n", 3, "undefined variable"),
        (b'#EXTM3U\n#EXTINF:1,\n{$v}/s.ts\n#EXT-X-DEFINE:NAME="v",VALUE="x"\n', 3, "undefined variable"),
        (b'#EXTM3U\n#EXT-X-DEFINE:NAME="v"\n', 2, "VALUE"),
        (b'#EXTM3U\n#EXT-X-DEFINE:NAME="v",VALUE="1"\n#EXT-X-DEFINE:NAME="v",VALUE="2"\n', 3, "twice"),
        (b'#EXTM3U\n#EXT-X-DEFINE:NAME="a b",VALUE="1"\n', 2, "invalid variable name"),
        (b'#EXTM3U\n#EXT-X-DEFINE:VALUE="1"\n', 2, "exactly one of"),
    ],
)
def test_malformed_input_raises_manifest_error(data: bytes, line_no: int, message: str) -> None:
    with pytest.raises(ManifestError, match=message) as raised:
        prepare_playlist(data, golden_rewrite)
    assert raised.value.line_no == line_no
    assert isinstance(raised.value, ValueError)


def test_max_bytes_refuses_a_larger_playlist() -> None:
    data = b"#EXTM3U\n" + b"#EXTINF:1,\ns.ts\n" * 100
    prepare_playlist(data, golden_rewrite, max_bytes=len(data))
    with pytest.raises(ManifestError, match=f"{len(data)} bytes, over the {len(data) - 1}-byte limit"):
        prepare_playlist(data, golden_rewrite, max_bytes=len(data) - 1)


def test_a_hostile_attribute_list_is_rejected_in_linear_time() -> None:
    line = b"#EXT-X-KEY:URI=" + b" " * 200_000 + b'"'
    with pytest.raises(ManifestError, match="malformed attribute list"):
        prepare_playlist(b"#EXTM3U\n" + line + b"\n", golden_rewrite)


def test_error_messages_carry_a_short_excerpt_of_the_line() -> None:
    with pytest.raises(ManifestError) as raised:
        prepare_playlist(b'#EXTM3U\n#EXT-X-MAP:URI="' + b"x" * 500 + b"\n", golden_rewrite)
    assert raised.value.line is not None
    assert len(raised.value.line) <= 120


# --- what the player will reload (the media-token lifetime follows it, see gateway/tokens/scoped.py) -----

LOADED_ONCE = {
    "master": "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n",
    "endlist": "#EXTM3U\n#EXTINF:1,\ns.ts\n#EXT-X-ENDLIST\n",
    "endlist_crlf_no_final_newline": "#EXTM3U\r\n#EXTINF:1,\r\ns.ts\r\n#EXT-X-ENDLIST",
    "vod_type_without_endlist": "#EXTM3U\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXTINF:1,\ns.ts\n",
    "event_that_ended": "#EXTM3U\n#EXT-X-PLAYLIST-TYPE:EVENT\n#EXTINF:1,\ns.ts\n#EXT-X-ENDLIST\n",
}
RELOADED = {
    "live": "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:7\n#EXTINF:1,\ns.ts\n",
    "event": "#EXTM3U\n#EXT-X-PLAYLIST-TYPE:EVENT\n#EXTINF:1,\ns.ts\n",
    "endlist_only_in_a_comment": "#EXTM3U\n# #EXT-X-ENDLIST\n#EXTINF:1,\ns.ts\n",
    "an_unknown_tag_sharing_the_prefix": "#EXTM3U\n#EXT-X-ENDLIST-SOON\n#EXT-X-PLAYLIST-TYPE:VODX\n#EXTINF:1,\ns.ts\n",
}


@pytest.mark.parametrize("text", LOADED_ONCE.values(), ids=LOADED_ONCE.keys())
def test_masters_and_vod_playlists_are_loaded_once(text: str) -> None:
    assert not prepare_playlist(text.encode(), lambda uri, place: None).reloaded


@pytest.mark.parametrize("text", RELOADED.values(), ids=RELOADED.keys())
def test_live_and_event_playlists_are_reloaded(text: str) -> None:
    assert prepare_playlist(text.encode(), lambda uri, place: None).reloaded


def test_golden_vod_and_live_cases_say_what_they_are() -> None:
    def read(name: str) -> bytes:
        return (FIXTURES / f"{name}.m3u8").read_bytes()

    assert not prepare_playlist(read("vod_aes"), lambda uri, place: None).reloaded
    assert prepare_playlist(read("ll_hls_live"), lambda uri, place: None).reloaded


# --- bounded work: EXT-X-DEFINE substitution cannot blow a playlist up ---------------------------------------


def test_define_substitution_is_bounded_by_a_factor_of_the_playlist() -> None:
    """108 KB of references to an 8 KB value would be a 200 MB response: refused, quickly."""
    value = "x" * 8000
    lines = ["#EXTM3U", f'#EXT-X-DEFINE:NAME="v",VALUE="{value}"']
    lines += ["#EXTINF:1,\n{$v}{$v}{$v}{$v}{$v}{$v}{$v}{$v}{$v}{$v}" for _ in range(1000)]
    data = "\n".join(lines).encode()
    assert len(data) < 200_000
    with pytest.raises(ManifestError, match="EXT-X-DEFINE substitution grows the playlist"):
        prepare_playlist(data, lambda uri, place: None)


def test_a_single_substituted_uri_is_bounded_by_the_line_limit() -> None:
    data = b'#EXTM3U\n#EXT-X-DEFINE:NAME="v",VALUE="' + b"y" * 100 + b'"\n#EXTINF:1,\n' + b"{$v}" * 40 + b"\n"
    prepare_playlist(data, lambda uri, place: None)  # 4000 characters: fine
    with pytest.raises(ManifestError, match="makes a value of 4000 characters"):
        prepare_playlist(data, lambda uri, place: None, max_line_chars=3000)


def test_a_long_base_url_on_every_segment_line_still_substitutes() -> None:
    """The normal use: a base URL variable on each of 10,000 segment lines (growth ~4x the playlist)."""
    base = "https://cdn.example/a/very/long/path/to/the/content/of/this/title/rendition/1080p/"
    lines = ["#EXTM3U", f'#EXT-X-DEFINE:NAME="base",VALUE="{base}"']
    lines += [f"#EXTINF:2,\n{{$base}}s{i}.ts" for i in range(10_000)]
    prepared = prepare_playlist("\n".join(lines).encode(), lambda uri, place: Rewrite(uri, None))
    assert prepared.render({}).count(base.encode()) == 10_001  # the DEFINE line keeps its value too
