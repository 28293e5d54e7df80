"""Compile a recipe for one cell and one set of parameter values into a :class:`Procedure`.

Compiling is where a recipe meets the bench: each step is given a cell station (named with ``station:``,
or found by the capabilities its kind needs plus the step's ``requires:``), ``${name}`` references are
expanded with typed values, G-code programs are read relative to the recipe file and expanded as
templates, and every step becomes a :class:`~microfactory.station.StepRequest` in its station's words:

- ``gcode`` (cut, machine): ``program`` (list of lines, ``${...}`` expanded), ``source`` (file the lines
  came from), ``first_line`` (line in ``source`` of ``program[0]``; line ``n`` of the program is
  ``first_line + n``; a station kind's check reports ``source:N`` with ``N`` the 1-based index into
  ``program``, validation maps it back), ``name``, ``laser`` and ``laser_power`` (S) for cuts,
  ``feed`` (mm/min), ``spindle`` (rpm), ``tool``;
- ``wash``: ``program`` or ``temperature_c`` (°C), ``time_s`` (s), ``power_pct`` (%);
- ``inspect``: ``drawing`` (absolute path), ``tolerances`` (feature → ± mm), ``defects`` (class → mm);
- ``manual`` / ``transfer``: ``prompt``, ``duration_s`` (s); no station.

Inside a G-code template the step's own settings are variables too: ``${power}``, ``${feed}``,
``${spindle}``, ``${tool}`` (they shadow recipe parameters of the same name).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from microfactory import registry, yamlfile
from microfactory.cell import Cell, StationConfig
from microfactory.errors import ConfigError, MicrofactoryError, SourceLocation
from microfactory.gcode.lexer import lex_line
from microfactory.procedure import FaultAction, FaultPolicy, InterruptPolicy, Procedure, Step, StepKind
from microfactory.recipe.loader import HINT, Problem, Recipe, load_recipe
from microfactory.recipe.parameters import (
    UnknownParameter,
    references,
    resolve_values,
    substitute,
    substitute_text,
)
from microfactory.recipe.schema import RecipeStep
from microfactory.station import StationKind, StepRequest

log = logging.getLogger("microfactory.recipe")

#: A step of this kind needs a station offering at least one of these capabilities.
KIND_CAPABILITIES: dict[StepKind, tuple[str, ...]] = {
    StepKind.CUT: ("cut", "laser"),
    StepKind.MACHINE: ("machine", "spindle"),
    StepKind.WASH: ("wash",),
    StepKind.INSPECT: ("inspect",),
}

#: Step settings that a G-code template may use as ``${name}`` too.
STEP_VARIABLES = ("power", "feed", "spindle", "tool")

#: Sanity bounds of step settings after substitution: (min, max, min is exclusive). The station kind's
#: check applies the device's own limits (envelope, max feed, max power) on top.
_BOUNDS: dict[str, tuple[float | None, float | None, bool]] = {
    "power": (0, None, False), "feed": (0, None, True), "spindle": (0, None, False),
    "temperature_c": (0, 100, False), "time_s": (0, 86_400, True), "power_pct": (0, 100, False),
    "duration_s": (0, 86_400, False), "timeout_s": (0, None, True),
    "tolerances": (0, None, True), "defects": (0, None, False),
}
_UNITS = {"power": "S", "feed": "mm/min", "spindle": "rpm", "temperature_c": "°C", "time_s": "s",
          "power_pct": "%", "duration_s": "s", "timeout_s": "s", "tolerances": "mm", "defects": "mm or mm²"}


@dataclass
class Compilation:
    """One compile run that collects every problem instead of stopping at the first.

    :func:`compile_recipe` raises when :attr:`problems` is not empty; validation reads them all.
    """

    recipe: Recipe
    cell: Cell
    given: Mapping[str, Any] | None = None
    problems: list[Problem] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)
    _capabilities: dict[str, frozenset[str]] = field(default_factory=dict)
    _cell_doc: yamlfile.Located | None = None

    def run(self) -> Procedure:
        """Build the procedure (possibly with placeholder parts where problems were found)."""
        self.values = self._values()
        self._requirements()
        steps = tuple(self._step(i, st) for i, st in enumerate(self.recipe.steps))
        lot = self.recipe.spec.lot
        return Procedure(
            recipe_id=self.recipe.id, version=self.recipe.version, name=self.recipe.name, steps=steps,
            first=steps[0].id, lot_size=lot.size, parts_in_flight=lot.parts_in_flight,
            parameters=dict(self.values), source=str(self.recipe.path))

    # -- parameters -------------------------------------------------------------------------------
    def _values(self) -> dict[str, Any]:
        specs = self.recipe.parameters()
        values, problems = resolve_values(specs, self.given)
        for name, text in problems:
            spec = specs.get(name)
            hint = f"; give a value in {spec.bounds_text}" if spec and spec.bounds_text else ""
            self.problems.append((SourceLocation("--set", None, None, name), f"{text}{hint}"))
        return values

    def _expand(self, value: Any, where: Sequence[str | int], variables: Mapping[str, Any]) -> Any:
        """``value`` with references expanded; unknown names become problems (the raw value is kept)."""
        try:
            return substitute(value, variables)
        except UnknownParameter as exc:
            self.problems.append((self.recipe.locate(*where),
                                  f"{exc}; declare it under parameters: or fix the spelling"))
            return value

    # -- stations ---------------------------------------------------------------------------------
    def capabilities(self, config: StationConfig) -> frozenset[str]:
        """What ``config`` offers: its kind's capabilities plus the cell file's ``capabilities:``."""
        if config.id not in self._capabilities:
            caps = set(config.capabilities)
            kind = load_kind(config.kind)
            if not isinstance(kind, str):  # an unloadable kind is reported where a step needs it
                caps |= set(kind.capabilities(config))
            self._capabilities[config.id] = frozenset(caps)
        return self._capabilities[config.id]

    def cell_locate(self, station_id: str, *parts: str | int) -> SourceLocation:
        """Where a station (or one of its fields) is written in the cell file."""
        source = self.cell.source or "<cell>"
        index = next((i for i, s in enumerate(self.cell.stations) if s.id == station_id), None)
        if self._cell_doc is None and self.cell.source:
            try:
                self._cell_doc = yamlfile.load(self.cell.source)
            except ConfigError:
                self._cell_doc = None
        if self._cell_doc is None or index is None:
            return SourceLocation(source, None, None, f"stations.{station_id}")
        return self._cell_doc.locate(("stations", index, *parts))

    def _unloaded(self) -> list[str]:
        """``station (why its kind cannot be loaded)`` for each station whose capabilities are unknown."""
        out = []
        for s in self.cell.stations:
            kind = load_kind(s.kind)
            if isinstance(kind, str):
                out.append(f"{s.id} ({kind})")
        return out

    def _no_station(self, loc: SourceLocation, what: str, fix: str) -> None:
        unloaded = self._unloaded()
        if unloaded:
            text = (f"the cell {self.cell.cell.id!r} has no known station {what}; these may fit but their "
                    f"kind cannot be loaded: {'; '.join(unloaded)}; install or fix the package that "
                    "provides the kind (pip install -e .)")
        else:
            text = (f"the cell {self.cell.cell.id!r} has no station {what} (it has {self._describe_cell()}); "
                    f"{fix}")
        self.problems.append((loc, text))

    def _describe_cell(self) -> str:
        return "; ".join(f"{s.id} ({s.kind}: {', '.join(sorted(self.capabilities(s))) or 'nothing'})"
                         for s in self.cell.stations) or "no stations"

    def _requirements(self) -> None:
        for i, req in enumerate(self.recipe.spec.requirements):
            if any((req.kind is None or s.kind == req.kind) and set(req.capabilities) <= self.capabilities(s)
                   for s in self.cell.stations):
                continue
            want = " ".join(x for x in (f"of kind {req.kind}" if req.kind else "",
                                         f"with {', '.join(req.capabilities)}" if req.capabilities else "")
                            if x)
            self._no_station(self.recipe.locate("requirements", i), want,
                             "add one to the cell file or use another cell")

    def _station(self, index: int, step: RecipeStep) -> str | None:
        needs_any = KIND_CAPABILITIES.get(step.kind)
        if needs_any is None:
            return None
        needs_all = set(step.requires)
        want = f"{' or '.join(needs_any)}" + (f" plus {', '.join(sorted(needs_all))}" if needs_all else "")
        if step.station is not None:
            config = next((s for s in self.cell.stations if s.id == step.station), None)
            if config is None:
                known = ", ".join(s.id for s in self.cell.stations)
                self.problems.append((self.recipe.locate("procedure", index, "station"),
                                      f"the cell {self.cell.cell.id!r} has no station {step.station!r} "
                                      f"(stations: {known}); name one of those or remove station:"))
                return step.station
            caps = self.capabilities(config)
            kind_loaded = not isinstance(load_kind(config.kind), str)  # else the cell problem says why
            if kind_loaded and (not (caps & set(needs_any)) or not needs_all <= caps):
                self.problems.append((self.recipe.locate("procedure", index, "station"),
                                      f"station {config.id!r} offers {', '.join(sorted(caps)) or 'nothing'}, "
                                      f"but a {step.kind} step needs {want}; name another station"))
            return config.id
        matches = [s for s in self.cell.stations
                   if self.capabilities(s) & set(needs_any) and needs_all <= self.capabilities(s)]
        if not matches:
            self._no_station(self.recipe.locate("procedure", index, step.kind.value),
                             f"for this {step.kind} step (needs {want})",
                             "add such a station to the cell file, or change the step")
            return None
        if len(matches) > 1:
            log.info("step %s: %d stations fit (%s), using %s; name one with station: to choose",
                     step.id, len(matches), ", ".join(s.id for s in matches), matches[0].id)
        return matches[0].id

    # -- steps ------------------------------------------------------------------------------------
    def _step(self, index: int, step: RecipeStep) -> Step:
        where: tuple[str | int, ...] = ("procedure", index, step.kind.value)
        raw = step.settings.model_dump(exclude_none=True)
        inline = raw.pop("gcode", None)  # a template: expanded with the step's variables in _gcode
        settings = self._expand(raw, where, self.values)
        if inline is not None:
            settings["gcode"] = inline
        for key, value in settings.items():
            if key in _BOUNDS:
                settings[key] = self._number(value, (*where, key), key)
        station = self._station(index, step)
        if step.kind in (StepKind.CUT, StepKind.MACHINE):
            request_params = self._gcode(index, step, settings)
            action = "gcode"
        elif step.kind == StepKind.INSPECT:
            request_params = self._inspect(index, settings)
            action = "inspect"
        else:
            request_params = settings
            action = step.kind.value
        timeout = self._number(self._expand(step.timeout_s, ("procedure", index, "timeout_s"), self.values),
                               ("procedure", index, "timeout_s"), "timeout_s")
        on_fail = step.on_fail or "scrap"
        return Step(
            id=step.id, kind=step.kind, station=station,
            request=_request(action, request_params, f"{self.recipe.id}/{step.id}"),
            on_pass=step.on_pass or self.recipe.next_step(index), on_fail=on_fail,
            max_rework=step.max_rework, fault_policy=self._fault(step),
            prompt=str(settings.get("prompt", "")), duration_s=_seconds(settings.get("duration_s")) or 0.0,
            timeout_s=_seconds(timeout),
            on_interrupt=InterruptPolicy(step.on_interrupt) if step.on_interrupt else None)

    def _fault(self, step: RecipeStep) -> FaultPolicy:
        rule = step.fault or self.recipe.spec.faults.for_kind(step.kind)
        return FaultPolicy(FaultAction(rule.action), rule.retries, FaultAction(rule.then),
                           rule.operator_retries)

    def _number(self, value: Any, where: Sequence[str | int], key: str) -> Any:
        """Check a number (or each number of a mapping) against its sanity bounds; return it typed."""
        if value is None:
            return None
        if isinstance(value, dict):
            return {k: self._number(v, (*where, k), key) for k, v in value.items()}
        lo, hi, open_lo = _BOUNDS[key]
        unit = _UNITS[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.problems.append((self.recipe.locate(*where),
                                  f"{key} is {value!r}, which is no number; give a number in {unit}"))
            return value
        if lo is not None and (value < lo or (open_lo and value == lo)):
            self.problems.append((self.recipe.locate(*where),
                                  f"{key} = {value:g} {unit} must be {'above' if open_lo else 'at least'} "
                                  f"{lo:g} {unit}; change the value or the parameter behind it"))
        elif hi is not None and value > hi:
            self.problems.append((self.recipe.locate(*where),
                                  f"{key} = {value:g} {unit} is above {hi:g} {unit}; change the value or the "
                                  "parameter behind it"))
        return value

    def _gcode(self, index: int, step: RecipeStep, settings: dict[str, Any]) -> dict[str, Any]:
        where: tuple[str | int, ...] = ("procedure", index, step.kind.value)
        step_vars: dict[str, Any] = {k: settings[k] for k in STEP_VARIABLES if k in settings}
        variables = {**self.values, **step_vars}
        unread = False
        if "program" in settings:
            path = (self.recipe.folder / str(settings["program"])).resolve()
            try:
                text = path.read_text(encoding="utf-8")
            except FileNotFoundError:
                self.problems.append((self.recipe.locate(*where, "program"),
                                      f"G-code file not found: {path}; fix the path (it is relative to the "
                                      f"recipe's folder {self.recipe.folder}) or add the file"))
                text, unread = "", True
            except (OSError, UnicodeDecodeError) as exc:
                self.problems.append((self.recipe.locate(*where, "program"),
                                      f"cannot read G-code file {path}: {exc}; is it a text file?"))
                text, unread = "", True
            source, first_line, name, indent = str(path), 1, path.name, 0
        else:
            loc = self.recipe.locate(*where, "gcode")
            text = str(settings["gcode"])
            source, name = str(self.recipe.path), f"{step.id} (inline)"
            first_line = (loc.line or 0) + 1
            indent = _indent_of(self.recipe.path, first_line)
        program = self._template(text, source, first_line, variables, where, indent)
        if not unread and not any(lex_line(line).words for line in program):
            field = "program" if "program" in settings else "gcode"
            what = "is empty" if not text.strip() else "holds only comments"
            self.problems.append((self.recipe.locate(*where, field),
                                  f"G-code {name} {what}: this {step.kind.value} step would send nothing "
                                  "to the machine; give the program it should run"))
        params: dict[str, Any] = {"program": program, "source": source, "first_line": first_line,
                                  "name": name}
        if step.kind == StepKind.CUT:
            params["laser"] = True
            if "power" in settings:
                params["laser_power"] = settings["power"]
        for key in ("feed", "spindle", "tool"):
            if key in settings:
                params[key] = settings[key]
        return params

    def _template(self, text: str, source: str, first_line: int, variables: Mapping[str, Any],
                  where: Sequence[str | int], indent: int = 0) -> list[str]:
        lines = text.splitlines()
        out: list[str] = []
        for n, line in enumerate(lines):
            unknown = [(name, col) for name, col in references(line) if name not in variables]
            for name, col in unknown:
                self.problems.append((SourceLocation(source, first_line + n, col + indent, _field(where)),
                                      f"unknown parameter ${{{name}}} in the G-code (known: "
                                      f"{', '.join(sorted(variables)) or 'none'}); declare it under "
                                      "parameters: or fix the spelling"))
            out.append(line if unknown else substitute_text(line, variables))
        return out

    def _inspect(self, index: int, settings: dict[str, Any]) -> dict[str, Any]:
        path = (self.recipe.folder / str(settings["drawing"])).resolve()
        if not path.is_file():
            self.problems.append((self.recipe.locate("procedure", index, "inspect", "drawing"),
                                  f"drawing not found: {path}; write the drawing (docs/drawings.md) or fix "
                                  f"the path (it is relative to the recipe's folder {self.recipe.folder})"))
        empty: dict[str, Any] = {}
        return {"drawing": str(path), "tolerances": dict(settings.get("tolerances", empty)),
                "defects": dict(settings.get("defects", empty))}


def load_kind(name: str) -> StationKind | str:
    """The registered station kind ``name``, or a text saying why it cannot be loaded.

    An entry point whose module is missing or half-written (no ``KIND`` yet) is a problem to report for
    the cell, not a crash of the validation.
    """
    try:
        return registry.station_kind(name)
    except MicrofactoryError as exc:
        return f"station kind {name!r} cannot be loaded ({exc.message})"
    except (ImportError, AttributeError) as exc:
        return f"station kind {name!r} cannot be loaded ({type(exc).__name__}: {exc})"


def _indent_of(path: Path, line: int) -> int:
    """Leading spaces of ``line`` (1-based) in ``path``: the indent of an inline G-code block."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return 0
    if not 0 < line <= len(lines):
        return 0
    return len(lines[line - 1]) - len(lines[line - 1].lstrip(" "))


def _field(parts: Sequence[str | int]) -> str:
    return yamlfile.field_path(parts)


def _seconds(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _request(action: str, params: Mapping[str, Any], key: str) -> StepRequest:
    return StepRequest(action=action, params=dict(params), key=key)


def compile_recipe(recipe: Recipe | str | Path, cell: Cell, values: Mapping[str, Any] | None = None
                   ) -> Procedure:
    """Compile ``recipe`` (loaded, or a recipe file) for ``cell`` with parameter ``values``.

    Values may be typed or text (``--set feed=600``); parameters not given take their defaults.

    Raises :class:`ConfigError` listing every problem (unknown or out-of-bounds parameter, a station the
    cell lacks, a missing G-code file or drawing ...). The station kinds' own pre-checks (envelope, feed,
    power) run in :func:`microfactory.recipe.validate.validate_recipe` and in the drivers before sending.
    """
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    compilation = Compilation(recipe, cell, values)
    procedure = compilation.run()
    if compilation.problems:
        raise ConfigError(compilation.problems, hint=HINT)
    return procedure
