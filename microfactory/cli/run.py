"""``microfactory run`` / ``simulate`` / ``demo``: run a lot, dry-run a lot, or watch the demo bench.

``run RECIPE --cell CELL`` shows live progress (parts done, each station's state, ETA) and ends with a
summary (good / rework / scrap, cycle time, throughput, energy per part). Operator prompts (manual steps,
fault decisions) are asked on the terminal; nothing is answered for you. Ctrl-C holds the cell and asks
whether to continue, stop or abort (a second Ctrl-C aborts). Exit 0 when the lot completed, 1 when it
stopped or aborted.

``simulate RECIPE --cell CELL --parts N`` is the dry run: lot time, bottleneck, utilisation, no bytes.

``demo`` runs a lot of the watch plate (with its rework loop) on the simulated bench
(``recipes/cells/sim.yaml``): every station is a simulator behind a pty, speaking its real protocol; a
simulated operator answers the manual "load the blank" steps after their expected time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from microfactory.access.signatures import check_recipe
from microfactory.access.users import Permission, Session, UserBook
from microfactory.bounds import MAX_LOT_SIZE
from microfactory.cell import Cell
from microfactory.cli.arguments import journal_path, part_count, speed_factor
from microfactory.cli.serve import add_opcua_arguments, pki_folder
from microfactory.cli.signin import signed_in
from microfactory.clock import Clock
from microfactory.engine.api import Controller, clock_for, load_cell, load_recipe
from microfactory.engine.estimate import estimate_lot
from microfactory.engine.journal import Journal
from microfactory.engine.lot import LotSummary
from microfactory.engine.prompts import WITHDRAWN
from microfactory.errors import ConfigError
from microfactory.events import Event, EventKind
from microfactory.mqtt import MqttOptions, publishing
from microfactory.mqtt import options as mqtt_options
from microfactory.procedure import Procedure
from microfactory.simclock import VirtualClock

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
RECIPES = Path(__file__).resolve().parents[2] / "recipes"
DEMO_CELL = RECIPES / "cells" / "sim.yaml"
DEMO_RECIPE = RECIPES / "watch-plate-rework.yaml"


def register(subparsers: Any) -> None:
    """Add ``run``, ``simulate`` and ``demo``."""
    run = subparsers.add_parser("run", help="run a lot of a recipe on a cell",
                                description="Run a lot with live progress; Ctrl-C holds and asks.")
    _common(run)
    run.add_argument("--speed", type=speed_factor, default=1.0, metavar="K|max",
                     help="simulated cells only: play the lot K times faster than real time, or as fast "
                          "as possible (max); the lot's figures are the same at any speed (1 on a real "
                          "bench)")
    run.add_argument("--db", type=journal_path, default="microfactory-runs.sqlite", metavar="PATH",
                     help="SQLite run journal (default: %(default)s)")
    run.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    run.add_argument("--user", metavar="ID",
                     help="who runs the lot (the password is asked); needed once the journal has users, "
                          "unless MICROFACTORY_TOKEN holds a CI token")
    add_opcua_arguments(run)
    mqtt_options.add_arguments(run)
    run.add_argument("--store", metavar="URL",
                     help="the shop store to sync the journal to as the lot runs, "
                          "postgresql://CELL-LOGIN@HOST/DB "
                          "(default: the cell file's cell.store; the journal stays the source of truth: a "
                          "store that is down is caught up later by `microfactory shop sync`)")
    run.add_argument("--partner", metavar="NAME",
                     help="the partner the lot is run for (default: the cell file's cell.partner)")
    run.set_defaults(func=handle_run)

    sim = subparsers.add_parser("simulate", help="dry-run a lot: time, bottleneck, utilisation",
                                description="Play the recipe against the stations' timing models; "
                                            "no station is contacted.")
    _common(sim)
    sim.add_argument("--json", action="store_true", help="print one JSON object")
    sim.set_defaults(func=handle_simulate)

    demo = subparsers.add_parser("demo", help="a whole lot on the simulated bench (start here)",
                                 description="Watch-plate lot through cut → machine → wash → inspect on "
                                             "recipes/cells/sim.yaml, with simulated defects.")
    demo.add_argument("--parts", type=part_count, default=12, metavar="N",
                      help="parts in the lot (default 12)")
    demo.add_argument("--speed", type=speed_factor, default=300.0, metavar="K|max",
                      help="simulation speed factor, or max for as fast as possible (default 300); the "
                           "lot's figures are the same at any speed")
    demo.add_argument("--db", type=journal_path, default=":memory:", metavar="PATH",
                      help="SQLite run journal (default: none)")
    demo.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    demo.add_argument("--headless", action="store_true",
                      help="stay in the terminal even when a display is present (otherwise the demo "
                           "opens the operator app)")
    demo.set_defaults(func=handle_demo)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", metavar="RECIPE", help="recipe file (YAML, see docs/recipes.md)")
    parser.add_argument("--cell", required=True, metavar="CELL", help="cell file (see docs/cells.md)")
    parser.add_argument("--parts", type=part_count, default=None, metavar="N",
                        help=f"parts, 1 to {MAX_LOT_SIZE} (default: the recipe's lot size)")
    parser.add_argument("--set", dest="values", action="append", default=[], metavar="NAME=VALUE",
                        help="a parameter value (repeatable)")


def _values(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError.single("--set", f"expects NAME=VALUE, got {item!r}",
                                     hint="write e.g. --set feed=600")
        out[name.strip()] = value.strip()
    return out


# -- handlers -------------------------------------------------------------------------------------
def handle_simulate(args: argparse.Namespace) -> int:
    cell = load_cell(args.cell)
    procedure = load_recipe(args.recipe, cell=cell, values=_values(args.values))
    est = estimate_lot(procedure, cell, parts=args.parts)
    if args.json:
        print(json.dumps(est.as_dict()))
        return EXIT_OK
    console = Console()
    table = Table(title=f"Dry run: {procedure.name} × {est.parts} on {cell.cell.id}")
    table.add_column("station")
    table.add_column("busy", justify="right")
    table.add_column("utilisation", justify="right")
    for sid, util in est.utilisation.items():
        mark = " ← bottleneck" if sid == est.bottleneck else ""
        table.add_row(sid, _hms(est.busy_s[sid]), f"{util:.0%}{mark}")
    console.print(table)
    console.print(f"lot time {_hms(est.lot_s)}, cycle {est.cycle_s:.1f} s/part at the bottleneck "
                  f"({est.bottleneck}), {est.throughput_per_h:.1f} parts/h")
    return EXIT_OK


def handle_run(args: argparse.Namespace) -> int:
    mqtt = mqtt_options.from_arguments(args)  # first: a bad --mqtt option is refused before anything runs
    cell = load_cell(args.cell)
    procedure = load_recipe(args.recipe, cell=cell, values=_values(args.values))
    store = args.store or cell.cell.store
    if store:
        _check_store(store, cell, args.db)
    return _run_lot(cell, procedure, parts=args.parts, speed=args.speed, db=args.db, as_json=args.json,
                    simulated_operator=False, user=args.user, mqtt=mqtt,
                    opcua=(args.opcua, pki_folder(args.opcua_pki, args.db), args.opcua_trust)
                    if args.opcua else None,
                    store=store, partner=args.partner or "")


def _check_store(store: str, cell: Cell, db: str) -> None:
    """A lot synced to the shop store needs a journal file and a cell that names its partner."""
    from microfactory.shop.store import check_name, is_store_url

    if not is_store_url(store):
        raise ConfigError.single("--store", f"{store!r} is not a PostgreSQL URL",
                                 hint="write postgresql://CELL-LOGIN:PASSWORD@HOST/DB")
    if db == ":memory:":
        raise ConfigError.single("--db", "a lot synced to the shop store needs a journal file, not :memory:",
                                 hint="give --db PATH")
    if not cell.cell.partner:
        raise ConfigError.single(getattr(cell, "source", "cell"),
                                 "the cell syncs to a shop store but names no partner (cell.partner)",
                                 hint="add `partner: NAME` under `cell:`")
    check_name("partner", cell.cell.partner)


def handle_demo(args: argparse.Namespace) -> int:
    if _display_present() and not args.headless and not args.json:
        from microfactory.cli import main  # the `gui` command comes from the ui package's entry point

        gui = ["gui", "--cell", str(DEMO_CELL), "--demo", "--parts", str(args.parts), "--speed",
               "max" if math.isinf(args.speed) else str(args.speed)]
        return main(gui + (["--db", args.db] if args.db != ":memory:" else []))
    if not args.headless and not args.json:
        print("demo: no display (DISPLAY and WAYLAND_DISPLAY are unset), so the lot runs here in the "
              "terminal; run it on a desktop or under xvfb-run for the operator app", file=sys.stderr)
    cell = load_cell(DEMO_CELL)
    procedure = load_recipe(DEMO_RECIPE, cell=cell)
    return _run_lot(cell, procedure, parts=args.parts, speed=args.speed, db=args.db, as_json=args.json,
                    simulated_operator=True)


def _display_present() -> bool:
    """A desktop to open the operator app on (X11 or Wayland); CI and SSH sessions have none."""
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _run_lot(cell: Cell, procedure: Procedure, *, parts: int | None, speed: float, db: str, as_json: bool,
             simulated_operator: bool, user: str | None = None,
             opcua: tuple[str, Path, str | None] | None = None, mqtt: MqttOptions | None = None,
             store: str = "", partner: str = "") -> int:
    console = Console(stderr=as_json)
    clock = clock_for(cell, speed)
    main = _lot(cell, procedure, parts, clock, db, console, simulated_operator, user, opcua, mqtt, partner)
    with _shop_sync(store, db, cell):
        summary = clock.run(main) if isinstance(clock, VirtualClock) else asyncio.run(main)
    if as_json:
        print(json.dumps(summary.as_dict()))
    else:
        if not console.is_terminal:
            console.line()  # rich's Live leaves its last frame without a newline when output is piped
        console.print(summary_table(summary))
    return EXIT_OK if summary.state == "complete" else EXIT_FAILED


@contextlib.contextmanager
def _shop_sync(store: str, db: str, cell: Cell) -> Iterator[None]:
    """Ship the journal to the shop store from a thread while the lot runs, and once more at its end."""
    if not store:
        yield
        return
    from microfactory.shop.sync import CellSync, follow

    sync = CellSync(db, store, cell=cell.cell.id, owner=cell.cell.partner)
    stop = threading.Event()
    worker = threading.Thread(target=follow, args=([sync], stop), kwargs={"every_s": 0.5},
                              name="shop-sync", daemon=True)
    worker.start()
    try:
        yield
    finally:
        stop.set()
        worker.join(timeout=60)
        sync.close()


# -- the live lot ---------------------------------------------------------------------------------
class Board:
    """What the live display shows, updated from events on the loop."""

    def __init__(self, procedure: Procedure, parts: int) -> None:
        self.title = procedure.name
        self.total = parts
        self.cell_state = "idle"
        self.lot: dict[str, Any] = {}
        self.stations: dict[str, list[str]] = {sid: ["?", ""] for sid in procedure.stations}

    def on_event(self, event: Event) -> None:
        if event.kind == EventKind.CELL_STATE:
            self.cell_state = event.data["state"]
        elif event.kind == EventKind.LOT:
            self.lot = dict(event.data)
        elif event.kind == EventKind.STATION_STATE and event.source in self.stations:
            self.stations[event.source][0] = str(event.data.get("state"))
        elif event.kind == EventKind.STEP and event.source in self.stations:
            self.stations[event.source][1] = event.data["part"] if event.data["phase"] == "intent" else ""

    def render(self) -> Group:
        lot = self.lot
        done = lot.get("passed", 0) + lot.get("scrapped", 0)
        eta = lot.get("eta_s")
        head = Text(f"{self.title}: {done}/{self.total} parts  good {lot.get('passed', 0)}  "
                    f"rework {lot.get('reworked', 0)}  scrap {lot.get('scrapped', 0)}  "
                    f"cell {self.cell_state}  ETA {_hms(eta) if eta is not None else '—'}")
        table = Table(show_header=True, expand=False)
        table.add_column("station")
        table.add_column("state")
        table.add_column("part")
        for sid, (state, part) in self.stations.items():
            table.add_row(sid, state, part)
        return Group(head, table)


class AlarmReporter:
    """Every alarm and every hold reaches the terminal with its cause and what to do.

    A hold nobody is asked about — ``STARVED``: the parts wait and every station they need is down (a
    Grbl link that died while idle) — becomes the interrupt question (unhold / stop / abort), so an
    operator can act, and at end of input the lot stops instead of holding until it is killed.
    """

    def __init__(self, console: Console, engine: Any) -> None:
        self.console = console
        self.engine = engine
        self.asking: asyncio.Task[str] | None = None

    def on_event(self, event: Event) -> None:
        data = event.data
        if event.kind == EventKind.ALARM:
            recovery = f" → {data['recovery']}" if data.get("recovery") else ""
            self.console.print(f"[bold red]alarm[/bold red] {event.source}: {data.get('code')}: "
                               f"{data.get('text')}{recovery}", highlight=False)
            if data.get("code") == "STARVED" and (self.asking is None or self.asking.done()):
                self.asking = self.engine.interrupt()
        elif event.kind == EventKind.CELL_STATE and data.get("state") == "held":
            why = ", ".join(sorted(self.engine.hold_reasons)) or "no reason given"
            self.console.print(f"[bold yellow]cell held[/bold yellow] ({why})", highlight=False)


async def _lot(cell: Cell, procedure: Procedure, parts: int | None, clock: Clock, db: str,
               console: Console, simulated_operator: bool, user: str | None = None,
               opcua: tuple[str, Path, str | None] | None = None, mqtt: MqttOptions | None = None,
               partner: str = "") -> LotSummary:
    controller = Controller(cell, clock=clock, db=db)
    session = authorise_run(controller.journal, procedure, user)
    if session is not None:
        controller.session, controller.user = session, session.user.id
    for step in controller.journal.in_doubt():  # left by an earlier run that was killed or lost a link
        console.print(f"[bold yellow]warning: in doubt from an earlier run: lot {step.lot} part {step.part} "
                      f"step {step.step} on {step.station or 'the cell'} was sent but never confirmed; "
                      f"check that part by hand (microfactory journal {db} --part {step.part}); "
                      f"`microfactory resume --db {db}` resumes or closes that lot[/bold yellow]")
    n = parts if parts is not None else procedure.lot_size
    board = Board(procedure, n)
    prompts: asyncio.Queue[Event] = asyncio.Queue()
    controller.bus.subscribe(board.on_event)
    controller.bus.subscribe(prompts.put_nowait, [EventKind.PROMPT])
    async with publishing(mqtt, controller.bus, cell_id=cell.cell.id,
                          stations=[s.id for s in cell.stations]), controller:
        engine = controller._engine()
        engine.partner = partner
        controller.bus.subscribe(AlarmReporter(console, engine).on_event,
                                 [EventKind.ALARM, EventKind.CELL_STATE])
        loop = asyncio.get_running_loop()
        interrupts = 0

        def on_sigint() -> None:
            nonlocal interrupts
            interrupts += 1
            if interrupts == 1:
                engine.interrupt()
            else:
                console.print("[red]second Ctrl-C: aborting[/red]")
                engine.emergency_stop()

        plant = await _serve_opcua(controller, opcua, console) if opcua else None
        loop.add_signal_handler(signal.SIGINT, on_sigint)
        # Live redraws from its own thread in wall time (4 Hz) whatever the speed of the lot's clock
        with Live(get_renderable=board.render, console=console, refresh_per_second=4,
                  transient=False) as live:
            operator = asyncio.ensure_future(_operator(controller, prompts, console, live,
                                                       procedure, simulated_operator))
            try:
                summary = await controller.run_lot(procedure, parts=n)
            finally:
                loop.remove_signal_handler(signal.SIGINT)
                operator.cancel()
                if plant is not None:
                    await loop.run_in_executor(None, plant.stop)
            live.refresh()
    return summary


async def _serve_opcua(controller: Controller, opcua: tuple[str, Path, str | None], console: Console) -> Any:
    """The OPC UA server of the running cell (``--opcua``), started off the engine's loop."""
    from microfactory.opcua.server import CellServer, LoopCommands

    loop = asyncio.get_running_loop()
    endpoint, pki, trusted = opcua
    server = CellServer(controller, LoopCommands(controller, loop), endpoint=endpoint, certificates=pki,
                        trusted=trusted)
    await loop.run_in_executor(None, server.start)
    console.print(f"OPC UA: serving cell {server.cell_id} on {endpoint} (certificate {server.certificate})")
    return server


