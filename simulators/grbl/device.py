"""Grbl 1.1h as seen from its serial port: receive buffer, realtime bytes, states, answers.

The :class:`GrblDevice` sits behind a :class:`~simulators.link.PtyLink`, which calls it on the link thread
with bytes paced at the baud rate. What it models, as real Grbl does:

- a 127-byte serial receive buffer (``Bf`` reports ``128 - used``); bytes beyond it are lost and logged;
- realtime bytes (``?`` ``!`` ``~`` ctrl-X, 0x84 door, 0x85 jog cancel, 0x90–0x9D overrides) taken out of
  the stream on arrival and acted on at once, even while the buffer is full;
- one line parsed at a time; a motion line is answered ``ok`` once its block enters the 15-block planner,
  so a full planner holds the answer back and the host's character count backs up; spindle, coolant and
  dwell lines wait for the planner to empty first (not M3/M4/S in laser mode ``$32=1``);
- states Idle, Run, Hold:0/1, Jog, Alarm, Door:0–2, Check, Home, Sleep; soft limits (``$20=1``, on by
  default with the homing they need, ``$22=1``) against stock machine space ``-$13x..0`` end in
  ``ALARM:2`` and the critical ``[MSG:Reset to continue]`` lock, as real Grbl: nothing is answered, ``?``
  included, until ctrl-X; then ``$X``/``$H`` unlock. Every move that would leave the travel is logged as
  a warning and counted (:attr:`GrblDevice.soft_limit_alarms`); :attr:`GrblDevice.extremes` keeps the
  lowest and highest machine position any block reached, for tests that assert no move left the envelope;
- a stock default build: ``$I`` shows ``[OPT:VL,15,128]`` (no ``M``: ``M7`` answers ``error:20``); an
  Arduino board resets on every open of its port (DTR): :meth:`GrblDevice.host_opened` powers it up again
  (banner, Alarm with homing on, position and G92 lost; settings and G54..G59 kept, they are EEPROM);
- friendlier than stock only when asked: ``reset_on_open: false``, ``positive_space: true`` (a build
  with ``HOMING_FORCE_SET_ORIGIN``, ``Z`` in ``[OPT:]``, homing to the negative ends, ``$23=7``: machine
  space ``0..$13x``), ``settings: {22: 0, 20: 0}`` (no homing lock, no soft limits), or ``friendly: true``
  for all three.

Line endings: ``\\n``, ``\\r`` or ``\\r\\n`` end a line (``\\r\\n`` counts once).
"""

from __future__ import annotations

import enum
import logging
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from simulators.grbl.gcode import AXES, GcodeError, Move, ParsedLine, Parser, Vec, read_number, split_words
from simulators.grbl.motion import Block, Planner
from simulators.grbl.reports import StatusCounters, offsets_report
from simulators.grbl.settings import DEFAULTS, SettingError, check_setting, format_setting

if TYPE_CHECKING:
    from simulators.link import PtyLink

log = logging.getLogger("simulators.grbl")

RX_BUFFER = 128
RX_USABLE = RX_BUFFER - 1
LINE_MAX = 79  # characters after stripping spaces and comments (Grbl's 80-byte line buffer)
BANNER = "\r\nGrbl 1.1h ['$' for help]"
UNLOCK_HINT = "[MSG:'$H'|'$X' to unlock]"
HELP = "[HLP:$$ $# $G $I $N $x=val $Nx=line $J=line $SLP $C $X $H ~ ! ? ctrl-x]"


class State(enum.Enum):
    IDLE = "Idle"
    RUN = "Run"
    HOLD = "Hold"
    JOG = "Jog"
    ALARM = "Alarm"
    DOOR = "Door"
    CHECK = "Check"
    HOME = "Home"
    SLEEP = "Sleep"


@dataclass
class GrblOptions:
    """What a cell file's ``sim:`` block sets for a Grbl simulator (see :mod:`simulators.grbl`)."""

    motion: bool = True  # False: blocks complete at once (link benchmarks)
    identity: str = "SIM-GRBL-0001"
    version: str = "1.1h.20190825"
    envelope: tuple[tuple[float, float], ...] | None = None  # per axis (min, max) mm
    home: Vec | None = None  # where $H ends (machine mm); None: from $23, $27 and the build
    settings: dict[int, float] = field(default_factory=dict)
    echo: bool = False  # Grbl's REPORT_ECHO_LINE_RECEIVED build option: "[echo: LINE]" before each answer
    reset_on_open: bool = True  # an Arduino's DTR line resets Grbl whenever the host opens the port
    build_options: str = "VL"  # [OPT:] letters: V variable spindle, L homing init lock, M mist, Z origin
    keep_g92_on_reset: bool = True  # soft reset keeps G92 (the project's shared protocol notes)
    boot_s: float = 0.1  # wall s the bootloader runs after a DTR reset: bytes are lost, then the banner


