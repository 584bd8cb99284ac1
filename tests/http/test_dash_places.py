"""Every DASH place through the gateway's own rewriter (query delivery), against golden files.

fixtures/dash/places/<case>.<ext> is rewritten exactly as the edge does it: `prepare_manifest` with the
query writer's callback and the route (so effective bases off the origin keep their bytes), from
`https://origin.example/vod/title/<case>.<ext>`; `<case>.expected.<ext>` is the rendered result (see
fixtures/dash/README.md for what each case covers and what every difference may be).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import Route
from gateway.http.links import make_uri_rewriter
from gateway.http.writers.base import prepare_manifest
from gateway.manifests.template import Slot

PLACES = Path(__file__).resolve().parents[2] / "fixtures" / "dash" / "places"
CASES = sorted(p.name for p in PLACES.iterdir() if ".expected." not in p.name and p.suffix != ".md")
ROUTE = Route(mount="/vod/", origin="https://origin.example/vod/")
TOKENS = {Slot.PLAYLIST: "PLAYLIST-TOKEN", Slot.MEDIA: "MEDIA-TOKEN"}
FOREIGN_HOSTS = ("cdn.other.example", "evil.example", "license.vendor.example", "ads.other.example")


def expected_path(case: str) -> Path:
    stem, _, ext = case.rpartition(".")
    return PLACES / f"{stem}.expected.{ext}"


def render(case: str, data: bytes | None = None) -> bytes:
    url = f"https://origin.example/vod/title/{case}"
    rewriter = make_uri_rewriter(manifest_origin_url=url, route=ROUTE, token_param="token")
    body = (PLACES / case).read_bytes() if data is None else data
    return prepare_manifest(url, body, rewriter, max_bytes=1 << 20, route=ROUTE).render(TOKENS)


def test_there_is_a_case_per_kind_of_place() -> None:
    assert {"effective_base.mpd", "templates.mpd", "keys.mpd", "xlink.mpd", "period2.xml", "patch.mpp"} <= set(CASES)


@pytest.mark.parametrize("case", CASES)
def test_golden_output(case: str) -> None:
    assert render(case) == expected_path(case).read_bytes()


@pytest.mark.parametrize("case", CASES)
def test_no_token_goes_to_another_host_and_a_second_pass_adds_none(case: str) -> None:
    out = render(case)
    for line in out.decode().splitlines():
        if any(host in line for host in FOREIGN_HOSTS):
            assert "TOKEN" not in line, line
    assert render(case, out) == out  # idempotent: tokens are replaced, never added twice


def test_only_token_values_differ() -> None:
    """Outside the values the rewriter touched, every byte is the origin's (line by line, same count)."""
    for case in CASES:
        before, after = (PLACES / case).read_bytes().splitlines(), render(case).splitlines()
        assert len(before) == len(after)
        for old, new in zip(before, after, strict=True):
            if old != new:
                assert b"TOKEN" in new, (case, new)


def test_an_alternative_beside_another_host_carries_its_token_in_the_path_only_where_a_token_is_written() -> None:
    url = "https://origin.example/vod/title/manifest.mpd"
    mpd = (
        b'<MPD xmlns="urn:mpeg:dash:schema:mpd:2011"><Period><AdaptationSet>'
        b"<BaseURL>a/</BaseURL><BaseURL>https://cdn.other.example/a/</BaseURL>"
        b'<SegmentTemplate media="$Number$.m4s"/></AdaptationSet></Period></MPD>'
    )

    def rendered(token_param: str | None) -> bytes:
        rewriter = make_uri_rewriter(manifest_origin_url=url, route=ROUTE, token_param=token_param)
        return prepare_manifest(url, mpd, rewriter, max_bytes=1 << 20, route=ROUTE).render(TOKENS)

    assert rendered("token") == mpd.replace(b"<BaseURL>a/", b"<BaseURL>/t/MEDIA-TOKEN/vod/title/a/")
    assert rendered(None) == mpd  # cookie delivery: the cookie rides along, nothing is written
