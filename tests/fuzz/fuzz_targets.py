"""Every loader and parser that reads outside input, as fuzz targets: what to feed it and what may come out.

Shared by the test suite (``tests/fuzz/test_fuzz.py``, a few examples each) and ``benchmarks/safety.py``
(10,000 and more each). A target feeds one generated input to the real component and lets through only
the project's own answers: a :class:`~microfactory.errors.MicrofactoryError` for the controller's loaders
and codecs, the device's own error answer for a simulator (which must never raise at all), exit code 0, 1
or 2 for the CLI. Anything else escaping is a *foreign* exception: a traceback a user would see.

Inputs are built three ways, because a purely random string rarely gets past a parser's first check:
mutations of a valid file (characters inserted, deleted, numbers replaced by hostile ones: NaN, infinity,
5,000-digit integers, deep nesting), valid files whose values are replaced by hostile values at random
places, and grammar-shaped lines (G-code words, Grbl answers, SCPI commands) with hostile numbers.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import strategies as st
from ruamel.yaml import YAML

from microfactory.cell import Cell, load_cell
from microfactory.drawing import parse_drawing
from microfactory.dxf import drawing_yaml, read_dxf
from microfactory.errors import MicrofactoryError
from microfactory.gcode import MachineLimits, lex_line, precheck
from microfactory.recipe.validate import validate_recipe

REPO = Path(__file__).resolve().parents[2]
RECIPES = REPO / "recipes"
CELL_FILE = RECIPES / "cells" / "sim.yaml"
RECIPE_FILE = RECIPES / "watch-plate.yaml"
DRAWING_FILE = RECIPES / "drawings" / "watch-plate.yaml"
PROGRAM_FILE = RECIPES / "programs" / "watch-plate-mill.nc"

# -- hostile pieces ---------------------------------------------------------------------------------
HOSTILE_NUMBERS = ["nan", "NaN", ".nan", "inf", "-inf", ".inf", "-.inf", "1e400", "-1e400", "1e308",
                   "0", "-0", "-1", "1" * 310, "9" * 4301, "9" * 5000, "0.000000000000000000001",
                   "4294967296", "-2147483649", "1.5.5", "+", "-", ".", "1_000", "0x10", "²", "١٢"]
HOSTILE_TEXT = ["\x00", "\x01", "\x1b", "\x7f", "\ud800", "\udfff", "\ufeff", "\u2028", "\t", "\r", "\n",
                "[" * 200, "{" * 200, "- " * 100, "&a", "*a", "!!python/object:os.system", "%", "@", "`",
                "?", ":", "'", '"', "#", "|", ">", "é", "\U0001f600"]
HOSTILE_VALUES: list[Any] = [float("nan"), float("inf"), float("-inf"), 1e308, -1e308, 0, -1, 0.0, -0.0,
                             10**300, -(10**300), True, False, None, "", "x" * 300, [], {}, [1, 2], {"a": 1},
                             "${nope}", "${", "\x01", "nan", "1e400"]

_NUMBER_IN_TEXT = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?")


_SHORT_TEXT = st.text(max_size=8)
_DEPTHS = st.sampled_from([10, 63, 64, 65, 200, 3000])
_EDITS = st.sampled_from(["insert", "delete", "number", "number", "number", "repeat", "nest"])
_HOSTILE_NUMBER = st.sampled_from(HOSTILE_NUMBERS)
_DEFAULT_POOL = st.sampled_from(HOSTILE_TEXT + HOSTILE_NUMBERS)


@st.composite
def mutated_text(draw: st.DrawFn, seed: str, *, tokens: list[str] | None = None) -> str:
    """``seed`` with one to four edits: an insertion, a deletion, a number replaced, a line repeated."""
    text = seed
    pool = st.sampled_from(tokens + HOSTILE_TEXT + HOSTILE_NUMBERS) if tokens else _DEFAULT_POOL
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(_EDITS)
        pos = draw(st.integers(0, len(text)))
        if kind == "insert":
            text = text[:pos] + draw(st.one_of(pool, _SHORT_TEXT)) + text[pos:]
        elif kind == "delete":
            text = text[:pos] + text[pos + draw(st.integers(1, 40)):]
        elif kind == "number":
            spans = [m.span() for m in _NUMBER_IN_TEXT.finditer(text)]
            if spans:
                a, b = spans[draw(st.integers(0, len(spans) - 1))]
                text = text[:a] + draw(_HOSTILE_NUMBER) + text[b:]
        elif kind == "repeat":
            lines = text.splitlines(keepends=True)
            if lines:
                i = draw(st.integers(0, len(lines) - 1))
                lines[i:i] = [lines[i]] * draw(st.integers(1, 3))
                text = "".join(lines)
        else:
            depth = draw(_DEPTHS)
            text = text[:pos] + "[" * depth + "]" * depth + text[pos:]
    return text


def _plain(seed: str) -> Any:
    return YAML(typ="safe", pure=True).load(seed)


def _dump(data: Any) -> str:
    out = io.StringIO()
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.dump(data, out)
    return out.getvalue()


_HOSTILE_VALUE = st.one_of(st.sampled_from(HOSTILE_VALUES), st.floats(), st.integers(), st.text(max_size=20))


@st.composite
def replaced_value(draw: st.DrawFn, seed_data: Any) -> str:
    """The seed document with one to three values (at any depth) replaced by hostile ones."""
    import copy

    data = copy.deepcopy(seed_data)
    for _ in range(draw(st.integers(1, 3))):
        node, key = None, None
        current = data
        while isinstance(current, (dict, list)) and current and draw(st.booleans()) | (node is None):
            keys = list(current) if isinstance(current, dict) else list(range(len(current)))
            key = keys[draw(st.integers(0, len(keys) - 1))]
            node, current = current, current[key]
        if node is None:
            continue
        node[key] = draw(_HOSTILE_VALUE)
    return _dump(data)


def yaml_documents(seed_file: Path) -> st.SearchStrategy[str]:
    seed = seed_file.read_text(encoding="utf-8")
    return st.one_of(mutated_text(seed), replaced_value(_plain(seed)), st.text(max_size=200))


# -- DXF ---------------------------------------------------------------------------------------------
def seed_dxf() -> str:
    """A small valid part as DXF text (R12, the smallest header): a rounded rectangle with two holes."""
    import ezdxf

    doc = ezdxf.new("R12", units=4)
    msp = doc.modelspace()
    msp.add_polyline2d([(0, 2, 0, 0, 0.414), (2, 0), (38, 0, 0, 0, 0.414), (40, 2), (40, 28), (0, 28)],
                       format="xyseb", close=True, dxfattribs={"layer": "OUTLINE"})
    for x in (8, 32):
        msp.add_circle((x, 14), 2.5, dxfattribs={"layer": "HOLES"})
    msp.add_line((0, 0), (5, 5), dxfattribs={"layer": "NOTES"})
    out = io.StringIO()
    doc.write(out)
    return out.getvalue()


def dxf_documents() -> st.SearchStrategy[str]:
    """Mutations of a valid DXF (numbers made hostile, group codes and lines dropped or repeated)."""
    seed = seed_dxf()
    tokens = ["  0\nCIRCLE\n  8\nHOLES\n", "  0\nSPLINE\n", " 40\n", " 42\n", " 70\n1\n", "  8\nOUTLINE\n",
              "$INSUNITS\n 70\n", "  0\nEOF\n", "  0\nSECTION\n", "  0\nENDSEC\n"]
    return st.one_of(mutated_text(seed, tokens=tokens), st.text(max_size=200))


# -- G-code ------------------------------------------------------------------------------------------
_GCODE_LETTERS = [*list("GMXYZIJKRFSTPLNABCDEHOQUVW"), "x", "g", "$", "/", "%", "(", ")", ";"]


_GCODE_WORD = st.tuples(
    st.sampled_from(_GCODE_LETTERS),
    st.one_of(st.sampled_from(["0", "1", "2", "3", "4", "10", "17", "20", "21", "28", "30", "53", "54", "90",
                               "91", "92", "92.1", "93", "94", "38.2", "43.1", "-5", "0.5"]),
              st.sampled_from(HOSTILE_NUMBERS),
              st.floats(allow_nan=False, allow_infinity=False).map(lambda f: f"{f:f}"),
              st.integers(-10**6, 10**6).map(str)),
    st.sampled_from(["", "", " ", "(c)", "\t"])).map("".join)
#: A line of G-code words (letters with numbers, some hostile), comments and stray characters.
GCODE_LINE = st.tuples(st.lists(_GCODE_WORD, max_size=8).map("".join),
                       st.sampled_from(["", "", ";end", "(", ")", "\r"])).map("".join)


def gcode_programs() -> st.SearchStrategy[list[str]]:
    seed = PROGRAM_FILE.read_text(encoding="utf-8")
    return st.one_of(
        st.lists(GCODE_LINE, min_size=1, max_size=12),
        mutated_text(seed, tokens=["G91", "G20", "G92X0", "G2X1Y1R0", "G3I0J0", "G28", "G53", "G10L2P1X5",
                                   "M4", "M3S" + "9" * 400, "T" + "9" * 320, "G4P-1", "G93", "F0"]
                     ).map(str.splitlines),
        st.lists(st.text(max_size=40), max_size=6))


# -- targets ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    """One loader or parser: a strategy for its input and a function that feeds one input to it.

    ``feed`` raises only what the target may raise (its own errors are caught inside and ignored);
    whatever else escapes is a foreign exception.
    """

    name: str
    inputs: st.SearchStrategy[Any]
    feed: Callable[[Any], None]


class ForeignInside(Exception):
    """A foreign exception a component caught and reported instead of raising (e.g. a crashed kind)."""


class Workspace:
    """A temporary folder with the example recipes' programs and drawings, for files under test."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="mf-fuzz-"))
        for sub in ("programs", "drawings", "cells"):
            (self.folder / sub).symlink_to(RECIPES / sub)
        self.cell: Cell = load_cell(CELL_FILE)

    def write(self, name: str, text: str) -> Path:
        path = self.folder / name
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        return path

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _ours(call: Callable[[], object]) -> None:
    with contextlib.suppress(MicrofactoryError):
        call()


