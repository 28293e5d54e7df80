"""The pytest plugin: test your own recipes on your own cell, in your own CI (``docs/testing.md``).

Installed with microfactory (entry point ``pytest11``), so a repository that depends on microfactory
has it without a ``conftest.py``. Tell it the cell file once, in ``pyproject.toml``::

    [tool.pytest.ini_options]
    microfactory_cell = "cell.yaml"

Fixtures:

- ``mf_cell``: the cell, every station on its simulator (a station whose file names a real device
  runs on its simulator too, so the bench's own cell file serves CI); with ``--mf-port`` in a test
  marked ``mf_hardware``, the named stations are the real ones.
- ``mf_runner`` (session): a :class:`CellRunner`; ``mf_runner.run("recipes/x.yaml", parts=3)`` runs
  a lot and returns a :class:`LotResult` (summary, parts and their end states, verdicts, measurements,
  alarms, prompts, every event, and the lot's journal).
- ``mf_run_lot``: the same ``run`` at the test's own speed (marker ``mf_speed``).

Markers: ``@pytest.mark.mf_speed(K)`` (or ``"max"``, the default: as fast as possible on the virtual
clock; the lot's figures are the same at any speed) and ``@pytest.mark.mf_hardware`` (skipped unless
``--mf-port STATION=PORT`` is given; runs at real time).

Operator prompts are answered as a careful operator would in a test: a manual step ("load the blank")
is done after its expected time; any other prompt (a fault: retry / scrap / abort) is answered from
``answers={"fault": "scrap"}`` when the test gives one, otherwise the lot is stopped safely and the
prompt is in ``result.prompts`` — nothing is guessed.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from microfactory import simclock
from microfactory.cell import Cell
from microfactory.engine.api import Controller, load_cell, load_recipe
from microfactory.engine.journal import Journal, StepRecord
from microfactory.engine.lot import LotSummary
from microfactory.errors import ConfigError
from microfactory.events import Event, EventKind
from microfactory.procedure import Procedure

INI_CELL = "microfactory_cell"
MAX = math.inf


@dataclass(frozen=True)
class Measurement:
    """One measured feature of one part (``value`` in ``unit``, mm for lengths)."""

    part: str
    feature: str
    value: float
    unit: str
    verdict: str
    station: str


@dataclass
class LotResult:
    """What a lot produced, for assertions.

    ``parts`` maps each part to its end state (``passed``, ``scrapped`` ...), ``verdicts`` each part to
    the verdict of its last inspection (``pass``/``fail``), ``prompts`` holds ``(prompt event, answer)``
    (answer None: the lot was stopped instead). ``journal`` is the lot's SQLite journal, reopened from
    disk after the run (what a crash would have left); ``steps`` are its step records in order.
    """

    summary: LotSummary
    parts: dict[str, str]
    verdicts: dict[str, str]
    measurements: list[Measurement]
    alarms: list[Event]
    prompts: list[tuple[Event, str | None]]
    events: list[Event]
    journal: Journal
    journal_path: Path
    speed: float

    @property
    def state(self) -> str:
        return self.summary.state

    @property
    def steps(self) -> list[StepRecord]:
        return self.journal.steps(lot=self.summary.lot)

    def measured(self, feature: str) -> list[Measurement]:
        return [m for m in self.measurements if m.feature == feature]


@dataclass
class CellRunner:
    """Runs lots of recipes on one cell; every lot gets its own journal file under ``folder``."""

    cell: Cell
    folder: Path
    speed: float = MAX
    base: Path = field(default_factory=Path.cwd)  # relative recipe paths start here (the rootdir)
    _opened: list[Journal] = field(default_factory=list)
    _count: itertools.count[int] = field(default_factory=itertools.count)

    def load(self, recipe: str | Path, values: Mapping[str, Any] | None = None) -> Procedure:
        path = Path(recipe)
        return load_recipe(path if path.is_absolute() else self.base / path, cell=self.cell, values=values)

    def run(self, recipe: str | Path | Procedure, *, parts: int | None = None,
            values: Mapping[str, Any] | None = None, speed: float | None = None, lot_id: str | None = None,
            answers: Mapping[str, str] | None = None) -> LotResult:
        """Run one lot of ``recipe`` (a file, relative to the rootdir, or a compiled Procedure)."""
        procedure = recipe if isinstance(recipe, Procedure) else self.load(recipe, values)
        pace = self.speed if speed is None else speed
        db = self.folder / f"lot-{next(self._count)}.sqlite"
        simulated = all(st.simulated for st in self.cell.stations)
        events: list[Event] = []
        prompts: list[tuple[Event, str | None]] = []

        async def main() -> LotSummary:
            # simulated: the virtual clock simclock.run started; a real bench: real time (speed 1)
            controller = Controller(self.cell, db=db)
            controller.bus.subscribe(events.append)
            queue: asyncio.Queue[Event] = asyncio.Queue()
            controller.bus.subscribe(queue.put_nowait, [EventKind.PROMPT])
            async with controller:
                operator = asyncio.ensure_future(_operator(controller, procedure, queue, answers or {},
                                                           prompts))
                try:
                    return await controller.run_lot(procedure, parts=parts, lot_id=lot_id)
                finally:
                    operator.cancel()

        summary = simclock.run(lambda clock: main(), pace=pace) if simulated else asyncio.run(main())
        journal = Journal(db)
        self._opened.append(journal)
        return _result(summary, events, prompts, journal, db, pace)

    def close(self) -> None:
        for journal in self._opened:
            journal.close()
        self._opened.clear()


async def _operator(controller: Controller, procedure: Procedure, queue: asyncio.Queue[Event],
                    answers: Mapping[str, str], log: list[tuple[Event, str | None]]) -> None:
    while True:
        event = await queue.get()
        data = event.data
        if data["reason"] == "manual" and "manual" not in answers:
            step = procedure.step(data["step"]) if data.get("step") else None
            await controller.clock.sleep(step.duration_s if step else 0.0)
            answer: str | None = "done"
        else:
            answer = answers.get(data["reason"])
        if answer is None:  # nobody said what to do: stop safely, as the CLI does without an operator
            log.append((event, None))
            controller.command("stop")
            continue
        log.append((event, answer))
        if any(p.id == data["id"] for p in controller.prompts):
            controller.answer(data["id"], answer)


def _result(summary: LotSummary, events: list[Event], prompts: list[tuple[Event, str | None]],
            journal: Journal, db: Path, speed: float) -> LotResult:
    verdicts: dict[str, str] = {}
    for e in events:
        if e.kind == EventKind.STEP and e.data.get("phase") == "done" and e.data.get("verdict"):
            verdicts[e.data["part"]] = str(e.data["verdict"])
    measurements = [Measurement(str(e.data.get("part")), str(e.data.get("feature")), float(e.data["value"]),
                                str(e.data.get("unit", "")), str(e.data.get("verdict", "")), e.source)
                    for e in events if e.kind == EventKind.MEASUREMENT and e.data.get("value") is not None]
    return LotResult(summary=summary, parts=journal.part_states(summary.lot), verdicts=verdicts,
                     measurements=measurements, alarms=[e for e in events if e.kind == EventKind.ALARM],
                     prompts=prompts, events=events, journal=journal, journal_path=db, speed=speed)


# -- pytest hooks and fixtures ----------------------------------------------------------------------
def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("microfactory", "microfactory: test recipes on a simulated or real cell")
    group.addoption("--mf-cell", default=None, metavar="CELL",
                    help=f"the cell file (default: the {INI_CELL} ini option)")
    group.addoption("--mf-port", action="append", default=[], metavar="STATION=PORT",
                    help="a real station's port for tests marked mf_hardware (repeatable); without it "
                         "those tests are skipped")
    group.addoption("--mf-speed", default=None, metavar="K|max",
                    help="speed of simulated lots without an mf_speed marker (default: max)")
    parser.addini(INI_CELL, "the cell file the microfactory fixtures start (relative to the rootdir)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "mf_speed(k): run this test's simulated lots at ×k, or 'max'")
    config.addinivalue_line("markers", "mf_hardware: needs real stations (--mf-port STATION=PORT); "
                                       "skipped without")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--mf-port"):
        return
    skip = pytest.mark.skip(reason="needs real stations: give --mf-port STATION=PORT")
    for item in items:
        if item.get_closest_marker("mf_hardware") is not None:
            item.add_marker(skip)


def speed_of(text: object) -> float:
    """``max`` or a positive number (the ``mf_speed`` marker and ``--mf-speed``)."""
    if isinstance(text, str) and text.strip().lower() == "max":
        return MAX
    try:
        value = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise pytest.UsageError(f"microfactory speed {text!r}: give a number above 0 or 'max'") from None
    if not value > 0:
        raise pytest.UsageError(f"microfactory speed {text!r}: give a number above 0 or 'max'")
    return value


def _ports(config: pytest.Config, cell: Cell) -> dict[str, str]:
    ports: dict[str, str] = {}
    for item in config.getoption("--mf-port"):
        station, sep, port = item.partition("=")
        if not sep and len(cell.stations) == 1:
            station, port = cell.stations[0].id, item
        elif not sep or not port:
            raise pytest.UsageError(f"--mf-port {item!r}: write STATION=PORT (e.g. mill=/dev/ttyUSB0)")
        if station not in {s.id for s in cell.stations}:
            raise pytest.UsageError(f"--mf-port {item!r}: the cell has no station {station!r} "
                                    f"(it has {', '.join(s.id for s in cell.stations)})")
        ports[station] = port
    return ports


def _cell_file(config: pytest.Config) -> Path:
    text = config.getoption("--mf-cell") or config.getini(INI_CELL)
    if not text:
        raise pytest.UsageError(f"the microfactory fixtures need a cell file: set {INI_CELL} = \"cell.yaml\" "
                                "under [tool.pytest.ini_options] in pyproject.toml, or give --mf-cell CELL")
    path = Path(str(text))
    return path if path.is_absolute() else Path(config.rootpath) / path


def _with_ports(cell: Cell, ports: Mapping[str, str]) -> Cell:
    """Every station simulated, except those ``ports`` names, which are the real ones."""
    stations = [st.model_copy(update={"port": ports.get(st.id, "sim")}) for st in cell.stations]
    return cell.model_copy(update={"stations": stations})


@pytest.fixture(scope="session")
def mf_cell_file(pytestconfig: pytest.Config) -> Path:
    """The cell file named by ``--mf-cell`` or the ``microfactory_cell`` ini option."""
    return _cell_file(pytestconfig)


@pytest.fixture
def mf_cell(request: pytest.FixtureRequest, mf_cell_file: Path) -> Cell:
    """The cell for this test: simulated, or with the ``--mf-port`` stations real (``mf_hardware``)."""
    try:
        cell = load_cell(mf_cell_file)
    except ConfigError as exc:
        raise pytest.UsageError(f"microfactory cell file: {exc}") from None
    hardware = request.node.get_closest_marker("mf_hardware") is not None
    return _with_ports(cell, _ports(request.config, cell) if hardware else {})


@pytest.fixture(scope="session")
def mf_runner(pytestconfig: pytest.Config, mf_cell_file: Path,
              tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A :class:`CellRunner` on the simulated cell, shared by the session (lots get their own journal)."""
    cell = _with_ports(load_cell(mf_cell_file), {})
    speed = speed_of(pytestconfig.getoption("--mf-speed") or "max")
    runner = CellRunner(cell, tmp_path_factory.mktemp("microfactory-lots"), speed,
                        base=Path(pytestconfig.rootpath))
    yield runner
    runner.close()


@pytest.fixture
def mf_run_lot(request: pytest.FixtureRequest, mf_cell: Cell, tmp_path: Path) -> Any:
    """``mf_run_lot(recipe, parts=..., values=..., answers=...)`` → :class:`LotResult`, at the test's
    ``mf_speed`` (real time on hardware)."""
    marker = request.node.get_closest_marker("mf_speed")
    hardware = request.node.get_closest_marker("mf_hardware") is not None
    default = request.config.getoption("--mf-speed") or "max"
    speed = 1.0 if hardware else speed_of(marker.args[0] if marker and marker.args else default)
    runner = CellRunner(mf_cell, tmp_path, speed, base=Path(request.config.rootpath))
    yield runner.run
    runner.close()
