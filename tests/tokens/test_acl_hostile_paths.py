"""The ACL is a security boundary: hostile request paths against a grant for /vod/title-9000/.

Each path below either escapes the prefix once an origin such as nginx decodes and resolves it, or is
ambiguous between servers. All must be refused (typed `acl`), and what is accepted is forwarded exactly
as checked. The same list is replayed through a real uvicorn gateway in front of a real nginx in
tests/integration/test_acl_nginx.py.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import Denial, TokenDenied
from gateway.tokens.acl import normalise_path
from gateway.tokens.grant import Grant

PREFIX = "/vod/title-9000/"

HOSTILE_PATHS: list[bytes] = [
    # sibling prefixes and the bare directory
    b"/vod/title-90001/seg.ts",
    b"/vod/title-9000-extra/seg.ts",
    b"/vod/title-900/seg.ts",
    b"/vod/title-9000",
    b"/vod/title-9000.m3u8",
    # raw dot segments
    b"/vod/title-9000/../title-9001/seg.ts",
    b"/vod/title-9000/./../title-9001/seg.ts",
    b"/vod/title-9000/v1/../../title-9001/seg.ts",
    b"/vod/title-9000/..",
    b"/vod/title-9000/../../etc/passwd",
    b"/vod/title-9000/.../title-9001/seg.ts",
    # percent-encoded dot segments
    b"/vod/title-9000/%2e%2e/title-9001/seg.ts",
    b"/vod/title-9000/%2E%2E/title-9001/seg.ts",
    b"/vod/title-9000/.%2E/title-9001/seg.ts",
    b"/vod/title-9000/%2e./title-9001/seg.ts",
    b"/vod/title-9000/%2e/%2e%2e/title-9001/seg.ts",
    # double encoding
    b"/vod/title-9000/%252e%252e/title-9001/seg.ts",
    b"/vod/title-9000/%252e%252e%252ftitle-9001/seg.ts",
    b"/vod/title-9000/%25%32%65%25%32%65/title-9001/seg.ts",
    b"/vod/title-9000/a%25%34%31.ts",
    b"/vod/title-9000/%25c0%25ae/seg.ts",
    # encoded slashes and backslashes
    b"/vod/title-9000/..%2ftitle-9001/seg.ts",
    b"/vod/title-9000/..%2Ftitle-9001%2Fseg.ts",
    b"/vod/title-9000%2f..%2ftitle-9001/seg.ts",
    b"/vod/title-9000/..%5ctitle-9001/seg.ts",
    b"/vod/title-9000/..\\title-9001/seg.ts",
    b"/vod/title-9000\\..\\title-9001\\seg.ts",
    b"/vod/title-9000/%5c..%5ctitle-9001/seg.ts",
    # empty segments
    b"//vod/title-9000/seg.ts",
    b"/vod//title-9000/seg.ts",
    b"/vod/title-9000//../title-9001/seg.ts",
    # NUL and control bytes, raw and encoded
    b"/vod/title-9000/seg.ts%00.m3u8",
    b"/vod/title-9000/%00/../title-9001/seg.ts",
    b"/vod/title-9000/seg.ts\x00",
    b"/vod/title-9000/%0d%0aX-Injected:%201/seg.ts",
    b"/vod/title-9000/\t../title-9001/seg.ts",
    b"/vod/title-9000/%7f/seg.ts",
    # overlong and invalid UTF-8
    b"/vod/title-9000/%c0%ae%c0%ae/title-9001/seg.ts",
    b"/vod/title-9000/%c0%af../title-9001/seg.ts",
    b"/vod/title-9000/%e0%80%ae%e0%80%ae/title-9001/seg.ts",
    b"/vod/title-9000/%ff%fe/seg.ts",
    b"/vod/title-9000/%c1%9c/seg.ts",
    # Unicode look-alikes of '.', '/' and '\' that NFKC-normalising servers fold
    b"/vod/title-9000/%ef%bc%8e%ef%bc%8e/title-9001/seg.ts",
    b"/vod/title-9000/..%ef%bc%8ftitle-9001/seg.ts",
    b"/vod/title-9000/..%ef%bc%bctitle-9001/seg.ts",
    # path parameters
    b"/vod/title-9000/..;/title-9001/seg.ts",
    b"/vod/title-9000;/../title-9001/seg.ts",
    b"/vod/title-9000/seg.ts;jsessionid=x",
    b"/vod/title-9000/%3b/../title-9001/seg.ts",
    # Windows trailing dots and spaces
    b"/vod/title-9000/../title-9001./seg.ts",
    b"/vod/title-9000./seg.ts",
    b"/vod/title-9000/seg.ts.",
    b"/vod/title-9000/seg.ts%20",
    # absolute-form and other non-origin-form targets
    b"http://evil.example/vod/title-9000/seg.ts",
    b"http://127.0.0.1/vod/title-9001/seg.ts",
    b"vod/title-9000/seg.ts",
    b"*",
    # malformed escapes
    b"/vod/title-9000/%2/seg.ts",
    b"/vod/title-9000/%zz/seg.ts",
    b"/vod/title-9000/seg%.ts",
    # raw fragment and query markers smuggled into a path
    b"/vod/title-9000/#/../../title-9001/seg.ts",
    # huge
    b"/vod/title-9000/" + b"a/" * 3000 + b"seg.ts",
]

GOOD_PATHS: list[tuple[bytes, str]] = [
    (b"/vod/title-9000/master.m3u8", "/vod/title-9000/master.m3u8"),
    (b"/vod/title-9000/v360/seg_001.ts", "/vod/title-9000/v360/seg_001.ts"),
    (b"/vod/title-9000/v360/seg%20001.ts", "/vod/title-9000/v360/seg%20001.ts"),
    (b"/vod/title-9000/%61udio/x.aac", "/vod/title-9000/audio/x.aac"),
    (b"/vod/title-9000/.well-known/x", "/vod/title-9000/.well-known/x"),
    (b"/vod/title-9000/caf%C3%A9/x.ts", "/vod/title-9000/caf%C3%A9/x.ts"),
    (b"/vod/title-9000/a,b=c(1)/x.ts", "/vod/title-9000/a,b=c(1)/x.ts"),
    # a literal '%' that is no escape once decoded is a file-name character
    (b"/vod/title-9000/100%25/a%25g+~.ts", "/vod/title-9000/100%25/a%25g+~.ts"),
]


def refused(raw: bytes) -> bool:
    grant = Grant((PREFIX,), 2_000_000_000)
    try:
        checked = normalise_path(raw)
    except TokenDenied as denied:
        assert denied.reason is Denial.ACL
        return True
    return not grant.covers(checked.decoded)


def test_there_are_at_least_40_hostile_paths() -> None:
    assert len(set(HOSTILE_PATHS)) >= 40


@pytest.mark.parametrize("raw", HOSTILE_PATHS, ids=lambda raw: raw[:60].decode("latin-1"))
def test_hostile_path_is_refused(raw: bytes) -> None:
    assert refused(raw)


@pytest.mark.parametrize(("raw", "forwarded"), GOOD_PATHS)
def test_plain_paths_are_accepted_and_forwarded_as_checked(raw: bytes, forwarded: str) -> None:
    checked = normalise_path(raw)
    assert Grant((PREFIX,), 2_000_000_000).covers(checked.decoded)
    assert checked.encoded == forwarded
    assert normalise_path(checked.encoded.encode()) == checked  # canonical form is a fixed point


def nginx_like_resolution(raw: bytes) -> str | None:
    """What nginx (merge_slashes on) makes of a path: decode %XX, then resolve '.', '..' and '//'."""
    import urllib.parse

    decoded = urllib.parse.unquote_to_bytes(raw).decode("latin-1")
    out: list[str] = []
    for segment in decoded.split("/")[1:]:
        if segment in ("", "."):
            continue
        if segment == "..":
            if not out:
                return None
            out.pop()
        else:
            out.append(segment)
    return "/" + "/".join(out)


@given(st.lists(st.sampled_from(["..", ".", "", "%2e%2e", "%2e", "title-9001", "x", "%2f", "a%2e"]), max_size=6))
def test_no_accepted_path_resolves_outside_the_prefix_under_nginx(tail: list[str]) -> None:
    raw = ("/vod/title-9000/" + "/".join(tail) + "/seg.ts").encode()
    if not refused(raw):
        resolved = nginx_like_resolution(normalise_path(raw).encoded.encode())
        assert resolved is not None and resolved.startswith(PREFIX)