def build_targets(ws: Workspace) -> list[Target]:
    """Every target, using ``ws`` for the files the loaders read."""
    from stations.grbl.codec import (
        LineKind,
        StatusTracker,
        classify,
        parse_build_info,
        parse_offsets,
        parse_status,
        parse_tool_length,
    )
    from stations.grbl.machine_state import parse_gc
    from stations.grbl.settings import GrblSettings
    from stations.wash import scpi

    mill = MachineLimits.from_config(ws.cell.station("mill").limits, station="mill")
    laser = MachineLimits.from_config(ws.cell.station("cut").limits, station="cut")

    def cell(text: str) -> None:
        _ours(lambda: load_cell(ws.write("cell.yaml", text)))

    def recipe(text: str) -> None:
        report = validate_recipe(ws.write("recipe.yaml", text), ws.cell)
        crashed = [str(p) for p in report.problems if "crashed checking" in str(p)]
        if crashed:
            raise ForeignInside(crashed[0])

    def drawing(text: str) -> None:
        _ours(lambda: parse_drawing(text, "drawing.yaml"))

    def lexer(lines: list[str]) -> None:
        for line in lines:
            lex_line(line)

    def gcode_precheck(lines: list[str]) -> None:
        for limits in (mill, laser):
            precheck(lines, limits)

    def grbl_codec(line: str) -> None:
        try:
            parsed = classify(line)
        except MicrofactoryError:
            return
        if parsed.kind is LineKind.STATUS:
            _ours(lambda: StatusTracker().update(parse_status(line)))
        _ours(lambda: parse_build_info([parsed]))
        _ours(lambda: parse_offsets([parsed]))
        _ours(lambda: parse_tool_length([parsed]))
        _ours(lambda: GrblSettings.parse([parsed]))
        if parsed.kind is LineKind.GC:
            _ours(lambda: parse_gc(parsed.payload, {"G54": (0.0, 0.0, 0.0), "G92": (0.0, 0.0, 0.0)}, 0.0))

    def dxf(text: str) -> None:
        path = ws.write("part.dxf", text)
        try:
            imported = read_dxf(path)
            parse_drawing(drawing_yaml(imported, "part", path.name), "part.yaml")
        except MicrofactoryError:
            return

    def wash_codec(line: str) -> None:
        for parse in (scpi.parse_error, scpi.parse_identity, scpi.parse_number, scpi.parse_phase):
            _ours(lambda parse=parse: parse(line))  # type: ignore[misc]

    return [
        Target("cell", yaml_documents(CELL_FILE), cell),
        Target("recipe", yaml_documents(RECIPE_FILE), recipe),
        Target("drawing", yaml_documents(DRAWING_FILE), drawing),
        Target("dxf", dxf_documents(), dxf),
        Target("gcode_lexer", gcode_programs(), lexer),
        Target("gcode_precheck", gcode_programs(), gcode_precheck),
        Target("grbl_codec", GRBL_ANSWERS, grbl_codec),
        Target("wash_codec", WASH_ANSWERS, wash_codec),
        Target("grbl_simulator", GRBL_INPUT, feed_grbl_simulator),
        Target("wash_simulator", WASH_COMMANDS, feed_wash_simulator),
        Target("cli", cli_arguments(ws), lambda argv: run_cli(argv)),
    ]