def authorise_run(journal: Journal, procedure: Procedure, user: str | None) -> Session | None:
    """The session to run the lot with: once a journal has users, running needs one with the role
    (``--user`` or a CI token); a recipe released in this journal must be its released content."""
    changed = check_recipe(journal, procedure.recipe_id, procedure.version, procedure.source) \
        if procedure.source else None
    if changed:
        raise ConfigError.single(procedure.source, changed, hint="a released recipe never changes: give the "
                                 "change a new version and release it (microfactory release)")
    book = UserBook(journal)
    if book.empty and not user:
        return None
    return signed_in(book, user, Permission.RUN_LOT)


async def _operator(controller: Controller, prompts: asyncio.Queue[Event], console: Console, live: Live,
                    procedure: Procedure, simulated: bool) -> None:
    """Answer prompts: the terminal's operator, or (demo) a simulated one for manual steps only."""
    helpers: set[asyncio.Future[None]] = set()
    while True:
        event = await prompts.get()
        data = event.data
        if simulated and data["reason"] == "manual":
            helper = asyncio.ensure_future(_simulated_answer(controller, data, procedure))
            helpers.add(helper)
            helper.add_done_callback(helpers.discard)
            continue
        live.stop()
        console.print(f"[bold yellow]? {data['text']}[/bold yellow]")
        choice = await _ask_terminal(f"  answer ({'/'.join(data['choices'])}): ", data["choices"])
        live.start()
        if choice is None:
            console.print("no operator terminal: stopping the lot safely")
            controller.command("stop")
            continue
        if any(p.id == data["id"] for p in controller.prompts):
            controller.answer(data["id"], choice)


