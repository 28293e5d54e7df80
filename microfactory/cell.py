"""The cell file: which stations stand on the bench, how to reach them, and their limits.

A cell file is YAML (see ``docs/cells.md``)::

    cell: {id: bench-1, name: Demo bench, standby_after_s: 120}
    stations:
      - id: cut
        kind: grbl            # driver kind, a registered entry point
        port: sim             # /dev/ttyUSB0 | 0403:6001[:SERIAL] (USB identity) | sim
        baud: 115200
        limits: {envelope: {x: [0, 120], y: [0, 120], z: [-5, 0]}, max_feed_mm_min: 3000,
                 max_spindle: 1000, laser: true}
        timeouts: {connect_s: 5, answer_s: 2}
        power: {busy_w: 40, idle_w: 6, standby_w: 1.5}

Loading validates everything and reports every problem with ``file:line:column`` and the field path.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from microfactory import yamlfile
from microfactory.errors import ConfigError, SourceLocation

USB_IDENTITY = re.compile(r"^(?:usb:)?([0-9a-fA-F]{4}):([0-9a-fA-F]{4})(?::(.+))?$")
STATION_ID = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)  # NaN passes no bounds


Range = Annotated[tuple[float, float], Field(description="[min, max] in mm")]


class Envelope(_Strict):
    """Travel the controller allows, in machine coordinates (mm). Each axis is ``[min, max]``."""

    x: Range
    y: Range
    z: Range

    @model_validator(mode="after")
    def _ordered(self) -> Envelope:
        for axis in ("x", "y", "z"):
            lo, hi = getattr(self, axis)
            if lo >= hi:
                raise ValueError(f"{axis}: min {lo} must be below max {hi}")
        return self


class Limits(_Strict):
    """What the controller refuses to send, checked before any byte reaches the machine."""

    envelope: Envelope | None = None
    max_feed_mm_min: float | None = Field(default=None, gt=0, description="mm/min")
    max_rapid_mm_min: float | None = Field(default=None, gt=0, description="mm/min")
    accel_mm_s2: float | None = Field(default=None, gt=0, description="mm/s²")
    max_spindle: float | None = Field(default=None, gt=0, description="S units: rpm (mill) or power (laser)")
    laser: bool = False
    allow_reverse_spindle: bool = Field(default=False, description="mill may run M4 (left-hand tools)")


class Timeouts(_Strict):
    """Link-time limits in seconds (never scaled by the simulation speed)."""

    connect_s: float = Field(default=5.0, gt=0)
    answer_s: float = Field(default=2.0, gt=0, description="longest wait for one answer (ok/error/query)")
    status_s: float = Field(default=1.0, gt=0, description="longest wait for a status report")
    step_s: float = Field(default=3600.0, gt=0, description="longest a single step may take (process s)")


class PowerProfile(_Strict):
    """Electrical power per station state (W), for energy per part and standby decisions."""

    busy_w: float = Field(default=0.0, ge=0)
    idle_w: float = Field(default=0.0, ge=0)
    standby_w: float = Field(default=0.0, ge=0)


class StationConfig(_Strict):
    """One station of the cell file."""

    id: str
    kind: str
    name: str = ""
    port: str = "sim"
    baud: int = Field(default=115200, gt=0)
    limits: Limits = Limits()
    timeouts: Timeouts = Timeouts()
    power: PowerProfile = PowerProfile()
    capabilities: tuple[str, ...] = ()
    options: dict[str, Any] = Field(default_factory=dict)
    sim: dict[str, Any] = Field(default_factory=dict)
    standby_after_s: float | None = Field(default=None, gt=0)

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if not STATION_ID.match(value):
            raise ValueError(f"station id {value!r} must be lower-case letters, digits, - or _ "
                             "(start with a letter, at most 32)")
        return value

    @field_validator("port")
    @classmethod
    def _port_shape(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("port is empty: give a device path, a USB identity vid:pid[:serial], or sim")
        return value.strip()

    @property
    def simulated(self) -> bool:
        return self.port == "sim"

    @property
    def usb_identity(self) -> tuple[str, str, str | None] | None:
        """``(vid, pid, serial)`` when the port is given as a USB identity, else None."""
        m = USB_IDENTITY.match(self.port)
        return (m.group(1).lower(), m.group(2).lower(), m.group(3)) if m else None

    @property
    def label(self) -> str:
        return self.name or self.id


class CellInfo(_Strict):
    id: str
    name: str = ""
    standby_after_s: float | None = Field(default=None, gt=0, description="idle s before standby")
    #: The partner (company) that owns the cell; its lots are filed under it in the shop store.
    partner: str = Field(default="", pattern=r"^([a-z][a-z0-9_-]{0,40})?$")
    #: The shop store this cell's journal syncs to (``postgresql://...``); empty: none.
    store: str = Field(default="", pattern=r"^(postgres(ql)?://.*)?$")


class Cell(_Strict):
    """A whole bench: its header and its stations, in line order."""

    cell: CellInfo
    stations: list[StationConfig]
    version: Literal[1] = 1

    @model_validator(mode="after")
    def _unique_ids(self) -> Cell:
        seen: set[str] = set()
        for st in self.stations:
            if st.id in seen:
                raise ValueError(f"station id {st.id!r} appears twice; ids must be unique")
            seen.add(st.id)
        return self

    def station(self, station_id: str) -> StationConfig:
        for st in self.stations:
            if st.id == station_id:
                return st
        known = ", ".join(s.id for s in self.stations)
        raise KeyError(f"no station {station_id!r} in cell {self.cell.id!r} (stations: {known})")

    # set by load_cell: where the file lives, so relative paths in it resolve against its folder
    source: str = ""


def _check_unique_ids(doc: yamlfile.Located) -> None:
    """Point at the second station that reuses an id (the model check alone could only name the list)."""
    stations = doc.root.get("stations") if isinstance(doc.root, dict) else None
    if not isinstance(stations, list):
        return
    seen: dict[str, int] = {}
    for index, st in enumerate(stations):
        sid = st.get("id") if isinstance(st, dict) else None
        if isinstance(sid, str) and sid in seen:
            raise ConfigError([(doc.locate(("stations", index, "id")),
                                f"station id {sid!r} appears twice (first as station {seen[sid] + 1})")],
                              hint="give every station its own id")
        if isinstance(sid, str):
            seen[sid] = index


def load_cell(path: str | Path) -> Cell:
    """Load and validate a cell file, raising :class:`ConfigError` with every located problem.

    Station kinds are checked against the installed registry too (an unknown kind names the known ones).
    """
    doc = yamlfile.load(path)
    _check_unique_ids(doc)
    cell = yamlfile.validate(Cell, doc, hint="see docs/cells.md for the cell file format")
    from microfactory.registry import known_kinds  # late: the registry reads entry points

    kinds = known_kinds()
    problems = []
    for index, st in enumerate(cell.stations):
        if st.kind not in kinds:
            loc = doc.locate(("stations", index, "kind"))
            problems.append((loc, f"unknown station kind {st.kind!r}; installed kinds: "
                                  f"{', '.join(sorted(kinds)) or 'none'}"))
    if problems:
        raise ConfigError(problems, hint="use one of the installed kinds, or install the package that "
                          "provides the kind")
    problems = _option_problems(cell, doc)
    if problems:
        raise ConfigError(problems, hint="see the station kind's options in docs/cells.md")
    return cell.model_copy(update={"source": str(Path(path))})


def _option_problems(cell: Cell, doc: yamlfile.Located) -> list[tuple[SourceLocation, str]]:
    """Validate each station's ``options:`` with its kind's own model, located at the offending key."""
    from pydantic import BaseModel, ValidationError

    from microfactory.registry import station_kind

    problems: list[tuple[SourceLocation, str]] = []
    for index, st in enumerate(cell.stations):
        model = station_kind(st.kind).options
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            continue
        try:
            model.model_validate(st.options)
        except ValidationError as exc:
            for err in exc.errors():
                loc = tuple(p for p in err["loc"] if isinstance(p, (str, int)))
                where = doc.locate(("stations", index, "options", *loc))
                problems.append((_at_option_key(doc, index, loc, where), str(err["msg"])))
    return problems


def _at_option_key(doc: yamlfile.Located, index: int, loc: tuple[str | int, ...],
                   where: SourceLocation) -> SourceLocation:
    """Point at the option's key (``stop_on_eror:``) rather than its value: the key is what is wrong."""
    try:
        options = doc.root["stations"][index]["options"]
        line, column = options.lc.key(loc[0])
    except (AttributeError, IndexError, KeyError, TypeError):
        return where
    return SourceLocation(where.file, line + 1, column + 1, where.field)
