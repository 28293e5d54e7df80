"""Validate a recipe against a cell without running anything, collecting every problem.

:func:`validate_recipe` is what ``microfactory validate`` and the app's recipe editor call. It loads the
recipe and the cell (a file that does not parse is reported, not raised), compiles the recipe
(parameters, stations, G-code files, drawings), then hands each station step to its station kind's
``check`` — that is where the Grbl kind pre-checks every G-code line against the station's envelope,
feed and power limits, and where the camera kind loads the drawing. With ``check_ports`` it also opens
each real (non-sim) port the recipe uses. Each problem carries file, line, column, field path and a text
that says what to change.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from microfactory.cell import Cell, StationConfig, load_cell
from microfactory.errors import ConfigError, MicrofactoryError, SourceLocation
from microfactory.procedure import Procedure, Step
from microfactory.recipe.compile import Compilation, load_kind
from microfactory.recipe.loader import Recipe, load_recipe

log = logging.getLogger("microfactory.recipe")

#: ``file:line[:column]: text`` at the start of a station kind's check message.
_LOCATED = re.compile(r"^(?P<file>[^\n]+?):(?P<line>\d+)(?::(?P<col>\d+))?:\s*(?P<text>.*)$", re.DOTALL)


@dataclass(frozen=True)
class Problem:
    """One thing wrong, where it is (``line``/``column`` 1-based, None when unknown) and what to do."""

    file: str
    line: int | None
    column: int | None
    field: str
    message: str

    @classmethod
    def at(cls, loc: SourceLocation, message: str) -> Problem:
        return cls(loc.file, loc.line, loc.column, loc.field, message)

    def __str__(self) -> str:
        return f"{SourceLocation(self.file, self.line, self.column, self.field)}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "column": self.column, "field": self.field,
                "message": self.message}


@dataclass
class ValidationReport:
    """The outcome of :func:`validate_recipe`: every problem, and the procedure when it compiled."""

    recipe: str
    cell: str
    problems: list[Problem] = field(default_factory=list)
    procedure: Procedure | None = None

    @property
    def valid(self) -> bool:
        return not self.problems

    def add(self, loc: SourceLocation, message: str) -> None:
        self.problems.append(Problem.at(loc, message))

    def raise_for_problems(self) -> None:
        """Raise :class:`ConfigError` with every problem (nothing may run then)."""
        if self.problems:
            raise ConfigError([(SourceLocation(p.file, p.line, p.column, p.field), p.message)
                               for p in self.problems], hint="fix the problems listed, then validate again")

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of ``microfactory validate --json``."""
        steps = []
        if self.procedure is not None:
            steps = [{"id": s.id, "kind": str(s.kind), "station": s.station, "on_pass": s.on_pass,
                      "on_fail": s.on_fail} for s in self.procedure.steps]
        return {"valid": self.valid, "recipe": self.recipe, "cell": self.cell,
                "problems": [p.to_dict() for p in self.problems], "steps": steps}


def validate_recipe(path: str | Path, cell: Cell | str | Path, *, values: Mapping[str, Any] | None = None,
                    check_ports: bool = False) -> ValidationReport:
    """Check ``path`` against ``cell`` (a loaded cell or a cell file) with parameter ``values``.

    Never raises for bad input: every problem is in the report (``report.valid`` is False then).
    """
    report = ValidationReport(str(path), str(cell.source if isinstance(cell, Cell) else cell))
    recipe = _load(report, lambda: load_recipe(path))
    loaded = cell if isinstance(cell, Cell) else _load(report, lambda: load_cell(cell))
    if recipe is None or loaded is None:
        return report
    compilation = Compilation(recipe, loaded, values)
    report.procedure = compilation.run()
    for loc, text in compilation.problems:
        report.add(loc, text)
    for index, step in enumerate(report.procedure.steps):
        if step.station is None or _has_problem(report, index):
            continue
        config = next((s for s in loaded.stations if s.id == step.station), None)
        if config is not None:
            _station_check(report, recipe, index, step, config)
    if check_ports:
        for station_id in report.procedure.stations:
            used = next((s for s in loaded.stations if s.id == station_id), None)
            if used is not None and not used.simulated:
                port_text = port_problem(used)
                if port_text:
                    report.add(compilation.cell_locate(used.id, "port"), port_text)
    return report