# -- Grbl answers and the Grbl simulator ----------------------------------------------------------------
NUMBERS = st.one_of(st.sampled_from(HOSTILE_NUMBERS), st.integers(-10**6, 10**12).map(str),
                    st.floats(allow_nan=False, allow_infinity=False).map(lambda f: f"{f:.3f}"))


_VEC = st.lists(NUMBERS, min_size=1, max_size=4).map(",".join)
_STATES = st.sampled_from(["Idle", "Run", "Hold:0", "Hold:1", "Hold:77", "Hold:" + "9" * 5000, "Door:2",
                           "Alarm", "Jog", "Check", "Home", "Sleep", "Bogus", ""])
_FIELD_SHAPES = ["MPos:{v}", "WPos:{v}", "WCO:{v}", "Bf:{n},{n}", "Ln:{n}", "FS:{n},{n}", "F:{n}",
                 "Ov:{n},100,{n}", "Pn:XYZ", "Pn:", "A:SF", "A:Q", "X:{n}", ":", "MPos"]
_LINE_SHAPES = ["ok", "Grbl 1.1h ['$' for help]", "[MSG:Reset to continue]", ">G54:ok", "error:{n}",
                "ALARM:{n}", "[GC:G0 G54 G17 G21 G90 G94 M5 M9 T{n} F{n} S{n}]", "[OPT:V,{n},{n}]",
                "[G54:{v}]", "[TLO:{n}]", "[PRB:{v}:1]", "${n}={n}", "$N0={n}", ">G1X{n}:error:{n}", "STATUS"]
