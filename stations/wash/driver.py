"""The ultrasonic wash station driver: SCPI-style lines over a serial port.

Every exchange is fenced and matched (:mod:`stations.wash.exchange`): an answer is never handed to
another query, a read that fails is asked again, and what cannot be read after the retries ends in a
safe stop whose message says what the washer was told and whether it confirmed. Set points are
range-checked and refused before anything is sent, then read back (:mod:`stations.wash.supervision`);
the bath is watched against the set point during the cycle. A device error becomes a
:class:`~microfactory.errors.StationFault` with the device's code, text and the operator's recovery.

``WASH:STAR`` is the one command that is not idempotent: it is sent once, and its effect is read from
the phase (never re-sent on a lost answer); it is never sent after an E-stop or a stop that came while
the step was being prepared.

Hold on a wash: the protocol has no pause — ``WASH:ABOR`` drains the bath and stops the ultrasound, and a
cycle cannot resume where it stopped. What an operator expects from *Hold* on a running washer is that
the parts are not left half-washed in a drained tank: by default :meth:`WashStation.hold` lets the
running cycle finish and then holds the station (no next step starts); with the cell option
``hold_aborts: true`` it aborts at once and the step reports that it must be run again.
``stop`` and ``emergency_stop`` always abort.

Connect clears standby (a washer the previous session left asleep is woken, ``SYST:STBY?`` tells);
an unplug is watched by :class:`~stations.wash.watch.LinkWatch`, which finds the washer again by identity
and leaves it aborted and in standby.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import Any

from microfactory.cell import StationConfig
from microfactory.clock import Clock
from microfactory.errors import (
    CommunicationError,
    Disconnected,
    InterlockOpen,
    SafetyRefusal,
    StateError,
    StationFault,
    StationTimeout,
)
from microfactory.events import EventBus, EventKind
from microfactory.station import PortHandle, Station, StationState, StationStatus, StepRequest, StepResult
from microfactory.transport.line import LineTransport
from stations.wash import scpi
from stations.wash.exchange import (
    BATH,
    LEVEL,
    LID,
    PHASE,
    POWER_W,
    REMAINING,
    SET_TEMPERATURE,
    STANDBY,
    Desync,
    WashLink,
)
from stations.wash.faults import LID_RECOVERY, fault_from
from stations.wash.scpi import Identity, WashPhase
from stations.wash.session import greet
from stations.wash.setpoints import SetPointMismatch, set_and_verify
from stations.wash.settings import Program, WashOptions, WashSettings, cycle_s, next_poll_s, refusals
from stations.wash.supervision import BathWatch
from stations.wash.watch import LinkWatch

log = logging.getLogger("stations.wash")


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
                                       on_link=self._on_link, latch=self.estop_latch,
                                       clock=clock)
        self.link = WashLink(self.transport, station=config.id, long_form=self.options.long_form,
                             answer_s=config.timeouts.answer_s, retries=self.options.poll_retries,
                             late_s=config.timeouts.answer_s if self.options.late_s is None
                             else self.options.late_s, on_silent=self._offline)
        self.watch = LinkWatch(config.id, self.transport, bus, recover=self._recover,
                               on_failed=self._offline, attempts=self.options.reconnect_attempts,
                               backoff_s=self.options.reconnect_backoff_s,
                               connect_s=config.timeouts.connect_s)
        self.identity: Identity | None = None
        self.bath_c: float | None = None  # last measured bath temperature (°C)
        self.power_w: float | None = None  # last measured electrical power (W)
        self.notes: list[str] = []  # what connect found and did (woken from standby, a stray cycle aborted)
        self._abort_reason = ""
        self._aborts = 0  # E-stops and stops so far: a step prepared before one never sends WASH:STAR
        self._abort_lock = threading.Lock()
        self._closing = False
        self.losses = 0  # port losses since the station was made (a cycle notices one between polls)
        self._lost = ("", "")  # (port, what the transport said) of the last loss

    # -- link --------------------------------------------------------------------------------------
    def _on_link(self, up: bool, detail: str) -> None:
        self.bus.publish(EventKind.STATION_LINK, self.id, connected=up, port=self.transport.port,
                         detail=detail)
        if not up:
            doing = {StationState.BUSY: "washing", StationState.HOLDING: "finishing a cycle on hold",
                     StationState.HELD: "held", StationState.STANDBY: "in standby"}.get(self.state, "idle")
            if not self._closing:
                self.losses += 1
                self._lost = (self.transport.port, detail)
                self.watch.lost(doing, detail)
            self.state_machine.trigger_safely("link_down")

    def _offline(self) -> None:
        """The washer stopped answering (every attempt of an exchange timed out), or did not come back
        after an unplug: the station is offline until Reset reconnects it."""
        self.state_machine.trigger_safely("link_down")

    def _cmd(self, header: str, *args: object) -> str:
        return self.link.command(header, *args)

    # -- life cycle --------------------------------------------------------------------------------
    async def connect(self) -> None:
        """Open the port, read ``*IDN?``, wake a washer left in standby, abort a cycle nobody follows.

        The station is then idle (or faulted, when the washer is in ``FAULT``); :attr:`notes` says what
        was found.
        """
        self._closing = False
        self.state_machine.trigger_safely("link_up")
        try:
            await self.transport.open(self.config.timeouts.connect_s)
            greeting = await greet(self.link, expect=None, standby=False,
                                   connect_s=self.config.timeouts.connect_s)
        except BaseException:
            self.state_machine.trigger_safely("link_down")
            await self.transport.close()
            raise
        self.identity, self.notes = greeting.identity, greeting.notes
        self.firmware = str(self.identity)
        self.state_machine.trigger_safely("fault" if greeting.phase is WashPhase.FAULT else "ready")
        self.watch.start()
        log.info("%s: connected to %s on %s%s", self.id, self.firmware, self.transport.port,
                 "".join(f"; {n}" for n in self.notes))

    async def _recover(self) -> str:
        """After a reconnect: the same washer (``*IDN?``), its cycle aborted, the heater in standby."""
        self.state_machine.trigger_safely("link_up")
        greeting = await greet(self.link, expect=self.identity, standby=True,
                               connect_s=self.config.timeouts.connect_s)
        self.notes = greeting.notes
        self.state_machine.trigger_safely("ready")
        self.state_machine.trigger_safely("sleep")
        found = "; ".join(greeting.notes) or "no cycle was running (a power-up stops it)"
        return f"{found}; it is now in standby with the heater off"

    async def identify(self) -> str:
        if self.identity is None:
            await self.connect()
        return self.firmware

    async def status(self) -> StationStatus:
        """Phase, bath °C, power W, remaining s, lid, level and standby, as the washer says now."""
        fields = await self._poll(full=True)
        return StationStatus(self.state, fields)

    async def power(self) -> float:
        """Instantaneous electrical power (W), for energy per part and standby decisions."""
        fields = await self._poll()
        watts: float = fields["power_w"]
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
        """Send the set points and read them back; return what the washer holds.

        A washer that holds other values than asked (a command corrupted on the line) is put in standby
        — its heater would otherwise heat to the wrong set point — and the step fails saying both.
        """
        try:
            return await set_and_verify(self.link, settings, settings.resolved(self.options))
        except SetPointMismatch as exc:
            outcome = await self._heater_off()
            fault = StationFault(self.id, exc.code, f"on {self.transport.port}: {exc.text}; nothing was "
                                 f"started, {outcome}", recovery=exc.recovery)
            raise self._alarm(fault) from None

    async def _heater_off(self) -> str:
        """Standby (heater off), read back; the phrase saying whether the washer confirmed it."""
        try:
            await self.standby(True)
        except (CommunicationError, StationFault) as exc:
            return (f"SYST:STBY ON was sent but not confirmed ({exc}): check at the unit that the heater "
                    "is off")
        return "the washer is in standby with the heater off"

    async def check_interlocks(self) -> None:
        """Refuse to start with the lid open, the fluid low or the washer faulted (nothing started)."""
        lid, level, phase = await self.link.ask([LID, LEVEL, PHASE],
                                                what="the interlock queries (lid, level, phase)")
        async with self.link.lock:
            errors = await self.link.errors_locked()
        if phase is WashPhase.FAULT:
            self.state_machine.trigger_safely("fault")
            raise self._alarm(fault_from(self.id, errors.entries, "before the start", phase=str(phase)))
        if errors.entries:
            raise self._alarm(fault_from(self.id, errors.entries, "interlock check"))
        if lid == "OPEN":
            raise InterlockOpen(f"station {self.id}: the washer's lid is open; the wash will not start",
                                limit="lid", value=lid, hint=LID_RECOVERY)
        if level == "LOW":
            raise InterlockOpen(f"station {self.id}: the bath's fluid level is low; the wash will not start",
                                limit="level", value=level, hint="top up the bath")

    # -- the step ----------------------------------------------------------------------------------
    async def run_step(self, step: StepRequest) -> StepResult:
        """Check interlocks, set and read back, start once, follow the cycle to ``DONE`` (or a fault)."""
        settings = self.refuse(step)
        self.estop_latch.refuse("the wash step")
        aborts = self._aborts
        if self.state is StationState.STANDBY:
            await self.standby(False)
        if self.state is not StationState.IDLE:
            why = await self.watch.outcome(0) if self.state is StationState.OFFLINE else ""
            raise StateError(f"station {self.id} is {self.state}, not idle: the wash step cannot start"
                             + (f" ({why})" if why else ""),
                             hint="reset the station (or wait for its current step) first")
        await self.check_interlocks()
        program = await self.apply(settings)
        self._abort_reason = ""
        t0 = self.clock.now()
        self.part = step.part
        self.state_machine.trigger_safely("start")
        try:
            await self._start(aborts)
            result = await self._follow(program, t0)
        finally:
            self.part = None
        result.data.update(firmware=self.firmware, program=settings.program or "manual",
                           temperature_c=program.temperature_c, time_s=program.time_s,
                           power_pct=program.power_pct)
        return result

    async def _start(self, aborts: int) -> None:
        """``WASH:STAR`` once (unless an abort came since the step began), then read the phase."""
        line = (self._cmd(scpi.START) + "\n").encode("ascii")
        async with self.link.lock:
            with self._abort_lock:
                if self._aborts != aborts or self.estopped or not self.transport.write_realtime(line):
                    if self._aborts == aborts and not self.estopped:
                        raise Disconnected("WASH:STAR not sent: the port is closed", port=self.transport.port,
                                           hint="check the cable; the controller reconnects by identity")
                    self.state_machine.trigger_safely("ready")
                    raise InterlockOpen(f"station {self.id}: {self._abort_reason or 'a stop'} came while the "
                                        f"wash was being prepared; WASH:STAR was not sent",
                                        limit="estop", value=self._abort_reason,
                                        hint="clear the cause (Clear the E-stop), then run the step again")
            try:
                (phase,) = await self.link.ask_locked([PHASE], what="the phase query after WASH:STAR")
            except (Desync, StationTimeout) as exc:
                raise await self._unsure_stop(exc) from None
            if phase.running or phase is WashPhase.DONE:
                return
            errors = await self.link.errors_locked()
        self.state_machine.trigger_safely("fault" if errors.entries or phase is WashPhase.FAULT else "ready")
        if errors.entries:
            raise self._alarm(fault_from(self.id, errors.entries, "start"))
        raise self._alarm(StationFault(self.id, "NOT_STARTED", f"the washer is {phase} after WASH:STAR and "
                                       "has no error entry" + (" (one may have been lost on the line)"
                                                               if errors.uncertain else ""),
                                       recovery="check the washer's display, then run the step again"))

    async def _poll(self, *, full: bool = False) -> dict[str, Any]:
        queries = [PHASE, REMAINING, BATH, POWER_W, SET_TEMPERATURE, *((LID, LEVEL, STANDBY) if full else ())]
        values = await self.link.ask(queries, what="the status queries")
        fields: dict[str, Any] = dict(zip(("phase", "remaining_s", "temperature_c", "power_w", "set_c",
                                           "lid", "level", "standby"), values, strict=False))
        self.bath_c, self.power_w = fields["temperature_c"], fields["power_w"]
        fields["phase"] = str(fields["phase"])
        return fields

    async def _follow(self, program: Program, t0: float) -> StepResult:
        total = cycle_s(program, bath_c=self.bath_c if self.bath_c is not None else self.options.ambient_c)
        watch = BathWatch(program.temperature_c, self.options.tolerance_c, self.options.heat_stall_s)
        energy_j, last_t, max_c = 0.0, t0, float("-inf")
        losses = self.losses
        while True:
            try:
                fields = await self._poll()
            except Disconnected:
                raise await self._lost_mid_cycle() from None
            except (Desync, StationTimeout) as exc:
                raise await self._unsure_stop(exc) from None
            if self.losses != losses:  # lost and found again between two polls
                raise await self._lost_mid_cycle()
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
            finding = watch.check(phase, fields["temperature_c"], fields["set_c"], now - t0)
            if finding is not None and not self._abort_reason:
                raise await self._bath_stop(finding, phase)
            if phase is WashPhase.DONE:
                return self._finished(data, now - t0)
            if phase is WashPhase.FAULT:
                async with self.link.lock:
                    errors = await self.link.errors_locked()
                self.state_machine.trigger_safely("fault")
                raise self._alarm(fault_from(self.id, errors.entries, "cycle", phase="FAULT"))
            if phase is WashPhase.IDLE:
                return self._went_idle(data, now - t0)
            if now - t0 > self.config.timeouts.step_s:
                await self.stop()
                raise StationTimeout(f"station {self.id}: the wash took longer than "
                                     f"{self.config.timeouts.step_s:g} s; it was aborted (WASH:ABOR)",
                                     port=self.transport.port, hint="check the heater and the program")
            wait_s = next_poll_s(float(fields["remaining_s"]), self.options)
            await asyncio.sleep(max(self.clock.wall(wait_s), self.options.min_poll_wall_s))

    def _went_idle(self, data: dict[str, Any], duration_s: float) -> StepResult:
        reason = self._abort_reason or "the washer went idle mid-cycle (aborted at the unit?)"
        self.state_machine.trigger_safely("hold_complete" if self._abort_reason == "hold" else "ready")
        return StepResult(ok=False, data=data, reasons=[f"wash aborted: {reason}; the parts must be washed "
                                                        "again"], duration_s=duration_s)

    def _finished(self, data: dict[str, Any], duration_s: float) -> StepResult:
        if self.state is StationState.HOLDING:
            self.state_machine.trigger_safely("hold_complete")
        else:
            self.state_machine.trigger_safely("finish")
        self.bus.publish(EventKind.STATION_PROGRESS, self.id, done=duration_s, total=duration_s,
                         remaining_s=0.0, phase=str(WashPhase.DONE))
        return StepResult(ok=True, data=data, duration_s=duration_s)

    async def _bath_stop(self, finding: str, phase: WashPhase) -> StationFault:
        """The bath or the set point is not what was asked: abort, heater off, fault saying both."""
        try:
            await self._abort()
            outcome = "the cycle was aborted (WASH:ABOR) and " + await self._heater_off()
        except (CommunicationError, StationFault) as exc:
            outcome = f"WASH:ABOR was sent but not confirmed ({exc}): check at the unit that it stopped"
        self.state_machine.trigger_safely("fault")
        return self._alarm(StationFault(self.id, "BATH", f"on {self.transport.port}: {finding}; {outcome}",
                                        recovery="check the washer's heater and thermostat, then Reset"))

    async def _unsure_stop(self, exc: CommunicationError) -> StationFault:
        """The link cannot be trusted mid-cycle: abort and heater off without waiting, then try to confirm."""
        aborted = await self.link.write_now(self._cmd(scpi.ABORT))
        heater = await self.link.write_now(self._cmd(scpi.STANDBY, True))
        try:
            phase, standby = await self.link.ask([PHASE, STANDBY], what="the phase query after WASH:ABOR",
                                                 retries=0)
            confirmed = not phase.running and standby == "ON"
        except CommunicationError:
            confirmed = False
        sent = " and ".join(c for c, ok in (("WASH:ABOR", aborted), ("SYST:STBY ON", heater)) if ok)
        if confirmed:
            outcome = f"{sent} were sent and the washer confirms it is idle with the heater off"
        elif sent:
            outcome = (f"{sent} were sent but the washer did not confirm: it may still be running and "
                       "heating — check it at the unit and switch it off there if it runs")
        else:
            outcome = "nothing could be sent: switch the washer off at the unit"
        self.state_machine.trigger_safely("link_down" if isinstance(exc, StationTimeout) else "fault")
        return self._alarm(StationFault(self.id, "LINK", f"{exc.message}; {outcome}", recovery=exc.hint))

    async def _lost_mid_cycle(self) -> StationFault:
        """The port went away mid-cycle: wait for the watch to find the washer again (or give up)."""
        with contextlib.suppress(TimeoutError):  # a failed write can come before the reader sees the loss
            await asyncio.wait_for(self.transport.lost.wait(), self.config.timeouts.answer_s)
        outcome = await self.watch.outcome(self._reconnect_bound_s())
        port, reason = self._lost
        text = (f"the washer's port {port or self.transport.port} went away mid-cycle "
                f"({reason.removeprefix('port went away: ') or 'it closed'}); {outcome}; the parts must be "
                "washed again")
        return StationFault(self.id, "LINK_LOST", text,
                            recovery="check the washer's USB cable and power, then run the step again")

    def _reconnect_bound_s(self) -> float:
        """Longest a reconnect can take (link s): every backoff, every open and the handshake."""
        o, t = self.options, self.config.timeouts
        waits = sum(min(o.reconnect_backoff_s * 2 ** i, 5.0) for i in range(o.reconnect_attempts))
        return waits + (o.reconnect_attempts + 1) * t.connect_s + 8 * t.answer_s + self.link.late_s

    # -- hold, stop, reset, standby ---------------------------------------------------------------
    async def hold(self) -> None:
        """Hold: let the running cycle finish, then stay held (or abort at once with ``hold_aborts``)."""
        if self.state is not StationState.BUSY:
            return
        self.state_machine.trigger_safely("request_hold")
        if self.options.hold_aborts:
            self._abort_reason = "hold"
            await self._abort()

    async def resume(self) -> None:
        """Continue after :meth:`hold`: a cycle still running is followed again; a held station idles."""
        if self.state is StationState.HOLDING:
            self.state_machine.trigger_safely("resume")
        elif self.state is StationState.HELD:
            self.state_machine.trigger_safely("ready")

    async def _abort(self) -> WashPhase:
        (phase,) = await self.link.ask([PHASE], commands=[self._cmd(scpi.ABORT)],
                                       what="the phase query after WASH:ABOR")
        return phase

    async def stop(self) -> None:
        """Abort the cycle (drains, stops the ultrasound); the running step returns not ok."""
        with self._abort_lock:
            self._aborts += 1
            self._abort_reason = self._abort_reason or "stopped by the operator"
        await self._abort()

    def send_stop_bytes(self) -> None:
        """``WASH:ABOR`` at once, past every queue; safe from any thread (the frontend's E-stop latches
        first). A step being prepared will not send ``WASH:STAR`` afterwards."""
        with self._abort_lock:
            self._aborts += 1
            self._abort_reason = "emergency stop"
            if not self.transport.write_realtime(self._estop_bytes()):
                log.error("%s: E-stop could not reach the washer on %s: cut its power", self.id,
                          self.transport.port or "its port")

    def _estop_bytes(self) -> bytes:
        return (self._cmd(scpi.ABORT) + "\n").encode("ascii")

    def passes_when_latched(self, data: bytes, realtime: bool) -> bool:
        """While E-stop is latched: the abort itself, standby on (heater off), ``*CLS`` and queries (a
        reconnect may read the washer); never a start, a set point or standby off."""
        if realtime:
            return data == self._estop_bytes()
        safe = {self._cmd(scpi.ABORT), self._cmd(scpi.STANDBY, True), self._cmd(scpi.CLS)}
        lines = [line.decode("ascii", "replace") for line in data.split(b"\n") if line]
        return bool(lines) and all(line in safe or line.endswith("?") for line in lines)

    async def reset(self) -> None:
        """Acknowledge a fault (``WASH:ABOR``, ``*CLS``); refuses while the lid is open or the level low."""
        if self.state is StationState.OFFLINE:
            await self.watch.stop()
            await self.transport.close()
            await self.connect()
            return
        commands = [self._cmd(scpi.ABORT), self._cmd(scpi.CLS), self._cmd(scpi.STANDBY, False)]
        await self.link.ask([PHASE, STANDBY], commands=commands, what="the queries after the reset")
        self.state_machine.to_idle(cause="reset done")
        await self.check_interlocks()

    async def standby(self, on: bool) -> None:
        """``SYST:STBY ON`` turns the heater off to save energy; ``OFF`` wakes the washer. Read back."""
        (held,) = await self.link.ask([STANDBY], commands=[self._cmd(scpi.STANDBY, on)],
                                      what="the standby query")
        if held != ("ON" if on else "OFF"):
            async with self.link.lock:
                errors = await self.link.errors_locked()
            raise self._alarm(fault_from(self.id, errors.entries, "standby") if errors.entries else
                              StationFault(self.id, "STANDBY", f"the washer stays in standby {held} after "
                                           f"SYST:STBY {'ON' if on else 'OFF'}",
                                           recovery="check the washer, then Reset"))
        self.state_machine.trigger_safely("sleep" if on else "wake")

    async def close(self) -> None:
        """Leave the washer safe: abort a running cycle and turn the heater off, then close the port."""
        self._closing = True
        await self.watch.stop()
        if self.transport.connected:
            await self._leave_safe()
        await self.transport.close()
        self.transport.shutdown()
        self.state_machine.trigger_safely("link_down")

    async def _leave_safe(self) -> None:
        commands = [self._cmd(scpi.STANDBY, True)]
        if self.state in (StationState.BUSY, StationState.HOLDING):
            commands.insert(0, self._cmd(scpi.ABORT))
        try:
            phase, standby = await self.link.ask([PHASE, STANDBY], commands=commands,
                                                 what="the queries on closing", retries=0)
        except (CommunicationError, StationFault) as exc:
            log.error("%s: sent %s on close but the washer did not confirm (%s): check that it is idle and "
                      "its heater off at the unit", self.id, " and ".join(commands), exc.message)
            return
        if phase.running or standby != "ON":
            log.error("%s: after %s the washer is %s with standby %s: switch it off at the unit", self.id,
                      " and ".join(commands), phase, standby)

    def _alarm(self, fault: StationFault) -> StationFault:
        self.bus.publish(EventKind.ALARM, self.id, code=fault.code, text=fault.text, severity="error",
                         recovery=fault.recovery)
        return fault
