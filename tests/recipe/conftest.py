"""Fixtures of the recipe tests: fake station kinds in the registry, a bench cell file, example copies."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from recipe_support import FAKE_KINDS, RECIPES, SIM_CELL, write

from microfactory import registry
from microfactory.errors import ConfigError
from microfactory.station import StationKind


@pytest.fixture
def fake_kinds(monkeypatch: pytest.MonkeyPatch) -> dict[str, StationKind]:
    """Replace the registry's station kinds with the fakes of recipe_support (a test may add more)."""
    kinds = dict(FAKE_KINDS)

    def station_kind(name: str) -> StationKind:
        if name not in kinds:
            raise ConfigError.single("<cell>", f"unknown station kind {name!r}")
        return kinds[name]

    monkeypatch.setattr(registry, "station_kind", station_kind)
    monkeypatch.setattr(registry, "known_kinds", lambda: set(kinds))
    return kinds


@pytest.fixture
def cell_file(tmp_path: Path) -> Path:
    return write(tmp_path / "cells" / "bench.yaml", SIM_CELL)


@pytest.fixture
def examples(tmp_path: Path) -> Path:
    """A copy of recipes/ (recipes, programs, drawings) that a test may change."""
    target = tmp_path / "recipes"
    shutil.copytree(RECIPES, target, ignore=shutil.ignore_patterns("cells"))
    return target