_FIELD = st.tuples(st.sampled_from(_FIELD_SHAPES), NUMBERS, _VEC).map(lambda t: t[0].format(n=t[1], v=t[2]))
_STATUS = st.tuples(_STATES, st.lists(_FIELD, max_size=5)).map(lambda t: "<" + "|".join([t[0], *t[1]]) + ">")
#: Lines shaped like Grbl's: ok, error:N, ALARM:N, status reports, bracketed messages, settings.
GRBL_ANSWERS = st.one_of(
    st.tuples(st.sampled_from(_LINE_SHAPES), NUMBERS, _VEC, _STATUS).map(
        lambda t: t[3] if t[0] == "STATUS" else t[0].format(n=t[1], v=t[2])),
    st.text(max_size=60))

_SYSTEM = st.sampled_from([b"$X\n", b"$H\n", b"$$\n", b"$#\n", b"$G\n", b"$I\n", b"$C\n", b"$SLP\n", b"$N\n",
                           b"$N0=G20\n", b"?", b"!", b"~", b"\x18", b"\x85", b"\x84", b"\x90", b"\x9d"])
#: What a sender might write to a Grbl: G-code and ``$`` lines, realtime bytes, garbage.
GRBL_INPUT = st.lists(st.one_of(
    GCODE_LINE.map(lambda s: s.encode("utf-8", "surrogatepass") + b"\n"), _SYSTEM,
    NUMBERS.map(lambda n: f"$100={n}\n".encode()), NUMBERS.map(lambda n: f"$J=G91X{n}F{n}\n".encode()),
    st.binary(max_size=40)), min_size=1, max_size=6).map(b"".join)


