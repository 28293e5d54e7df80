"""A part's life cycle: queued → at station → inspected → passed / rework / scrapped.

The table is explicit (:data:`PART_TRANSITIONS`); a move it does not list raises
:class:`~microfactory.errors.StateError`. A part is small and there are many of them, so this is a
dictionary lookup rather than a ``transitions`` machine per part.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from microfactory.errors import StateError


class PartState(StrEnum):
    QUEUED = "queued"            # waiting to enter the line (not yet in flight)
    AT_STATION = "at_station"    # being served, or waiting on the bench for its next station
    INSPECTED = "inspected"      # an inspection step has given its verdict; routing follows
    PASSED = "passed"            # finished good
    REWORK = "rework"            # routed back by a failed verdict; waits for the rework step
    SCRAPPED = "scrapped"        # finished bad


P = PartState

#: Allowed moves: from-state → to-states.
PART_TRANSITIONS: dict[PartState, frozenset[PartState]] = {
    P.QUEUED: frozenset({P.AT_STATION, P.SCRAPPED}),
    P.AT_STATION: frozenset({P.AT_STATION, P.INSPECTED, P.PASSED, P.REWORK, P.SCRAPPED}),
    P.INSPECTED: frozenset({P.AT_STATION, P.PASSED, P.REWORK, P.SCRAPPED}),
    P.REWORK: frozenset({P.AT_STATION, P.SCRAPPED}),
    P.PASSED: frozenset(),
    P.SCRAPPED: frozenset(),
}

TERMINAL: frozenset[PartState] = frozenset({P.PASSED, P.SCRAPPED})


@dataclass(frozen=True)
class Visit:
    """One step a part went through: which station served it, with which firmware, and the outcome."""

    step: str
    station: str | None
    outcome: str
    start_s: float
    end_s: float
    firmware: str = ""


@dataclass
class Part:
    """One part of a lot. ``step`` is the step it is at or waits for; ``reworks`` counts per failed step."""

    id: str
    index: int
    step: str
    state: PartState = PartState.QUEUED
    station: str | None = None
    reworks: dict[str, int] = field(default_factory=dict)
    visits: list[Visit] = field(default_factory=list)
    running: bool = False
    abandoned: bool = False

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL

    @property
    def rework_total(self) -> int:
        return sum(self.reworks.values())

    def move(self, to: PartState) -> None:
        """Change state through the table, or raise :class:`StateError`."""
        if to not in PART_TRANSITIONS[self.state]:
            allowed = ", ".join(sorted(s.value for s in PART_TRANSITIONS[self.state])) or "none (finished)"
            raise StateError(f"part {self.id}: cannot go from {self.state.value!r} to {to.value!r}",
                             hint=f"allowed from {self.state.value!r}: {allowed}")
        self.state = to
