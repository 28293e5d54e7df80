"""The dry run's station timing models: per-axis motion, where a machine stands, the wash poll schedule."""

from __future__ import annotations

import math

import pytest

from microfactory.cell import StationConfig
from microfactory.gcode.estimate import MotionTimer
from microfactory.station import StepRequest
from stations.grbl.timing import STATE_READ_BYTES, STATUS_BYTES, GrblTiming
from stations.wash.settings import WashOptions, next_poll_s
from stations.wash.timing import WashTiming

Z_DOWN = (0.0, 0.0, -1.0)


def trapezoid_s(length: float, rate_mm_min: float, accel: float) -> float:
    v = rate_mm_min / 60.0
    return length / v + v / accel  # rest to rest, cruise reached


def test_a_z_plunge_runs_at_the_z_axis_rate_and_acceleration() -> None:
    timer = MotionTimer(200.0, axis_rates_mm_min=(3000.0, 3000.0, 1000.0),
                        axis_accels_mm_s2=(200.0, 200.0, 100.0))
    timer.move(12.0, 3000.0, Z_DOWN, Z_DOWN, rapid=True)
    assert timer.total_s() == pytest.approx(trapezoid_s(12.0, 1000.0, 100.0))
    plain = MotionTimer(200.0)  # without the machine's settings: the cell's one rate and acceleration
    plain.move(30.0, 3000.0, Z_DOWN, Z_DOWN, rapid=True)
    assert plain.total_s() == pytest.approx(trapezoid_s(30.0, 3000.0, 200.0))


def test_a_diagonal_rapid_is_capped_by_the_slower_axis() -> None:
    u = (math.sqrt(0.5), math.sqrt(0.5), 0.0)
    timer = MotionTimer(None, axis_rates_mm_min=(6000.0, 3000.0, 600.0))
    timer.move(100.0, 1e9, u, u, rapid=True)
    assert timer.total_s() == pytest.approx(100.0 / (3000.0 / math.sqrt(0.5) / 60.0))


def grbl_config(**options: object) -> StationConfig:
    return StationConfig.model_validate({
        "id": "mill", "kind": "grbl", "baud": 115200, "options": options,
        "limits": {"envelope": {"x": [-80, 0], "y": [-60, 0], "z": [-30, 0]}, "max_feed_mm_min": 1200,
                   "max_rapid_mm_min": 3000, "accel_mm_s2": 200},
        "sim": {"settings": {110: 3000, 111: 3000, 112: 1000, 120: 200, 121: 200, 122: 100, 27: 1}}})


PROGRAM = ["G10 L2 P1 X-80 Y-60 Z0", "G21 G90 G54", "G0 X10 Y10", "G1 X20 Y10 F600", "M2"]


def test_the_first_program_starts_at_home_and_the_next_where_it_ended() -> None:
    model = GrblTiming(grbl_config(home_on_connect=True))
    step = StepRequest(action="gcode", params={"program": PROGRAM})
    first, second = model.step_s(step), model.step_s(step)
    exchanges = (2 * STATE_READ_BYTES + 2 * STATUS_BYTES) * 10 / 115200
    # the first rapid goes from home (-1, -1, -1) to work (10, 10) = machine (-70, -50) (86 mm); the second
    # starts where the first ended, machine (-60, -50): a 10 mm rapid back
    assert first > second + 1.0
    assert second > exchanges
    assert model.state is not None and model.state.position == pytest.approx((-60.0, -50.0, -1.0))


def test_the_wash_poll_wakes_for_the_end_rather_than_a_whole_period_later() -> None:
    options = WashOptions(poll_s=2.0)
    assert next_poll_s(30.0, options) == 2.0
    assert next_poll_s(1.0, options) == 1.0
    assert next_poll_s(0.0, options) == options.end_poll_s


@pytest.mark.parametrize("poll_s", [0.5, 2.0, 10.0])
def test_the_wash_model_sees_the_end_within_a_fraction_of_a_second_at_any_poll_period(poll_s: float) -> None:
    config = StationConfig.model_validate({"id": "wash", "kind": "wash", "options": {
        "poll_s": poll_s, "rinse_s": 1, "dry_s": 1}})
    step = StepRequest(action="wash", params={"temperature_c": 20, "time_s": 7.3, "power_pct": 80})
    seconds = WashTiming(config).step_s(step)
    assert 9.3 < seconds < 9.3 + WashOptions().end_poll_s + 0.1
