"""The wash codec and the kind's pre-check and timing model (no I/O)."""

from __future__ import annotations

import pytest

from microfactory import registry
from microfactory.cell import StationConfig
from microfactory.station import StepRequest
from stations.wash import KIND, scpi


def test_short_and_long_forms() -> None:
    assert scpi.short_form(scpi.TEMPERATURE) == "WASH:TEMP"
    assert scpi.short_form(scpi.REMAINING) == "WASH:REM"
    assert scpi.command_line(scpi.TEMPERATURE, 45.0) == "WASH:TEMP 45"
    assert scpi.command_line(scpi.TEMPERATURE, 45.25, long_form=True) == "WASHER:TEMPERATURE 45.25"
    assert scpi.command_line(scpi.STANDBY, True) == "SYST:STBY ON"
    assert scpi.query_line(scpi.IDN) == "*IDN?"


def test_answers_parse_or_raise() -> None:
    assert scpi.parse_error('-113,"Undefined header"') == scpi.DeviceError(-113, "Undefined header")
    assert scpi.parse_error('0,"No error"').ok
    assert scpi.parse_number("1.2E+2") == 120
    assert scpi.parse_phase("done") is scpi.WashPhase.DONE
    assert scpi.parse_identity("A,B,C,D").firmware == "D"
    for bad, parse in (("-113 Undefined", scpi.parse_error), ("12a", scpi.parse_number),
                       ("SPIN", scpi.parse_phase), ("A,B,C", scpi.parse_identity)):
        with pytest.raises(ValueError):
            parse(bad)


def test_kind_is_registered_with_wash_capability() -> None:
    assert registry.station_kind("wash") is KIND
    config = StationConfig(id="w", kind="wash", capabilities=("heated",))
    assert KIND.capabilities(config) == frozenset({"wash", "heated"})


def test_check_names_every_problem_without_io() -> None:
    config = StationConfig(id="w", kind="wash")
    assert KIND.check(StepRequest("wash", {"program": "MAIN"}), config) == []
    problems = KIND.check(StepRequest("wash", {"temperature_c": 90, "time_s": 5000, "power_pct": 5,
                                               "speed": 1}), config)
    assert len(problems) == 4 and any("20–80 °C" in p for p in problems)
    assert KIND.check(StepRequest("wash", {"temperature_c": 40}), config)  # time and power missing
    assert KIND.check(StepRequest("cut", {}), config)


def test_estimate_heats_from_ambient_then_adds_the_phases() -> None:
    config = StationConfig(id="w", kind="wash", options={"rinse_s": 10, "dry_s": 20}, sim={"ambient_c": 22})
    step = StepRequest("wash", {"temperature_c": 32, "time_s": 100, "power_pct": 50})
    assert KIND.estimate_s(step, config) == pytest.approx(10 * 20 + 100 + 10 + 20)
    assert KIND.estimate_s(StepRequest("wash", {"program": "PRE"}), config) == pytest.approx(18 * 20 + 120)
