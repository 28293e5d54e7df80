"""Standby of a Grbl station: ``$SLP`` to sleep, a soft reset and ``$X`` to wake.

Grbl leaves sleep only through a reset, into Alarm; waking must not count that alarm as a fault (the
``_waking`` flag the status callback reads). Kept apart from motion control because it is an energy
concern with its own firmware quirks, not a way to stop a step.
"""

from __future__ import annotations

from microfactory.errors import StateError
from microfactory.station import StationState
from stations.grbl.motion import GrblMotion


class GrblStandby(GrblMotion):
    """Sleep on standby (``options: {sleep_on_standby: ...}``) and wake again."""

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