def feed_grbl_simulator(data: bytes) -> None:
    """The Grbl firmware model takes the bytes and runs; it answers errors, it never raises."""
    from simulators.grbl.device import GrblDevice, parse_options

    class Wire:
        def send_line(self, text: str, *, answer: bool = False) -> None:
            pass

    device = GrblDevice(parse_options({"settings": {"$22": 0}}))
    device.attach(Wire())  # type: ignore[arg-type]
    device.power_on()
    now = 0.0
    for i in range(0, len(data), 16):
        device.receive(data[i:i + 16])
        now += 0.5
        device.poll(now)
    for _ in range(4):
        now += 60.0
        device.poll(now)


# -- the wash codec and simulator -------------------------------------------------------------------
_WASH_HEADERS = ["*IDN?", "*RST", "*CLS", "*OPC?", "SYST:ERR?", "WASH:TEMP", "WASH:TEMP?", "MEAS:TEMP?",
                 "WASH:TIME", "WASH:POW", "WASH:PROG", "WASH:STAR", "WASH:ABOR", "WASH:STAT?", "WASH:REM?",
                 "SYST:LID?", "SYST:LEV?", "SYST:STBY", "SYST:POW?", "WASHer:TEMPerature", ":WASH:TEMP",
                 "wash:temp", "WASH:", "::", "?", ""]


_WASH_LINE = st.tuples(st.sampled_from(_WASH_HEADERS), st.sampled_from(["", " ", "  "]),
                       st.one_of(NUMBERS, st.sampled_from(["ON", "OFF", "MAIN", "PRE", "x"]),
                                 st.text(max_size=10))).map("".join)
#: Lines a host might send to a washer.
WASH_COMMANDS = st.lists(_WASH_LINE, min_size=1, max_size=6)
#: Answers a washer might give (or noise in their place).
WASH_ANSWERS = st.one_of(NUMBERS.map(lambda n: f'{n},"No error"'), NUMBERS,
                         NUMBERS.map(lambda n: f"{n},x,y,z"),
                         st.sampled_from(["IDLE", "heat", "DONE ", "FAULT", "OPEN", "a,b,c,d", ",,,"]),
                         st.text(max_size=40))


def feed_wash_simulator(lines: list[str]) -> None:
    """The washer's interpreter answers queries and queues errors; it never raises."""
    from simulators.wash.commands import Interpreter
    from simulators.wash.model import Washer, WasherConfig

    washer = Washer(WasherConfig())
    interpreter = Interpreter(washer, "SIM,WASH-1,0001,1.0")
    for t, line in enumerate(lines):
        washer.advance(float(t) * 30.0)
        interpreter.execute(line)


