"""Typed parameters and ``${name}`` substitution."""

from __future__ import annotations

import pytest

from microfactory.recipe.parameters import (
    ParameterSpec,
    ParameterValueError,
    UnknownParameter,
    format_value,
    resolve_values,
    substitute,
    substitute_text,
)

FEED = ParameterSpec("feed", "float", 600.0, "mm/min", 100, 1500)
PASSES = ParameterSpec("passes", "int", 2, "", 1, 5)
AIR = ParameterSpec("air", "bool", False)
TOOL = ParameterSpec("tool", "str", "T1")
SPECS = {p.name: p for p in (FEED, PASSES, AIR, TOOL)}


def test_text_values_are_converted_to_the_declared_type() -> None:
    values, problems = resolve_values(SPECS, {"feed": "750.5", "passes": "3", "air": "yes", "tool": 7})
    assert problems == []
    assert values == {"feed": 750.5, "passes": 3, "air": True, "tool": "7"}


def test_defaults_fill_what_is_not_given() -> None:
    values, _ = resolve_values(SPECS, None)
    assert values == {"feed": 600.0, "passes": 2, "air": False, "tool": "T1"}


def test_every_bad_value_is_reported_with_the_bound() -> None:
    _, problems = resolve_values(SPECS, {"feed": "5000", "passes": "2.5", "air": "maybe", "speed": "1"})
    by_name = dict(problems)
    assert "above its maximum 1500 mm/min" in by_name["feed"]
    assert "whole number" in by_name["passes"]
    assert "true or false" in by_name["air"]
    assert "unknown parameter 'speed'" in by_name["speed"] and "feed" in by_name["speed"]


def test_below_minimum() -> None:
    with pytest.raises(ParameterValueError, match="below its minimum 100 mm/min"):
        FEED.convert(50)


def test_whole_reference_keeps_the_type_and_text_is_expanded() -> None:
    values = {"feed": 750.0, "passes": 3}
    assert substitute("${feed}", values) == 750.0
    assert substitute("F${feed} x${passes}", values) == "F750 x3"
    assert substitute({"a": ["${passes}", "p${passes}"]}, values) == {"a": [3, "p3"]}


def test_unknown_reference_names_the_known_ones_and_the_column() -> None:
    with pytest.raises(UnknownParameter) as info:
        substitute_text("G1 X1 F${fede}", {"feed": 1.0})
    assert info.value.name == "fede"
    assert info.value.column == 8
    assert "declared: feed" in str(info.value)


def test_escaped_reference_is_left_as_text() -> None:
    assert substitute_text("echo $${feed} ${feed}", {"feed": 2}) == "echo ${feed} 2"


@pytest.mark.parametrize(("value", "text"), [(1200.0, "1200"), (0.25, "0.25"), (-0.0, "0"), (True, "1"),
                                             (3, "3"), (1 / 3, "0.3333")])
def test_format_value(value: object, text: str) -> None:
    assert format_value(value) == text
