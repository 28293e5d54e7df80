"""Dry run (stub while the engine lands)."""

from __future__ import annotations

from dataclasses import dataclass, field

from microfactory.cell import Cell
from microfactory.procedure import Procedure


@dataclass
class Estimate:
    """A dry run's answer: lot time (process s), bottleneck station, utilisation per station (0..1)."""

    lot_s: float
    parts: int
    bottleneck: str | None
    utilisation: dict[str, float] = field(default_factory=dict)
    busy_s: dict[str, float] = field(default_factory=dict)


def estimate_lot(procedure: Procedure, cell: Cell, *, parts: int | None = None) -> Estimate:
    raise NotImplementedError
