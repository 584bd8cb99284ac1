"""`python -m gateway serve` as operators run it: JSON log lines with request ids, the audit trail, metrics
summed over `--workers`, and `/metrics` on a port of its own."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from gateway.tokens.keys import b64url_encode
from tests.integration.test_workers import connections_to_each, get, worker_pids
from tests.support.servers import free_port, serve_subprocess, static_origin
from tests.telemetry.support import CATALOG_TOML, KEYS_ENV, MASTER, PAID, SECRET, origin_tree, scrape


def config(origin: str, extra: str = "") -> str:
    return f'[[routes]]\nmount = "/vod/"\norigin = "{origin}vod/"\n{CATALOG_TOML}{extra}'


def test_json_logs_carry_request_ids_and_the_audit_trail_carries_no_secret(tmp_path: Path) -> None:
    with (
        static_origin(origin_tree(tmp_path / "origin")) as (origin, _),
        serve_subprocess(config(origin, '[logging]\nformat = "json"\n'), tmp_path, KEYS_ENV) as (base, _process),
    ):
        created = httpx.post(f"{base}/api/sessions", json={"asset": MASTER}, headers=PAID)
        session = created.json()
        refreshed = httpx.post(f"{base}{session['refresh_url']}", json={"token": session["token"]})
        denied = httpx.get(f"{base}/vod/t/seg0.ts?token=x{session['token']}")
        played = httpx.get(f"{base}{session['playback_url']}")
    assert (created.status_code, refreshed.status_code, denied.status_code, played.status_code) == (201, 200, 403, 200)
    text = (tmp_path / "serve.log").read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]  # every line is one JSON object
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)

    audit = [line for line in lines if line["logger"] == "gateway.audit"]
    assert [line["event"] for line in audit] == ["token_issued", "token_renewed"]
    for line, answer in zip(audit, (created, refreshed), strict=True):
        body = answer.json()
        assert line["user"] == "u-paid" and line["session"] == session["session_id"]
        assert line["title_prefix"] == "/vod/t/" and line["client_network"] == "127.0.0.0/24"
        assert line["expires_at"] == body["expires_at"] and line["key_id"] == "k-audit"
        assert line["request_id"] == answer.headers["x-request-id"]
    # What a log reader must never get: a token (issued or renewed) or the signing key.
    for secret in (session["token"], refreshed.json()["token"], b64url_encode(SECRET), KEYS_ENV):
        assert secret not in text

    denial = next(line for line in lines if line.get("event") == "denied")
    assert denial["reason"] == "malformed", denial  # an "x" in front: no token version we know
    assert denial["request_id"] == denied.headers["x-request-id"] == denied.json()["request_id"]


def test_workers_metrics_are_the_sum_over_every_worker(tmp_path: Path) -> None:
    with (
        static_origin(origin_tree(tmp_path / "origin")) as (origin, _),
        serve_subprocess(config(origin), tmp_path, KEYS_ENV, ["--workers", "2", "--per-worker-revocations"]) as (
            base,
            process,
        ),
    ):
        port = int(base.rsplit(":", 1)[1])
        workers = worker_pids(process.pid, 2)
        held = connections_to_each(port, workers)
        first, second = (held[pid] for pid in workers)
        for connection, count in ((first, 3), (second, 2)):
            for _ in range(count):
                assert get(connection, "/vod/t/seg0.ts")[0] == 401  # a denial, counted by the worker that saw it
        scrapes = []
        for connection in (first, second):
            status, body, _ = get(connection, "/metrics")
            assert status == 200
            scrapes.append(body.decode())
            connection.close()
    for text in scrapes:  # either worker answers for both
        assert 'gateway_denials_total{reason="missing"} 5.0' in text, text
        assert 'gateway_requests_total{kind="segment",status="401"} 5.0' in text


def test_metrics_on_a_port_of_their_own(tmp_path: Path) -> None:
    metrics_port = free_port()
    extra = f"[metrics]\nport = {metrics_port}\n"
    with (
        static_origin(origin_tree(tmp_path / "origin")) as (origin, _),
        serve_subprocess(config(origin, extra), tmp_path, KEYS_ENV) as (base, _process),
    ):
        assert httpx.get(f"{base}/vod/t/seg0.ts").status_code == 401
        assert httpx.get(f"{base}/metrics").status_code == 404  # not beside the gateway's routes
        samples = scrape(f"http://127.0.0.1:{metrics_port}/metrics")
    assert samples[("gateway_denials_total", (("reason", "missing"),))] == 1
    assert "metrics on http://127.0.0.1:" in (tmp_path / "serve.log").read_text()
