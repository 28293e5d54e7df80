"""``microfactory stream``: send one G-code file to one Grbl machine, checked first, with a progress bar.

    microfactory stream --port /dev/ttyUSB0 --home part.nc
    microfactory stream --port sim --unlock part.nc
    microfactory stream --port 0403:6001 --cell bench.yaml --station cut part.nc --trace run.jsonl
    microfactory home --cell bench.yaml --station mill        (or --port PORT; `unlock` likewise)

A stock machine (homing on, ``$22=1``) powers up in Alarm, and an Arduino-based board resets each time
its port is opened: ``stream`` then refuses with the exact command to run, ``... --home`` (homing cycle
first, in the same session) or ``... --unlock`` (``$X``, the position is then not verified).

The file is always pre-checked before a byte of it is sent: against the cell file's limits for the
station when ``--cell/--station`` are given, else against the machine's own ``$$`` travel and max rates.
Exit codes: 0 done; 1 the job failed (``error:N``, alarm, timeout, disconnect, port busy or missing, not
a Grbl); 2 bad input (file unreadable, program refused by the pre-check, bad arguments).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn

from microfactory.cell import StationConfig
from microfactory.cli import arguments
from microfactory.errors import ConfigError, MicrofactoryError, SafetyRefusal
from microfactory.events import Event, EventBus, EventKind
from microfactory.gcode import Envelope, MachineLimits
from microfactory.station import StepRequest
from stations.grbl.driver import GrblStation, resume_problems
from stations.grbl.laser import check_laser_program
from stations.grbl.program import CheckedProgram
from stations.grbl.session import clear_power_up_alarm, grbl_session, station_config
from stations.grbl.streamer import StreamMode, StreamResult

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``microfactory stream`` to the CLI."""
    p = sub.add_parser("stream", help="pre-check and stream one G-code file to a Grbl machine",
                       description="Pre-check FILE against the machine's limits (the cell file's, or the "
                                   "machine's own $$ travel and max rates), then stream it with character "
                                   "counting and show progress. There is no way to skip the pre-check.")
    p.add_argument("file", metavar="FILE", help="G-code file to send")
    p.add_argument("--port", required=True,
                   help="device path, USB identity vid:pid[:serial], or `sim` for the simulator")
    p.add_argument("--baud", type=arguments.positive_int, default=None,
                   help="bit/s (default: the cell file's, else 115200)")
    p.add_argument("--send-response", action="store_true",
                   help="wait for each answer before the next line (slow; default: character counting)")
    p.add_argument("--cell", help="cell file whose limits the program is checked against")
    p.add_argument("--station", help="station id in --cell")
    p.add_argument("--home", action="store_true",
                   help="if the machine is in Alarm after power-up (homing enabled, $22=1; an Arduino resets "
                        "on every port open), run the homing cycle ($H) before streaming")
    p.add_argument("--unlock", action="store_true",
                   help="if the machine is in Alarm after power-up, unlock it ($X) without homing: the "
                        "position is then not verified")
    p.add_argument("--positive-space", action="store_true",
                   help="without --cell: the machine's travel is 0..$13x (Grbl built with "
                        "HOMING_FORCE_SET_ORIGIN, and the simulator), not stock Grbl's -$13x..0")
    p.add_argument("--trace", metavar="OUT.jsonl", help="record every byte to this JSON-lines file")
    p.add_argument("--from-line", type=arguments.positive_int, metavar="N",
                   help="resume the program at its line N (after a broken tool or a stop): earlier lines "
                        "only set the modal state, which a preamble restores; needs --cell and --station")
    p.set_defaults(func=cmd_stream)
    for name, verb, what in (("home", "home", "run the homing cycle ($H)"),
                             ("unlock", "unlock", "unlock it ($X) without homing: position not verified")):
        q = sub.add_parser(name, help=f"{verb} one Grbl machine: {what}",
                           description=f"Connect to one Grbl machine and {what}. An Arduino-based board "
                                       "resets (and locks again) each time its port is opened: to stream "
                                       f"right after, use `microfactory stream FILE ... --{name}`.")
        q.add_argument("--port", help="device path, USB identity vid:pid[:serial], or `sim`")
        q.add_argument("--baud", type=arguments.positive_int, default=None,
                       help="bit/s (default: the cell file's, else 115200)")
        q.add_argument("--cell", help="cell file naming the station")
        q.add_argument("--station", help="station id in --cell")
        q.set_defaults(func=cmd_home if name == "home" else cmd_unlock)


