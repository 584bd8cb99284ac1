"""A TCP proxy on 127.0.0.1 for tests against Redis: counts the bytes each way, and can turn into a black hole.

`hang()` makes it behave like a stuck Redis: connections are still accepted and whatever is sent is read,
but nothing is forwarded and nothing ever comes back, so the client waits until its socket timeout. With
no upstream at all it is a black hole from the start.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from collections.abc import Iterator


class TcpProxy:
    def __init__(self, upstream: tuple[str, int] | None) -> None:
        self.upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = {self._listener}
        self._hung = threading.Event() if upstream else _set_event()
        self._closed = False
        self.bytes_up = 0  # client -> Redis
        self.bytes_down = 0  # Redis -> client
        self.connections = 0
        self._threads: list[threading.Thread] = []
        self._accepter = threading.Thread(target=self._accept_loop, name="tcp-proxy-accept", daemon=True)
        self._accepter.start()

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    @property
    def bytes_total(self) -> int:
        with self._lock:
            return self.bytes_up + self.bytes_down

    def hang(self) -> None:
        """From now on nothing is forwarded either way, on open connections and new ones alike."""
        self._hung.set()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            sockets = list(self._sockets)
        for sock in sockets:  # EOF for every pump's select(), EINVAL for accept(): each thread ends itself
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._accepter.join(timeout=5)
        for thread in self._threads:
            thread.join(timeout=5)
        for sock in sockets:
            sock.close()

    def _track(self, sock: socket.socket) -> bool:
        with self._lock:
            if self._closed:
                sock.close()
                return False
            self._sockets.add(sock)
            return True

    def _accept_loop(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            if not self._track(client):
                return
            with self._lock:
                self.connections += 1
            thread = threading.Thread(target=self._pump, args=(client,), name="tcp-proxy-pump", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _pump(self, client: socket.socket) -> None:
        server: socket.socket | None = None
        if self.upstream is not None and not self._hung.is_set():
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                return
            if not self._track(server):
                client.close()
                return
        peers = {client: server}
        if server is not None:
            peers[server] = client
        with selectors.DefaultSelector() as selector:
            for sock in peers:
                selector.register(sock, selectors.EVENT_READ)
            while True:
                # No timeout needed: close() shuts every socket down, which makes them readable (EOF).
                for key, _ in selector.select():
                    ready = key.fileobj
                    assert isinstance(ready, socket.socket)
                    sock = ready
                    try:
                        data = sock.recv(65536)
                    except OSError:
                        data = b""
                    if not data:
                        for peer in peers:
                            peer.close()
                        return
                    if self._hung.is_set():
                        continue  # read and dropped: the client sees a server that never answers
                    target = peers[sock]
                    assert target is not None
                    with self._lock:
                        if sock is client:
                            self.bytes_up += len(data)
                        else:
                            self.bytes_down += len(data)
                    try:
                        target.sendall(data)
                    except OSError:
                        for peer in peers:
                            peer.close()
                        return


def _set_event() -> threading.Event:
    event = threading.Event()
    event.set()
    return event


@contextlib.contextmanager
def tcp_proxy(upstream_url: str | None) -> Iterator[TcpProxy]:
    """A proxy to the Redis at `upstream_url` (redis://127.0.0.1:PORT/…), or a black hole if None."""
    upstream = None
    if upstream_url is not None:
        host_port = upstream_url.split("//", 1)[1].split("/", 1)[0]
        host, port = host_port.rsplit(":", 1)
        upstream = (host, int(port))
    proxy = TcpProxy(upstream)
    try:
        yield proxy
    finally:
        proxy.close()