async def _simulated_answer(controller: Controller, data: Any, procedure: Procedure) -> None:
    step = procedure.step(data["step"]) if data.get("step") else None
    await controller.clock.sleep(step.duration_s if step else 0.0)
    if any(p.id == data["id"] for p in controller.prompts):
        controller.answer(data["id"], "done")


def _read_answer(question: str) -> str | None:
    """One line from the operator; the question goes to stderr so ``--json`` keeps stdout pure JSON.

    None at end of input (no operator terminal).
    """
    sys.stderr.write(question)
    sys.stderr.flush()
    line = sys.stdin.readline()
    return line if line else None


async def _ask_terminal(question: str, choices: list[str]) -> str | None:
    """Read an answer on a daemon thread (so a finished lot never waits for the keyboard)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[str | None] = loop.create_future()

    def read() -> None:
        while True:
            raw = _read_answer(question)
            if raw is None:
                answer: str | None = None
                break
            line = raw.strip().lower()
            matches = [c for c in choices if c.startswith(line)] if line else []
            if len(matches) == 1:
                answer = matches[0]
                break
            print(f"  please answer one of: {', '.join(choices)}", file=sys.stderr)
        def deliver() -> None:
            if not future.done():
                future.set_result(answer)

        loop.call_soon_threadsafe(deliver)

    threading.Thread(target=read, name="operator-terminal", daemon=True).start()
    result = await future
    return None if result == WITHDRAWN else result


def summary_table(summary: LotSummary) -> Table:
    table = Table(title=f"Lot {summary.lot} ({summary.recipe}): {summary.state}")
    table.add_column("")
    table.add_column("", justify="right")
    rows = [("parts", f"{summary.parts}"), ("good", f"{summary.passed}"),
            ("reworked", f"{summary.reworked}"), ("scrap", f"{summary.scrapped}"),
            ("unfinished", f"{summary.unfinished}"), ("lot time", _hms(summary.elapsed_s)),
            ("cycle time", f"{summary.cycle_time_s:.1f} s/part"),
            ("throughput", f"{summary.throughput_per_h:.1f} good parts/h"),
            ("energy", f"{summary.energy_j / 3600:.2f} Wh "
                       f"({summary.energy_per_part_wh:.2f} Wh per good part)")]
    for sid, use in summary.stations.items():
        rows.append((f"  {sid}", f"{use.utilisation:.0%} busy, {use.energy_j / 3600:.2f} Wh"))
    for label, value in rows:
        table.add_row(label, value)
    return table


def _hms(seconds: float) -> str:
    seconds = max(0.0, float(seconds))
    h, rem = divmod(round(seconds), 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
