"""The prepared form of a rewritten manifest: static text chunks with token slots between them.

A manifest is parsed and rewritten once per origin version; every request then only calls `render`,
which joins the chunks with that request's token strings (no parsing, no signing per URI).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import groupby
from typing import NamedTuple


class Slot(enum.Enum):
    """Which token fills a slot.

    PLAYLIST: a URI the player will load as a playlist (variants, renditions, I-frame playlists, rendition
    reports, steering manifests, interstitial assets). MEDIA: everything a playlist's segments need
    (segments, parts, preload hints, keys, init sections, session data).
    """

    PLAYLIST = "playlist"
    MEDIA = "media"
    # A CDN's credentials for a prefix-signed dialect: the query string appended to CDN URLs.
    CDN = "cdn"
    # A per-URL CDN signature: rendered as a marker after the unsigned URL, then replaced URL by URL.
    CDN_URL = "cdn_url"


class Rewrite(NamedTuple):
    """What to write in place of one URI: `head` + token(slot) + `tail`, or `head` + `tail` if slot is None.

    A NamedTuple, not a dataclass: one is built per URI when a playlist is prepared (3x cheaper).
    """

    head: str
    slot: Slot | None
    tail: str = ""


@dataclass(frozen=True, slots=True)
class PreparedManifest:
    """`chunks[0] + token(slots[0]) + chunks[1] + … + chunks[-1]`; len(chunks) == len(slots) + 1."""

    chunks: tuple[str, ...]
    slots: tuple[Slot, ...]
    encoding: str = "utf-8"
    # Whether the player reloads this manifest: a live or EVENT media playlist (no #EXT-X-ENDLIST) or a
    # dynamic MPD. What is written into a manifest that is loaded once (a master, a VOD playlist, a static
    # MPD) is never replaced, so it must stay valid as long as the player may use it; see tokens/scoped.py.
    reloaded: bool = False
    # A dynamic MPD with PatchLocation: a player that applies patches may keep this manifest's URIs (shaka
    # re-fetches an init section with the URI its first MPD gave, even when a patch restates it) for the rest
    # of the session. It is still reloaded (a cookie rolls with every patch response), but what is written
    # into its URIs is never replaced: see `renews_its_uris`.
    kept_through_patches: bool = False
    # A Multivariant ("master") Playlist: it lists playlists, and what they are (VOD or live) is not known
    # from it.
    multivariant: bool = False
    # Derived once per manifest, so `render` is a bytes.join or two. Encoding a joined ~1 MB str per request
    # costs ~1 ms (a fresh large allocation each time) against ~0.15 ms for joining pre-encoded bytes, and
    # frozenset(self.slots) would call Enum.__hash__ (Python code) once per slot.
    _encoded: tuple[bytes, ...] = field(init=False, repr=False, compare=False)
    # Runs of consecutive slots of one kind, each with the chunks that follow its slots: a media playlist
    # with rendition reports renders as two joins, not one step per slot.
    _runs: tuple[tuple[Slot, tuple[bytes, ...]], ...] = field(init=False, repr=False, compare=False)
    _kinds: frozenset[Slot] = field(init=False, repr=False, compare=False)

    @property
    def renews_its_uris(self) -> bool:
        """Whether a later load of this manifest replaces the URIs written into it (so their tokens may roll)."""
        return self.reloaded and not self.kept_through_patches

    def __post_init__(self) -> None:
        if len(self.chunks) != len(self.slots) + 1:
            raise ValueError("a prepared manifest needs exactly one more chunk than slots")
        encoded = _encode_chunks(self.chunks, self.encoding)
        runs: list[tuple[Slot, tuple[bytes, ...]]] = []
        position = 1
        for kind, group in groupby(self.slots):  # Enum members compare by identity, in C
            count = len(list(group))
            runs.append((kind, encoded[position : position + count]))
            position += count
        object.__setattr__(self, "_encoded", encoded)
        object.__setattr__(self, "_runs", tuple(runs))
        object.__setattr__(self, "_kinds", frozenset(kind for kind, _ in runs))

    @property
    def slot_kinds(self) -> frozenset[Slot]:
        return self._kinds

    @property
    def size_bytes(self) -> int:
        """Roughly what this prepared manifest holds in memory: its text twice (the str chunks and their
        encoded bytes), plus per-slot bookkeeping. What a byte-bounded cache counts."""
        return 2 * sum(len(chunk) for chunk in self._encoded) + 64 * len(self.slots) + 256

    def render(self, tokens: Mapping[Slot, str]) -> bytes:
        """Fill every slot with its token; raises KeyError if a needed slot kind has no token."""
        encoded = self._encoded
        if not self._runs:
            return encoded[0]
        by_kind = {kind: tokens[kind].encode(self.encoding, "surrogateescape") for kind in self._kinds}
        distinct = set(by_kind.values())
        if len(distinct) == 1:
            return distinct.pop().join(encoded)
        parts: list[bytes] = [encoded[0]]
        for kind, chunks in self._runs:
            token = by_kind[kind]
            parts += (token, token.join(chunks))
        return b"".join(parts)


def _encode_chunks(chunks: tuple[str, ...], encoding: str) -> tuple[bytes, ...]:
    if encoding.lower().replace("_", "-") in ("utf-8", "utf8"):
        # One encode and one split instead of one encode per chunk; in UTF-8 only NUL encodes to a 0x00
        # byte, so this is exact unless a chunk itself contains NUL.
        joined = "\x00".join(chunks)
        if joined.count("\x00") == len(chunks) - 1:
            return tuple(joined.encode(encoding, "surrogateescape").split(b"\x00"))
    return tuple(chunk.encode(encoding, "surrogateescape") for chunk in chunks)
