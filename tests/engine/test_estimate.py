"""The dry run: lot time, bottleneck and utilisation from a discrete-event simulation."""

from __future__ import annotations

import pytest
from engine_support import DURATIONS, watch_plate

from microfactory.cell import StationConfig
from microfactory.engine.estimate import estimate_lot
from microfactory.procedure import Step

STEP_S = {"cut": 2.0, "machine": 6.0, "wash": 4.0, "inspect": 1.0}


def timing(step: Step, config: StationConfig | None) -> float:
    return STEP_S[step.id]


def test_bottleneck_lot_time_and_utilisation() -> None:
    est = estimate_lot(watch_plate(in_flight=3), None, parts=10, timing=timing)
    assert est.bottleneck == "mill"
    # pipelined: fill (cut) + n × bottleneck + drain (wash, inspect)
    assert est.lot_s == pytest.approx(2 + 10 * 6 + 4 + 1)
    assert est.utilisation["mill"] == pytest.approx(60 / 67)
    assert est.cycle_s == pytest.approx(6.0)
    assert est.utilisation["cam"] == pytest.approx(10 / 67)


def test_one_part_in_flight_is_the_sum_of_steps() -> None:
    est = estimate_lot(watch_plate(in_flight=1), None, parts=4, timing=timing)
    assert est.lot_s == pytest.approx(4 * sum(STEP_S.values()))


def test_a_slower_station_moves_the_bottleneck() -> None:
    slow = dict(STEP_S, wash=9.0)
    est = estimate_lot(watch_plate(in_flight=3), None, parts=5,
                       timing=lambda step, cfg: slow[step.id])
    assert est.bottleneck == "wash" and est.cycle_s == pytest.approx(9.0)
    assert set(est.utilisation) == set(DURATIONS)
