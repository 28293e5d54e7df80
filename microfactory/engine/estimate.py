"""Dry run: how long will this lot take, which station is the bottleneck — without sending a byte.

A discrete-event simulation drives the *same* :class:`~microfactory.engine.scheduler.Scheduler` the
live engine uses, with each step's duration taken from its station kind's timing model
(``registry.station_kind(kind).estimate_s(request, config)``, or the kind's stateful ``timing(config)``
model, asked for each station's steps in the order the station runs them, so a program's first move
starts where the previous one left the machine) or, for manual and transfer steps, the step's
``duration_s``. The models charge what really costs time on the line: motion, process phases, the link
time of the drivers' own exchanges and the modelled compute of an inspection. Every step is assumed to
pass (no rework, no faults): the answer is the lot's
best case on this line, which is what planning needs; rework shows up as the live lot's extra time.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from microfactory.bounds import check_part_count
from microfactory.cell import Cell, StationConfig
from microfactory.engine.scheduler import Outcome, Scheduler
from microfactory.procedure import Procedure, Step

#: A timing model: process seconds for ``step`` on the station configured as ``config`` (None: no station).
Timing = Callable[[Step, StationConfig | None], float]


@dataclass
class Estimate:
    """A dry run's answer. ``lot_s``: process s from the first step to the last part done;
    ``utilisation``: busy ÷ lot time per station (0..1); ``bottleneck``: the busiest station;
    ``cycle_s``: the bottleneck's busy time per part (the line's best steady-state cycle time)."""

    lot_s: float
    parts: int
    bottleneck: str | None
    utilisation: dict[str, float] = field(default_factory=dict)
    busy_s: dict[str, float] = field(default_factory=dict)
    step_s: dict[str, float] = field(default_factory=dict)

    @property
    def cycle_s(self) -> float:
        return self.busy_s.get(self.bottleneck, 0.0) / self.parts if self.bottleneck and self.parts else 0.0

    @property
    def throughput_per_h(self) -> float:
        return 3600.0 * self.parts / self.lot_s if self.lot_s > 0 else 0.0

    def as_dict(self) -> dict[str, object]:
        return {"lot_s": round(self.lot_s, 3), "parts": self.parts, "bottleneck": self.bottleneck,
                "cycle_s": round(self.cycle_s, 3), "throughput_per_h": round(self.throughput_per_h, 2),
                "utilisation": {k: round(v, 4) for k, v in self.utilisation.items()},
                "step_s": {k: round(v, 3) for k, v in self.step_s.items()}}


def registry_timing(step: Step, config: StationConfig | None) -> float:
    """The installed station kind's timing model; manual/transfer steps use ``duration_s``."""
    if config is None:
        return step.duration_s
    from microfactory.registry import station_kind  # late: the registry reads entry points

    return float(station_kind(config.kind).estimate_s(step.request, config))


class _RegistryTimings:
    """Per station, the kind's stateful timing model when it has one (else ``registry_timing``)."""

    def __init__(self, configs: dict[str, StationConfig]) -> None:
        from microfactory.registry import station_kind  # late: the registry reads entry points

        self._models: dict[str, Any] = {}
        for sid, config in configs.items():
            factory = station_kind(config.kind).timing
            if factory is not None:
                self._models[sid] = factory(config)

    def __call__(self, step: Step, config: StationConfig | None) -> float:
        model = self._models.get(config.id) if config is not None else None
        if model is None:
            return registry_timing(step, config)
        return float(model.step_s(step.request))


def estimate_lot(procedure: Procedure, cell: Cell | None, *, parts: int | None = None,
                 timing: Timing = registry_timing, in_flight: int | None = None) -> Estimate:
    """Play ``parts`` parts (default: the lot size) through the scheduler in simulated time.

    ``parts`` outside 1 to :data:`~microfactory.bounds.MAX_LOT_SIZE` is a ``ConfigError``.
    """
    check_part_count(parts)
    n = parts if parts is not None else procedure.lot_size
    configs = {s.id: s for s in cell.stations} if cell is not None else {}
    if timing is registry_timing:
        timing = _RegistryTimings(configs)
    step_s: dict[str, float] = {}  # the first time each step took (a stateful model may differ later)
    sched = Scheduler(procedure, n, lot="dry-run", in_flight=in_flight)
    busy: dict[str, float] = {sid: 0.0 for sid in procedure.stations}
    queue: list[tuple[float, int, str]] = []
    order = itertools.count()
    now = 0.0
    while True:
        for d in sched.dispatch():
            dur = float(timing(d.step, configs.get(d.step.station) if d.step.station else None))
            step_s.setdefault(d.step.id, dur)
            if d.step.station:
                busy[d.step.station] = busy.get(d.step.station, 0.0) + dur
            heapq.heappush(queue, (now + dur, next(order), d.part.id))
        if not queue:
            break
        now, _, part_id = heapq.heappop(queue)
        sched.finish(part_id, Outcome.PASS)
    bottleneck = max(busy, key=lambda sid: busy[sid]) if busy else None
    util = {sid: (b / now if now > 0 else 0.0) for sid, b in busy.items()}
    return Estimate(now, n, bottleneck, util, busy, step_s)
