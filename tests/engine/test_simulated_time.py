"""Faithful simulated time: the same lot on the simulators gives the same figures at any speed.

The short lot of the throughput benchmark (3 parts, 2 in flight: ``benchmarks/short-lot-cell.yaml`` with
``benchmarks/short-lot-values.json``) runs on the production drivers over ptys at ×5, ×20 and as fast as
possible; lot time, cycle time, energy and each station's busy time agree within 1 %, every part has the
same outcome and every station serves the same parts in the same order. Nothing here reads a wall clock.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest

from microfactory import simclock
from microfactory.engine.api import Controller, load_cell, load_recipe
from microfactory.engine.estimate import estimate_lot
from microfactory.engine.lot import LotSummary
from microfactory.errors import MicrofactoryError
from microfactory.events import Event, EventKind
from microfactory.procedure import Procedure

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
VALUES = json.loads((BENCH / "short-lot-values.json").read_text())


def short_lot() -> tuple[object, Procedure]:
    cell = load_cell(BENCH / "short-lot-cell.yaml")
    procedure = load_recipe(BENCH / "throughput-plate.yaml", cell=cell, values=VALUES)
    return cell, dataclasses.replace(procedure, parts_in_flight=2)


def run_short_lot(pace: float) -> tuple[LotSummary, list[Event]]:
    cell, procedure = short_lot()

    async def main(clock: simclock.VirtualClock) -> tuple[LotSummary, list[Event]]:
        events: list[Event] = []
        async with Controller(cell, db=None) as ctl:  # type: ignore[arg-type]
            assert ctl.clock is clock
            ctl.bus.subscribe(events.append, [EventKind.STEP, EventKind.PART])
            summary = await ctl.run_lot(procedure, parts=3, lot_id="fidelity")
        return summary, events

    return simclock.run(main, pace=pace)


def orders(events: list[Event]) -> dict[str, list[tuple[str, ...]]]:
    """Per part: its steps, attempts and verdicts; per station: the parts it served, in order."""
    out: dict[str, list[tuple[str, ...]]] = {}
    for e in events:
        if e.kind == EventKind.PART or e.data.get("phase") == "done":
            out.setdefault(f"part {e.data.get('part')}", []).append(
                (str(e.kind), *(str(e.data.get(k)) for k in ("step", "state", "attempt", "verdict"))))
        if e.kind == EventKind.STEP and e.data.get("phase") == "intent":
            out.setdefault(f"station {e.source}", []).append((str(e.data.get("part")), str(e.data["step"])))
    return out


def figures(summary: LotSummary) -> dict[str, float]:
    out = {"lot_s": summary.elapsed_s, "cycle_s": summary.cycle_time_s, "energy_j": summary.energy_j}
    out.update({f"busy {sid}": use.busy_s for sid, use in summary.stations.items()})
    return out


@pytest.fixture(scope="module")
def lots() -> dict[str, tuple[LotSummary, list[Event]]]:
    return {"x5": run_short_lot(5.0), "x20": run_short_lot(20.0), "max": run_short_lot(math.inf)}


def test_the_lot_completes_with_every_part_accounted(lots: dict[str, tuple[LotSummary, list[Event]]]) -> None:
    for summary, _ in lots.values():
        assert summary.state == "complete"
        assert summary.passed + summary.scrapped == 3
        assert summary.elapsed_s > 10.0  # the wash alone is 3 × 3 s of process time


def test_same_figures_at_two_speeds_and_at_max(lots: dict[str, tuple[LotSummary, list[Event]]]) -> None:
    reference = figures(lots["x5"][0])
    for name in ("x20", "max"):
        got = figures(lots[name][0])
        for key, ref in reference.items():
            assert got[key] == pytest.approx(ref, rel=0.01, abs=1e-6), f"{key} at {name}"


def test_same_outcomes_and_station_order_at_every_speed(
        lots: dict[str, tuple[LotSummary, list[Event]]]) -> None:
    reference = orders(lots["x5"][1])
    assert any(k.startswith("station ") for k in reference) and any(k.startswith("part ") for k in reference)
    for name in ("x20", "max"):
        assert orders(lots[name][1]) == reference, name
        summary = lots[name][0]
        assert (summary.passed, summary.reworked, summary.scrapped) == (
            lots["x5"][0].passed, lots["x5"][0].reworked, lots["x5"][0].scrapped)


def test_the_dry_run_agrees_with_the_simulated_lot(lots: dict[str, tuple[LotSummary, list[Event]]]) -> None:
    cell, procedure = short_lot()
    estimate = estimate_lot(procedure, cell, parts=3)  # type: ignore[arg-type]
    summary = lots["max"][0]
    assert summary.reworked == 0  # the dry run assumes every step passes: compare like with like
    assert estimate.lot_s == pytest.approx(summary.elapsed_s, rel=0.02)


def test_an_inspection_costs_its_modelled_exposure_and_processing(
        lots: dict[str, tuple[LotSummary, list[Event]]]) -> None:
    # image processing takes no simulated time; the station charges the cell's modelled cost (default
    # options: 0.02 s exposure + 0.15 s processing) for each of the 3 inspections, at every speed
    for name, (summary, _) in lots.items():
        assert summary.stations["inspect"].busy_s == pytest.approx(3 * 0.17, rel=1e-3), name


def test_a_virtual_clock_cell_on_a_plain_loop_is_refused_with_what_to_do() -> None:
    import asyncio

    cell, _ = short_lot()
    controller = Controller(cell, db=None)  # type: ignore[arg-type]
    assert isinstance(controller.clock, simclock.VirtualClock)

    async def main() -> None:
        await controller.connect()

    with pytest.raises(MicrofactoryError, match="virtual clock") as info:
        asyncio.run(main())
    assert "simclock.run" in (info.value.hint or "")
