"""The HLS and DASH rewriters on mutated real manifests: refused with ManifestError or rewritten with every
promise kept (lossless outside URIs, idempotent, output bounded by a stated factor of the input)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given

from gateway.manifests.dash import prepare_mpd
from gateway.manifests.errors import ManifestError
from gateway.manifests.hls import UriPlace, prepare_playlist
from gateway.manifests.template import PreparedManifest, Rewrite, Slot
from gateway.manifests.uris import is_rewritable_reference, with_query_slot
from tests.fuzz import FUZZ
from tests.fuzz.mutations import mutated

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
HLS = [p.read_bytes() for p in sorted(FIXTURES.glob("hls/*.m3u8")) if ".expected" not in p.name]
HLS += [p.read_bytes() for p in sorted(FIXTURES.glob("media/vod/*/**/*.m3u8"))]
DASH = [p.read_bytes() for p in sorted(FIXTURES.glob("dash/*.mpd")) if ".expected" not in p.name]
DASH += [p.read_bytes() for p in sorted(FIXTURES.glob("media/vod/*/*.mpd"))]
TOKEN = "AWwEZGV2MWsU1WgBDXZvZC9kYXNoLTkwMDAISDRJZDlQ"  # the length of a real session token
TOKENS = {Slot.PLAYLIST: TOKEN, Slot.MEDIA: TOKEN}
# Output bound: substitution may add 8x the input (gateway/manifests/hls_lexical.py), each slot adds its token
# and a separator; escaping a callback's text for XML keeps the origin's own escaped form.
GROWTH = 9
PER_SLOT = len(TOKEN) + len("?token=") + 1

Prepare = Callable[..., PreparedManifest]


def tokenize(uri: str, place: UriPlace) -> Rewrite | None:
    return with_query_slot(uri, "token", place.slot) if is_rewritable_reference(uri) else None


def check_promises(prepare: Prepare, data: bytes) -> None:
    try:
        identity = prepare(data, lambda uri, place: None)
    except ManifestError:
        with pytest.raises(ManifestError):  # refused the same way whatever the callback
            prepare(data, tokenize)
        return
    assert identity.render({}) == data  # lossless: nothing but URIs may ever change
    prepared = prepare(data, tokenize)
    once = prepared.render(TOKENS)
    assert len(once) <= GROWTH * len(data) + PER_SLOT * len(prepared.slots) + 1024
    if b"{$" not in data:  # (a substituted value may itself spell a reference)
        assert prepare(once, tokenize).render(TOKENS) == once  # idempotent: the token is replaced, not added


@pytest.mark.parametrize("name", ["hls", "dash"])
def test_there_are_real_manifests_to_mutate(name: str) -> None:
    assert len(HLS if name == "hls" else DASH) >= 5


@FUZZ
@given(mutated(HLS))
def test_hls_rewriter_on_mutated_real_playlists(data: bytes) -> None:
    check_promises(prepare_playlist, data)


@FUZZ
@given(mutated(DASH))
def test_dash_rewriter_on_mutated_real_mpds(data: bytes) -> None:
    check_promises(prepare_mpd, data)


@pytest.mark.parametrize("data", HLS, ids=range(len(HLS)))
def test_every_real_playlist_keeps_the_promises_unmutated(data: bytes) -> None:
    check_promises(prepare_playlist, data)


@pytest.mark.parametrize("data", DASH, ids=range(len(DASH)))
def test_every_real_mpd_keeps_the_promises_unmutated(data: bytes) -> None:
    check_promises(prepare_mpd, data)
