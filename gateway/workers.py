"""`serve --workers N`: N shared-nothing gateway processes on one listening socket (uvicorn's supervisor).

Tokens are stateless, so any worker can judge any request. What a process keeps in memory stays in it:
revoked sessions (unless `[revocations] redis_url` shares them), the per-viewer download count and the
manifest caches. Metrics are the exception: the workers write them to shared files and any worker's `/metrics`
answers their sum. `plan_workers` decides the count and says what that means; the parent
process binds the socket and starts the workers, each of which loads the same settings (file and
environment) through `worker_app` and runs the same app `serve` runs in one process.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from gateway.config import MetricsSettings, Settings, load_settings
from gateway.errors import ConfigError
from gateway.runtime import UVICORN_OPTIONS, configure_logging, serve_metrics_apart, tune_allocator
from gateway.telemetry.metrics import MULTIPROC_VARIABLE, share_between_workers

if TYPE_CHECKING:
    from starlette.applications import Starlette

log = logging.getLogger("gateway.workers")

# How the parent hands `serve`'s arguments to the workers: uvicorn starts them with multiprocessing's
# `spawn` (a fresh interpreter that imports the app factory by name), which inherits the environment.
SERVE_ARGS_VARIABLE: Final = "GATEWAY_SERVE_WORKER_ARGS"
OPT_IN_FLAG: Final = "--per-worker-revocations"


def _process_environment() -> MutableMapping[str, str]:
    """The environment the workers inherit: where the parent leaves `serve`'s arguments and each worker
    reads them, with the `GATEWAY_*` variables it hands to the loader as the command line does."""
    return os.environ


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, e.g. a container's cpuset), at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class WorkerPlan:
    count: int
    notes: tuple[str, ...] = ()  # what the operator should know about this count, logged at start-up
    warning: str | None = None  # logged as a warning: what runs differs from what a single process does


def plan_workers(requested: int | None, settings: Settings, *, per_worker_revocations: bool, cores: int) -> WorkerPlan:
    """How many workers `serve` runs: `requested`, or by default every core when revocations are shared
    through Redis and one process when they are not.

    Several workers without Redis would each keep their own revocations: a session revoked through one worker
    would still play through the others. That is refused unless the operator says it is acceptable (a
    deployment that never revokes), since nothing else would show it."""
    shared = bool(settings.redis_url)
    if requested is None:
        count = cores if shared else 1
    elif requested < 1:
        raise ConfigError(f"--workers must be at least 1, not {requested}")
    else:
        count = requested
    if count == 1:
        if requested is None and cores > 1:
            return WorkerPlan(1, (f"one process of {cores} cores: --workers N needs [revocations] redis_url",))
        return WorkerPlan(1)
    if not shared and (settings.sessions.max_streams or settings.sharing.max_networks):
        # Not even with the revocations opt-in: each worker would count its own share of a user's streams.
        raise ConfigError(
            f"--workers {count} without [revocations] redis_url (GATEWAY_REDIS_URL): [sessions] max_streams and "
            "[sharing] count what one process sees, so each worker would allow a user max_streams streams of its "
            "own. Count them through Redis, or run one process"
        )
    if not shared and not per_worker_revocations:
        raise ConfigError(
            f"--workers {count} without [revocations] redis_url (GATEWAY_REDIS_URL): a session revoked through one "
            "worker would still play through the others. Share revocations through Redis, or pass "
            f"{OPT_IN_FLAG} to accept revocations that apply only in the worker that received them"
        )
    limit = settings.origin.max_streams_per_client
    notes = [
        f"{count} worker processes"
        + (", revocations shared through Redis: the other workers apply one within a refresh (1 s)" if shared else ""),
        f"origin.max_streams_per_client = {limit} counts per worker: a viewer may hold up to {count * limit} "
        "segment downloads in all"
        if limit
        else "origin.max_streams_per_client = 0: no per-viewer download limit",
        "manifest caches are per worker (live: up to one origin fetch per refresh per worker); /metrics sums "
        "every worker's counts (prometheus_client multiprocess mode)",
    ]
    warning = (
        None
        if shared
        else f"revocations are PER WORKER ({OPT_IN_FLAG}, no [revocations] redis_url): a session revoked through "
        "one worker still plays through the others until its token expires"
    )
    return WorkerPlan(count, tuple(notes), warning)


def run_workers(
    count: int, *, host: str, port: int, config: Path | None, origin: str | None, metrics: MetricsSettings
) -> None:
    """Bind host:port here and run `count` workers on it until SIGTERM/SIGINT, which uvicorn's supervisor
    passes on to every worker (each finishes its requests and closes its Redis connection) before it exits.

    Metrics are summed over the workers: each writes its values to files in a fresh directory (prometheus_client's
    multiprocess mode, PROMETHEUS_MULTIPROC_DIR), removed when the workers have stopped."""
    import uvicorn

    environ = _process_environment()
    environ[SERVE_ARGS_VARIABLE] = json.dumps({"config": str(config.resolve()) if config else None, "origin": origin})
    with tempfile.TemporaryDirectory(prefix="gateway-metrics-") as shared:
        environ[MULTIPROC_VARIABLE] = shared
        share_between_workers(shared)
        serve_metrics_apart(metrics)
        uvicorn.run(f"{__name__}:worker_app", factory=True, workers=count, host=host, port=port, **UVICORN_OPTIONS)


def worker_app() -> Starlette:
    """The app factory each worker process calls: the settings `serve` validated, loaded again here from the
    same file and environment, and the process-level set-up `serve` does in one process."""
    from gateway.http.app import build_app

    environ = _process_environment()
    try:
        args = json.loads(environ[SERVE_ARGS_VARIABLE])
    except (KeyError, ValueError) as exc:
        raise ConfigError(f"{SERVE_ARGS_VARIABLE} is set by `serve --workers`, not by hand ({exc})") from exc
    if environ.get(MULTIPROC_VARIABLE):
        share_between_workers(environ[MULTIPROC_VARIABLE])
    config = Path(args["config"]) if args["config"] else None
    settings = load_settings(config, environ, origin_override=args["origin"])
    configure_logging(settings.log_format)
    tune_allocator()
    return build_app(settings)
