"""The example recipes against the demo cell with the real station kinds (no fakes).

Skips, saying which, only while a station kind's entry point cannot be loaded (the drivers land
separately); once they load, every G-code line of the examples is pre-checked by the real Grbl kind and
the drawing is loaded by the real camera kind.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from recipe_support import RECIPES, REPO

from microfactory.recipe import validate_recipe
from microfactory.recipe.compile import load_kind

DEMO_CELL = RECIPES / "cells" / "sim.yaml"


SHIPPED = sorted(p.name for p in RECIPES.glob("*.yaml"))
BENCHMARKS = REPO / "benchmarks"
#: The throughput benchmark's short lot: these values on its own cell (see benchmarks/throughput.py).
SHORT_VALUES = json.loads((BENCHMARKS / "short-lot-values.json").read_text())


def real_kinds_or_skip() -> None:
    missing = [text for kind in ("grbl", "wash", "camera") if isinstance(text := load_kind(kind), str)]
    if missing:
        pytest.skip("real station kinds not loadable yet: " + "; ".join(missing))


def test_the_examples_are_all_found() -> None:
    assert {"watch-plate.yaml", "watch-plate-rework.yaml", "shim.yaml"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_example_is_valid_on_the_demo_cell(name: str) -> None:
    real_kinds_or_skip()
    report = validate_recipe(RECIPES / name, DEMO_CELL)
    assert report.problems == [], "\n".join(str(p) for p in report.problems)


@pytest.mark.parametrize("cell, values", [(DEMO_CELL, None),
                                          (BENCHMARKS / "short-lot-cell.yaml", SHORT_VALUES)])
def test_the_throughput_benchmark_recipe_is_valid_on_its_cells(cell: Path,
                                                               values: dict[str, float] | None) -> None:
    real_kinds_or_skip()
    report = validate_recipe(BENCHMARKS / "throughput-plate.yaml", cell, values=values)
    assert report.problems == [], "\n".join(str(p) for p in report.problems)
