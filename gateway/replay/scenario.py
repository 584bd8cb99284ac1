"""What a replay does: frozen, validated dataclasses, built from CLI flags or a TOML/JSON file.

Times of player events (`at`) are seconds since the scenario's start. A file looks like:

```toml
name = "3 h soak"
duration_seconds = 10800
[gateway]                      # the in-process gateway (simulate); ignored by realtime except ip_binding
mode = "query"                 # query | cookie
media_ttl_seconds = 30
ip_binding = false
skew_seconds = 0               # the issuing instance's clock minus the edge's
skew_scope = "api"             # api: only the session API is skewed; playlists: also playlist responses
[origin]
dvr_window_seconds = 60
[[players]]
count = 3
renewal = "rolling"            # rolling (scoped tokens only) | refresh (the refresh API, like hls.js xhrSetup)
abr_every_seconds = 60
pauses = [{ at = 3600, duration = 600, resume = "live" }]
seeks = [{ at = 5400, by = 30 }]
ip_changes = [{ at = 7200, to = "198.51.100.23", on_denial = "recreate" }]
revokes = [{ at = 9000, expected = true }]
[[expect]]                     # denials to treat as expected beyond the automatic rules
reason = "expired"
after = 100
until = 200
```
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from gateway.config_schema import refuse_unknown
from gateway.errors import ConfigError

Mode = Literal["query", "cookie"]
Renewal = Literal["rolling", "refresh"]
Resume = Literal["live", "dvr"]
SkewScope = Literal["api", "playlists"]
OnDenial = Literal["recreate", "stop"]
DEFAULT_ASSET = "/live/title-9000/master.m3u8"
DEFAULT_START_EPOCH = 1_800_000_000.0


@dataclass(frozen=True)
class Pause:
    """Stop all network activity at `at` for `duration` s; resume at the live edge or where playback stopped."""

    at: float
    duration: float
    resume: Resume = "live"


@dataclass(frozen=True)
class SeekBack:
    """Jump `by` seconds behind the live edge (into the DVR window) at `at`."""

    at: float
    by: float


@dataclass(frozen=True)
class IpChange:
    """The client's address changes at `at`; with ip_binding the next request is refused `ip` (expected)."""

    at: float
    to: str = "198.51.100.23"
    on_denial: OnDenial = "recreate"  # recreate: start a new session from the new address


@dataclass(frozen=True)
class Revoke:
    """The viewer's app revokes the session (DELETE) at `at`; `expected=False` makes the denials failures."""

    at: float
    expected: bool = True


@dataclass(frozen=True)
class ExpectedDenial:
    """Denials with this reason between `after` and `until` (scenario seconds) are expected."""

    reason: str
    after: float = 0.0
    until: float = math.inf
    player: str | None = None


@dataclass(frozen=True)
class PlayerSpec:
    name: str = "p1"
    renewal: Renewal = "rolling"
    abr_every_seconds: float | None = 60.0  # ping-pong through the variants, up then down
    start_variant: int = 0  # index into the variants sorted by bandwidth (modulo their count)
    audio: bool = True  # also play the default alternate-audio rendition, as hls.js does
    client_ip: str = "192.0.2.10"  # simulate only (the TCP peer the gateway sees)
    pauses: tuple[Pause, ...] = ()
    seeks: tuple[SeekBack, ...] = ()
    ip_changes: tuple[IpChange, ...] = ()
    revokes: tuple[Revoke, ...] = ()


@dataclass(frozen=True)
class GatewaySpec:
    """The gateway under test in `simulate` (and what `realtime` assumes about a deployed one)."""

    mode: Mode = "query"
    media_ttl_seconds: int = 30
    token_ttl_seconds: int = 300
    max_life_seconds: int = 4 * 3600
    ip_binding: bool = False
    leeway_seconds: float = 5.0
    skew_seconds: float = 0.0
    skew_scope: SkewScope = "api"


@dataclass(frozen=True)
class OriginSpec:
    """The live origin simulator in `simulate`."""

    dvr_window_seconds: float = 60.0
    window_segments: int = 6
    key_rotation_every: int | None = 30
    ll_hls: bool = False
    part_target_seconds: float = 0.5


@dataclass(frozen=True)
class Scenario:
    name: str = "replay"
    duration_seconds: float = 3 * 3600.0
    players: tuple[PlayerSpec, ...] = (PlayerSpec(),)
    gateway: GatewaySpec = field(default_factory=GatewaySpec)
    origin: OriginSpec = field(default_factory=OriginSpec)
    expect: tuple[ExpectedDenial, ...] = ()
    credential: str = "demo-paid"
    asset: str = DEFAULT_ASSET
    buffer_segments: int = 3  # the player's forward buffer (and hold-back at the live edge), in segments
    give_up_after_failed_ticks: int = 5  # a player stops after this many reload rounds without any success
    strict_parse: bool = False  # cross-check every reload with the m3u8 package (slow), not just first loads
    start_epoch: float = DEFAULT_START_EPOCH  # simulate: the simulated clock's start

    def __post_init__(self) -> None:
        if not 0 < self.duration_seconds <= 7 * 86400:
            raise ConfigError(f"duration must be in (0, 7 days], got {self.duration_seconds} s")
        if not self.players or len(self.players) > 64:
            raise ConfigError(f"players: 1 to 64, got {len(self.players)}")
        names = [p.name for p in self.players]
        if len(set(names)) != len(names):
            raise ConfigError(f"player names must be unique, got {names}")
        if self.buffer_segments < 1 or self.give_up_after_failed_ticks < 1:
            raise ConfigError("buffer_segments and give_up_after_failed_ticks must be >= 1")
        for player in self.players:
            for pause in player.pauses:
                if pause.duration <= 0:
                    raise ConfigError(f"{player.name}: pause duration must be > 0")
            for seek in player.seeks:
                if seek.by <= 0:
                    raise ConfigError(f"{player.name}: seek-back distance must be > 0")
        if self.gateway.media_ttl_seconds <= 0 or self.gateway.token_ttl_seconds <= 0:
            raise ConfigError("TTLs must be positive")


