"""The segment relay (gateway/origin/relay.py) against an origin that writes raw bytes on 127.0.0.1: bounded
buffering, every body framing, broken bodies, connection reuse and its limits.

(Timeouts, refusals, the pool bound, the stale-connection retry, the exact request headers and the origin
header are tested through `OriginClient.send_stream` in test_client.py, which runs on this relay.)
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import os
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.config import OriginSettings
from gateway.errors import OriginBusy, OriginUnavailable
from gateway.origin import relay
from gateway.origin.relay import READ_BYTES, RelayPool
from gateway.origin.segment_stream import OriginStreamBroken

Respond = Callable[[bytes, asyncio.StreamWriter], Awaitable[None]]  # (request head, writer)


class RawOrigin:
    """Answers each request on each connection with `respond`; counts connections and keeps request heads."""

    def __init__(self, respond: Respond) -> None:
        self.respond = respond
        self.connections = 0
        self.heads: list[bytes] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                self.heads.append(head)
                await self.respond(head, writer)
                if writer.is_closing():
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def raw_origin(
    respond: Respond, tls: tuple[ssl.SSLContext, ssl.SSLContext] | None = None
) -> AsyncIterator[tuple[str, RawOrigin, RelayPool]]:
    """(base URL, the origin, a pool for it); with `tls` (server, client contexts) at https://localhost."""
    origin = RawOrigin(respond)
    server = await asyncio.start_server(origin.serve, "127.0.0.1", 0, ssl=tls[0] if tls else None)
    port = server.sockets[0].getsockname()[1]
    pool = RelayPool(OriginSettings(read_timeout_seconds=5), tls=tls[1] if tls else None)
    try:
        yield f"https://localhost:{port}/" if tls else f"http://127.0.0.1:{port}/", origin, pool
    finally:
        await pool.aclose()
        server.close()


def sized(body: bytes, *extra: str) -> Respond:
    async def respond(_: bytes, writer: asyncio.StreamWriter) -> None:
        head = "\r\n".join(["HTTP/1.1 200 OK", f"content-length: {len(body)}", *extra]) + "\r\n\r\n"
        writer.write(head.encode() + body)
        await writer.drain()
        if any(line.lower() == "connection: close" for line in extra):
            writer.close()

    return respond


async def read_all(pool: RelayPool, url: str) -> bytes:
    stream = await pool.open(url, {})
    try:
        return b"".join([chunk async for chunk in chunks(stream)])
    finally:
        await stream.aclose()


async def chunks(stream: relay.RelayStream) -> AsyncIterator[bytes]:
    while chunk := await stream.read():
        yield chunk


async def test_a_stream_whose_viewer_does_not_read_holds_at_most_256_kib() -> None:
    body = os.urandom(8 << 20)
    async with raw_origin(sized(body)) as (url, _, pool):
        stream = await pool.open(url + "seg.ts", {})
        await asyncio.sleep(0.5)  # the origin writes as fast as it can; the viewer takes nothing
        assert 0 < stream.buffered <= 256 * 1024
        received = hashlib.sha256()
        sizes = []
        while chunk := await stream.read():
            sizes.append(len(chunk))
            received.update(chunk)
            assert stream.buffered <= 256 * 1024
        await stream.aclose()
    assert received.digest() == hashlib.sha256(body).digest()
    assert max(sizes) <= 256 * 1024 and max(sizes) > READ_BYTES // 2  # what arrived is handed over at once


