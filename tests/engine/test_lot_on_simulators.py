"""A whole lot end to end: the production drivers over ptys to the simulators, through the Controller.

The throughput benchmark's short lot (benchmarks/throughput-plate.yaml on benchmarks/short-lot-cell.yaml:
moves of a few millimetres, 1 s wash phases, the camera simulator with seeded defects) at ×50, so it
takes seconds of wall time while every byte crosses a real serial port.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections import defaultdict
from pathlib import Path

import pytest
from engine_support import run, until

from microfactory.engine.api import Controller, load_cell, load_recipe
from microfactory.engine.journal import Journal
from microfactory.engine.packml import PackMLState
from microfactory.events import Event, EventKind

REPO = Path(__file__).resolve().parents[2]
CELL = REPO / "benchmarks" / "short-lot-cell.yaml"
RECIPE = REPO / "benchmarks" / "throughput-plate.yaml"
VALUES = json.loads((REPO / "benchmarks" / "short-lot-values.json").read_text())
PARTS = 4


def overlapping(events: list[Event]) -> list[str]:
    """Stations that were given a step while serving another (intent before the previous one ended)."""
    serving: dict[str, str] = {}
    bad: list[str] = []
    for e in events:
        sid, phase = e.source, e.data.get("phase")
        if phase == "intent":
            if sid in serving:
                bad.append(f"{sid}: {e.data['part']} while serving {serving[sid]}")
            serving[sid] = e.data["part"]
        elif phase in ("done", "failed"):
            serving.pop(sid, None)
    return bad


@pytest.mark.timeout(120)
def test_a_short_lot_runs_end_to_end_on_the_simulators(tmp_path: Path) -> None:
    db = tmp_path / "journal.sqlite"
    cell = load_cell(CELL)
    procedure = dataclasses.replace(load_recipe(RECIPE, cell=cell, values=VALUES), parts_in_flight=2)
    steps: list[Event] = []
    alarms: list[Event] = []

    async def main() -> None:
        async with Controller(cell, speed=50, db=db) as ctl:
            ctl.bus.subscribe(steps.append, [EventKind.STEP])
            ctl.bus.subscribe(alarms.append, [EventKind.ALARM])
            summary = await ctl.run_lot(procedure, parts=PARTS, lot_id="e2e")
        assert summary.state == "complete" and summary.unfinished == 0
        assert summary.passed + summary.scrapped == PARTS and summary.passed > 0
        assert summary.energy_j > 0 and sum(summary.part_energy_j.values()) > 0
        assert all(use.energy_j > 0 and use.steps >= PARTS for use in summary.stations.values())

    run(main(), timeout_s=90)
    assert alarms == []
    assert overlapping(steps) == []
    journal = Journal(db)  # reopened from disk: what a crash would leave behind
    try:
        records = journal.steps()
        assert journal.in_doubt() == []
        assert journal.verify().problems == []  # the hash-chained audit trail matches the tables
        assert all(r.done_s is not None and r.ok is not None for r in records)
        by_part: dict[str, list[str]] = defaultdict(list)
        for r in records:
            by_part[r.part].append(r.step)
            assert r.firmware, f"step {r.key} has no firmware recorded"
        assert len(by_part) == PARTS
        assert all(path[:4] == ["cut", "mill", "wash", "inspect"] for path in by_part.values())
        assert {r.verdict for r in records if r.step == "inspect"} <= {"pass", "fail"}
        assert set(journal.part_states("e2e").values()) <= {"passed", "scrapped"}
    finally:
        journal.close()


@pytest.mark.timeout(120)
def test_emergency_stop_mid_lot_stops_the_simulated_mill_and_aborts() -> None:
    cell = load_cell(CELL)
    procedure = load_recipe(RECIPE, cell=cell, values={**VALUES, "mill_feed": 100, "dwell": 5})

    async def main() -> None:
        async with Controller(cell, speed=5, db=None) as ctl:
            lot = asyncio.ensure_future(ctl.run_lot(procedure, parts=2, lot_id="estop"))
            mill = ctl.stations["mill"]
            await until(lambda: str(mill.state) == "busy", timeout_s=30)
            ctl.emergency_stop()
            summary = await asyncio.wait_for(lot, 30)
            assert summary.state == "aborted" and summary.passed == 0
            assert ctl.state == PackMLState.ABORTED
            sim = ctl.simulators["mill"]
            await until(lambda: sim.state in ("Alarm", "Idle"), timeout_s=10)
            assert sim.link.call(lambda: sim.device.spindle) == 5  # M5: the spindle is off
            assert ctl.engine is not None and ctl.engine.acting.held == set()

    run(main(), timeout_s=90)