@dataclass
class _Pending:
    """A line accepted but not yet answered (waiting for the planner, a sync, a dwell or homing)."""

    parsed: ParsedLine | None
    moves: list[Move]
    sync: bool
    dwell_until: float | None = None
    homing: bool = False
    text: str = ""  # the line as Grbl keeps it (upper case, no spaces or comments)


class GrblDevice:
    """The Grbl firmware model; every method runs on the link thread under the link lock."""

    def __init__(self, options: GrblOptions, speed: float = 1.0) -> None:
        self.options = options
        self.speed = speed
        self.settings: dict[int, float] = {**DEFAULTS, **options.settings}
        self.build_info = options.identity
        self.received_lines: list[str] = []
        # G-code lines the machine carried out: answered ok (not in check mode) and, for a move, at least
        # begun; a move still waiting in the planner when a reset or an alarm flushed it did not run
        self.executed_lines: list[str] = []
        self.alarm_code = 0
        self.door_open = False
        self.parser = Parser(mist="M" in options.build_options)
        self.planner = Planner(speed, instant=not options.motion)
        self.soft_limit_alarms = 0
        self.power_ups = 0
        self.extremes: list[list[float]] | None = None  # [[min x, y, z], [max x, y, z]] reached, mm
        self._link: PtyLink | None = None
        self._rx = bytearray()
        self._error_lines: list[list[int]] = []  # [lines to go, code]
        self._boot_until: float | None = None  # link clock s: the bootloader runs after a DTR reset
        self._reset_state()

    # ---- Device protocol --------------------------------------------------------------------------

    def attach(self, link: PtyLink) -> None:
        self._link = link

    def power_on(self, *, banner: bool = True) -> None:
        """Power-up (or the reset of an Arduino's DTR line): position 0, G92 and the parser's modal state
        lost, settings and G54..G59 kept; Alarm (the homing lock) when homing is enabled."""
        self._forget_unrun()
        self._reset_state()
        self._boot_until = None
        self.power_ups += 1
        self.planner = Planner(self.speed, instant=not self.options.motion)
        self.parser.reset((0.0, 0.0, 0.0), keep_g92=False)
        self.alarm_code = 0
        self.state = State.ALARM if self.settings[22] else State.IDLE
        if banner:
            self._banner()

    def host_opened(self) -> bool:
        """The host opened the port: an Arduino-based board resets (its DTR line), unless told not to;
        True when it did (what it was still sending is then cut off).

        Its bootloader then runs for :attr:`GrblOptions.boot_s` (real boards: 0.5–2 s; shorter here so
        tests stay quick): bytes the host sends meanwhile are lost, then the banner comes.
        """
        if self.options.reset_on_open:
            log.info("grbl: port opened: reset (DTR), as an Arduino-based board does")
            self.power_on(banner=False)
            now = self._link.clock.now() if self._link is not None else time.monotonic()
            self._boot_until = now + self.options.boot_s  # in the link clock's s
            return True
        return False

    def receive(self, data: bytes) -> None:
        if self._boot_until is not None:
            log.info("grbl: %d byte(s) lost while the bootloader runs after the reset", len(data))
            return
        for byte in data:
            if byte == 0x18:
                self._soft_reset(self._now)
            elif self.critical:
                continue  # after ALARM:1/2 stock Grbl answers nothing, '?' included, until a soft reset
            elif byte in _REALTIME:
                _REALTIME[byte](self)
            elif byte >= 0x80:
                self._override(byte)
            elif len(self._rx) < RX_USABLE:
                self._rx.append(byte)
                if byte in (0x0A, 0x0D):
                    # Grbl's main loop takes each line out of the buffer as soon as it is complete
                    # (unless it waits for the planner): a burst of bytes does not pile up behind it
                    self._run_lines(self._now)
            else:
                self.rx_overflows += 1
                log.warning("grbl: receive buffer full (%d bytes): byte %r lost", RX_USABLE, bytes([byte]))

    def poll(self, now: float) -> float | None:
        if self._boot_until is not None:
            if now < self._boot_until:
                return self._boot_until
            self._boot_until = None
            self._banner()
        self._now = now
        self.planner.update(now)
        self._update_state(now)
        self._run_lines(now)
        self._update_state(now)
        wakes = [t for t in (self.planner.next_event(), self._pending.dwell_until if self._pending else None)
                 if t is not None]
        return min(wakes) if wakes else None

    def device_faults(self) -> Mapping[str, Callable[..., None]]:
        return {"alarm": self._fault_alarm, "error_on_line": self._fault_error_on_line,
                "door": self._fault_door, "reset": self._fault_reset}

    # ---- what tests read --------------------------------------------------------------------------

    def position(self) -> Vec:
        """Machine position now (mm)."""
        return self.planner.current(self._now)

    def state_text(self) -> str:
        """The state as a status report shows it (``Idle``, ``Hold:0``, ``Door:0`` ...)."""
        if self.state is State.HOLD:
            # Grbl 1.1: Hold:0 = hold complete (ready to resume), Hold:1 = still decelerating.
            return f"Hold:{0 if self.planner.held or not self.planner.busy else 1}"
        if self.state is State.DOOR:
            return f"Door:{self._door_sub()}"
        return self.state.value

    # ---- state ------------------------------------------------------------------------------------

    def _reset_state(self) -> None:
        self._now = 0.0
        self.state = State.IDLE
        self.critical = False
        self.rx_overflows = 0
        self._rx.clear()
        self._pending: _Pending | None = None
        self._overflow = False
        self._skip_lf = False
        self.spindle = 5
        self.spindle_speed = 0.0
        self.overrides = [100, 100, 100]
        self.counters = StatusCounters()

    def _send(self, text: str, *, answer: bool = False) -> None:
        if self._link is not None:
            self._link.send_line(text, answer=answer)

    def _answer(self, code: int = 0) -> None:
        self._send("ok" if code == 0 else f"error:{code}", answer=True)

    def _banner(self) -> None:
        self._send(BANNER)
        if self.state is State.ALARM:
            self._send(UNLOCK_HINT)

    def _forget_unrun(self) -> None:
        """Before the planner is flushed: lines whose every block is still waiting never ran."""
        blocks = list(self.planner.blocks)
        if not blocks:
            return
        first = blocks[0]
        begun = {first.line} if (self.planner.moving or first.travelled > 0) else set()
        unrun = sorted({b.line for b in blocks if b.line >= 0} - begun, reverse=True)
        for index in unrun:
            if index < len(self.executed_lines):
                del self.executed_lines[index]

    def _alarm(self, code: int, now: float, *, critical: bool = False) -> None:
        self._forget_unrun()
        self.parser.position = self.planner.clear(now)
        self._rx.clear()
        self._pending = None
        self.state = State.ALARM
        self.alarm_code = code
        self.spindle = 5
        self._send(f"ALARM:{code}")
        if critical:
            self.critical = True
            self._send("[MSG:Reset to continue]")

    def _soft_reset(self, now: float) -> None:
        moving = self.planner.moving or self.state in (State.RUN, State.JOG, State.HOME)
        was = self.state
        self._forget_unrun()
        pos = self.planner.clear(now)
        self._reset_state()
        self._now = now
        self.parser.reset(pos, keep_g92=self.options.keep_g92_on_reset)
        if was is State.HOME:
            self._alarm(6, now)
        elif moving:
            self._alarm(3, now)
        self.state = State.ALARM if was in (State.ALARM, State.SLEEP) or moving else State.IDLE
        self._banner()
        if self.door_open and self.state is State.IDLE:
            self._enter_door(now)

    def _update_state(self, now: float) -> None:
        busy = self.planner.busy
        if self.state is State.IDLE and busy:
            self.state = State.RUN
        elif self.state in (State.RUN, State.JOG) and not busy:
            if self.state is State.JOG:
                self.parser.position = self.planner.position
            self.state = State.IDLE
        elif self.state is State.HOME and not busy:
            self.state = State.IDLE
            self.parser.position = self.planner.position
            if self._pending is not None and self._pending.homing:
                self._pending = None
                self._answer()

    def _door_sub(self) -> int:
        if self.planner.moving:
            return 2
        return 1 if self.door_open else 0

    # ---- realtime ---------------------------------------------------------------------------------

    def _status_request(self) -> None:
        # Grbl moves each complete line out of its receive buffer as soon as it can (it reads while
        # it waits for the planner), so the lines that arrived before this '?' are taken first
        self._run_lines(self._now)
        self._send(self._status(self._now))

    def _status(self, now: float) -> str:
        pos = self.planner.current(now)
        mask = int(self.settings[10])
        wco = self.parser.wco()
        fields = [self.state_text()]
        if mask & 1:
            fields.append("MPos:" + ",".join(f"{p:.3f}" for p in pos))
        else:
            fields.append("WPos:" + ",".join(f"{p - w:.3f}" for p, w in zip(pos, wco, strict=True)))
        if mask & 2:
            fields.append(f"Bf:{self.planner.free},{RX_BUFFER - len(self._rx)}")
        spindle = 0.0 if self.spindle == 5 else min(self.spindle_speed, self.settings[30])
        fields.append(f"FS:{self.planner.rate(now):.0f},{spindle * self.overrides[2] / 100:.0f}")
        if self.door_open:
            fields.append("Pn:D")
        busy = self.state in (State.RUN, State.HOLD, State.JOG, State.HOME, State.DOOR)
        fields += self.counters.extras(busy, wco, self.overrides, self.spindle, self.parser.modal.coolant)
        return "<" + "|".join(fields) + ">"

    def _feed_hold(self) -> None:
        if self.state is State.JOG:
            self._jog_cancel()
        elif self.state in (State.RUN, State.IDLE):
            self.planner.hold(self._now)
            self.state = State.HOLD

    def _cycle_start(self) -> None:
        resumable = (self.state is State.HOLD and self.planner.held) or (
            self.state is State.DOOR and not self.door_open and not self.planner.moving)
        if resumable:
            self.planner.resume(self._now)
            self.state = State.RUN if self.planner.busy else State.IDLE

    def _jog_cancel(self) -> None:
        if self.state is State.JOG:
            self.planner.hold(self._now, flush=True)

    def _door(self) -> None:
        self.door_open = True
        self._enter_door(self._now)

    def _enter_door(self, now: float) -> None:
        if self.state in (State.IDLE, State.RUN, State.HOLD, State.JOG):
            self.planner.hold(now, flush=self.state is State.JOG)
            self.state = State.DOOR

    def _override(self, byte: int) -> None:
        f, r, s = self.overrides
        f = {0x90: 100, 0x91: f + 10, 0x92: f - 10, 0x93: f + 1, 0x94: f - 1}.get(byte, f)
        r = {0x95: 100, 0x96: 50, 0x97: 25}.get(byte, r)
        s = {0x99: 100, 0x9A: s + 10, 0x9B: s - 10, 0x9C: s + 1, 0x9D: s - 1}.get(byte, s)
        new = [min(200, max(10, f)), r, min(200, max(10, s))]
        if new != self.overrides:
            self.overrides = new
            self.counters.ovr = 0

    # ---- lines ------------------------------------------------------------------------------------

    def _run_lines(self, now: float) -> None:
        while not self.critical and self.state is not State.SLEEP:
            if self._pending is not None:
                if not self._advance(self._pending, now):
                    return
                self._pending = None
            raw = self._take_line()
            if raw is None:
                return
            self._line(raw, now)

    def _take_line(self) -> bytes | None:
        if self._skip_lf and self._rx[:1] == b"\n":
            del self._rx[:1]
        self._skip_lf = False
        ends = [i for i in (self._rx.find(b"\n"), self._rx.find(b"\r")) if i >= 0]
        if not ends:
            if len(self._rx) >= RX_USABLE:  # Grbl has moved these into its line buffer: too long
                self._overflow = True
                self._rx.clear()
            return None
        i = min(ends)
        raw = bytes(self._rx[:i])
        self._skip_lf = self._rx[i] == ord("\r")
        del self._rx[: i + 1]
        return raw

    def _line(self, raw: bytes, now: float) -> None:
        text = raw.decode("latin-1")
        self.received_lines.append(text)
        line = strip_line(text)
        if self.options.echo and not self._overflow and line:
            self._send(f"[echo: {line}]")
        if self._overflow or len(line) > LINE_MAX:
            self._overflow = False
            self._answer(11)
        elif not line:
            self._answer()
        elif line.startswith("$"):
            self._system(line, now)
        else:
            self._gcode(line, now)

    def _gcode(self, line: str, now: float) -> None:
        if self.state in (State.ALARM, State.JOG, State.SLEEP):
            self._answer(9)
            return
        for entry in self._error_lines:
            entry[0] -= 1
        fired = [e for e in self._error_lines if e[0] <= 0]
        if fired:
            self._error_lines = [e for e in self._error_lines if e[0] > 0]
            self._answer(fired[0][1])
            return
        try:
            parsed = self.parser.parse(line)
        except GcodeError as exc:
            log.info("grbl: %r → %s", line, exc)
            self._answer(exc.code)
            return
        if self.state is not State.CHECK and any(not self._move_inside(m) for m in parsed.moves):
            self.soft_limit_alarms += 1
            log.warning("grbl: %r would leave the machine's travel %s: soft limit ALARM:2", line,
                        self.envelope())
            self._alarm(2, now, critical=True)
            return
        coolant_before = self.parser.modal.coolant
        self.parser.commit(parsed)
        if self.state is State.CHECK:
            self._answer()
            return
        laser = bool(self.settings[32])
        sync = parsed.sync and not (laser and not parsed.dwell_s and not parsed.pause
                                    and not parsed.program_end and parsed.modal.coolant == coolant_before)
        self._pending = _Pending(parsed, list(parsed.moves), sync, text=line)

    def _advance(self, p: _Pending, now: float) -> bool:
        """Move a pending line on; True once it is answered."""
        if p.homing:
            return False
        if p.sync:
            if self.planner.busy:
                return False
            p.sync = False
        parsed = p.parsed
        assert parsed is not None
        if parsed.dwell_s > 0:
            if p.dwell_until is None:
                p.dwell_until = now + (parsed.dwell_s / self.speed if self.options.motion else 0.0)
            if now < p.dwell_until:
                return False
        while p.moves:
            if self.planner.free == 0:
                return False
            block = self._block(p.moves.pop(0))
            block.line = len(self.executed_lines)
            if block.length > 0:
                self._record(block)
                self.planner.push(block, now)
        self.spindle, self.spindle_speed = parsed.modal.spindle, parsed.modal.speed
        self.executed_lines.append(p.text)
        self._answer()
        if parsed.pause:
            self._feed_hold()
        return True

    def _block(self, move: Move, *, jog: bool = False, rate: float | None = None) -> Block:
        delta = [move.end[i] - move.start[i] for i in range(3)]
        if move.center is not None:
            delta[move.plane[0]] = delta[move.plane[1]] = 1.0
        norm = math.sqrt(sum(d * d for d in delta)) or 1.0
        unit = [abs(d) / norm for d in delta]
        v_max = min((self.settings[110 + i] / u for i, u in enumerate(unit) if u > 1e-9), default=1.0)
        a_max = min((self.settings[120 + i] / u for i, u in enumerate(unit) if u > 1e-9), default=1.0)
        block = Block(move, 1.0, a_max, jog=jog)
        if rate is not None:
            feed = rate
        elif move.feed is None:
            feed = v_max * self.overrides[1] / 100
        elif move.inverse_time_min:
            feed = block.length / move.inverse_time_min
        else:
            feed = move.feed * (1.0 if jog else self.overrides[0] / 100)
        block.rate = min(feed, v_max) / 60.0
        return block

    def _inside(self, point: Vec) -> bool:
        if not self.settings[20]:
            return True
        return all(lo - 1e-6 <= p <= hi + 1e-6 for p, (lo, hi) in zip(point, self.envelope(), strict=True))

    def _move_inside(self, move: Move) -> bool:
        """Grbl checks every segment an arc is cut into: sample the arc as finely."""
        if move.center is None:
            return self._inside(move.end)
        block = Block(move, 1.0, 1.0)
        steps = max(8, min(720, int(block.length / 0.1)))
        return all(self._inside(block.point(block.length * k / steps)) for k in range(steps + 1))

    def _record(self, block: Block) -> None:
        points = [block.move.start, block.move.end]
        if block.move.center is not None:
            points += [block.point(block.length * k / 64) for k in range(65)]
        if self.extremes is None:
            self.extremes = [list(points[0]), list(points[0])]
        lo, hi = self.extremes
        for point in points:
            for i in range(3):
                lo[i], hi[i] = min(lo[i], point[i]), max(hi[i], point[i])

    def _origin_at_min(self, axis: int) -> bool:
        """Machine space starts at 0 on ``axis``: a HOMING_FORCE_SET_ORIGIN build homing to the negative
        end (``$23`` bit set); stock builds always have ``-$13x..0``."""
        return "Z" in self.options.build_options and bool(int(self.settings[23]) >> axis & 1)

    def envelope(self) -> tuple[tuple[float, float], ...]:
        """Soft-limit travel per axis (min, max) in machine mm: ``-$13x..0`` on a stock build."""
        if self.options.envelope is not None:
            return self.options.envelope
        travel = [self.settings[130 + i] for i in range(3)]
        return tuple((0.0, travel[i]) if self._origin_at_min(i) else (-travel[i], 0.0) for i in range(3))

    def home_position(self) -> Vec:
        """Where ``$H`` leaves the machine (mm): ``$27`` (pull-off) inside the switch at the positive end
        on a stock build (the negative end when ``$23`` sets the axis); 0 with HOMING_FORCE_SET_ORIGIN."""
        if self.options.home is not None:
            return self.options.home
        pull = self.settings[27]
        out = []
        for i in range(3):
            if "Z" in self.options.build_options:
                out.append(0.0)
            elif int(self.settings[23]) >> i & 1:
                out.append(-self.settings[130 + i] + pull)
            else:
                out.append(-pull)
        return (out[0], out[1], out[2])

    # ---- $ commands -------------------------------------------------------------------------------

    def _system(self, line: str, now: float) -> None:
        body = line[1:]
        if body == "":
            self._send(HELP)
        elif body.startswith("J="):
            self._answer(self._jog(body[2:], now))
            return
        elif body in ("$", "G", "C", "X"):
            code = self._simple_system(body, now)
            if code >= 0:
                self._answer(code)
            return
        elif self.state not in (State.IDLE, State.ALARM):
            self._answer(8)
            return
        elif body == "#":
            for text in offsets_report(self.parser.offsets, self.parser.tool_length):
                self._send(text)
        elif body == "H":
            code = self._home(now)
            if code:
                self._answer(code)
            return
        elif body == "SLP":
            self._answer()
            self.parser.position = self.planner.clear(now)
            self.state, self.spindle = State.SLEEP, 5
            self._send("[MSG:Sleeping]")
            return
        elif body == "I":
            self._send(f"[VER:{self.options.version}:{self.build_info}]")
            self._send(f"[OPT:{self.options.build_options},{self.planner.capacity},{RX_BUFFER}]")
        elif body.startswith("I="):
            self.build_info = line[3:]
        elif body == "N":
            self._send("$N0=")
            self._send("$N1=")
        elif body.startswith(("N0=", "N1=", "RST=")):
            if body == "RST=$":
                self.settings = {**DEFAULTS, **self.options.settings}
        else:
            self._answer(self._write_setting(body))
            return
        self._answer()

    def _simple_system(self, body: str, now: float) -> int:
        if body == "$":
            if self.state in (State.RUN, State.HOLD):
                return 8
            for number, value in sorted(self.settings.items()):
                self._send(format_setting(number, value))
        elif body == "G":
            self._send(self.parser.modal.gc_line(report_inches=bool(self.settings[13])))
        elif body == "C":
            if self.state is State.CHECK:
                self._send("[MSG:Disabled]")
                self._answer()
                self._soft_reset(now)
                return -1
            if self.state is not State.IDLE:
                return 8
            self.state = State.CHECK
            self._send("[MSG:Enabled]")
        elif body == "X" and self.state is State.ALARM:
            if self.door_open:
                return 13
            self._send("[MSG:Caution: Unlocked]")
            self.state = State.IDLE
        return 0

    def _write_setting(self, body: str) -> int:
        number_text, eq, value_text = body.partition("=")
        if not eq or not re.fullmatch(r"\d{1,3}", number_text, re.ASCII):
            return 3
        try:
            value = read_number(value_text)
        except GcodeError as exc:
            return exc.code
        try:
            check_setting(self.settings, int(number_text), value)
        except SettingError as exc:
            return exc.code
        self.settings[int(number_text)] = value
        if int(number_text) == 22 and not value:
            self.settings[20] = 0  # Grbl: disabling homing forces soft limits off
        log.info("grbl: $%s=%g", number_text, value)
        return 0

    def _home(self, now: float) -> int:
        if not self.settings[22]:
            return 5
        if self.door_open:
            return 13
        start = self.planner.current(now)
        move = Move(start, self.home_position(), None)
        self.state = State.HOME
        self._pending = _Pending(None, [], False, homing=True)
        block = self._block(move, rate=self.settings[25])
        if block.length > 0:
            self.planner.push(block, now)
        return 0

    def _jog(self, text: str, now: float) -> int:
        if self.state not in (State.IDLE, State.JOG):
            return 8
        try:
            words = split_words(text)
        except GcodeError as exc:
            return exc.code
        if any(w not in "GXYZFN" or (w == "G" and v not in (20, 21, 53, 90, 91)) for w, v in words):
            return 16
        if not any(w == "F" for w, _ in words):
            return 22
        jog_parser = Parser()
        jog_parser.offsets, jog_parser.position = self.parser.offsets, self.parser.position
        jog_parser.modal = replace(self.parser.modal, motion=1, feed_mode=94)
        try:
            parsed = jog_parser.parse("G1" + text)
        except GcodeError as exc:
            return exc.code
        if not parsed.moves:
            return 0
        move = parsed.moves[0]
        if self.settings[20] and not self._inside(move.end):
            return 15
        self.parser.position = move.end
        self.planner.push(self._block(move, jog=True), now)
        self.state = State.JOG
        return 0

    # ---- faults -----------------------------------------------------------------------------------

    def _fault_alarm(self, code: int = 1) -> None:
        """``ALARM:code`` now; 1 (hard limit) and 2 (soft limit) also need a reset, as real Grbl."""
        self._alarm(int(code), self._now, critical=int(code) in (1, 2))

    def _fault_error_on_line(self, line: int = 1, code: int = 20) -> None:
        """Answer ``error:code`` to the ``line``-th G-code line from now (1 = the next one)."""
        self._error_lines.append([int(line), int(code)])

    def _fault_reset(self) -> None:
        """The controller restarts on its own (brown-out, a reset line toggled): power-up state, banner."""
        self.power_on()

    def _fault_door(self, open: bool = True) -> None:
        """Open (``open=True``) or close the safety door."""
        if open:
            self._door()
        else:
            self.door_open = False


