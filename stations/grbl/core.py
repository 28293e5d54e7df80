"""The Grbl station's shared core: its state, what the channel reports, and the helpers every part uses.

:class:`GrblCore` builds the transport, channel and status poller, keeps the station state machine in
step with Grbl's own reports (status, safety door, alarms, messages) and holds the small helpers the
connect, motion, standby and step mixins all rely on (asking a ``$`` command, turning ``error:N`` into a
fault, refusing a step while not ready). It exists so those mixins share one definition of the
station's attributes instead of each re-declaring them.
"""

from __future__ import annotations

import asyncio

from microfactory.cell import StationConfig
from microfactory.clock import Clock
from microfactory.errors import (
    CommunicationError,
    ProtocolError,
    StateError,
    StationFault,
    StationTimeout,
)
from microfactory.events import EventBus, EventKind, Severity
from microfactory.station import PortHandle, Station, StationState
from microfactory.transport.line import LineTransport
from stations.grbl.channel import Answer, GrblChannel
from stations.grbl.codec import (
    BuildInfo,
    GrblLine,
    LineKind,
    StatusReport,
    StatusTracker,
    Vec,
    parse_offsets,
    parse_status,
    parse_tool_length,
)
from stations.grbl.codes import LIMIT_ALARMS, describe_alarm, describe_error, needs_rehome
from stations.grbl.machine_state import MachineState, parse_gc
from stations.grbl.options import GrblOptions
from stations.grbl.poller import StatusPoller
from stations.grbl.realtime import door_text
from stations.grbl.settings import GrblSettings
from stations.grbl.streamer import StreamMode, StreamResult


