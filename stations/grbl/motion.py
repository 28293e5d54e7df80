"""Motion control of a Grbl station: feed hold, cycle start, stop, soft reset, reset and E-stop.

These are the realtime bytes (``!``, ``~``, ``0x18``) and what to wait for after each, kept together
because stopping safely is one concern: the link's close, a failed program and the operator's stop all
go through :meth:`GrblMotion._stop_motion`, and waking from standby through
:meth:`GrblMotion._soft_reset`.
"""

from __future__ import annotations

import contextlib
import logging
import re

from microfactory.errors import StateError, StationFault, StationTimeout
from microfactory.station import StationState
from stations.grbl.channel import RESET
from stations.grbl.codes import describe_alarm, needs_rehome
from stations.grbl.core import GrblCore
from stations.grbl.realtime import door_text

FEED_HOLD, CYCLE_START, JOG_CANCEL = b"!", b"~", b"\x85"
LATCHED_REALTIME = frozenset(b"?!\x18\x85")  # stop and status bytes: all that passes an E-stop latch
LATCHED_READS = frozenset({b"$I", b"$$", b"$#", b"$G"})
log = logging.getLogger("stations.grbl")
#: ``$10=N`` (status report mask): a setting of what the reports show, nothing that moves or unlocks.
STATUS_MASK = re.compile(rb"\$10=\d{1,3}")


class GrblMotion(GrblCore):
    """Hold, resume, stop, reset and emergency stop."""

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
        self.state_machine.ensure("ready", StationState.IDLE, cause="stop done")

    async def _stop_motion(self) -> None:
        """Feed hold, wait until it holds, soft reset. :attr:`flushed_blocks` is then the number of
        planner blocks the reset threw away unexecuted (the first may have been under way), from the
        last status report's ``Bf:`` before it; None when unknown."""
        self.flushed_blocks = None
        self.stopped_program = True  # a program waiting for Idle must not take the reset's Idle for its end
        self.channel.realtime(FEED_HOLD)
        with contextlib.suppress(StationTimeout):
            # Sleep counts as stopped: nothing moves, spindle and steppers are off, and Grbl ignores `!`.
            report = await self.poller.wait_for(
                lambda r: r.label == "Hold:0" or r.state in ("Idle", "Alarm", "Sleep"),
                self.config.timeouts.answer_s * 5, what="hold complete")
            blocks = self.build.planner_blocks
            if blocks is not None and report.planner_free is not None:
                self.flushed_blocks = max(0, blocks - report.planner_free)
        await self._soft_reset()

    async def _soft_reset(self) -> None:
        self.poller.unsilence()  # a reset is what ends the silence after a limit alarm
        with self.poller.paused():
            # a reset already under way (the E-stop's) is answered first: its banner, coming late, would
            # otherwise be taken for this one's, and this one's would then flush the next line sent
            await self.channel.settle_resets(self.config.timeouts.connect_s)
            self.channel.banner.clear()
            self.channel.realtime(RESET)
            self.channel.fail_pending(StationFault(self.id, "reset", "soft reset flushed the line",
                                                   recovery="run the step again"))
            await self._wait_banner(self.config.timeouts.connect_s)
            await self.channel.settle_resets(self.config.timeouts.connect_s)

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
        self.state_machine.to_idle(cause="reset done")


    def send_stop_bytes(self) -> None:
        """Feed hold then soft reset, written at once (synchronous, any thread)."""
        if not self.transport.connected and self.state in (StationState.OFFLINE, StationState.CONNECTING):
            log.warning("%s: E-stop while not connected: the station opens latched", self.id)
        held = self.transport.write_realtime(FEED_HOLD)
        reset = self.transport.write_realtime(RESET)
        if reset:
            self.channel.note_reset_written()  # the lines sent next wait for its banner
        if not (held and reset):
            log.critical("%s: E-stop bytes did not reach the machine: cut its power", self.id)

    def passes_when_latched(self, data: bytes, realtime: bool) -> bool:
        """While E-stop is latched: status ``?``, feed hold, soft reset and jog cancel, and the read-only
        ``$I $$ $# $G`` (a reconnect may read the machine), and ``$10=N``, which only chooses what a
        status report shows (connect turns ``Bf:`` on, close restores the user's value: refusing it left
        an E-stop pressed while connecting as a failed connect) — never a cycle start, ``$X``, ``$H`` or
        G-code."""
        if realtime:
            return set(data) <= LATCHED_REALTIME
        lines = [line for line in data.split(b"\n") if line]
        return bool(lines) and all(line in LATCHED_READS or STATUS_MASK.fullmatch(line) for line in lines)