_REALTIME: dict[int, Callable[[GrblDevice], None]] = {
    ord("?"): GrblDevice._status_request,
    ord("!"): GrblDevice._feed_hold,
    ord("~"): GrblDevice._cycle_start,
    0x84: GrblDevice._door,
    0x85: GrblDevice._jog_cancel,
}


def strip_line(text: str) -> str:
    """Upper case, no spaces, no ``( )`` or ``;`` comments: what Grbl keeps of a line."""
    out: list[str] = []
    in_paren = False
    for ch in text:
        if in_paren:
            in_paren = ch != ")"
        elif ch == "(":
            in_paren = True
        elif ch == ";":
            break
        elif ch > " " and ch != "\x7f":
            out.append(ch.upper())
    return "".join(out)


def parse_options(options: Mapping[str, Any]) -> GrblOptions:
    """Build :class:`GrblOptions` from a ``sim:`` mapping (unknown keys are left to the link)."""
    settings = {int(str(k).lstrip("$")): float(v) for k, v in dict(options.get("settings") or {}).items()}
    envelope = options.get("envelope")
    env = None
    if envelope is not None:
        env = tuple((float(envelope[a][0]), float(envelope[a][1])) if a in envelope else (-1e9, 1e9)
                    for a in (x.lower() for x in AXES))
    motion = _truthy(options.get("motion", True)) and not _truthy(options.get("zero_motion_time", False))
    home_opt = options.get("home")
    home = None if home_opt is None else tuple(float(x) for x in home_opt)
    friendly = _truthy(options.get("friendly", False))
    positive = _truthy(options.get("positive_space", friendly))
    build = str(options.get("build_options", "VL"))
    if positive:
        build = build if "Z" in build else build + "Z"
        settings = {23: 7, **settings}
    if friendly:
        settings = {20: 0, 22: 0, **settings}
    return GrblOptions(motion=motion, identity=str(options.get("identity", options.get("serial",
                       "SIM-GRBL-0001"))), version=str(options.get("version", "1.1h.20190825")),
                       envelope=env, home=None if home is None else (home[0], home[1], home[2]),
                       settings=settings, build_options=build,
                       reset_on_open=_truthy(options.get("reset_on_open", not friendly)),
                       boot_s=float(options.get("boot_ms", 100.0)) / 1000.0,
                       keep_g92_on_reset=_truthy(options.get("keep_g92_on_reset", True)),
                       echo=_truthy(options.get("echo", False)))


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)
