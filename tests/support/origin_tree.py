"""A synthetic HLS origin tree on disk: every URI-bearing tag a player walks, with random payloads."""

from __future__ import annotations

import os
from pathlib import Path

TITLE = "/vod/title-9000/"


def write(root: Path, relative: str, data: bytes | str) -> None:
    path = root / relative.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)


def media_playlist(prefix: str, segments: int, *, absolute_base: str | None = None, encrypted: bool = True) -> str:
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-TARGETDURATION:2", "#EXT-X-MEDIA-SEQUENCE:0"]
    if encrypted:
        lines.append('#EXT-X-KEY:METHOD=AES-128,URI="../keys/k1.key",IV=0x00000000000000000000000000000001')
    lines.append('#EXT-X-MAP:URI="init.mp4"')
    for index in range(segments):
        lines.append("#EXTINF:2.000,")
        name = f"{prefix}seg_{index:03d}.m4s"
        lines.append(f"{absolute_base}{name}" if absolute_base and index == 1 else name)
    lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def build_origin_tree(root: Path, origin_base: str) -> dict[str, bytes]:
    """Writes the title under `root`; returns {gateway path: bytes} of every file a player needs."""
    files: dict[str, bytes] = {}

    def put(relative: str, data: bytes | str) -> None:
        write(root, TITLE + relative, data)
        files[TITLE + relative] = data.encode() if isinstance(data, str) else data

    master = "\r\n".join(
        [
            "#EXTM3U",
            "#EXT-X-VERSION:7",
            "#EXT-X-INDEPENDENT-SEGMENTS",
            '#EXT-X-SESSION-KEY:METHOD=SAMPLE-AES,URI="skd://license.example/k1",KEYFORMAT="com.apple.streamingkeydelivery"',
            '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="English",DEFAULT=YES,URI="audio/en/index.m3u8"',
            '#EXT-X-STREAM-INF:BANDWIDTH=400000,CODECS="avc1.4d401e,mp4a.40.2",AUDIO="aud"',
            "v1/index.m3u8",
            '#EXT-X-STREAM-INF:BANDWIDTH=900000,CODECS="avc1.4d401e,mp4a.40.2",AUDIO="aud"',
            f"{origin_base}vod/title-9000/v2/index.m3u8?quality=hd",
            '#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=90000,URI="v1/iframes.m3u8"',
            "#EXT-X-STREAM-INF:BANDWIDTH=100000",
            "https://other-cdn.example/backup/index.m3u8",
        ]
    )
    put("master.m3u8", master)
    put("v1/index.m3u8", media_playlist("", 3, absolute_base=f"{origin_base}vod/title-9000/v1/"))
    put("v2/index.m3u8", media_playlist("", 2))
    put("audio/en/index.m3u8", media_playlist("a", 2, encrypted=False))
    iframes = "\n".join(
        [
            *("#EXTM3U", "#EXT-X-I-FRAMES-ONLY", "#EXT-X-TARGETDURATION:2", "#EXTINF:2,"),
            *("#EXT-X-BYTERANGE:1000@0", "seg_000.m4s", "#EXT-X-ENDLIST"),
        ]
    )
    put("v1/iframes.m3u8", iframes)  # no final newline, on purpose
    put("keys/k1.key", os.urandom(16))
    for rendition, count, prefix in (("v1", 3, ""), ("v2", 2, ""), ("audio/en", 2, "a")):
        put(f"{rendition}/init.mp4", os.urandom(700))
        for index in range(count):
            size = 1_500_000 if (rendition, index) == ("v2", 1) else 5000 + index
            put(f"{rendition}/{prefix}seg_{index:03d}.m4s", os.urandom(size))
    return files
