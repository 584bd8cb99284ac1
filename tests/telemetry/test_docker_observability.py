"""docker/: the image's HEALTHCHECK works against a real gateway, and the compose stack's Prometheus scrapes
both instances with alert rules that promtool accepts and that fire on the series they are written for.

(No Docker engine runs on the CI machines: the files are checked, and their commands run, here.)
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx

from gateway.http.app import build_app
from tests.support.paths import REPO
from tests.support.servers import free_port, require_tool, serve_app, static_origin
from tests.telemetry.support import gateway_settings, origin_tree

DOCKER = REPO / "docker"


def test_the_image_healthcheck_is_liveness_on_healthz(tmp_path: Path) -> None:
    dockerfile = (DOCKER / "Dockerfile").read_text()
    found = re.search(r'^HEALTHCHECK .*\\\n\s+CMD \["python", "-c", "(.+?)"\]$', dockerfile, re.MULTILINE)
    assert found is not None and "127.0.0.1:8000/healthz" in found.group(1)

    def healthcheck(port: int) -> int:
        code = found.group(1).replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        return subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30).returncode

    dead_origin = f"http://127.0.0.1:{free_port()}/"
    with serve_app(build_app(gateway_settings(dead_origin))) as url:  # alive, though its origin is not
        assert healthcheck(int(url.rsplit(":", 1)[1])) == 0
    assert healthcheck(free_port()) == 1


def test_compose_runs_prometheus_on_both_instances_with_the_rules() -> None:
    compose = (DOCKER / "compose.yaml").read_text()
    service = compose.split("\n  prometheus:", 1)[1].split("\n  edge:", 1)[0]
    assert "./prometheus.yml:/etc/prometheus/prometheus.yml:ro" in service
    assert "./alerts.yml:/etc/prometheus/alerts.yml:ro" in service
    config = (DOCKER / "prometheus.yml").read_text()
    targets = re.search(r"targets: \[(.+)\]", config)
    assert targets is not None
    instances = sorted(t.strip().strip('"') for t in targets.group(1).split(","))
    assert instances == ["gateway-a:8000", "gateway-b:8000"]
    for name in ("gateway-a", "gateway-b"):  # services of the stack, listening where Prometheus looks
        assert re.search(rf"^  {name}:", compose, re.MULTILINE)
    assert '"--port", "8000"' in compose and "metrics_path: /metrics" in config and "- alerts.yml" in config


def test_promtool_accepts_the_config_and_the_rules() -> None:
    promtool = require_tool("promtool")
    checked = subprocess.run(
        [promtool, "check", "config", "prometheus.yml"], cwd=DOCKER, capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 5 rules found" in checked.stdout


def test_the_alerts_fire_on_the_series_they_are_written_for(tmp_path: Path) -> None:
    """promtool's rule unit tests: a denial spike of one reason, origin errors and stream-limit refusals fire
    (with the label that says which); steady traffic with few denials fires nothing."""
    promtool = require_tool("promtool")
    tests = tmp_path / "alerts_test.yml"
    tests.write_text(
        textwrap.dedent(
            f"""\
            rule_files: ["{DOCKER / "alerts.yml"}"]
            evaluation_interval: 1m
            tests:
              - interval: 1m
                input_series:
                  - series: 'gateway_requests_total{{instance="a",kind="segment",status="200"}}'
                    values: '0+600x30'
                  - series: 'gateway_denials_total{{instance="a",reason="expired"}}'
                    values: '0+120x30'
                  - series: 'gateway_denials_total{{instance="a",reason="missing"}}'
                    values: '0+1x30'
                  - series: 'gateway_origin_errors_total{{instance="a",kind="origin_timeout"}}'
                    values: '0+60x30'
                  - series: 'gateway_stream_limit_refusals_total{{instance="a"}}'
                    values: '0+30x30'
                alert_rule_test:
                  - eval_time: 20m
                    alertname: GatewayDenialSpike
                    exp_alerts:
                      - exp_labels: {{severity: warn, reason: expired}}
                        exp_annotations:
                          summary: "expired denials are 2/s, over 5% of all requests"
                  - eval_time: 20m
                    alertname: GatewayOriginErrors
                    exp_alerts:
                      - exp_labels: {{severity: page, kind: origin_timeout}}
                        exp_annotations:
                          summary: "origin errors (origin_timeout) at 1/s"
                  - eval_time: 25m
                    alertname: GatewayStreamLimitRefusals
                    exp_alerts:
                      - exp_labels: {{severity: warn}}
                        exp_annotations:
                          summary: "0.50 stream-limit refusals/s over 10 minutes"
              - interval: 1m
                input_series:
                  - series: 'gateway_requests_total{{instance="a",kind="segment",status="200"}}'
                    values: '0+600x30'
                  - series: 'gateway_denials_total{{instance="a",reason="expired"}}'
                    values: '0+6x30'
                alert_rule_test:
                  - eval_time: 20m
                    alertname: GatewayDenialSpike
                    exp_alerts: []
                  - eval_time: 20m
                    alertname: GatewayOriginErrors
                    exp_alerts: []
            """
        )
    )
    result = subprocess.run([promtool, "test", "rules", str(tests)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_rules_use_metrics_the_gateway_exposes(tmp_path: Path) -> None:
    """Every gateway_* series the rules read is one a running gateway exposes (the stream-limit counter is
    the stream limiter's, issue 14.1, registered in the same default registry when that code is present)."""
    rules = (DOCKER / "alerts.yml").read_text()
    used = {name.removesuffix("_bucket") for name in re.findall(r"\bgateway_\w+", rules)}
    with static_origin(origin_tree(tmp_path)) as (origin, _), serve_app(build_app(gateway_settings(origin))) as base:
        text = httpx.get(f"{base}/metrics").text
    typed = dict(re.findall(r"^# TYPE (\w+) (\w+)$", text, re.MULTILINE))  # a histogram's series add suffixes
    assert {"gateway_denials_total", "gateway_origin_request_seconds"} <= used
    assert used - typed.keys() <= {"gateway_stream_limit_refusals_total"}, used - typed.keys()
    assert typed["gateway_origin_request_seconds"] == "histogram" and typed["gateway_denials_total"] == "counter"
