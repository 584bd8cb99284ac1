"""The command line, run as users run it: `python -m gateway …` in a subprocess."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.config import load_settings
from gateway.errors import ConfigError
from tests.support.origin_tree import TITLE, build_origin_tree
from tests.support.servers import free_port, serve_app, static_origin

KEY = "k1:" + "A" * 43


def gateway(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "GATEWAY_KEYS": KEY, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        check=False,
    )


def wait_for_port(port: int, process: subprocess.Popen[str], seconds: float = 20) -> None:
    """Until the gateway `process` accepts connections on 127.0.0.1:`port` (it must not exit first)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            assert process.poll() is None and time.monotonic() < deadline, "the gateway did not start"
            time.sleep(0.05)


def token(*args: str) -> str:
    result = gateway("sign", "--path-prefix", TITLE, "--ttl", "600", *args)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_keys_new_prints_a_usable_ring_entry() -> None:
    entry = gateway("keys", "new", "--kid", "k7").stdout.strip()
    assert entry.startswith("k7:") and len(entry) == 3 + 43
    ed = gateway("keys", "new", "--alg", "ed25519").stdout.strip()
    assert ":ed25519:" in ed
    assert gateway("sign", "--path-prefix", TITLE, "--ttl", "60", env={"GATEWAY_KEYS": ed}).returncode == 0


def test_verify_explains_allow_and_deny_with_exit_status() -> None:
    signed = token("--ip", "2001:db8::/64", "--session", "s-1")
    url = f"http://gw.example{TITLE}v1/seg.ts?token={signed}"
    allowed = gateway("verify", url, "--ip", "2001:db8::7")
    assert allowed.returncode == 0 and allowed.stdout.startswith("ALLOW") and "session_id = s-1" in allowed.stdout
    wrong_ip = gateway("verify", url, "--ip", "2001:db9::7")
    assert (
        wrong_ip.returncode == 1
        and wrong_ip.stdout.startswith("DENY ip:")
        and "client_ip = 2001:db9::7" in wrong_ip.stdout
    )
    sibling = gateway("verify", url.replace("title-9000", "title-90001"), "--ip", "2001:db8::7")
    assert sibling.stdout.startswith("DENY acl:")
    later = gateway("verify", url, "--ip", "2001:db8::7", "--now", str(time.time() + 3600))
    assert later.stdout.startswith("DENY expired:") and "expires_at =" in later.stdout
    forged = gateway("verify", url, env={"GATEWAY_KEYS": "k1:" + "B" * 42 + "A"})  # another (canonical) secret
    assert forged.stdout.startswith("DENY bad_signature")
    missing = gateway("verify", f"http://gw.example{TITLE}v1/seg.ts")
    assert missing.returncode == 1 and missing.stdout.startswith("DENY missing")


def test_bad_configuration_fails_fast_naming_the_setting(tmp_path: Path) -> None:
    short = gateway("sign", "--path-prefix", TITLE, "--ttl", "60", env={"GATEWAY_KEYS": "k1:c2hvcnQ"})
    assert short.returncode == 2 and "GATEWAY_KEYS" in short.stderr and "16" in short.stderr
    assert "c2hvcnQ" not in short.stderr  # the secret itself is never echoed
    bad_prefix = gateway("sign", "--path-prefix", "/vod/../x/", "--ttl", "60")
    assert bad_prefix.returncode == 2 and "prefix" in bad_prefix.stderr
    config = tmp_path / "gw.toml"
    config.write_text('[gateway]\nleeway_seconds = "soon"\n[[routes]]\nmount = "/"\norigin = "http://127.0.0.1:1/"\n')
    with pytest.raises(ConfigError, match="leeway_seconds"):
        load_settings(config, {"GATEWAY_KEYS": KEY})
    with pytest.raises(ConfigError, match="GATEWAY_KEYS"):
        load_settings(config, {})


def test_config_file_and_environment(tmp_path: Path) -> None:
    config = tmp_path / "gw.toml"
    config.write_text(
        '[keys]\nring = "k1:' + "C" * 42 + "A" + '"\n[gateway]\ntoken_param = "t"\n[sessions]\nmedia_ttl_seconds = 30\n'
        '[[routes]]\nmount = "/vod/"\norigin = "http://127.0.0.1:1/vod/"\ndelivery = "cookie"\n'
    )
    settings = load_settings(config, {"GATEWAY_TOKEN_PARAM": "tok"})
    assert settings.token_param == "tok"  # the environment wins over the file
    assert settings.sessions.media_ttl_seconds == 30 and settings.routes[0].delivery == "cookie"
    assert settings.keys.signing_key.key_id == "k1"


