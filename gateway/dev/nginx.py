"""Run a real nginx with a given `http {}` block, for the benchmark (the nginx front, nginx as the baseline)
and the tests (tests/support/servers.py): one runner, so both run nginx the same way."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path


def find_nginx() -> str | None:
    """Debian puts nginx in /usr/sbin, often not on a user's PATH."""
    import shutil

    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/bin/nginx") if os.access(p, os.X_OK)), None
    )


@contextlib.contextmanager
def run_nginx(
    binary: str, http_block: str, workdir: Path, port: int, *, worker_connections: int = 64
) -> Iterator[Path]:
    """nginx (`binary`) running `http_block` (inside `http {}`), listening on `port`; yields its access log path."""
    for sub in ("logs", "tmp"):
        (workdir / sub).mkdir(parents=True, exist_ok=True)
    conf = workdir / "nginx.conf"
    temp = workdir / "tmp"
    user = "user root;" if os.geteuid() == 0 else ""  # workers must read pytest's 0700 temp dirs
    conf.write_text(
        f"""
{user}
daemon off; pid {workdir}/nginx.pid; error_log {workdir}/logs/error.log warn;
events {{ worker_connections {worker_connections}; }}
http {{
  include /etc/nginx/mime.types;
  access_log {workdir}/logs/access.log;
  client_body_temp_path {temp}/body; proxy_temp_path {temp}/proxy; fastcgi_temp_path {temp}/fcgi;
  uwsgi_temp_path {temp}/uwsgi; scgi_temp_path {temp}/scgi;
  {http_block}
}}
"""
    )
    stderr_path = workdir / "logs" / "stderr.log"
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen([binary, "-c", str(conf), "-p", str(workdir)], stderr=stderr)
    deadline = time.monotonic() + 10
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            break
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"nginx did not start: {stderr_path.read_text()}")
        time.sleep(0.05)
    try:
        yield workdir / "logs" / "access.log"
    finally:
        process.send_signal(signal.SIGQUIT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