def replicate(spec: PlayerSpec, count: int, *, first_number: int | None = None) -> tuple[PlayerSpec, ...]:
    """`count` players with the same behaviour, each starting on a different variant.

    Named p<first_number>, p<first_number + 1>, … when `first_number` is given, else <name>-1, <name>-2, …
    (a single player keeps its name).
    """
    if not 1 <= count <= 64:
        raise ConfigError(f"players: 1 to 64, got {count}")

    def name(i: int) -> str:
        if first_number is not None:
            return f"p{first_number + i}"
        return spec.name if count == 1 else f"{spec.name}-{i + 1}"

    return tuple(dataclasses.replace(spec, name=name(i), start_variant=spec.start_variant + i) for i in range(count))


# ---- reading a scenario file ---------------------------------------------------------------------------
T = TypeVar("T")


def _convert(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin is Literal:
        if value not in typing.get_args(hint):
            raise ConfigError(f"{where}: must be one of {', '.join(map(str, typing.get_args(hint)))}, got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return None if value is None else _convert(value, options[0], where)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: must be a list")
        item = typing.get_args(hint)[0]
        return tuple(_convert(v, item, f"{where}[{i}]") for i, v in enumerate(value))
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: must be a table")
        return build(typing.cast(type[Any], hint), value, where)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: must be true or false, got {value!r}")
        return value
    if hint in (int, float):
        if isinstance(value, bool) or not isinstance(value, int | float) or (hint is int and value != int(value)):
            raise ConfigError(f"{where}: must be a number ({hint.__name__}), got {value!r}")
        return hint(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: must be a string, got {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported setting type {hint!r}")  # pragma: no cover - a programming error


def build(cls: type[T], table: Mapping[str, Any], where: str = "scenario") -> T:
    """A dataclass from a mapping: every key must be a field; values are type-checked; unknown keys fail."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    refuse_unknown(table, names, where)
    values = {name: _convert(value, hints[name], f"{where}.{name}") for name, value in table.items()}
    missing = sorted(
        f.name
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        if f.name not in values and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    )
    if missing:
        raise ConfigError(f"{where}: missing setting(s) {', '.join(missing)}")
    return cls(**values)


def scenario_from_mapping(table: Mapping[str, Any]) -> Scenario:
    """`hours`/`minutes` may stand for `duration_seconds`; a player table may carry `count` (replicated)."""
    data = dict(table)
    hours, minutes = data.pop("hours", None), data.pop("minutes", None)
    if hours is not None or minutes is not None:
        data["duration_seconds"] = float(hours or 0) * 3600 + float(minutes or 0) * 60
    players: list[PlayerSpec] = []
    for i, raw in enumerate(data.pop("players", [{}])):
        if not isinstance(raw, Mapping):
            raise ConfigError(f"scenario.players[{i}]: must be a table")
        entry = dict(raw)
        count = _convert(entry.pop("count", 1), int, f"scenario.players[{i}].count")
        spec = build(PlayerSpec, entry, f"scenario.players[{i}]")
        players.extend(replicate(spec, count, first_number=None if "name" in entry else len(players) + 1))
    data["players"] = [dataclasses.asdict(p) for p in players]
    return build(Scenario, data)


def load_scenario(path: Path) -> Scenario:
    """Read a `.toml` or `.json` scenario file (ConfigError naming the file on any problem)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"--scenario: cannot read {path}: {exc.strerror}") from exc
    try:
        table = json.loads(raw) if path.suffix == ".json" else tomllib.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        kind = "JSON" if path.suffix == ".json" else "TOML"
        raise ConfigError(f"--scenario: {path} is not valid {kind}: {exc}") from exc
    if not isinstance(table, dict):
        raise ConfigError(f"--scenario: {path} must hold a table/object")
    return scenario_from_mapping(table)


def scenario_as_json(scenario: Scenario) -> dict[str, Any]:
    """The scenario for the report (infinities become null, the credential is redacted)."""

    def clean(value: Any) -> Any:
        if isinstance(value, float) and math.isinf(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        return value

    result: dict[str, Any] = clean(dataclasses.asdict(scenario))
    result["credential"] = "<redacted>"  # a bearer credential: never in a report
    return result
