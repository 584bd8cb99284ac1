"""`gateway serve --workers 2` as an operator runs it: two worker processes answer on one port, a revocation
made through one reaches the other through a real Redis, and SIGTERM stops them all.

Which worker holds a connection is read from /proc (the worker whose file descriptors include the server
end of that TCP connection), so the gateway exposes nothing new for the test.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.tokens.grant import Grant, Scope
from gateway.tokens.keys import HmacKey, KeyRing, b64url_encode
from gateway.tokens.native import sign_grant
from tests.support.servers import redis_server, serve_subprocess, static_origin

SECRET = b"\x07" * 32
RING = KeyRing((HmacKey("k1", SECRET),))
KEYS = "k1:" + b64url_encode(SECRET)
SEGMENT = bytes(range(256)) * 64


def session_token(session_id: str) -> str:
    now = int(time.time())
    grant = Grant(("/vod/t/",), now + 600, session_id=session_id, session_ends_at=now + 3600, scope=Scope.ALL)
    return sign_grant(grant, RING)


def worker_pids(parent: int, expected: int) -> list[int]:
    """The worker processes uvicorn's supervisor started (not multiprocessing's resource tracker)."""
    deadline = time.monotonic() + 30
    while True:
        children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        workers = [int(pid) for pid in children if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]
        if len(workers) == expected or time.monotonic() > deadline:
            return workers
        time.sleep(0.1)


def server_socket_inode(server_port: int, client_port: int) -> int:
    """The inode of the server's end of the loopback TCP connection from `client_port`."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1].split(":")[1], fields[2].split(":")[1]
        if int(local, 16) == server_port and int(remote, 16) == client_port:
            return int(fields[9])
    raise AssertionError(f"no server socket for the connection from port {client_port}")


def owner(inode: int, workers: list[int]) -> int:
    target = f"socket:[{inode}]"
    for pid in workers:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                if os.readlink(fd) == target:
                    return pid
            except OSError:
                continue  # closed meanwhile
    raise AssertionError(f"no worker holds {target}")


def connections_to_each(port: int, workers: list[int]) -> dict[int, http.client.HTTPConnection]:
    """One kept-alive connection held by each worker (the kernel hands each new connection to one of them)."""
    held: dict[int, http.client.HTTPConnection] = {}
    for _ in range(200):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/_gateway/health")  # accepted and answered: the owner holds it now
        assert connection.getresponse().read() == b"ok\n"
        assert connection.sock is not None
        client_port = connection.sock.getsockname()[1]
        pid = owner(server_socket_inode(port, client_port), workers)
        if pid in held:
            connection.close()
        else:
            held[pid] = connection
        if len(held) == len(workers):
            return held
    raise AssertionError(f"200 connections all went to {sorted(held)} of workers {workers}")


def get(connection: http.client.HTTPConnection, target: str) -> tuple[int, bytes, str]:
    connection.request("GET", target)
    response = connection.getresponse()
    return response.status, response.read(), response.headers.get("x-token-denial", "")


@pytest.fixture
def origin(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "media" / "vod" / "t").mkdir(parents=True)
    (tmp_path / "media" / "vod" / "t" / "seg.ts").write_bytes(SEGMENT)
    with static_origin(tmp_path / "media") as (url, _):
        yield url


def stop(process: subprocess.Popen[bytes], workers: list[int], port: int) -> None:
    """SIGTERM to the parent stops every worker and the parent, cleanly (exit status 0)."""
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_two_workers_serve_one_port_and_stop_on_sigterm(origin: str, tmp_path: Path) -> None:
    config = f'[[routes]]\nmount = "/"\norigin = "{origin}"\n'
    args = ["--workers", "2", "--per-worker-revocations"]
    with serve_subprocess(config, tmp_path, KEYS, args) as (url, process):
        port = int(url.rsplit(":", 1)[1])
        workers = worker_pids(process.pid, 2)
        assert len(workers) == 2 and process.pid not in workers
        held = connections_to_each(port, workers)
        token = session_token("s-served")
        for connection in held.values():  # each worker serves the segment and says it is ready
            assert get(connection, f"/vod/t/seg.ts?token={token}")[:2] == (200, SEGMENT)
            status, body, _ = get(connection, "/_gateway/ready")
            assert status == 200 and json.loads(body) == {"ready": True}
            assert get(connection, "/vod/t/seg.ts")[0] == 401  # and judges tokens as one process does
            connection.close()
        stop(process, workers, port)
    log = (tmp_path / "serve.log").read_text()
    assert "workers: 2 worker processes" in log
    assert "WARNING gateway workers: revocations are PER WORKER" in log  # said at start-up, as a warning


def test_a_revocation_through_one_worker_reaches_the_other_through_redis(origin: str, tmp_path: Path) -> None:
    with redis_server(tmp_path / "redis") as redis_url:
        config = f'[revocations]\nredis_url = "{redis_url}"\n[[routes]]\nmount = "/"\norigin = "{origin}"\n'
        with serve_subprocess(config, tmp_path, KEYS, ["--workers", "2"]) as (url, process):
            port = int(url.rsplit(":", 1)[1])
            workers = worker_pids(process.pid, 2)
            held = connections_to_each(port, workers)
            token = session_token("s-revoked")
            segment = f"/vod/t/seg.ts?token={token}"
            for connection in held.values():
                assert get(connection, segment)[0] == 200
                assert json.loads(get(connection, "/_gateway/ready")[1]) == {"ready": True}  # in sync with Redis
            revoking, other = held[workers[0]], held[workers[1]]
            body = json.dumps({"token": token})
            revoking.request("DELETE", "/api/sessions/s-revoked", body, {"content-type": "application/json"})
            revoked = revoking.getresponse()
            assert (revoked.status, revoked.read()) == (204, b"")
            assert get(revoking, segment)[::2] == (403, "revoked")  # at once in the worker that revoked it
            deadline = time.monotonic() + 5
            while (answer := get(other, segment))[0] == 200 and time.monotonic() < deadline:
                time.sleep(0.1)  # the other worker learns it from Redis within its refresh (1 s)
            assert answer[::2] == (403, "revoked")
            for connection in held.values():
                connection.close()
            stop(process, workers, port)
    assert "workers: 2 worker processes, revocations shared through Redis" in (tmp_path / "serve.log").read_text()
