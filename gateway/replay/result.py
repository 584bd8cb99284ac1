"""What a replay run produced (simulated or real time): the players, with everything they recorded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.replay.player import Player
from gateway.replay.scenario import Scenario


@dataclass
class ReplayResult:
    scenario: Scenario
    target: dict[str, Any]  # what was replayed against (simulated stack, deployed gateway URL, recording)
    players: list[Player]
    start_epoch: float  # epoch seconds of scenario time 0
    simulated_seconds: float  # scenario time covered
    wall_seconds: float
    aborted: str | None = None  # why the run stopped early (wall-clock or request limit), if it did