def cmd_home(args: argparse.Namespace) -> int:
    """Handler of ``microfactory home``."""
    return _machine_command(args, "home")


def cmd_unlock(args: argparse.Namespace) -> int:
    """Handler of ``microfactory unlock``."""
    return _machine_command(args, "unlock")


def _machine_command(args: argparse.Namespace, action: str) -> int:
    console = Console(stderr=True)
    try:
        return asyncio.run(_run_machine_command(args, action, console))
    except ConfigError as exc:
        return _fail(console, "bad input", exc, EXIT_BAD_INPUT)
    except MicrofactoryError as exc:
        return _fail(console, f"{action} failed", exc, EXIT_FAILED)


async def _run_machine_command(args: argparse.Namespace, action: str, console: Console) -> int:
    config = station_config(args.cell, args.station, args.port, args.baud, command=action)
    async with grbl_session(config, check_cell_limits=bool(args.cell)) as session:
        station = session.station
        result = await station.run_step(StepRequest(action))
        report = await station.poller.fresh(config.timeouts.status_s)
        where = "" if report.mpos is None else " at machine " + ", ".join(f"{v:.3f}" for v in report.mpos)
        note = "" if action == "home" else ": the position is not verified, home before trusting it" \
            if result.data.get("rehome_required") or station.settings.homing else ""
        console.print(f"{station.id} on {station.transport.port}: {report.state}{where} "
                      f"({'homed' if action == 'home' else 'unlocked'}){note}", highlight=False)
    return EXIT_OK


def cmd_stream(args: argparse.Namespace) -> int:
    """Handler: returns the exit code; prints one paragraph on failure."""
    console = Console(stderr=True)
    try:
        return asyncio.run(_stream(args, console))
    except SafetyRefusal as exc:
        return _fail(console, "program refused, nothing was sent", exc, EXIT_BAD_INPUT)
    except ConfigError as exc:
        return _fail(console, "bad input", exc, EXIT_BAD_INPUT)
    except MicrofactoryError as exc:
        return _fail(console, "stream failed", exc, EXIT_FAILED)


def _fail(console: Console, what: str, exc: MicrofactoryError, code: int) -> int:
    console.print(f"[bold red]error[/]: {what}: {exc}", markup=True, highlight=False, soft_wrap=True)
    return code


def _config(args: argparse.Namespace) -> StationConfig:
    return station_config(args.cell, args.station, args.port, args.baud, command="stream")


def _retry_command(args: argparse.Namespace) -> str:
    """The ``microfactory stream`` command line the user ran, for messages that say what to run next."""
    parts = ["microfactory stream", str(args.file), "--port", str(args.port)]
    if args.cell:
        parts += ["--cell", str(args.cell), "--station", str(args.station)]
    return " ".join(parts)


def _read(path: str) -> list[str]:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise ConfigError.single(path, f"cannot read the G-code file: {exc.strerror}",
                                 hint="check the path") from None


def machine_space_limits(station: GrblStation, positive: bool) -> MachineLimits:
    """The machine's own limits from ``$$`` (and ``$#`` offsets), in its machine space (stock
    ``-$13x..0``; ``positive`` forces ``0..$13x``), refusing what its firmware build refuses."""
    limits = station.firmware_limits(station.settings.machine_limits(station.offsets, station.build.options))
    if positive:
        env = limits.envelope
        flip = [(0.0, -lo) for lo, _hi in (env.x, env.y, env.z)]
        limits = MachineLimits(Envelope(flip[0], flip[1], flip[2]), limits.max_feed_mm_min,
                               limits.max_rapid_mm_min, limits.accel_mm_s2, limits.max_spindle, limits.laser,
                               work_offsets=limits.work_offsets)
    return limits


