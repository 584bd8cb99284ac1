"""Tokens never travel to another host, however the origin spells the URI (DESIGN: "the rim").

Browsers read a backslash as a slash and drop tabs and newlines inside URLs (WHATWG URL parser), so
`\\\\evil.example/x.ts` in a playlist is a request to evil.example: it must keep its bytes and get no token.
"""

from __future__ import annotations

import pytest

from gateway.config import Route
from gateway.http.links import make_path_token_rewriter, make_uri_rewriter
from gateway.manifests.hls import prepare_playlist
from gateway.manifests.template import Slot
from gateway.manifests.uris import as_browsers_read

ROUTE = Route(mount="/vod/", origin="http://origin.test/vod/")
MANIFEST = "http://origin.test/vod/title/v1/index.m3u8"
TOKENS = {Slot.PLAYLIST: "P", Slot.MEDIA: "M"}
FOREIGN = ["\\\\evil.example/x.ts", "/\\evil.example/x.ts", "\\/evil.example/x.ts", "/\t/evil.example/x.ts"]


@pytest.mark.parametrize("uri", FOREIGN)
def test_browsers_read_backslash_and_tab_forms_as_another_host(uri: str) -> None:
    assert as_browsers_read(uri) == "//evil.example/x.ts"


@pytest.mark.parametrize("uri", FOREIGN)
def test_a_uri_that_resolves_to_another_host_keeps_its_bytes_and_gets_no_token(uri: str) -> None:
    playlist = f"#EXTM3U\n#EXTINF:2,\n{uri}\n#EXTINF:2,\nseg.ts\n".encode()
    for rewriter in (
        make_uri_rewriter(manifest_origin_url=MANIFEST, route=ROUTE, token_param="token"),
        make_path_token_rewriter(manifest_origin_url=MANIFEST, route=ROUTE),
    ):
        rendered = prepare_playlist(playlist, rewriter).render(TOKENS).decode()
        assert f"\n{uri}\n" in rendered  # untouched
    query = make_uri_rewriter(manifest_origin_url=MANIFEST, route=ROUTE, token_param="token")
    assert "seg.ts?token=M" in prepare_playlist(playlist, query).render(TOKENS).decode()  # ours still is


def test_a_backslash_path_on_the_origin_is_written_as_browsers_resolve_it() -> None:
    rewriter = make_uri_rewriter(manifest_origin_url=MANIFEST, route=ROUTE, token_param="token")
    playlist = b"#EXTM3U\n#EXTINF:2,\nsub\\seg.ts\n#EXTINF:2,\n\\vod\\title\\v1\\b.ts\n"
    rendered = prepare_playlist(playlist, rewriter).render(TOKENS).decode()
    assert "\nsub/seg.ts?token=M\n" in rendered and "\n/vod/title/v1/b.ts?token=M\n" in rendered


@pytest.mark.parametrize(
    ("uri", "written"),
    [
        ("http://origin.test/vod/title/a/../b/./seg.ts", "/vod/title/b/seg.ts?token=M"),
        ("http://origin.test/vod/../secret/x.ts", None),  # climbs out of the route: not ours
    ],
)
def test_dot_segments_of_an_absolute_origin_uri_are_resolved_as_browsers_do(uri: str, written: str | None) -> None:
    rewriter = make_uri_rewriter(manifest_origin_url=MANIFEST, route=ROUTE, token_param="token")
    rendered = prepare_playlist(f"#EXTM3U\n#EXTINF:2,\n{uri}\n".encode(), rewriter).render(TOKENS).decode()
    assert rendered.splitlines()[-1] == (written or uri)
    assert prepare_playlist(rendered.encode(), rewriter).render(TOKENS).decode() == rendered  # idempotent
