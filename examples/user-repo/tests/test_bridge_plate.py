"""Our bridge-plate recipe, tested on the simulated line before it ever reaches the bench.

The microfactory pytest plugin starts the cell of `cell.yaml` (every station on its simulator, speaking
its real protocol over a pty) and runs lots of our recipe on the virtual clock; the lot's figures are
the same at any speed, so CI runs them as fast as the machine allows.
"""

from __future__ import annotations

import pytest

RECIPE = "recipes/bridge-plate.yaml"


@pytest.fixture(scope="module")
def lot(mf_runner):  # one 3-plate lot, shared by the tests that read it
    return mf_runner.run(RECIPE, parts=3, lot_id="ci-bridge")


def test_the_lot_completes_and_every_plate_is_accounted_for(lot) -> None:
    assert lot.state == "complete"
    assert sorted(lot.parts) == ["ci-bridge-001", "ci-bridge-002", "ci-bridge-003"]
    assert set(lot.parts.values()) <= {"passed", "scrapped"}
    assert lot.summary.passed >= 2  # the line's known reject rate: at most one plate in three
    assert lot.alarms == [] and lot.prompts == []  # no fault stopped the line


def test_every_passed_plate_measures_within_the_drawing(lot) -> None:
    width = {m.part: m for m in lot.measured("outline.width")}
    for part, state in lot.parts.items():
        if state == "passed":
            assert lot.verdicts[part] == "pass"
            assert width[part].unit == "mm" and abs(width[part].value - 20.0) <= 0.02  # drawing: 20 ± 0.02


@pytest.mark.mf_speed(20)  # watchable speed: the figures are the same as at max
def test_one_plate_goes_down_the_line_in_order_and_the_journal_agrees(mf_run_lot) -> None:
    one = mf_run_lot(RECIPE, parts=1, lot_id="ci-single")
    assert one.speed == 20 and one.state == "complete"
    steps = [s.step for s in one.steps]
    assert steps[:4] == ["cut", "mill", "wash", "inspect"]  # and a rework visit to the mill if it failed
    assert one.journal.in_doubt() == []  # every step sent was confirmed
    assert one.journal.verify().problems == []  # the hash-chained audit trail is intact


@pytest.mark.mf_hardware  # on the bench: pytest -m mf_hardware --mf-port mill=/dev/ttyUSB0
def test_one_plate_on_the_real_mill(mf_run_lot) -> None:
    one = mf_run_lot(RECIPE, parts=1, lot_id="bench-single")
    assert one.state == "complete"
