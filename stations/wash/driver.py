"""The ultrasonic wash station driver: SCPI-style lines over a serial port.

Every exchange is a *batch*: commands and queries sent in order, each query answered by one line, then
the error queue read with ``SYST:ERR?`` until ``0,"No error"``; a non-zero entry becomes a
:class:`~microfactory.errors.StationFault` with the device's code and text and the recovery the
operator can apply. Set points are range-checked and refused before anything is sent.

Hold on a wash: the protocol has no pause — ``WASH:ABOR`` drains the bath and stops the ultrasound, and a
cycle cannot resume where it stopped. What an operator expects from *Hold* on a running washer is that
the parts are not left half-washed in a drained tank: by default :meth:`WashStation.hold` lets the
running cycle finish and then holds the station (no next step starts); with the cell option
``hold_aborts: true`` it aborts at once and the step reports that it must be run again.
``stop`` and ``emergency_stop`` always abort.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from microfactory.cell import StationConfig
from microfactory.clock import Clock
from microfactory.errors import (
    CommunicationError,
    Disconnected,
    InterlockOpen,
    ProtocolError,
    SafetyRefusal,
    StateError,
    StationFault,
    StationTimeout,
)
from microfactory.events import EventBus, EventKind
from microfactory.station import PortHandle, Station, StationState, StationStatus, StepRequest, StepResult
from microfactory.transport.line import LineTransport
from stations.wash import scpi
from stations.wash.scpi import DeviceError, Identity, WashPhase
from stations.wash.settings import Program, WashOptions, WashSettings, cycle_s, refusals

log = logging.getLogger("stations.wash")

MAX_ERRORS = 32  # a device whose error queue never empties is broken, not busy

LID_RECOVERY = "close the lid and press Reset"
LEVEL_RECOVERY = "top up the bath and press Reset"


def recovery_for(error: DeviceError) -> str:
    """What the operator does about a device error (the words on the alarm banner)."""
    text = error.text.lower()
    if "lid" in text:
        return LID_RECOVERY
    if "level" in text:
        return LEVEL_RECOVERY
    if error.code == -310:
        return "check the heater and the fluid, power-cycle the washer, then press Reset"
    if error.code in (-100, -102, -113):
        return "the washer did not understand the driver: check its firmware against the protocol page"
    if error.code == -222:
        return "a set point was out of the washer's range: check the recipe's wash step"
    return "see the washer's manual for this error, then press Reset"


class WashStation(Station):
    """An ultrasonic washer with a heated bath, driven over its serial port.

    Timeouts are link time from the cell file (``timeouts.answer_s``, ``connect_s``); the poll period
    during a cycle is process time (``options.poll_s``) so a simulated lot at ×100 polls as often per
    cycle as the bench does.
    """

    kind = "wash"

    def __init__(self, config: StationConfig, *, bus: EventBus, clock: Clock, port: PortHandle) -> None:
        super().__init__(config, bus=bus, clock=clock, port=port)
        self.options = WashOptions.of(config)
        self.transport = LineTransport(port.resolve, baud=config.baud, name=config.id, trace=port.trace,
                                       on_link=self._on_link)
        self.identity: Identity | None = None
        self.bath_c: float | None = None  # last measured bath temperature (°C)
        self.power_w: float | None = None  # last measured electrical power (W)
        self._io = asyncio.Lock()
        self._abort_reason = ""

    # -- link --------------------------------------------------------------------------------------
    def _on_link(self, up: bool, detail: str) -> None:
        self.bus.publish(EventKind.STATION_LINK, self.id, connected=up, port=self.transport.port,
                         detail=detail)
        if not up:
            self.state_machine.trigger_safely("link_down")

    def _h(self, header: str, *args: object) -> str:
        return scpi.command_line(header, *args, long_form=self.options.long_form)

    def _q(self, header: str) -> str:
        return scpi.query_line(header, long_form=self.options.long_form)

    async def _send(self, line: str) -> None:
        await self.transport.write_line(line)

    async def _ask(self, line: str, timeout_s: float | None = None) -> str:
        await self.transport.write_line(line)
        return await self.transport.readline(timeout_s or self.config.timeouts.answer_s,
                                             phase=f"answer to {line}")

    def _garbled(self, sent: str, answer: str, exc: ValueError) -> ProtocolError:
        return ProtocolError(f"unexpected answer: {exc}", port=self.transport.port, sent=sent,
                             received=answer.encode("utf-8", "replace"),
                             hint="check the baud rate and the cable; the washer may be another model")

    async def _ask_parsed(self, header: str, parse: Any) -> Any:
        line = self._q(header)
        answer = await self._ask(line)
        try:
            return parse(answer)
        except ValueError as exc:
            raise self._garbled(line, answer, exc) from None

    async def _errors(self) -> list[DeviceError]:
        """Read the error queue until ``0,"No error"``; return the non-zero entries (oldest first)."""
        found: list[DeviceError] = []
        for _ in range(MAX_ERRORS):
            entry: DeviceError = await self._ask_parsed(scpi.ERROR, scpi.parse_error)
            if entry.ok:
                return found
            log.warning("%s: washer error %s", self.id, entry)
            found.append(entry)
        raise ProtocolError(f"the error queue did not empty after {MAX_ERRORS} reads",
                            port=self.transport.port, sent=self._q(scpi.ERROR),
                            hint="power-cycle the washer")

    def _fault(self, errors: list[DeviceError], during: str) -> StationFault:
        first = errors[0]
        more = "; then " + "; ".join(str(e) for e in errors[1:]) if errors[1:] else ""
        return StationFault(self.id, str(first.code), f"{first.text} ({during}){more}",
                            recovery=recovery_for(first))

    async def _raise_errors(self, during: str, *, fault_state: bool = True) -> None:
        errors = await self._errors()
        if errors:
            if fault_state:
                self.state_machine.trigger_safely("fault")
            fault = self._fault(errors, during)
            self.bus.publish(EventKind.ALARM, self.id, code=fault.code, text=fault.text, severity="error",
                             recovery=fault.recovery)
            raise fault

    async def _exchange(self, coro: Any, *, offline_on_timeout: bool = True) -> Any:
        """Run one batch under the port lock; a station that stopped answering goes offline."""
        async with self._io:
            late = self.transport.drain_lines()  # a late answer to a lost exchange must not shift the next
            if late:
                log.warning("%s: discarded late lines %r", self.id, late)
            try:
                return await coro
            except Disconnected:
                self.state_machine.trigger_safely("link_down")
                raise
            except StationTimeout:
                if offline_on_timeout:
                    self.state_machine.trigger_safely("link_down")
                raise

    # -- life cycle --------------------------------------------------------------------------------
    async def connect(self) -> None:
        """Open the port, clear the error queue, read ``*IDN?``; the station is then idle (or faulted)."""
        self.state_machine.trigger_safely("link_up")
        try:
            await self.transport.open(self.config.timeouts.connect_s)
            self.identity = await self._exchange(self._handshake())
        except BaseException:
            self.state_machine.trigger_safely("link_down")
            await self.transport.close()
            raise
        self.firmware = str(self.identity)
        self.state_machine.trigger_safely("ready")
        log.info("%s: connected to %s on %s", self.id, self.firmware, self.transport.port)

    async def _handshake(self) -> Identity:
        await self._send(self._h(scpi.CLS))
        line = self._q(scpi.IDN)
        answer = await self._ask(line, self.config.timeouts.connect_s)
        try:
            identity = scpi.parse_identity(answer)
        except ValueError as exc:
            raise self._garbled(line, answer, exc) from None
        await self._raise_errors("connect", fault_state=False)
        return identity

    async def identify(self) -> str:
        if self.identity is None:
            await self.connect()
        return self.firmware

    async def status(self) -> StationStatus:
        """Phase, bath temperature (°C), electrical power (W), lid and level, as the washer says now."""
        fields = await self._exchange(self._read_status(full=True))
        return StationStatus(self.state, fields)

    async def _read_status(self, *, full: bool = False) -> dict[str, Any]:
        phase: WashPhase = await self._ask_parsed(scpi.STATE, scpi.parse_phase)
        fields: dict[str, Any] = {"phase": str(phase)}
        fields["remaining_s"] = await self._ask_parsed(scpi.REMAINING, scpi.parse_number)
        fields["temperature_c"] = self.bath_c = await self._ask_parsed(scpi.MEASURED_TEMPERATURE,
                                                                       scpi.parse_number)
        fields["power_w"] = self.power_w = await self._ask_parsed(scpi.ELECTRICAL_POWER, scpi.parse_number)
        if full:
            fields["lid"] = await self._ask_parsed(scpi.LID, lambda s: scpi.parse_word(s, ("OPEN", "CLOSED")))
            fields["level"] = await self._ask_parsed(scpi.LEVEL, lambda s: scpi.parse_word(s, ("OK", "LOW")))
        return fields

    async def power(self) -> float:
        """Instantaneous electrical power (W), for energy per part and standby decisions."""
        watts: float = await self._exchange(self._ask_parsed(scpi.ELECTRICAL_POWER, scpi.parse_number))
        self.power_w = watts
        return watts

    # -- settings ----------------------------------------------------------------------------------
    def check_step(self, step: StepRequest) -> list[str]:
        return [r.message for r in refusals(step)]

    def refuse(self, step: StepRequest) -> WashSettings:
        """The step's settings, or :class:`SafetyRefusal` naming the first limit broken (nothing sent)."""
        problems = refusals(step)
        if problems:
            first = problems[0]
            more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
            raise SafetyRefusal(first.message + more, limit=first.limit, value=first.value,
                                where=f"station {self.id}",
                                hint="fix the wash step in the recipe; nothing was sent to the washer")
        return WashSettings.from_params(step.params)[0]

    async def apply(self, settings: WashSettings) -> Program:
        """Send the set points, confirm with ``*OPC?`` and the error queue; return what the washer holds."""
        await self._exchange(self._apply(settings))
        return settings.resolved(self.options)

    async def _apply(self, settings: WashSettings) -> None:
        if settings.program:
            await self._send(self._h(scpi.PROGRAM, settings.program))
        for header, value in ((scpi.TEMPERATURE, settings.temperature_c), (scpi.TIME, settings.time_s),
                              (scpi.POWER, settings.power_pct)):
            if value is not None:
                await self._send(self._h(header, value))
        line = self._q(scpi.OPC)
        answer = await self._ask(line)
        if answer.strip() != "1":
            raise self._garbled(line, answer, ValueError(f"*OPC? must answer 1, got {answer!r}"))
        await self._raise_errors("settings", fault_state=False)

    async def check_interlocks(self) -> None:
        """Refuse to start with the lid open or the fluid low (:class:`InterlockOpen`, nothing started)."""
        await self._exchange(self._interlocks())

    async def _interlocks(self) -> None:
        lid = await self._ask_parsed(scpi.LID, lambda s: scpi.parse_word(s, ("OPEN", "CLOSED")))
        level = await self._ask_parsed(scpi.LEVEL, lambda s: scpi.parse_word(s, ("OK", "LOW")))
        await self._raise_errors("interlock check", fault_state=False)
        if lid == "OPEN":
            raise InterlockOpen(f"station {self.id}: the washer's lid is open; the wash will not start",
                                limit="lid", value=lid, hint=LID_RECOVERY)
        if level == "LOW":
            raise InterlockOpen(f"station {self.id}: the bath's fluid level is low; the wash will not start",
                                limit="level", value=level, hint="top up the bath")

    # -- the step ----------------------------------------------------------------------------------
    async def run_step(self, step: StepRequest) -> StepResult:
        """Check interlocks, set, start, and follow the cycle to ``DONE`` (or a fault)."""
        settings = self.refuse(step)
        if self.state is StationState.STANDBY:
            await self.standby(False)
        if self.state is not StationState.IDLE:
            raise StateError(f"station {self.id} is {self.state}, not idle: the wash step cannot start",
                             hint="reset the station (or wait for its current step) first")
        await self.check_interlocks()
        program = await self.apply(settings)
        self._abort_reason = ""
        t0 = self.clock.now()
        self.part = step.part
        self.state_machine.trigger_safely("start")
        try:
            await self._exchange(self._start())
            result = await self._follow(program, t0)
        finally:
            self.part = None
        result.data.update(firmware=self.firmware, program=settings.program or "manual",
                           temperature_c=program.temperature_c, time_s=program.time_s,
                           power_pct=program.power_pct)
        return result

    async def _start(self) -> None:
        await self._send(self._h(scpi.START))
        await self._raise_errors("start")

    async def _follow(self, program: Program, t0: float) -> StepResult:
        total = cycle_s(program, bath_c=self.bath_c if self.bath_c is not None else self.options.ambient_c)
        energy_j, last_t, max_c = 0.0, t0, float("-inf")
        misses = 0
        while True:
            try:
                fields = await self._exchange(self._read_status(), offline_on_timeout=False)
                misses = 0
            except (ProtocolError, StationTimeout) as exc:
                misses += 1
                if misses > self.options.poll_retries:
                    if isinstance(exc, StationTimeout):
                        self.state_machine.trigger_safely("link_down")
                    raise
                log.warning("%s: poll failed (%d in a row), retrying: %s", self.id, misses, exc.message)
                continue
            now = self.clock.now()
            energy_j += fields["power_w"] * (now - last_t)
            last_t = now
            max_c = max(max_c, fields["temperature_c"])
            total = max(total, now - t0 + fields["remaining_s"])
            phase = WashPhase(fields["phase"])
            self.bus.publish(EventKind.STATION_STATUS, self.id, state=str(self.state), **fields)
            self.bus.publish(EventKind.STATION_PROGRESS, self.id, done=now - t0, total=total,
                             remaining_s=fields["remaining_s"], phase=str(phase))
            data = {"energy_j": energy_j, "max_temperature_c": max_c, "duration_s": now - t0}
            if phase is WashPhase.DONE:
                return self._finished(data, now - t0)
            if phase is WashPhase.FAULT:
                await self._exchange(self._raise_errors("cycle"))
                self.state_machine.trigger_safely("fault")
                raise StationFault(self.id, "FAULT", "the washer faulted without an error entry",
                                   recovery="check the washer's display, then press Reset")
            if phase is WashPhase.IDLE:
                reason = self._abort_reason or "the washer went idle mid-cycle (aborted at the unit?)"
                self.state_machine.trigger_safely("hold_complete" if self._abort_reason == "hold"
                                                  else "ready")
                return StepResult(ok=False, data=data, reasons=[f"wash aborted: {reason}; "
                                                                "the parts must be washed again"],
                                  duration_s=now - t0)
            if now - t0 > self.config.timeouts.step_s:
                await self.stop()
                raise StationTimeout(f"the wash took longer than {self.config.timeouts.step_s:g} s",
                                     port=self.transport.port, hint="check the heater and the program")
            await asyncio.sleep(max(self.clock.wall(self.options.poll_s), self.options.min_poll_wall_s))

    def _finished(self, data: dict[str, Any], duration_s: float) -> StepResult:
        if self.state is StationState.HOLDING:
            self.state_machine.trigger_safely("hold_complete")
        else:
            self.state_machine.trigger_safely("finish")
        self.bus.publish(EventKind.STATION_PROGRESS, self.id, done=duration_s, total=duration_s,
                         remaining_s=0.0, phase=str(WashPhase.DONE))
        return StepResult(ok=True, data=data, duration_s=duration_s)

    # -- hold, stop, reset, standby ---------------------------------------------------------------
    async def hold(self) -> None:
        """Hold: let the running cycle finish, then stay held (or abort at once with ``hold_aborts``)."""
        if self.state is not StationState.BUSY:
            return
        self.state_machine.trigger_safely("request_hold")
        if self.options.hold_aborts:
            self._abort_reason = "hold"
            await self._exchange(self._abort("hold"))

    async def resume(self) -> None:
        """Continue after :meth:`hold`: a cycle still running is followed again; a held station idles."""
        if self.state is StationState.HOLDING:
            self.state_machine.trigger_safely("resume")
        elif self.state is StationState.HELD:
            self.state_machine.trigger_safely("ready")

    async def _abort(self, during: str) -> None:
        await self._send(self._h(scpi.ABORT))
        await self._raise_errors(during, fault_state=False)

    async def stop(self) -> None:
        """Abort the cycle (drains, stops the ultrasound); the running step returns not ok."""
        self._abort_reason = self._abort_reason or "stopped by the operator"
        await self._exchange(self._abort("stop"))

    def emergency_stop(self) -> None:
        """``WASH:ABOR`` at once, past every queue; safe from any thread."""
        self._abort_reason = "emergency stop"
        if not self.transport.write_realtime(b"WASH:ABOR\n"):
            log.error("%s: E-stop could not reach the washer: cut its power", self.id)

    async def reset(self) -> None:
        """Acknowledge a fault (``WASH:ABOR``, ``*CLS``); refuses while the lid is open or the level low."""
        if self.state is StationState.OFFLINE:
            await self.connect()
            return
        await self._exchange(self._reset())
        self.state_machine.trigger_safely("clear")
        self.state_machine.trigger_safely("ready")

    async def _reset(self) -> None:
        await self._send(self._h(scpi.ABORT))
        await self._send(self._h(scpi.CLS))
        await self._interlocks()

    async def standby(self, on: bool) -> None:
        """``SYST:STBY ON`` turns the heater off to save energy; ``OFF`` wakes the washer."""
        await self._exchange(self._standby(on))
        self.state_machine.trigger_safely("sleep" if on else "wake")

    async def _standby(self, on: bool) -> None:
        await self._send(self._h(scpi.STANDBY, on))
        await self._raise_errors("standby", fault_state=False)

    async def close(self) -> None:
        """Leave the washer safe: abort a running cycle and turn the heater off, then close the port."""
        if self.transport.connected:
            try:
                await self._exchange(self._leave_safe())
            except (CommunicationError, StationFault) as exc:
                log.error("%s: could not leave the washer safe on close: %s", self.id, exc)
        await self.transport.close()
        self.transport.shutdown()
        self.state_machine.trigger_safely("link_down")

    async def _leave_safe(self) -> None:
        if self.state in (StationState.BUSY, StationState.HOLDING):
            await self._send(self._h(scpi.ABORT))
        await self._send(self._h(scpi.STANDBY, True))
        await self._raise_errors("close", fault_state=False)