async def _check(station: GrblStation, lines: list[str], source: str, args: argparse.Namespace
                 ) -> CheckedProgram:
    """Pre-check from what the machine is now: ``$G`` and ``$#`` (G92 and tool length included)."""
    if args.cell:
        return await station.check_program_now(lines, source)
    checked = await station.check_program_now(lines, source,
                                              limits=machine_space_limits(station, args.positive_space))
    if station.settings.laser_mode:
        checked.problems += check_laser_program(checked.lines, spindle_max=station.settings.spindle_max,
                                                cell_max=None)
    return checked


async def _stream(args: argparse.Namespace, console: Console) -> int:
    lines = _read(args.file)
    config = _config(args)
    if args.from_line is not None:
        if not args.cell:
            raise ConfigError.single(args.file, "--from-line needs --cell and --station",
                                     hint="a resumed program is checked against the station's limits in the "
                                          "cell file, from the machine's position")
        if resume_problems(args.from_line, lines):
            raise ConfigError.single(args.file, f"--from-line {args.from_line} is not a line of this file",
                                     hint=f"give a line number from 1 to {len(lines)}")
    if args.home and args.unlock:
        raise ConfigError.single("<args>", "--home and --unlock exclude each other",
                                 hint="--home runs the homing cycle; --unlock only clears the lock ($X)")
    async with grbl_session(config, trace=args.trace, check_cell_limits=bool(args.cell)) as session:
        station, bus = session.station, session.bus
        station.ask_operator = lambda text, choices: _ask_terminal(console, text, choices)
        done = await clear_power_up_alarm(station, home=args.home, unlock=args.unlock,
                                          retry=_retry_command(args))
        if done:
            console.print(f"{station.id} was in Alarm after power-up: {done}", highlight=False)
        if args.from_line is None:
            checked = await _check(station, lines, Path(args.file).name, args)
        else:
            checked = await station.check_resume(lines, Path(args.file).name, args.from_line)
        checked.raise_for_problems()
        if args.from_line is not None:
            console.print(f"resuming at line {args.from_line} of {args.file} from the machine's position now",
                          highlight=False)
        console.print(f"{station.firmware} on {station.transport.port}: {len(checked.lines)} lines, "
                      f"estimated {checked.estimate_s or 0:.0f} s", highlight=False)
        mode = StreamMode.RESPOND if args.send_response else StreamMode.COUNT
        result = await _with_progress(station, bus, checked, mode, console)
        console.print(f"done: {result.acknowledged} lines in {result.elapsed_s:.1f} s "
                      f"({result.lines_per_s:.0f} lines/s)", highlight=False)
        return EXIT_OK


async def _ask_terminal(console: Console, text: str, choices: tuple[str, ...]) -> str:
    """Ask on the terminal until one of ``choices`` is typed; end of input answers ``stop``."""
    while True:
        console.print(f"[bold yellow]{text}[/] ({' / '.join(choices)})", markup=True, highlight=False)
        try:
            answer = (await asyncio.to_thread(sys.stdin.readline)).strip().lower()
        except (OSError, ValueError):
            answer = ""
        if answer in choices:
            return answer
        if not answer and "stop" in choices:
            console.print("no answer (end of input): stop", highlight=False)
            return "stop"
        console.print(f"{answer!r} is not one of: {', '.join(choices)}", highlight=False)


async def _with_progress(station: GrblStation, bus: EventBus, checked: CheckedProgram, mode: StreamMode,
                         console: Console) -> StreamResult:
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("lines"),
               TaskProgressColumn(), TextColumn("ETA {task.fields[eta]}"))
    with Progress(*columns, console=console, transient=not sys.stderr.isatty()) as progress:
        task = progress.add_task(checked.source, total=len(checked.lines), eta="?")

        def on_progress(event: Event) -> None:
            remaining = event.get("remaining_s")
            eta = "?" if remaining is None else f"{int(remaining) // 60}:{int(remaining) % 60:02d}"
            progress.update(task, completed=event.get("done"), eta=eta)

        with bus.subscribe(on_progress, [EventKind.STATION_PROGRESS]):
            return await station.stream(checked.lines, estimate_s=checked.estimate_s, mode=mode)