class GrblCore(Station):
    """State, channel callbacks and shared helpers of :class:`~stations.grbl.driver.GrblStation`."""

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
                                       on_link=self._on_link, latch=self.estop_latch,
                                       clock=clock)
        self.channel = GrblChannel(self.transport, on_status=self._on_status, on_alarm=self._on_alarm,
                                   on_message=self._on_message, on_banner=self._on_banner,
                                   reset_timeout_s=config.timeouts.connect_s)
        self.poller = StatusPoller(self.channel.realtime, rate_hz=self.poll_hz,
                                   status_timeout_s=config.timeouts.status_s, port=config.id,
                                   idle_rate_hz=min(opts.idle_poll_hz, self.poll_hz),
                                   busy=lambda: self.channel.in_flight > 0)
        self.channel.on_send = self.poller.activity
        self.poller.on_dead = self._on_status_lost
        self.poller.on_revived = self._on_status_back
        self.tracker = StatusTracker()
        self.build = BuildInfo()
        self.settings = GrblSettings({})
        self.offsets: dict[str, Vec] = {}
        self.parser_state = ""
        self.machine_state: MachineState | None = None
        self._identity: str | None = None  # $I of the machine first connected: a reconnect must match it
        self.alarm_code: int | None = None
        self.messages: list[str] = []
        self._watch: asyncio.Task[None] | None = None
        self._closing = False
        self.reconnected = asyncio.Event()
        self.stopped_program = False  # set by a stop (feed hold + soft reset) while a program runs
        self.door: int | None = None  # Door:N substate while the safety door interlock holds, else None
        self._waking = False
        self._prompt_tasks: set[asyncio.Task[None]] = set()
        self._status_mask_restore: int | None = None  # the user's $10, restored on close
        self.flushed_blocks: int | None = None  # planner blocks the last stop threw away (see _stop_motion)
        self.last_stream: StreamResult | None = None  # how far the last program got (also after a failure)
        # the commands a front end offers to home and unlock this station (the CLI sets its own)
        self.recovery_commands: tuple[str, str] = (f"microfactory home --cell CELL --station {config.id}",
                                                   f"microfactory unlock --cell CELL --station {config.id}")

    def alarm_text(self) -> str:
        """Why the machine is in Alarm, in words (the last ALARM:N, or the power-up homing lock)."""
        if self.alarm_code:
            return f"ALARM:{self.alarm_code}: {describe_alarm(self.alarm_code).text}"
        return "after power-up or reset: homing is enabled ($22=1), so Grbl locks out G-code until $H or $X"

    def home_hint(self) -> str:
        """What to do about a machine in Alarm: the exact commands that home or unlock it."""
        home, unlock = self.recovery_commands
        return (f"home it: `{home}` (or `{unlock}` to unlock without homing: the position is then not "
                "trusted and soft limits may not match the machine); a cell can home on connect with "
                "options: {home_on_connect: true}")

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
        text = info.text
        if code in LIMIT_ALARMS:
            text = self._limit_alarm_text(code, info.text)
            # stock Grbl now answers nothing, '?' included, until a soft reset: expected, not a dead link
            self.poller.silence(StationFault(self.id, f"ALARM:{code}", text, recovery=info.recovery))
        self.bus.publish(EventKind.ALARM, self.id, code=f"ALARM:{code}", text=text,
                         severity=str(severity), recovery=info.recovery, port=self.transport.port)
        self.channel.fail_pending(StationFault(self.id, f"ALARM:{code}", text, recovery=info.recovery))
        if self.state is not StationState.OFFLINE:
            self.state_machine.trigger_safely("alarm")

    # -- while no program runs: a machine that goes quiet or resets itself is told, never ignored ----
    def _idle_ish(self) -> bool:
        return self.state in (StationState.IDLE, StationState.STANDBY)

    def _on_status_lost(self, failure: StationTimeout) -> None:
        if not self._idle_ish():
            return  # a running program (or the reset under way) reports it with the whole story
        self.bus.publish(EventKind.ALARM, self.id, code="NO_STATUS", severity=str(Severity.ERROR),
                         text=f"station {self.id!r} on {self.transport.port}: {failure.message} while idle",
                         recovery="check the machine's power and the cable; when it answers again, reset "
                                  "the station (nothing was running)")
        self.state_machine.trigger_safely("fault")

    def _on_status_back(self) -> None:
        if self.state is StationState.FAULTED:
            self.bus.publish(EventKind.LOG, self.id, level="warning",
                             text=f"station {self.id!r} on {self.transport.port} answers again: reset the "
                                  "station to use it")

    def _on_banner(self, line: GrblLine) -> None:
        if self.poller.is_paused or not self._idle_ish() or self.channel.banner_answered_reset:
            # our own reset (stop, check mode, wake, the E-stop's), the handshake, or a program reports it
            return
        self.bus.publish(EventKind.ALARM, self.id, code="RESET", severity=str(Severity.ERROR),
                         text=f"station {self.id!r} on {self.transport.port}: the machine reset itself while "
                              "idle (a power dip, a noisy reset line, a USB adapter toggling DTR): its modal "
                              "state and G92 offset are gone and the position may be lost",
                         recovery="find why it reset; home it ($H) if it has homing, then reset the station")
        self.state_machine.trigger_safely("fault")

    def _limit_alarm_text(self, code: int, what: str) -> str:
        """A limit alarm in words: which axis when the last status showed a limit pin, and the silence."""
        pins = self.tracker.last.pins if self.tracker.last is not None else None
        axes = "".join(a for a in "XYZ" if pins and a in pins)
        where = f" on {'/'.join(axes)}" if axes else ""
        return (f"limit alarm ALARM:{code}{where} on {self.transport.port}: {what}; Grbl stopped all motion "
                "and answers nothing, not even '?', until a soft reset")

    def _on_message(self, line: GrblLine) -> None:
        if line.kind is LineKind.MSG:
            self.messages.append(line.payload)
            self.bus.publish(EventKind.LOG, self.id, level="info", text=f"Grbl: {line.payload}")


    # -- helpers shared by the mixins ---------------------------------------------------------------
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

    async def read_machine_state(self, *, phase: str = "before the program") -> MachineState:
        """Ask ``$#`` and ``$G`` now: every offset (G54..G59, G92, TLO) and the modal state Grbl holds."""
        answer = await self._query("$#", phase=f"offsets ($#) {phase}")
        offsets = parse_offsets(answer.pushed, port=self.transport.port)
        if not {"G54", "G92"} <= set(offsets):  # an 'ok' that was not this query's (duplicated, noise)
            raise ProtocolError(f"the answer to '$#' ({phase}) has no offsets: the link is out of step",
                                port=self.transport.port, received=self.channel.received_tail(),
                                hint="nothing was sent; check the cable, then reset the station")
        self.offsets = offsets
        tool_length = parse_tool_length(answer.pushed, port=self.transport.port)
        gc = [p for p in (await self._query("$G", phase=f"parser state ($G) {phase}")).pushed
              if p.kind is LineKind.GC]
        if len(gc) != 1:
            raise ProtocolError(f"the answer to '$G' ({phase}) has no parser state: the link is out of step",
                                port=self.transport.port, received=self.channel.received_tail(),
                                hint="nothing was sent; check the cable, then reset the station")
        self.parser_state = gc[0].payload
        self.machine_state = parse_gc(self.parser_state, self.offsets, tool_length, port=self.transport.port)
        return self.machine_state

    def _error_fault(self, sent: str, line: GrblLine, where: str = "") -> StationFault:
        info = describe_error(line.code or 0)
        place = f"{where}: " if where else ""
        return StationFault(self.id, f"error:{line.code}", f"{place}{sent!r} refused: {info.text}",
                            recovery=info.recovery)


    def _require_ready(self, what: str) -> None:
        if self.door is not None:
            raise StateError(f"station {self.id!r}: {door_text(self.door)}: cannot {what}",
                             hint="close the safety door and resume (cycle start) first")
        if self.state is StationState.ALARM:
            info = describe_alarm(self.alarm_code or 0) if self.alarm_code else None
            if info is None:
                raise StateError(f"station {self.id!r} is in Alarm after power-up or reset (homing is "
                                 f"enabled, so Grbl wants $H or $X): cannot {what}", hint=self.home_hint())
            raise StateError(f"station {self.id!r} is in alarm ({info.text}): cannot {what}",
                             hint=info.recovery)
        if self.state is not StationState.IDLE:
            raise StateError(f"station {self.id!r} is {self.state}: cannot {what}",
                             hint="wait for the station to be idle (connect it first if offline)")


    def _fault_state(self) -> None:
        if self.state not in (StationState.ALARM, StationState.OFFLINE):
            self.state_machine.trigger_safely("fault")

