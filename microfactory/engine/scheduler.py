"""Which part goes to which station next — pure logic, no I/O, no clock.

The live engine and the dry run (:mod:`microfactory.engine.estimate`) drive the *same*
:class:`Scheduler`: they ask :meth:`Scheduler.dispatch` for work whenever something frees up and report
each finished step with :meth:`Scheduler.finish`. Rules:

- at most ``parts_in_flight`` parts are in the line at once (admitted oldest first);
- each station serves one part at a time; manual steps need the one operator (resource ``operator``);
  transfer steps need no resource;
- when a step ends the station is free at once: the part waits on the bench for its next station and
  moves on as soon as that station is free; when several parts wait for one station the oldest goes first
  (so rework parts are not starved and lead time stays bounded);
- a failed verdict follows the step's ``on_fail`` route; a route back to an earlier step is a rework of
  the failed step, bounded by that step's ``max_rework`` — beyond it the part is scrapped.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from microfactory.engine.parts import Part, PartState
from microfactory.procedure import DONE, SCRAP, Procedure, Step, StepKind

OPERATOR = "operator"


class Outcome(StrEnum):
    """How a step ended, as far as routing cares."""

    PASS = "pass"       # follow on_pass
    FAIL = "fail"       # inspection said fail: follow on_fail (rework or scrap)
    SCRAP = "scrap"     # fault policy scrapped the part
    ABANDON = "abandon"  # stop/abort: the part stays unfinished where it is


@dataclass(frozen=True)
class Dispatch:
    """Start ``step`` for ``part`` on ``resource`` (a station id, ``operator``, or None for transfers)."""

    part: Part
    step: Step
    resource: str | None


def resource_of(step: Step) -> str | None:
    if step.station:
        return step.station
    return OPERATOR if step.kind == StepKind.MANUAL else None


class Scheduler:
    """The lot's parts and who holds which station."""

    def __init__(self, procedure: Procedure, parts: int, *, lot: str = "lot",
                 in_flight: int | None = None) -> None:
        if parts < 1:
            raise ValueError(f"a lot needs at least one part, got {parts}")
        self.procedure = procedure
        self.in_flight_limit = max(1, in_flight if in_flight is not None else procedure.parts_in_flight)
        self.parts = [Part(id=f"{lot}-{i + 1:03d}", index=i, step=procedure.first) for i in range(parts)]
        self.busy: dict[str, str] = {}  # resource → part id
        self._by_id = {p.id: p for p in self.parts}

    # -- queries ----------------------------------------------------------------------------------
    def part(self, part_id: str) -> Part:
        return self._by_id[part_id]

    @property
    def in_flight(self) -> list[Part]:
        return [p for p in self.parts if p.state != PartState.QUEUED and not p.finished and not p.abandoned]

    @property
    def finished(self) -> bool:
        """Every part passed or scrapped (abandoned parts count as settled too)."""
        return all(p.finished or p.abandoned for p in self.parts)

    @property
    def running(self) -> list[Part]:
        return [p for p in self.parts if p.running]

    def count(self, state: PartState) -> int:
        return sum(1 for p in self.parts if p.state == state)

    # -- decisions --------------------------------------------------------------------------------
    def dispatch(self, *, admit: bool = True, unavailable: frozenset[str] = frozenset()) -> list[Dispatch]:
        """Start whatever can start now; mark resources busy and parts running.

        ``admit`` false keeps new parts out (suspend, stop); ``unavailable`` lists stations that must not
        get work (faulted, offline).
        """
        if admit:
            self._admit()
        out: list[Dispatch] = []
        for part in self.parts:
            if part.state == PartState.QUEUED or part.finished or part.running or part.abandoned:
                continue
            step = self.procedure.step(part.step)
            res = resource_of(step)
            if res is not None and (res in self.busy or res in unavailable):
                continue
            if res is not None:
                self.busy[res] = part.id
            part.running = True
            part.station = step.station
            part.move(PartState.AT_STATION)
            out.append(Dispatch(part, step, res))
        return out

    def _admit(self) -> None:
        room = self.in_flight_limit - len(self.in_flight)
        for part in self.parts:
            if room <= 0:
                return
            if part.state == PartState.QUEUED and not part.abandoned:
                part.move(PartState.AT_STATION)
                part.station = None
                room -= 1

    def finish(self, part_id: str, outcome: Outcome) -> Part:
        """Free the part's resource and route it by ``outcome``; returns the part (state updated)."""
        part = self._by_id[part_id]
        step = self.procedure.step(part.step)
        res = resource_of(step)
        if res is not None and self.busy.get(res) == part.id:
            del self.busy[res]
        part.running = False
        if outcome == Outcome.ABANDON:
            part.abandoned = True
            return part
        if outcome == Outcome.SCRAP:
            part.move(PartState.SCRAPPED)
            return part
        if step.kind == StepKind.INSPECT:
            part.move(PartState.INSPECTED)
        target = step.on_pass if outcome == Outcome.PASS else step.on_fail
        if outcome == Outcome.FAIL and target not in (DONE, SCRAP):
            used = part.reworks.get(step.id, 0)
            if used >= step.max_rework:
                part.move(PartState.SCRAPPED)
                return part
            part.reworks[step.id] = used + 1
            part.step = target
            part.move(PartState.REWORK)
            return part
        if target == DONE:
            part.move(PartState.PASSED)
        elif target == SCRAP:
            part.move(PartState.SCRAPPED)
        else:
            part.step = target
            if part.state != PartState.AT_STATION:
                part.move(PartState.AT_STATION)
        return part
