"""Engine (stub while it lands)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from microfactory.cell import Cell
from microfactory.procedure import Procedure
from microfactory.station import Station


class Engine:
    def __init__(self, stations: Mapping[str, Station], **kw: Any) -> None:
        raise NotImplementedError

    def __getattr__(self, name: str) -> Any:
        raise NotImplementedError


def validate_procedure(procedure: Procedure, cell: Cell, stations: Mapping[str, Station] | None) -> list[str]:
    raise NotImplementedError