def _load(report: ValidationReport, load: Any) -> Any:
    try:
        return load()
    except ConfigError as exc:
        for loc, raw in exc.problems:
            text = raw.removeprefix("Value error, ")  # pydantic's prefix says nothing to an operator
            # schema messages ("Field required") say what is wrong; the hint says where the format is
            report.add(loc, f"{text}; {exc.hint}" if exc.hint and ";" not in text else text)
        return None


def _has_problem(report: ValidationReport, index: int) -> bool:
    prefix = f"procedure[{index}]"
    return any(p.field == prefix or p.field.startswith((prefix + ".", prefix + "[")) for p in report.problems)


def _station_check(report: ValidationReport, recipe: Recipe, index: int, step: Step,
                   config: StationConfig) -> None:
    kind_key = str(step.kind)
    anchor = {"gcode": "program" if "program" in (recipe.steps[index].settings.model_fields_set) else "gcode",
              "inspect": "drawing"}.get(step.request.action)
    where = recipe.locate("procedure", index, kind_key, *((anchor,) if anchor else ()))
    kind = load_kind(config.kind)
    if isinstance(kind, str):
        report.add(where, f"station {config.id!r} cannot check this step: {kind}")
        return
    try:
        messages = list(kind.check(step.request, config))
    except MicrofactoryError as exc:
        report.add(where, f"station {config.id!r} ({config.kind}) cannot check this step: {exc}")
        return
    except Exception as exc:  # a third-party kind's bug: reported as a problem, never hidden
        log.exception("station kind %r crashed checking step %s", config.kind, step.id)
        report.add(where, f"station kind {config.kind!r} crashed checking this step ({type(exc).__name__}: "
                          f"{exc}); report this to the kind's authors")
        return
    for message in messages:
        loc, text = _locate_message(str(message), step, where)
        report.add(loc, f"station {config.id!r}: {text}")


def _locate_message(message: str, step: Step, where: SourceLocation) -> tuple[SourceLocation, str]:
    """Place a check message ``<source>:N: text`` at its source line.

    Station kinds report ``N`` as the 1-based line of the ``program`` list they were handed (the Grbl
    pre-check does); that is source line ``first_line + N - 1`` (the same for a program file, and the
    line inside the recipe file for inline G-code).
    """
    m = _LOCATED.match(message)
    params = step.request.params
    source = str(params.get("source", ""))
    if m is None or not source:
        return where, message
    file, line = m.group("file"), int(m.group("line"))
    col = int(m.group("col")) if m.group("col") else None
    names = {source, str(params.get("name", "")), Path(source).name, "<program>", "program"}
    if file in names or (os.path.isabs(file) and Path(file).resolve() == Path(source).resolve()):
        first = int(params.get("first_line", 1))
        return SourceLocation(source, first + line - 1, col, where.field), m.group("text")
    return where, message


def port_problem(config: StationConfig) -> str | None:
    """Try to reach a real station's port now; return what is wrong, or None when it opened."""
    from microfactory.transport.ports import resolve_port

    port = config.port
    if config.kind == "camera" or port.isdigit():
        if port.isdigit():
            exists = os.path.exists(f"/dev/video{port}")
        else:
            exists = "://" in port or os.path.exists(port)
        return None if exists else f"camera source {port!r} of station {config.id!r} is not there; " \
                                   "plug the camera in or fix port: in the cell file"
    try:
        device = resolve_port(port)
        import serial

        serial.serial_for_url(device, baudrate=config.baud, timeout=0).close()
    except MicrofactoryError as exc:
        return f"station {config.id!r}: {exc}"
    except (OSError, ValueError) as exc:  # serial.SerialException is an OSError
        return f"station {config.id!r}: cannot open {port!r}: {exc}; is another program using it?"
    return None