async def test_chunked_and_close_delimited_bodies_arrive_whole() -> None:
    body = os.urandom(300_000)

    async def chunked(_: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for start in range(0, len(body), 70_000):
            part = body[start : start + 70_000]
            writer.write(b"%x\r\n%s\r\n" % (len(part), part))
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async def until_close(_: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n" + body)
        await writer.drain()
        writer.close()

    for respond in (chunked, until_close):
        async with raw_origin(respond) as (url, _, pool):
            assert await read_all(pool, url + "seg.ts") == body


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_a_body_cut_short_breaks_the_stream(framing: str) -> None:
    async def respond(_: bytes, writer: asyncio.StreamWriter) -> None:
        if framing == "chunked":
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1000\r\n" + bytes(100))
        else:
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n" + bytes(500))
        await writer.drain()
        writer.close()

    async with raw_origin(respond) as (url, origin, pool):
        with pytest.raises(OriginStreamBroken, match="closed the connection"):
            await read_all(pool, url + "seg.ts")
        assert origin.connections == 1


async def test_connections_are_kept_alive_unless_the_origin_says_close() -> None:
    async with raw_origin(sized(b"x" * 1000)) as (url, origin, pool):
        for _ in range(5):
            assert await read_all(pool, url + "seg.ts") == b"x" * 1000
        assert origin.connections == 1
    async with raw_origin(sized(b"y", "connection: close")) as (url, origin, pool):
        for _ in range(3):
            assert await read_all(pool, url + "seg.ts") == b"y"
        assert origin.connections == 3


async def test_a_stream_closed_before_its_end_is_not_reused() -> None:
    async with raw_origin(sized(bytes(1 << 20))) as (url, origin, pool):
        stream = await pool.open(url + "seg.ts", {})
        assert await stream.read()
        await stream.aclose()  # the rest of the body is still on its way: that connection is done
        assert len(await read_all(pool, url + "seg.ts")) == 1 << 20
        assert origin.connections == 2


async def test_an_idle_connection_is_given_up_after_idle_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(relay, "IDLE_SECONDS", 0.1)
    async with raw_origin(sized(b"z")) as (url, origin, pool):
        await read_all(pool, url + "a.ts")
        await asyncio.sleep(0.2)
        await read_all(pool, url + "b.ts")
        assert origin.connections == 2


def tls_contexts(directory: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A self-signed certificate for localhost: the server's context, and a client's that trusts only it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    (directory / "cert.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(directory / "cert.pem", directory / "key.pem")
    return server, ssl.create_default_context(cafile=str(directory / "cert.pem"))


async def test_an_https_origin_is_relayed_and_an_untrusted_one_refused(tmp_path: Path) -> None:
    body = os.urandom(600_000)
    server, client = tls_contexts(tmp_path)
    async with raw_origin(sized(body), (server, client)) as (url, origin, pool):
        for _ in range(2):
            assert await read_all(pool, url + "seg.ts") == body
        assert origin.connections == 1
    async with raw_origin(sized(body), (server, ssl.create_default_context())) as (url, _, pool):
        with pytest.raises(OriginUnavailable, match="SSLCertVerificationError"):
            await pool.open(url + "seg.ts", {})


async def test_failed_requests_give_their_admission_back_exactly_once() -> None:
    release = asyncio.Event()

    async def respond(head: bytes, writer: asyncio.StreamWriter) -> None:
        if head.startswith(b"GET /dead"):  # nothing back, twice (the retry): unavailable
            writer.close()
            return
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n")
        await writer.drain()
        await release.wait()

    async with raw_origin(respond) as (url, _, _unused):
        pool = RelayPool(OriginSettings(segment_connections=1, pool_wait_seconds=0.2))
        for _ in range(3):
            with pytest.raises(OriginUnavailable):
                await pool.open(url + "dead.ts", {})
        held = await pool.open(url + "hold.ts", {})  # the only admission: the next open must wait for it
        with pytest.raises(OriginBusy):
            await pool.open(url + "hold.ts", {})
        release.set()
        await held.aclose()
        await pool.aclose()


async def test_a_target_with_unsafe_characters_is_percent_encoded() -> None:
    async with raw_origin(sized(b"k")) as (url, origin, pool):
        await read_all(pool, url + "vod/t/seg one\u00e9.ts?x=1 2")
        await read_all(pool, url + "vod/t/seg%20two.ts")
    first, second = (head.split(b"\r\n", 1)[0] for head in origin.heads)
    assert first == b"GET /vod/t/seg%20one%C3%A9.ts?x=1%202 HTTP/1.1"
    assert second == b"GET /vod/t/seg%20two.ts HTTP/1.1"  # already encoded: sent as is


async def test_a_header_value_with_a_line_break_is_never_sent() -> None:
    async with raw_origin(sized(b"k")) as (url, origin, pool):
        stream = await pool.open(url + "seg.ts", {"range": "bytes=0-1\r\nx-injected: 1", "if-none-match": '"v"'})
        await stream.aclose()
    assert b"x-injected" not in origin.heads[0] and b'if-none-match: "v"' in origin.heads[0]


async def test_a_malformed_answer_is_origin_unavailable() -> None:
    async def respond(_: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SMTP ready\r\n\r\n")
        await writer.drain()

    async with raw_origin(respond) as (url, _, pool):
        with pytest.raises(OriginUnavailable, match="malformed response"):
            await pool.open(url + "seg.ts?secret=1", {})


async def test_abort_ends_a_read_that_waits_for_a_silent_origin() -> None:
    release = asyncio.Event()

    async def respond(_: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n")
        await writer.drain()
        await release.wait()

    async with raw_origin(respond) as (url, _, pool):
        stream = await pool.open(url + "seg.ts", {})
        pending = asyncio.create_task(stream.read())
        await asyncio.sleep(0.05)
        stream.abort()
        with pytest.raises(OriginStreamBroken, match="viewer left"):
            await asyncio.wait_for(pending, 1)
        await stream.aclose()
        release.set()
