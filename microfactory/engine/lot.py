"""Values the engine hands out: open prompts, per-part records and the lot summary.

Plain dataclasses, no behaviour: the CLI prints them, the GUI shows them, the journal stores them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Prompt:
    """A question for the operator. Nothing is guessed: the cell waits until it is answered.

    ``reason`` is ``manual`` (a manual step: load stock, move the part), ``fault`` (a step failed and its
    policy is hold: retry / scrap / abort) or ``interrupt`` (Ctrl-C or the GUI asked what to do).
    ``timeout_s`` (process s) only raises a warning and holds the cell when it passes; it never answers.
    """

    id: str
    text: str
    choices: tuple[str, ...]
    reason: str
    part: str | None = None
    station: str | None = None
    step: str | None = None
    timeout_s: float | None = None
    #: the choice the engine recommends (front ends mark it); None where no answer is better
    recommended: str | None = None

    def as_event(self) -> dict[str, Any]:
        data = asdict(self)
        data["choices"] = list(self.choices)
        return data


@dataclass
class StationUse:
    """How one station spent the lot (process s) and the energy it drew (J)."""

    busy_s: float = 0.0
    idle_s: float = 0.0
    standby_s: float = 0.0
    energy_j: float = 0.0
    steps: int = 0

    @property
    def utilisation(self) -> float:
        total = self.busy_s + self.idle_s + self.standby_s
        return self.busy_s / total if total > 0 else 0.0


@dataclass
class LotSummary:
    """What a lot produced. Times are process seconds (the clock's), energy in J and Wh.

    ``state`` is the PackML state the lot ended in (``complete``, ``stopped`` or ``aborted``).
    ``throughput_per_h`` counts good parts per process hour; ``cycle_time_s`` is the mean time between
    two finished parts (lot time ÷ finished parts); ``energy_per_part_wh`` is the whole cell's energy
    (busy, idle and standby) divided by good parts.
    """

    lot: str
    recipe: str
    state: str
    parts: int
    passed: int = 0
    scrapped: int = 0
    reworked: int = 0
    unfinished: int = 0
    started_s: float = 0.0
    ended_s: float = 0.0
    stations: dict[str, StationUse] = field(default_factory=dict)
    part_energy_j: dict[str, float] = field(default_factory=dict)

    @property
    def elapsed_s(self) -> float:
        return max(0.0, self.ended_s - self.started_s)

    @property
    def finished(self) -> int:
        return self.passed + self.scrapped

    @property
    def cycle_time_s(self) -> float:
        return self.elapsed_s / self.finished if self.finished else 0.0

    @property
    def throughput_per_h(self) -> float:
        return 3600.0 * self.passed / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def energy_j(self) -> float:
        return sum(use.energy_j for use in self.stations.values())

    @property
    def energy_per_part_wh(self) -> float:
        return self.energy_j / 3600.0 / self.passed if self.passed else 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary (for the journal, ``--json`` output and the LOT event)."""
        return {
            "lot": self.lot, "recipe": self.recipe, "state": self.state, "parts": self.parts,
            "passed": self.passed, "scrapped": self.scrapped, "reworked": self.reworked,
            "unfinished": self.unfinished, "elapsed_s": round(self.elapsed_s, 3),
            "cycle_time_s": round(self.cycle_time_s, 3), "throughput_per_h": round(self.throughput_per_h, 2),
            "energy_wh": round(self.energy_j / 3600.0, 4),
            "energy_per_part_wh": round(self.energy_per_part_wh, 4),
            "stations": {sid: {"busy_s": round(u.busy_s, 3), "utilisation": round(u.utilisation, 4),
                               "energy_wh": round(u.energy_j / 3600.0, 4), "steps": u.steps}
                         for sid, u in self.stations.items()},
        }
