"""OEE = availability × performance × quality, and the PackML state durations it is computed from.

Definitions (one place, used by the live PackTags and the lot report alike):

- **planned time** (s): the lot's time from Starting to its end (Complete, Stopped or Aborted);
- **run time** (s): the time the cell spent in Execute; everything else — Held, Holding, Suspended,
  Stopping, Starting … — is downtime, and the stop reasons say why;
- **availability** = run time ÷ planned time;
- **performance** = ideal cycle time × parts processed ÷ run time, capped at 1. The ideal cycle time
  (s/part) is the design speed's inverse: the bottleneck station's time per part from the dry run
  (``estimate_lot``) when known, else the shortest time per part the bottleneck station actually took
  in this lot;
- **quality** = good parts ÷ parts processed (processed = passed + scrapped).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from microfactory.engine.packml import PackMLState


@dataclass
class StateDurations:
    """Seconds spent in each PackML state, fed with (time, state) changes in order."""

    seconds: dict[PackMLState, float] = field(default_factory=dict)
    _state: PackMLState | None = None
    _since: float = 0.0

    def change(self, t: float, state: PackMLState) -> None:
        self.settle(t)
        self._state, self._since = state, t

    def settle(self, t: float) -> None:
        """Charge the current state up to ``t`` (call before reading at a time of your choosing)."""
        if self._state is not None and t > self._since:
            self.seconds[self._state] = self.seconds.get(self._state, 0.0) + (t - self._since)
            self._since = t

    @property
    def current(self) -> PackMLState | None:
        return self._state

    def as_dict(self) -> dict[str, float]:
        return {s.value: round(v, 3) for s, v in sorted(self.seconds.items(), key=lambda kv: kv[0].value)}


@dataclass(frozen=True)
class Oee:
    """The three factors (0..1) and what they were computed from (s, parts)."""

    availability: float
    performance: float
    quality: float
    planned_s: float
    run_s: float
    ideal_cycle_s: float
    processed: int
    good: int

    @property
    def oee(self) -> float:
        return self.availability * self.performance * self.quality

    def as_dict(self) -> dict[str, Any]:
        return {"oee": round(self.oee, 4), "availability": round(self.availability, 4),
                "performance": round(self.performance, 4), "quality": round(self.quality, 4),
                "planned_s": round(self.planned_s, 3), "run_s": round(self.run_s, 3),
                "ideal_cycle_s": round(self.ideal_cycle_s, 3), "processed": self.processed, "good": self.good}


def compute(durations: StateDurations, *, ideal_cycle_s: float, processed: int, good: int) -> Oee:
    """OEE from state durations and counts (see the module docstring for the definitions)."""
    planned = sum(v for s, v in durations.seconds.items() if s != PackMLState.IDLE)
    run = durations.seconds.get(PackMLState.EXECUTE, 0.0)
    availability = run / planned if planned > 0 else 0.0
    performance = min(1.0, ideal_cycle_s * processed / run) if run > 0 else 0.0
    quality = good / processed if processed else 0.0
    return Oee(availability, performance, quality, planned, run, ideal_cycle_s, processed, good)


def durations_from(changes: Iterable[tuple[float, str]], end_s: float) -> StateDurations:
    """State durations from (t, state value) changes as the journal's ``cell.state`` events hold them."""
    out = StateDurations()
    for t, state in changes:
        out.change(t, PackMLState(state))
    out.settle(end_s)
    return out
