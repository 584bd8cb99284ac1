"""`gateway audit --config FILE [--url URL]`: the hardening checklist, for a config and a running deployment.

Exit status: 0 nothing failed (warnings allowed); 1 a check failed; 2 a configuration error or an
unreachable --url.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from gateway.audit import audit_settings
from gateway.audit.findings import Report
from gateway.audit.probe import ProbeOptions, ProbeUnreachable, probe_deployment
from gateway.config import load_settings


def cmd_audit(args: argparse.Namespace) -> int:
    # gateway/cli.py reads the environment (GATEWAY_KEYS, GATEWAY_ORIGIN_SECRET, `*_env` keys) and hands it here.
    settings = load_settings(args.config, args.environment(), origin_override=args.origin)
    findings = audit_settings(settings)
    if args.url:
        if bool(args.credential) != bool(args.asset):
            print("error: --credential and --asset go together", file=sys.stderr)
            return 2
        options = ProbeOptions(args.url, args.credential, tuple(args.asset), tuple(args.page))
        try:
            findings += probe_deployment(settings, options)
        except ProbeUnreachable as exc:
            print(f"error: --url: {exc}", file=sys.stderr)
            return 2
    report = Report(findings)
    print(report.as_json() if args.json else report.as_text())
    return report.exit_status


def register(
    subparsers: argparse._SubParsersAction,  # type: ignore[type-arg]
    environment: Callable[[], Mapping[str, str]],
) -> None:
    audit = subparsers.add_parser(
        "audit",
        help="check a config (and with --url a running deployment) against the hardening checklist",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    audit.add_argument("--config", type=Path, required=True, help="the config `serve` runs with")
    audit.add_argument("--origin", help="as `serve --origin` (a config with no [[routes]])")
    audit.add_argument("--url", help="the deployment's base URL: probe its pages, session API and errors")
    audit.add_argument("--credential", help="a viewer's bearer credential, to open sessions (with --asset)")
    audit.add_argument("--asset", action="append", default=[], help="a master playlist to open a session for")
    audit.add_argument("--page", action="append", default=[], help="another front-end path to scan for secrets")
    audit.add_argument("--json", action="store_true", help="print the findings as JSON")
    audit.set_defaults(func=cmd_audit, environment=environment)