Served = tuple[str, dict[str, bytes], "subprocess.Popen[str]"]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with static_origin(tmp_path) as (origin, _):
        files = build_origin_tree(tmp_path, origin)
        port = free_port()
        env = {**os.environ, "GATEWAY_KEYS": KEY}
        process = subprocess.Popen(
            # user-info in the origin URL is a secret: the start-up line must not show it
            [
                sys.executable,
                "-m",
                "gateway",
                "serve",
                "--origin",
                origin.replace("//", "//ops:s3cret@"),
                "--port",
                str(port),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for_port(port, process)
        try:
            yield f"http://127.0.0.1:{port}", files, process
        finally:
            if process.poll() is None:
                process.terminate()
                process.communicate(timeout=10)


def test_serve_and_sign_protect_an_hls_origin(served: Served) -> None:
    url, files, process = served
    signed = token()
    master = httpx.get(f"{url}{TITLE}master.m3u8?token={signed}")
    assert master.status_code == 200 and f"v1/index.m3u8?token={signed}" in master.text
    segment = httpx.get(f"{url}{TITLE}v1/seg_000.m4s?token={signed}")
    assert segment.content == files[TITLE + "v1/seg_000.m4s"]
    assert httpx.get(f"{url}{TITLE}v1/seg_000.m4s").status_code == 401
    assert httpx.get(f"{url}/vod/other/x.ts?token={signed}").json()["error"] == "acl"
    process.terminate()
    _, log = process.communicate(timeout=10)
    assert "denied reason=acl" in log and "denied reason=missing" in log  # refusals are logged with reasons
    assert signed not in log  # but never the token itself
    start_lines = [line for line in log.splitlines() if "gateway listening on" in line]
    assert len(start_lines) == 1  # one start-up line: address, routes with origin and mode, key ids
    assert re.search(rf"listening on {url} \| routes: / -> http://127\.0\.0\.1:\d+/ \(query\)", start_lines[0])
    assert "keys: k1 (signs)" in start_lines[0]
    assert "s3cret" not in log and KEY.split(":", 1)[1] not in log  # never a secret


def test_demo_takes_token_lifetimes_and_says_what_it_runs(tmp_path: Path) -> None:
    help_text = " ".join(gateway("demo", "--help").stdout.split())  # argparse wraps to the terminal
    assert "demo origin" in help_text and "PORT + 1" in help_text  # where the origin listens
    port = free_port()
    args = ["demo", "--port", str(port), "--state-dir", str(tmp_path), "--token-ttl", "20", "--media-ttl", "7"]
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", *args, "--max-life", "300"],
        env={**os.environ, "GATEWAY_KEYS": KEY},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_port(port, process)
        before = time.time()
        created = httpx.post(
            f"http://127.0.0.1:{port}/api/sessions",
            json={"asset": "/vod/title-9000/master.m3u8"},
            headers={"authorization": "Bearer demo-paid"},
        )
        session = created.json()
        assert created.status_code == 201, session
        assert before + 19 <= session["expires_at"] <= time.time() + 21  # --token-ttl
        assert before + 299 <= session["session_ends_at"] <= time.time() + 301  # --max-life
    finally:
        process.terminate()
        out, log = process.communicate(timeout=10)
    assert f"origin on 127.0.0.1:{port + 1}" in out
    start = next(line for line in log.splitlines() if "gateway listening on" in line)
    assert f"http://127.0.0.1:{port}" in start and f"/vod/ -> http://127.0.0.1:{port + 1}/vod/ (query)" in start
    assert "session 20 s, media 7 s" in start and "cap 300 s" in start
    assert KEY.split(":", 1)[1] not in log


def test_demo_refuses_lifetimes_that_cannot_work(tmp_path: Path) -> None:
    result = gateway("demo", "--state-dir", str(tmp_path), "--media-ttl", "0")
    assert result.returncode == 2 and "positive" in result.stderr
    result = gateway("demo", "--state-dir", str(tmp_path), "--token-ttl", "600", "--max-life", "300")
    assert result.returncode == 2 and "token_ttl_seconds <= max_life_seconds" in result.stderr


def test_serve_never_takes_the_client_address_from_a_direct_clients_header(served: Served) -> None:
    """uvicorn's own proxy_headers trusts X-Forwarded-For from 127.0.0.1 by default; `serve` turns it off."""
    url, _, _ = served
    segment = f"{url}{TITLE}v1/seg_000.m4s?token="
    forged = httpx.get(segment + token("--ip", "203.0.113.66"), headers={"x-forwarded-for": "203.0.113.66"})
    assert forged.status_code == 403 and forged.json()["error"] == "ip"
    own = httpx.get(segment + token("--ip", "127.0.0.1"), headers={"x-forwarded-for": "203.0.113.66"})
    assert own.status_code == 200


BENCH_FIGURES = {
    "render_over_copy",
    "render_over_copy_glibc_defaults",
    "prepare_over_copy",
    "prepare_us_per_line",
    "verify_cold_over_hmac",
    "verify_cached_over_hmac",
    "path_normalisation_over_hmac",
    "playlist_over_unmodified_stack",
    "media_token_chars_ipv6",
    "playlist_token_chars_ipv4",
    "playlist_growth_offline",
    "playlist_10k_over_unmodified_stack",
    "token_chars",
    "playlist_growth",
    "segment_via_front_files_over_nginx",
    "segment_via_front_over_nginx",
    "segment_via_front_per_request_verdict_over_nginx",
    "segment_via_python_over_nginx",
    "workers_speedup",
}


def test_bench_json_names_every_figure_as_a_ratio_against_a_baseline_from_the_same_run() -> None:
    result = gateway("bench", "--quick", "--json", timeout=240)  # it starts nginx, servers and workers
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)  # nothing else on stdout
    figures = report["figures"]
    assert set(figures) >= BENCH_FIGURES and report["skipped"] == {}, result.stdout  # nginx and wrk are here
    for name, figure in figures.items():
        expected = figure["measured"] if figure["baseline"] is None else figure["measured"] / figure["baseline"]
        assert figure["measured"] > 0 and figure["ratio"] == pytest.approx(expected, rel=1e-3), name
    assert 16 <= figures["token_chars"]["ratio"] <= 200  # a session token's characters, as the session API hands it
    assert figures["playlist_growth"]["ratio"] > 1  # tokens were written into the served playlist
    assert report["load_generator"] == "wrk"


def test_bench_prints_ratios_and_takes_only_some_parts() -> None:
    result = gateway("bench", "--quick", "--only", "micro")
    assert result.returncode == 0, result.stderr[-2000:]
    ratios = re.findall(r"^(.+?) / (.+?)\s+=\s+([0-9.]+)x$", result.stdout, re.M)
    assert len(ratios) == 10 and all(float(ratio) > 0 for _, _, ratio in ratios), result.stdout
    refused = gateway("bench", "--only", "micro,nothing")
    assert refused.returncode == 2 and "micro, playlist, front, workers" in refused.stderr


# --- `verify` judges a URL exactly as `serve` with the same config would (issue 9.8) ---------------------------


def signed(*args: str) -> str:
    result = gateway("sign", "--path-prefix", TITLE, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_verify_gives_the_reason_serve_answers(served: Served) -> None:
    url, _, _ = served
    refused = {
        "scope": f"{url}{TITLE}master.m3u8?token={signed('--ttl', '600', '--scope', 'media')}",
        "acl": f"{url}/vod/title-90001/v1/seg_000.m4s?token={signed('--ttl', '600')}",
        "expired": f"{url}{TITLE}v1/seg_000.m4s?token={signed('--ttl', '-100')}",
        "missing": f"{url}{TITLE}v1/seg_000.m4s?tok={signed('--ttl', '600')}",
    }
    for reason, target in refused.items():
        assert httpx.get(target).json()["error"] == reason
        judged = gateway("verify", target, "--ip", "127.0.0.1")
        assert judged.returncode == 1 and judged.stdout.startswith(f"DENY {reason}:"), (reason, judged.stdout)
    allowed = {
        f"{url}{TITLE}v1/seg_000.m4s?token={signed('--ttl', '600', '--scope', 'media')}": f"{TITLE}v1/seg_000.m4s",
        f"{url}/t/{signed('--ttl', '600')}{TITLE}master.m3u8": f"{TITLE}master.m3u8",  # a path token
    }
    for target, resource in allowed.items():
        assert httpx.get(target).status_code == 200
        judged = gateway("verify", target, "--ip", "127.0.0.1")
        assert judged.returncode == 0 and judged.stdout.startswith(f"ALLOW {resource}\n"), judged.stdout
        assert "route = / (query)" in judged.stdout


AKAMAI = {"key": "aabbccddeeff00112233445566778899", "token_name": "hdnts", "token_type": "acl"}


def routed_config(tmp_path: Path, origin: str, extra: str = "") -> Path:
    """A config with a query route (token parameter `t`), a dialect-edge route (Akamai) and what `extra` adds."""
    config = tmp_path / "gw.toml"
    config.write_text(
        f'[keys]\nring = "{KEY}"\n[gateway]\ntoken_param = "t"\n'
        f'[[routes]]\nmount = "/vod/"\norigin = "{origin}vod/"\n'
        f'[[routes]]\nmount = "/edge/"\norigin = "{origin}vod/"\nedge = "akamai"\n'
        "[dialects.akamai]\n" + "".join(f'{name} = "{value}"\n' for name, value in AKAMAI.items()) + extra
    )
    return config


def test_verify_reads_the_routes_token_parameter_and_dialect_edges_serve_runs_with(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gateway.cli import main as cli_main
    from gateway.http.app import build_app
    from gateway.tokens.dialects import load_dialect
    from gateway.tokens.grant import Grant

    with static_origin(tmp_path) as (origin, _):
        build_origin_tree(tmp_path, origin)
        config = routed_config(tmp_path, origin)
        ours = signed("--ttl", "600")
        edge_prefix = "/edge/" + TITLE.removeprefix("/vod/")
        akamai = load_dialect("akamai", AKAMAI, base_dir=tmp_path)
        query = akamai.sign(Grant((edge_prefix,), int(time.time()) + 600)).query_string()
        cases = {
            f"{TITLE}v1/seg_000.m4s?t={ours}": "ALLOW",  # the configured token parameter
            f"{TITLE}v1/seg_000.m4s?token={ours}": "DENY missing",
            f"/elsewhere/x.ts?t={ours}": "DENY no_route",
            f"{edge_prefix}v1/seg_000.m4s?{query}": "ALLOW",  # the dialect's own credential on its edge route
            f"{edge_prefix}v1/seg_000.m4s?{query[:-4]}0000": "DENY bad_signature",
            f"{edge_prefix}v1/seg_000.m4s?t={ours}": "DENY missing",  # our token opens no dialect-edge route
        }
        with serve_app(build_app(load_settings(config, {}))) as served:  # serve, on a real uvicorn
            for target, expected in cases.items():
                answer = httpx.get(served + target)
                status = cli_main(["verify", f"http://gw.test{target}", "--config", str(config)])
                out = capsys.readouterr().out
                assert out.startswith(expected), (target, out)
                if expected == "ALLOW":
                    assert status == 0 and answer.status_code == 200, (target, answer.text)
                else:
                    assert status == 1 and answer.json()["error"] == expected.removeprefix("DENY "), target
        assert cli_main(["verify", f"http://gw.test{edge_prefix}master.m3u8?{query}", "--config", str(config)]) == 0
        assert "route = /edge/ (edge: akamai)" in capsys.readouterr().out


def test_verify_sees_the_revocations_serve_shares_through_redis(tmp_path: Path) -> None:
    from gateway.sessions.revocations import RedisRevocations
    from tests.support.servers import redis_server

    (tmp_path / "redis").mkdir()
    with redis_server(tmp_path / "redis") as redis_url:
        config = routed_config(tmp_path, "http://127.0.0.1:1/", f'[revocations]\nredis_url = "{redis_url}"\n')
        url = f"http://gw.test{TITLE}v1/seg_000.m4s?t={signed('--ttl', '600', '--session', 's-42')}"
        assert gateway("verify", url, "--config", str(config)).stdout.startswith("ALLOW")
        store = RedisRevocations(redis_url)
        store.revoke("s-42", until=time.time() + 600)  # what DELETE /api/sessions/s-42 does on any instance
        store.close()
        judged = gateway("verify", url, "--config", str(config))
        assert judged.returncode == 1 and judged.stdout.startswith("DENY revoked: session s-42 was revoked")


def test_cat_signs_method_headers_and_catu_matches_and_verify_judges_them(tmp_path: Path) -> None:
    # Issue 11.4: `sign --dialect cat --method/--sign-header` bind catm/cath, [dialects.cat.catu] adds port,
    # query and extension matches; `verify --dialect cat --method` judges the request as the edge would.
    config = tmp_path / "gateway.toml"
    config.write_text(
        '[dialects.cat]\nissuer = "gateway.example"\nhost = "cdn.example.com"\n'
        '[dialects.cat.catu]\nport = "8443"\nquery = "lang=en"\nextension = ".ts"\n'
        '[[dialects.cat.keys]]\nkid = "Symmetric256"\nsecret = "' + "ab" * 32 + '"\n'
    )
    signed = gateway(
        "sign", "--dialect", "cat", "--config", str(config), "--path-prefix", "/vod/movie1/", "--ttl", "600",
        "--start", "now", "--method", "get", "--sign-header", "X-Device: tv-1",
    )  # fmt: skip
    assert signed.returncode == 0, signed.stderr
    token = signed.stdout.strip().splitlines()[-1]
    url = "https://cdn.example.com:8443/vod/movie1/seg_001.ts?lang=en"
    sent = ["--header", f"CTA-Common-Access-Token: {token}", "--header", "X-Device: tv-1"]
    for target, method, headers, expected in [
        (url, "GET", sent, "ALLOW"),
        (url, "HEAD", sent, "DENY scope: method HEAD not in catm ['GET']"),
        (url, "GET", sent[:2], "DENY scope: request header X-Device"),
        (url.replace(":8443", ":443"), "GET", sent, "DENY acl: port '443'"),
        (url.replace(".ts", ".m3u8"), "GET", sent, "DENY acl: extension '.m3u8'"),
    ]:
        judged = gateway("verify", target, "--dialect", "cat", "--config", str(config), "--method", method, *headers)
        assert judged.stdout.startswith(expected), (target, method, judged.stdout, judged.stderr)


def test_sign_options_and_verify_method_for_akamai_cloudfront_nginx(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sign --dialect` with --start/--window/--session/--resource, and `verify --dialect --method`, on paths
    that need escaping (typed raw, as an operator pastes them); what a dialect cannot express is refused."""
    from gateway.cli import main as cli_main
    from tests.tokens.dialects.dialect_helpers import RSA_PEM

    config = tmp_path / "gw.toml"
    config.write_text(
        '[dialects.akamai]\nkey = "aabbccddeeff00112233445566778899"\ntoken_name = "hdnts"\n'
        '[dialects.cloudfront]\nbase_url = "https://cdn.example.com"\n'
        f'[[dialects.cloudfront.keys]]\nid = "K2JCJMDEHXQW5F"\nprivate_key_file = "{RSA_PEM}"\n'
        '[dialects.nginx_secure_link]\nsecret = "s"\n'
    )

    def run(*argv: str) -> tuple[int, list[str]]:
        status = cli_main([*argv, "--config", str(config)])
        return status, capsys.readouterr().out.splitlines()

    status, out = run(
        "sign", "--dialect", "akamai", "--path-prefix", "/vod/café/", "--start", "now", "--window", "300",
        "--session", "s-1", "--resource", "/vod/café/*", "--resource", "/vod/t?/*.ts",
    )  # fmt: skip
    token = out[-1]
    start = int(token.split("st=")[1].split("~")[0])
    assert status == 0 and abs(start - time.time()) < 5
    assert f"~exp={start + 300}~acl=/vod/caf%C3%A9/*!/vod/t?/*.ts~id=s-1~hmac=" in token
    for path, expected in (("/vod/café/a/b.ts", "ALLOW"), ("/vod/t1/x.ts", "ALLOW"), ("/vod/t12/x.ts", "DENY acl")):
        status, out = run("verify", "--dialect", "akamai", "--method", "HEAD", f"http://cdn{path}?hdnts={token}")
        assert out[0].startswith(expected), out

    status, out = run(
        "sign", "--dialect", "cloudfront", "--path-prefix", "/vod/", "--ttl", "60", "--start", "now",
        "--resource", "http*://cdn.example.com/vod/café x/*", "--url", "https://cdn.example.com/vod/café x/a.ts",
    )  # fmt: skip
    assert status == 0 and out[-1].startswith("https://cdn.example.com/vod/caf%C3%A9%20x/a.ts?Policy=")
    assert run("verify", "--dialect", "cloudfront", out[-1])[1][0].startswith("ALLOW /vod/caf%C3%A9%20x/a.ts")

    for argv in (("--resource", "/vod/*"), ("--method", "GET"), ("--start", "now")):
        status, _ = run("sign", "--dialect", "nginx_secure_link", "--path-prefix", "/v/", "--ttl", "9", *argv)
        assert status == 2  # unsupported_grant: refused, never dropped
