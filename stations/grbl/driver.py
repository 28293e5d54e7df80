"""The Grbl 1.1 station: the cut (laser) and machine (mill) stations of the cell.

:class:`GrblStation` speaks Grbl's bytes through a :class:`~stations.grbl.channel.GrblChannel` and keeps
the station state machine in step with what Grbl reports. Safety first: every program and jog is
pre-checked against the cell's limits before any byte is sent, the cell's limits are checked against the
machine's own ``$$`` on connect, and :meth:`GrblStation.emergency_stop` writes feed hold and soft reset
at once from any thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from microfactory.cell import StationConfig
from microfactory.clock import Clock
from microfactory.errors import (
    CommunicationError,
    Disconnected,
    ProtocolError,
    SafetyRefusal,
    StateError,
    StationFault,
    StationTimeout,
)
from microfactory.events import EventBus, EventKind, Severity
from microfactory.gcode import MachineLimits
from microfactory.station import PortHandle, Station, StationState, StationStatus, StepRequest, StepResult
from microfactory.transport.line import LineTransport
from stations.grbl.channel import RESET, Answer, GrblChannel
from stations.grbl.codec import (
    BuildInfo,
    GrblLine,
    LineKind,
    StatusReport,
    StatusTracker,
    Vec,
    parse_build_info,
    parse_offsets,
    parse_status,
)
from stations.grbl.codes import describe_alarm, describe_error, needs_rehome
from stations.grbl.laser import check_laser_program
from stations.grbl.options import GrblOptions
from stations.grbl.poller import StatusPoller
from stations.grbl.program import CheckedProgram, check_program
from stations.grbl.realtime import Override, door_text
from stations.grbl.resume import program_lines, resume_program
from stations.grbl.settings import GrblSettings, refuse_if_inconsistent
from stations.grbl.streamer import ProgramLine, Streamer, StreamMode, StreamResult

log = logging.getLogger("stations.grbl")

FEED_HOLD, CYCLE_START, JOG_CANCEL = b"!", b"~", b"\x85"
PROGRESS_PERIOD_S = 0.1  # s between progress events while streaming (progress_every: 0)


class GrblStation(Station):
    """A Grbl 1.1 machine (laser cutter when ``limits.laser``, else a mill).

    Options (cell file ``options:``) are :class:`~stations.grbl.options.GrblOptions`, validated when the
    cell loads and again here (an unknown or out-of-range key raises ``ConfigError``).
    """

    kind = "grbl"

    def __init__(self, config: StationConfig, *, bus: EventBus, clock: Clock, port: PortHandle,
                 check_cell_limits: bool = True) -> None:
        super().__init__(config, bus=bus, clock=clock, port=port)
        self.options = opts = GrblOptions.of(config.options, station=config.id)
        self.poll_hz = opts.poll_hz
        self.stream_mode = StreamMode.RESPOND if opts.send_response else StreamMode.COUNT
        self.stop_on_error = opts.stop_on_error
        self.reset_on_connect = opts.reset_on_connect
        self.auto_reconnect = opts.auto_reconnect
        self.check_cell_limits = check_cell_limits
        self.transport = LineTransport(port.resolve, baud=config.baud, name=config.id, trace=port.trace,
                                       on_link=self._on_link)
        self.channel = GrblChannel(self.transport, on_status=self._on_status, on_alarm=self._on_alarm,
                                   on_message=self._on_message)
        self.poller = StatusPoller(self.channel.realtime, rate_hz=self.poll_hz,
                                   status_timeout_s=config.timeouts.status_s, port=config.id)
        self.tracker = StatusTracker()
        self.build = BuildInfo()
        self.settings = GrblSettings({})
        self.offsets: dict[str, Vec] = {}
        self.parser_state = ""
        self.alarm_code: int | None = None
        self.messages: list[str] = []
        self._watch: asyncio.Task[None] | None = None
        self._closing = False
        self.estopped = False
        self.reconnected = asyncio.Event()
        self.door: int | None = None  # Door:N substate while the safety door interlock holds, else None
        self._waking = False

    # -- events from the channel -------------------------------------------------------------------
    def _on_link(self, up: bool, detail: str) -> None:
        self.bus.publish(EventKind.STATION_LINK, self.id, connected=up, port=self.transport.port,
                         detail=detail)
        if not up:
            self.state_machine.trigger_safely("link_down")

    def _on_status(self, line: GrblLine) -> None:
        try:
            report = self.tracker.update(parse_status(line.text, port=self.transport.port))
        except ProtocolError as exc:
            self.channel.garbled.append(exc)
            return
        self.poller.report(report)
        self.bus.publish(EventKind.STATION_STATUS, self.id, **report.as_fields())
        if report.state == "Door" or self.door is not None:
            self._on_door(report)
        if report.state == "Alarm" and not self._waking and self.state not in (
                StationState.ALARM, StationState.OFFLINE, StationState.CONNECTING):
            self.state_machine.trigger_safely("alarm")

    def _on_door(self, report: StatusReport) -> None:
        """The safety door interlock: a running step is held (HELD) until the door closes and resume."""
        sub = report.substate if report.state == "Door" else None
        if sub == self.door:
            return
        opened = self.door is None
        self.door = sub
        if sub is None:
            self.bus.publish(EventKind.ALARM_CLEARED, self.id, code="DOOR")
            return
        text = door_text(sub)
        if opened or sub in (1, 2):
            self.bus.publish(EventKind.ALARM, self.id, code="DOOR", text=text, severity=str(Severity.WARNING),
                             recovery="close the safety door, then resume")
        else:
            self.bus.publish(EventKind.LOG, self.id, level="info", text=text)
        if self.state in (StationState.BUSY, StationState.HOLDING):
            self.state_machine.trigger_safely("hold_complete")

    def _on_alarm(self, line: GrblLine) -> None:
        code = line.code or 0
        info = describe_alarm(code)
        self.alarm_code = code
        severity = Severity.CRITICAL if needs_rehome(code) else Severity.ERROR
        self.bus.publish(EventKind.ALARM, self.id, code=f"ALARM:{code}", text=info.text,
                         severity=str(severity), recovery=info.recovery)
        self.channel.fail_pending(StationFault(self.id, f"ALARM:{code}", info.text, recovery=info.recovery))
        if self.state is not StationState.OFFLINE:
            self.state_machine.trigger_safely("alarm")

    def _on_message(self, line: GrblLine) -> None:
        if line.kind is LineKind.MSG:
            self.messages.append(line.payload)
            self.bus.publish(EventKind.LOG, self.id, level="info", text=f"Grbl: {line.payload}")

    # -- connect / handshake -----------------------------------------------------------------------
    async def connect(self) -> None:
        """Open the port, reset Grbl (or wait for its banner), read ``$I``, ``$$``, ``$#``, ``$G``."""
        self._closing = False
        self.state_machine.trigger_safely("link_up")
        try:
            await self.transport.open(self.config.timeouts.connect_s)
            self.channel.start()
            await self._handshake()
        except BaseException:
            await self._shutdown_link()
            self.state_machine.trigger_safely("link_down")
            raise
        if self._watch is None or self._watch.done():
            self._watch = asyncio.get_running_loop().create_task(self._watch_link(), name=f"{self.id}-link")

    async def _handshake(self) -> None:
        timeouts = self.config.timeouts
        self.transport.drain_lines()
        self.channel.banner.clear()
        if self.reset_on_connect:
            self.channel.realtime(RESET)
        await self._wait_banner(timeouts.connect_s)
        # A status answer to a '?' sent now comes after every banner already on its way (a power-up
        # banner that raced our reset), so the lines sent next cannot be flushed by a late reset.
        try:
            await self.poller.fresh(timeouts.status_s)
        except StationTimeout:
            raise self._not_grbl("no status report after the reset banner") from None
        answer = await self._query("$I", phase="build info ($I)")
        self.build = parse_build_info(answer.pushed, port=self.transport.port)
        self.firmware = self.build.firmware
        self.settings = GrblSettings.parse((await self._query("$$", phase="settings ($$)")).pushed)
        if self.check_cell_limits:
            refuse_if_inconsistent(self.settings, self.config.limits, station=self.id)
        self.offsets = parse_offsets((await self._query("$#", phase="offsets ($#)")).pushed)
        gc = [p for p in (await self._query("$G", phase="parser state ($G)")).pushed if p.kind is LineKind.GC]
        self.parser_state = gc[0].payload if gc else ""
        self.poller.start()
        report = await self.poller.fresh(timeouts.status_s)
        if report.state == "Alarm":
            self.state_machine.trigger_safely("alarm")
        else:
            self.state_machine.trigger_safely("ready")
        log.info("%s: connected to %s on %s", self.id, self.firmware, self.transport.port)

    async def _wait_banner(self, timeout_s: float) -> None:
        try:
            await asyncio.wait_for(self.channel.banner.wait(), timeout_s)
        except TimeoutError:
            raise self._not_grbl(f"no Grbl banner within {timeout_s:g} s after reset") from None

    def _not_grbl(self, what: str) -> CommunicationError:
        received = self.channel.received_tail()
        if self.channel.garbled or self.transport.garbage_lines:
            return ProtocolError(f"{what}: received unreadable bytes", port=self.transport.port,
                                 received=received,
                                 hint=f"wrong baud rate? the cell file says {self.config.baud}; Grbl 1.1 "
                                      "usually runs at 115200")
        if received:
            return ProtocolError(f"{what}: this does not look like a Grbl 1.1 device",
                                 port=self.transport.port, received=received,
                                 hint="check that the port is the Grbl machine's")
        return StationTimeout(f"{what}: nothing received", port=self.transport.port,
                              hint="not a Grbl device, or it is off; check the port, power and baud rate")

    async def _query(self, line: str, *, phase: str, timeout_s: float | None = None) -> Answer:
        try:
            answer = await self.channel.command(line, timeout_s=timeout_s or self.config.timeouts.answer_s,
                                                phase=phase)
        except StationTimeout:
            if self.channel.lines_seen == 0 or self.channel.garbled:
                raise self._not_grbl(f"no answer to {line!r}") from None
            raise
        if not answer.ok:
            raise self._error_fault(line, answer.line)
        return answer

    def _error_fault(self, sent: str, line: GrblLine, where: str = "") -> StationFault:
        info = describe_error(line.code or 0)
        place = f"{where}: " if where else ""
        return StationFault(self.id, f"error:{line.code}", f"{place}{sent!r} refused: {info.text}",
                            recovery=info.recovery)

    async def identify(self) -> str:
        """The firmware id read by ``$I`` on connect (``Grbl 1.1h.20190830 [OPT:V,15,128]``)."""
        return self.firmware

    async def status(self) -> StationStatus:
        """A fresh status report (asks ``?`` now)."""
        report = await self.poller.fresh(self.config.timeouts.status_s)
        return StationStatus(self.state, report.as_fields())

    # -- limits and pre-check ----------------------------------------------------------------------
    def machine_limits(self) -> MachineLimits:
        """The limits programs are checked against: the cell file's, with the machine's work offsets."""
        offsets = {k: (v[0], v[1], v[2]) for k, v in self.offsets.items() if k.startswith("G5")}
        return MachineLimits.from_config(self.config.limits, station=self.id, work_offsets=offsets)

    def check_program(self, program: list[str] | str, source: str, *, from_here: bool = False
                      ) -> CheckedProgram:
        """Pre-check a program (and the laser profile on a laser station) without any I/O.

        ``from_here`` starts the check at the last reported machine position (jogs, relative moves).
        """
        position = None
        if from_here and self.tracker.last is not None and self.tracker.last.mpos is not None:
            mpos = self.tracker.last.mpos
            position = (mpos[0], mpos[1], mpos[2])
        checked = check_program(program, self.machine_limits(), source=source, position=position)
        if self.config.limits.laser:
            checked.problems += check_laser_program(checked.lines, spindle_max=self.settings.spindle_max,
                                                    cell_max=self.config.limits.max_spindle)
        return checked

    def check_step(self, step: StepRequest) -> list[str]:
        """Problems with ``step`` ("file:line: text"); empty when it may run."""
        try:
            if step.action == "gcode":
                program = step.params.get("program", [])
                program = program if isinstance(program, str) else list(program)
                return (self.check_program(program, str(step.params.get("source", "program"))).problems
                        + resume_problems(step.params.get("resume_from"), program))
            if step.action == "jog":
                return self.check_program([jog_as_motion(str(step.params.get("jog", "")))], "jog",
                                          from_here=True).problems
            if step.action == "check":
                program = step.params.get("program", [])
                return self.check_program(program if isinstance(program, str) else list(program),
                                          str(step.params.get("source", "program"))).problems
            if step.action == "override":
                return override_problems(step.params)
        except SafetyRefusal as exc:
            return [str(exc)]
        if step.action not in ACTIONS:
            known = ", ".join(sorted(ACTIONS))
            return [f"unknown action {step.action!r} for a Grbl station (known: {known})"]
        return []

    # -- steps -------------------------------------------------------------------------------------
    async def run_step(self, step: StepRequest) -> StepResult:
        """Run ``gcode``, ``check`` (the program in Grbl check mode, no motion), ``override``
        (``feed_pct``/``spindle_pct`` 10–200, ``rapid_pct`` 25/50/100), ``home``, ``unlock``, ``jog`` or
        ``jog_cancel``.

        ``gcode`` params: ``program`` (lines or text), ``source`` (name for messages), ``resume_from``
        (source line N, 1-based: restore the modal state of lines 1..N-1 without sending them, then send
        N.. checked from the current position).
        """
        if step.action not in ACTIONS:
            raise StateError(f"station {self.id!r}: unknown action {step.action!r}",
                             hint=f"use one of {', '.join(sorted(ACTIONS))}")
        started = time.monotonic()
        data = await getattr(self, f"_step_{step.action}")(step)
        return StepResult(True, data=data, duration_s=time.monotonic() - started)

    def _require_ready(self, what: str) -> None:
        if self.door is not None:
            raise StateError(f"station {self.id!r}: {door_text(self.door)}: cannot {what}",
                             hint="close the safety door and resume (cycle start) first")
        if self.state is StationState.ALARM:
            info = describe_alarm(self.alarm_code or 0) if self.alarm_code else None
            raise StateError(f"station {self.id!r} is in alarm{f' ({info.text})' if info else ''}: "
                             f"cannot {what}", hint=info.recovery if info else "unlock ($X) or home ($H)")
        if self.state is not StationState.IDLE:
            raise StateError(f"station {self.id!r} is {self.state}: cannot {what}",
                             hint="wait for the station to be idle (connect it first if offline)")

    async def _step_gcode(self, step: StepRequest) -> dict[str, Any]:
        source = str(step.params.get("source", "program"))
        program = step.params.get("program", [])
        program = program if isinstance(program, str) else list(program)
        resume_from = step.params.get("resume_from")
        if resume_from is None:
            checked = self.check_program(program, source)
        else:
            self._require_ready(f"resume {source}")
            checked = await self.check_resume(program, source, int(resume_from))
        checked.raise_for_problems()
        self._require_ready(f"run {source}")
        result = await self.stream(checked.lines, estimate_s=checked.estimate_s)
        data: dict[str, Any] = {"lines": result.acknowledged, "elapsed_s": result.elapsed_s,
                                "firmware": self.firmware, "source": source, "estimate_s": checked.estimate_s}
        if resume_from is not None:
            data["resumed_from"] = int(resume_from)
        return data

    async def check_resume(self, program: list[str] | str, source: str, resume_from: int) -> CheckedProgram:
        """The pre-checked lines that resume ``program`` at source line ``resume_from`` (1-based).

        Lines before it are only pre-checked, for the modal state they leave; the preamble restoring that
        state and the remaining lines are checked from the machine position read now (a fresh ``?``).
        """
        report = await self.poller.fresh(self.config.timeouts.status_s)
        if report.mpos is None or len(report.mpos) < 3:
            raise StateError(f"station {self.id!r}: the machine position is not known, cannot resume "
                             f"{source} from line {resume_from}",
                             hint="set $10 so status reports carry MPos or WCO, or home the machine")
        offsets = {k: (v[0], v[1], v[2]) for k, v in self.offsets.items() if k.startswith("G5")}
        checked = resume_program(program, self.machine_limits(), source=source, resume_from=resume_from,
                                 position=(report.mpos[0], report.mpos[1], report.mpos[2]),
                                 machine_offsets=offsets)
        if self.config.limits.laser:
            checked.problems += check_laser_program(checked.lines, spindle_max=self.settings.spindle_max,
                                                    cell_max=self.config.limits.max_spindle)
        return checked

    async def stream(self, lines: list[ProgramLine], *, estimate_s: float | None = None,
                     mode: StreamMode | None = None) -> StreamResult:
        """Stream already-checked lines and wait until the machine is Idle again."""
        self._require_ready("stream a program")
        self.estopped = False
        self.state_machine.trigger_safely("start")
        timeouts = self.config.timeouts
        streamer = Streamer(self.channel, rx_bytes=self.build.rx_bytes, mode=mode or self.stream_mode,
                            stop_on_error=self.stop_on_error, answer_timeout_s=timeouts.answer_s,
                            step_timeout_s=timeouts.step_s, dead=self.poller.dead,
                            failure=lambda: self.poller.failure, alive=self._alive)

        every = self.options.progress_every
        last_t = [0.0]

        def progress(done: int, total: int, remaining_s: float | None) -> None:
            # one event per line would cost the streamer host time on long programs: publish every
            # ``progress_every`` lines, or (0) at most ~10 per second; the first and last always
            if done not in (1, total):
                if every:
                    if done % every:
                        return
                else:
                    now = time.monotonic()
                    if now - last_t[0] < PROGRESS_PERIOD_S:
                        return
                    last_t[0] = now
            self.bus.publish(EventKind.STATION_PROGRESS, self.id, done=done, total=total,
                             remaining_s=remaining_s)

        try:
            result = await streamer.stream(lines, estimate_s=estimate_s, progress=progress)
            if result.errors:
                first = result.errors[0]
                if self.stop_on_error:
                    await self._stop_motion()
                raise self._error_fault(first.line.text, first.answer, first.line.where)
            await self._wait_idle(timeouts.step_s)
        except StationFault:
            self._fault_state()
            raise
        except CommunicationError:
            self._fault_state()
            raise
        self.state_machine.trigger_safely("finish")
        return result

    def _fault_state(self) -> None:
        if self.state not in (StationState.ALARM, StationState.OFFLINE):
            self.state_machine.trigger_safely("fault")

    def _alive(self, since: float) -> bool:
        """True when a status report came recently: the machine is busy, not dead."""
        return time.monotonic() - self.poller.last_t <= self.config.timeouts.status_s + self.poller.period_s

    async def _wait_idle(self, timeout_s: float) -> StatusReport:
        blocks = self.build.planner_blocks

        def done(report: StatusReport) -> bool:
            if report.state == "Alarm":
                raise StationFault(self.id, f"ALARM:{self.alarm_code}", "alarm while running",
                                   recovery=describe_alarm(self.alarm_code or 0).recovery)
            if report.state != "Idle":
                return False
            return report.planner_free is None or blocks is None or report.planner_free >= blocks

        return await self.poller.wait_for(done, timeout_s, what="Idle after the program")

    async def _step_home(self, step: StepRequest) -> dict[str, Any]:
        if self.state not in (StationState.IDLE, StationState.ALARM):
            raise StateError(f"station {self.id!r} is {self.state}: cannot home", hint="stop the step first")
        self.state_machine.trigger_safely("clear")
        self.state_machine.trigger_safely("start")
        answer = await self.channel.command("$H", timeout_s=self.config.timeouts.step_s, phase="homing ($H)")
        if not answer.ok:
            self._fault_state()
            raise self._error_fault("$H", answer.line)
        self.alarm_code = None
        self.state_machine.trigger_safely("finish")
        return {"homed": True}

    async def _step_unlock(self, step: StepRequest) -> dict[str, Any]:
        if self.alarm_code is not None and needs_rehome(self.alarm_code):
            log.warning("%s: unlocking after ALARM:%d; position is unknown, re-home", self.id,
                        self.alarm_code)
        await self._query("$X", phase="unlock ($X)")
        self.state_machine.trigger_safely("clear")
        data = {"unlocked": True, "rehome_required": bool(self.alarm_code and needs_rehome(self.alarm_code))}
        self.bus.publish(EventKind.ALARM_CLEARED, self.id, code=f"ALARM:{self.alarm_code}")
        self.alarm_code = None
        return data

    async def _step_jog(self, step: StepRequest) -> dict[str, Any]:
        body = str(step.params.get("jog", "")).strip()
        if body.upper().startswith("$J="):
            body = body[3:]
        checked = self.check_program([jog_as_motion(body)], "jog", from_here=True)
        checked.raise_for_problems()
        self._require_ready("jog")
        answer = await self.channel.command(f"$J={body}", timeout_s=self.config.timeouts.answer_s,
                                            phase="jog")
        if not answer.ok:
            raise self._error_fault(f"$J={body}", answer.line)
        if step.params.get("wait", True):
            await self._wait_idle(self.config.timeouts.step_s)
        return {"jog": body}

    async def _step_jog_cancel(self, step: StepRequest) -> dict[str, Any]:
        self.channel.realtime(JOG_CANCEL)
        return {"jog_cancel": True}

    async def _step_override(self, step: StepRequest) -> dict[str, Any]:
        try:
            wanted = Override.from_params(dict(step.params))
        except ValueError as exc:
            raise StateError(f"station {self.id!r}: override refused: {exc}",
                             hint="feed_pct and spindle_pct 10–200, rapid_pct 25, 50 or 100") from None
        feed, rapid, spindle = await self.override(wanted)
        return {"feed_pct": feed, "rapid_pct": rapid, "spindle_pct": spindle}

    async def override(self, wanted: Override) -> tuple[int, int, int]:
        """Set feed/rapid/spindle overrides (%), at once, also while a program runs; return what Grbl
        reports (``Ov:``) once it shows the targets."""
        problems = wanted.problems()
        if problems:
            raise StateError(f"station {self.id!r}: override refused: {'; '.join(problems)}",
                             hint="feed_pct and spindle_pct 10–200, rapid_pct 25, 50 or 100")
        self.channel.realtime(wanted.to_bytes())
        report = await self.poller.wait_for(lambda r: wanted.matches(r.overrides),
                                            self.config.timeouts.answer_s, what="overrides (Ov:) reported")
        assert report.overrides is not None
        return report.overrides

    async def _step_check(self, step: StepRequest) -> dict[str, Any]:
        """Grbl check mode (``$C``): the machine parses the program and answers each line, no motion.

        A dry verification on the real firmware: every ``error:N`` is collected (streaming does not stop
        at the first), check mode is left again (``$C``, which soft-resets Grbl), and the step fails
        listing them all.
        """
        source = str(step.params.get("source", "program"))
        program = step.params.get("program", [])
        checked = self.check_program(program if isinstance(program, str) else list(program), source)
        checked.raise_for_problems()
        self._require_ready(f"check {source}")
        self.state_machine.trigger_safely("start")
        try:
            await self._query("$C", phase="check mode on ($C)")
            try:
                streamer = Streamer(self.channel, rx_bytes=self.build.rx_bytes, mode=self.stream_mode,
                                    stop_on_error=False, answer_timeout_s=self.config.timeouts.answer_s,
                                    step_timeout_s=self.config.timeouts.step_s, dead=self.poller.dead,
                                    failure=lambda: self.poller.failure, alive=self._alive)
                result = await streamer.stream(checked.lines)
            finally:
                with self.poller.paused():
                    self.channel.banner.clear()
                    await self._query("$C", phase="check mode off ($C)")
                    await self._wait_banner(self.config.timeouts.connect_s)
        except (StationFault, CommunicationError):
            self._fault_state()
            raise
        self.state_machine.trigger_safely("finish")
        if result.errors:
            listing = "; ".join(f"{e.line.where} {e.line.text!r}: error:{e.code} "
                                f"{describe_error(e.code).text}" for e in result.errors)
            raise StationFault(self.id, f"error:{result.errors[0].code}",
                               f"check mode ($C): {len(result.errors)} line(s) refused by the firmware: "
                               f"{listing}", recovery="fix those lines; nothing moved")
        return {"lines": result.acknowledged, "checked": True, "source": source,
                "elapsed_s": result.elapsed_s}

    # -- hold, resume, stop, reset -----------------------------------------------------------------
    async def hold(self) -> None:
        """Feed hold (``!``), then wait until Grbl reports ``Hold:0`` (decelerated, stopped; ``Hold:1`` is
        still decelerating — Grbl 1.1's meaning, see docs/design.md)."""
        self.state_machine.trigger_safely("request_hold")
        self.channel.realtime(FEED_HOLD)
        await self.poller.wait_for(lambda r: r.label == "Hold:0" or r.state == "Idle",
                                   self.config.timeouts.answer_s * 5, what="Hold:0 (hold complete)")
        self.state_machine.trigger_safely("hold_complete")

    async def resume(self) -> None:
        """Cycle start (``~``): continue after a hold, or after the safety door was closed again.

        Refused while the door is open (``Door:1``/``Door:2``): Grbl would ignore the cycle start.
        """
        if self.door in (1, 2):
            raise StateError(f"station {self.id!r}: {door_text(self.door)}",
                             hint="close the safety door, then resume")
        self.channel.realtime(CYCLE_START)
        await self.poller.wait_for(lambda r: r.state not in ("Hold", "Door") or r.substate == 3,
                                   self.config.timeouts.answer_s, what="leaving Hold")
        self.state_machine.trigger_safely("resume")

    async def stop(self) -> None:
        """Stop safely: feed hold, wait for the hold to complete (position kept), then soft reset."""
        await self._stop_motion()
        self.state_machine.trigger_safely("ready")

    async def _stop_motion(self) -> None:
        self.channel.realtime(FEED_HOLD)
        with contextlib.suppress(StationTimeout):
            # Sleep counts as stopped: nothing moves, spindle and steppers are off, and Grbl ignores `!`.
            await self.poller.wait_for(lambda r: r.label == "Hold:0" or r.state in ("Idle", "Alarm", "Sleep"),
                                       self.config.timeouts.answer_s * 5, what="hold complete")
        await self._soft_reset()

    async def _soft_reset(self) -> None:
        with self.poller.paused():
            self.channel.banner.clear()
            self.channel.realtime(RESET)
            self.channel.fail_pending(StationFault(self.id, "reset", "soft reset flushed the line",
                                                   recovery="run the step again"))
            await self._wait_banner(self.config.timeouts.connect_s)

    async def reset(self) -> None:
        """Soft reset, then ``$X`` when the alarm allows it; after alarms 1, 3, 6–9 re-home first."""
        await self._soft_reset()
        report = await self.poller.fresh(self.config.timeouts.status_s)
        if report.state == "Alarm":
            code = self.alarm_code
            if code is not None and needs_rehome(code):
                info = describe_alarm(code)
                raise StationFault(self.id, f"ALARM:{code}", f"{info.text}; reset done but the machine "
                                   "stays locked", recovery="re-home required: run the home step ($H)")
            await self._query("$X", phase="unlock ($X)")
        self.alarm_code = None
        self.state_machine.trigger_safely("clear")
        self.state_machine.trigger_safely("ready")

    async def standby(self, on: bool) -> None:
        """Standby: ``$SLP`` (spindle/laser, coolant and steppers off); waking soft-resets and unlocks.

        Grbl leaves sleep only through a reset, into Alarm (motion locked); waking sends ``$X``. With
        ``options: {sleep_on_standby: false}`` only the station state changes.
        """
        if not self.options.sleep_on_standby:
            await super().standby(on)
            return
        if on:
            if self.state is not StationState.IDLE:
                raise StateError(f"station {self.id!r} is {self.state}: cannot enter standby",
                                 hint="wait for the step to finish")
            await self._query("$SLP", phase="sleep ($SLP)")
            await self.poller.wait_for(lambda r: r.state == "Sleep", self.config.timeouts.answer_s,
                                       what="Sleep")
            self.state_machine.trigger_safely("sleep")
            return
        if self.state is not StationState.STANDBY:
            return
        self._waking = True
        try:
            await self._soft_reset()
            report = await self.poller.fresh(self.config.timeouts.status_s)
            if report.state == "Alarm":
                await self._query("$X", phase="unlock after sleep ($X)")
                await self.poller.wait_for(lambda r: r.state != "Alarm", self.config.timeouts.answer_s,
                                           what="unlocked after sleep")
        finally:
            self._waking = False
        self.alarm_code = None
        self.state_machine.trigger_safely("wake")

    def emergency_stop(self) -> None:
        """Feed hold then soft reset, written at once (synchronous, any thread)."""
        self.estopped = True
        self.transport.write_realtime(FEED_HOLD)
        self.transport.write_realtime(RESET)

    # -- link loss, reconnect, close ---------------------------------------------------------------
    async def _watch_link(self) -> None:
        while not self._closing:
            await self.transport.lost.wait()
            if self._closing or not self.auto_reconnect:
                return
            log.warning("%s: link lost; reconnecting by identity", self.id)
            await self.poller.stop()
            await self.channel.stop()
            try:
                await self.transport.reconnect()
                self.state_machine.trigger_safely("link_up")
                self.channel.start()
                await self._handshake()
            except CommunicationError as exc:
                log.error("%s: reconnect failed: %s", self.id, exc)
                self.state_machine.trigger_safely("link_down")
                return
            self.reconnected.set()

    async def close(self) -> None:
        """Stop motion, switch the spindle/laser off (soft reset does M5), close the port."""
        self._closing = True
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None
        if self.transport.connected:
            try:
                await self._stop_motion()
            except (CommunicationError, StationFault) as exc:
                log.warning("%s: could not stop cleanly before closing: %s", self.id, exc)
        await self._shutdown_link()
        self.state_machine.trigger_safely("link_down")

    async def _shutdown_link(self) -> None:
        await self.poller.stop()
        await self.channel.stop()
        await self.transport.close()


def override_problems(params: object) -> list[str]:
    """Problems with an ``override`` step's params; empty when Grbl can apply them."""
    try:
        Override.from_params(dict(params) if isinstance(params, dict) else params)
    except ValueError as exc:
        return [f"override: {exc}"]
    return []


def resume_problems(resume_from: object, program: list[str] | str) -> list[str]:
    """Problems with a ``gcode`` step's ``resume_from`` (a source line number, 1-based); empty if fine."""
    if resume_from is None:
        return []
    total = len(program_lines(program))
    if isinstance(resume_from, bool) or not isinstance(resume_from, int) or not 1 <= resume_from <= total:
        return [f"resume_from={resume_from!r} is not a line of the program (give 1..{total})"]
    return []


def jog_as_motion(jog: str) -> str:
    """A jog body (``G91 X10 F500``, with or without ``$J=``) as the G1 move Grbl executes, for the
    pre-check."""
    body = jog.strip()
    if body.upper().startswith("$J="):
        body = body[3:]
    return f"G1 {body}"


ACTIONS = frozenset({"gcode", "check", "override", "home", "unlock", "jog", "jog_cancel"})
__all__ = ["ACTIONS", "Disconnected", "GrblStation"]
