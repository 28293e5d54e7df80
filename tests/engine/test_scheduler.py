"""Scheduler properties, checked with hypothesis on a discrete-event replay (no clock, no loop)."""

from __future__ import annotations

import heapq
import itertools
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from microfactory.engine.parts import PartState
from microfactory.engine.scheduler import OPERATOR, Outcome, Scheduler, resource_of
from microfactory.procedure import Procedure, Step, StepKind
from microfactory.station import StepRequest


@st.composite
def lines(draw: st.DrawFn) -> tuple[Procedure, dict[str, float], int, int]:
    """A line of 1–4 station steps (stations may repeat), maybe a manual step, an inspection with rework."""
    n = draw(st.integers(1, 4))
    stations = [draw(st.sampled_from(["a", "b", "c"])) for _ in range(n)]
    steps: list[Step] = []
    if draw(st.booleans()):
        steps.append(Step("load", StepKind.MANUAL, None, StepRequest("manual"), on_pass="s0"))
    for i, sid in enumerate(stations):
        steps.append(Step(f"s{i}", StepKind.MACHINE, sid, StepRequest("gcode"), on_pass=f"s{i + 1}"))
    back = draw(st.integers(0, n - 1))
    steps.append(Step(f"s{n}", StepKind.INSPECT, "cam", StepRequest("inspect"), on_pass="done",
                      on_fail=draw(st.sampled_from([f"s{back}", "scrap"])),
                      max_rework=draw(st.integers(0, 3))))
    durations = {s.id: draw(st.floats(0.5, 20.0)) for s in steps}
    proc = Procedure("p", "1", "p", tuple(steps), steps[0].id, parts_in_flight=draw(st.integers(1, 5)))
    return proc, durations, draw(st.integers(1, 12)), draw(st.integers(0, 2**16))


def replay(proc: Procedure, durations: dict[str, float], parts: int, seed: int
           ) -> tuple[Scheduler, list[tuple[str, str, str | None, float, float]]]:
    """Play the lot; inspections fail at random. Returns the schedule (part, step, resource, start, end)."""
    rng = random.Random(seed)
    sched = Scheduler(proc, parts)
    heap: list[tuple[float, int, str, str, str | None, float]] = []
    log: list[tuple[str, str, str | None, float, float]] = []
    order, now = itertools.count(), 0.0
    for _ in range(10_000):
        for d in sched.dispatch():
            end = now + durations[d.step.id]
            heapq.heappush(heap, (end, next(order), d.part.id, d.step.id, d.resource, now))
        if not heap:
            break
        now, _, pid, step_id, res, start = heapq.heappop(heap)
        log.append((pid, step_id, res, start, now))
        kind = proc.step(step_id).kind
        sched.finish(pid, Outcome.FAIL if kind == StepKind.INSPECT and rng.random() < 0.4 else Outcome.PASS)
    return sched, log


@settings(max_examples=150, deadline=None)
@given(lines())
def test_scheduler_properties(case: tuple[Procedure, dict[str, float], int, int]) -> None:
    proc, durations, parts, seed = case
    sched, log = replay(proc, durations, parts, seed)
    # every part ends passed or scrapped
    assert sched.finished and all(p.state in (PartState.PASSED, PartState.SCRAPPED) for p in sched.parts)
    # no station (nor the operator) serves two parts at once
    by_res: dict[str, list[tuple[float, float]]] = {}
    for _pid, _step, res, start, end in log:
        if res is not None:
            by_res.setdefault(res, []).append((start, end))
    for spans in by_res.values():
        spans.sort()
        assert all(a[1] <= b[0] + 1e-9 for a, b in itertools.pairwise(spans))
    # no part skips a step: each visit follows the previous step's pass route, or its fail route
    for part in sched.parts:
        visits = [s for pid, s, *_ in log if pid == part.id]
        assert visits[0] == proc.first
        for prev, nxt in itertools.pairwise(visits):
            step = proc.step(prev)
            assert nxt in (step.on_pass, step.on_fail)
        # rework never exceeds its maximum
        for step_id, used in part.reworks.items():
            assert used <= proc.step(step_id).max_rework
    # never more parts in the line than allowed
    for t in {start for *_, start, _end in log}:
        inside = {pid for pid, _s, _r, start, end in log if start <= t < end}
        assert len(inside) <= proc.parts_in_flight


def test_oldest_part_goes_first_and_manual_steps_need_the_operator() -> None:
    steps = (Step("load", StepKind.MANUAL, None, StepRequest("manual"), on_pass="cut"),
             Step("cut", StepKind.CUT, "cut", StepRequest("gcode")))
    sched = Scheduler(Procedure("p", "1", "p", steps, "load", parts_in_flight=3), 3)
    first = sched.dispatch()
    assert [(d.part.index, d.resource) for d in first] == [(0, OPERATOR)]
    assert resource_of(steps[1]) == "cut"
    sched.finish(first[0].part.id, Outcome.PASS)
    second = sched.dispatch()
    assert [(d.part.index, d.step.id) for d in second] == [(0, "cut"), (1, "load")]
    assert sched.dispatch(admit=False) == []


def test_abandoned_parts_settle_the_lot_without_finishing() -> None:
    steps = (Step("cut", StepKind.CUT, "cut", StepRequest("gcode")),)
    sched = Scheduler(Procedure("p", "1", "p", steps, "cut"), 1)
    (d,) = sched.dispatch()
    sched.finish(d.part.id, Outcome.ABANDON)
    assert sched.finished and not sched.parts[0].finished and sched.busy == {}
