"""Station kinds, simulators and CLI commands found through entry points.

The core never imports ``stations``, ``simulators`` or ``ui`` by name: a third party adds a station kind
as its own package, declaring ``[project.entry-points."microfactory.stations"] mykind = "pkg:KIND"``, and
a cell file names ``kind: mykind``.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from microfactory.errors import ConfigError, MicrofactoryError
from microfactory.simulation import Simulator
from microfactory.station import StationKind

STATIONS = "microfactory.stations"
SIMULATORS = "microfactory.simulators"
COMMANDS = "microfactory.cli"


def _entry_points(group: str) -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=group)}


def known_kinds() -> set[str]:
    """Names of the installed station kinds (without importing them)."""
    return set(_entry_points(STATIONS))


@cache
def station_kind(name: str) -> StationKind:
    """Load the :class:`StationKind` registered as ``name``."""
    eps = _entry_points(STATIONS)
    if name not in eps:
        raise ConfigError.single("<cell>", f"unknown station kind {name!r}; installed: {sorted(eps)}")
    kind = _load(eps[name])
    if not isinstance(kind, StationKind):
        raise MicrofactoryError(f"entry point {eps[name].value} is not a StationKind",
                                hint="the package providing it is broken or out of date")
    return kind


@cache
def simulator(name: str) -> Simulator:
    """Load the simulator registered for station kind ``name``."""
    eps = _entry_points(SIMULATORS)
    if name not in eps:
        raise MicrofactoryError(f"no simulator for station kind {name!r} (simulated kinds: {sorted(eps)})",
                                hint="give a real port for this station, or install its simulator")
    return _load(eps[name])


def known_simulators() -> set[str]:
    return set(_entry_points(SIMULATORS))


def command_entry_points() -> list[EntryPoint]:
    return sorted(_entry_points(COMMANDS).values(), key=lambda ep: ep.name)


def _load(ep: EntryPoint) -> Any:
    try:
        return ep.load()
    except (ImportError, AttributeError) as exc:
        raise MicrofactoryError(f"cannot load {ep.group} entry point {ep.name!r} ({ep.value}): {exc}",
                                hint="reinstall microfactory (pip install -e .) or the package providing it"
                                ) from exc