# -- the CLI ------------------------------------------------------------------------------------------
_CHEAP = ("validate", "simulate", "check", "journal")  # run for real: they read files and send nothing
_PARSE_ONLY = ("run", "demo", "stream", "sim", "wash", "inspect", "gui", "identify")


@st.composite
def cli_arguments(draw: st.DrawFn, ws: Workspace) -> list[str]:
    """An argument list: a command, its usual options with hostile values, stray words."""
    notes = ws.write("notes.txt", "hello\n")
    files = [str(RECIPE_FILE), str(CELL_FILE), str(PROGRAM_FILE), str(notes), str(ws.folder), "missing.yaml",
             str(RECIPES / "shim.yaml"), ":memory:"]
    command = draw(st.sampled_from(_CHEAP + _PARSE_ONLY))
    argv = [command]
    if command in ("validate", "simulate", "run"):
        argv += [draw(st.sampled_from(files)), "--cell", draw(st.sampled_from(files))]
    elif command == "check":
        argv += [draw(st.sampled_from(files)), "--cell", str(CELL_FILE), "--station",
                 draw(st.sampled_from(["mill", "cut", "wash", "nope"]))]
    elif command == "journal":
        argv += [draw(st.sampled_from(files))]
    options = ["--parts", "--speed", "--set", "--db", "--json", "--baud", "--from-line", "--latency-ms",
               "--after", "--mm-per-px", "--help", "-v", "--cell", "--station", "--lot", "--part"]
    for _ in range(draw(st.integers(0, 4))):
        option = draw(st.sampled_from(options))
        argv.append(option)
        if option == "--set":
            argv.append(draw(st.sampled_from(["cut_feed", "spindle", "laser_power", "nope", "", "="]))
                        + draw(st.sampled_from(["=", "", "=="])) + draw(NUMBERS))
        elif option in ("--db", "--cell"):
            argv.append(draw(st.sampled_from(files)))
        elif option not in ("--json", "--help", "-v"):
            argv.append(draw(st.one_of(NUMBERS, st.text(max_size=6))))
    return argv


def run_cli(argv: list[str]) -> None:
    """Run ``microfactory ARGV`` (parse only for commands that would start a lot or a device).

    Allowed: a return code of 0, 1 or 2, and argparse's exit (0 for ``--help``, 2 for a usage error).
    """
    from microfactory.cli import build_parser, main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            if argv and argv[0] in _CHEAP:
                code = main(argv)
                if code not in (0, 1, 2):
                    raise AssertionError(f"exit code {code} for {argv}")
            else:
                build_parser().parse_args(argv)
        except SystemExit as exc:
            if exc.code not in (0, 2):
                raise AssertionError(f"SystemExit({exc.code!r}) for {argv}") from None


@contextlib.contextmanager
def quiet_logging() -> Iterator[None]:
    """Simulators log what they refuse (as they should); thousands of fuzz inputs need not print it."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        root.setLevel(level)


# -- running ------------------------------------------------------------------------------------------
@dataclass
class FuzzResult:
    """What one target did: examples fed, foreign exceptions (type → first input that raised it)."""

    examples: int = 0
    foreign: int = 0
    samples: dict[str, str] | None = None


def fuzz(target: Target, examples: int, *, seed: int | None = None) -> FuzzResult:
    """Feed ``examples`` generated inputs to ``target`` and count the foreign exceptions, without stopping.

    Generation only (no shrinking, no example database): this is a measurement, not a test; the test suite
    lets hypothesis shrink a failure instead.
    """
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as fix_seed

    result = FuzzResult(samples={})

    @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(target.inputs)
    def run(value: Any) -> None:
        result.examples += 1
        try:
            target.feed(value)
        except Exception as exc:  # counted, never hidden: the benchmark prints each type with an input
            result.foreign += 1
            assert result.samples is not None
            result.samples.setdefault(f"{type(exc).__name__}: {str(exc)[:120]}", repr(value)[:300])

    (fix_seed(seed)(run) if seed is not None else run)()
    return result
