"""The short machine steps of a Grbl station: ``home``, ``unlock``, ``jog``, ``jog_cancel``, ``override``.

Each is a ``_step_<action>`` handler :meth:`GrblStation.run_step` dispatches to, plus
:meth:`GrblMachineSteps.override` (also usable while a program runs). Kept apart from running
programs: these are one command (or realtime byte) each, not a stream.
"""

from __future__ import annotations

import logging
from typing import Any

from microfactory.errors import StateError
from microfactory.events import EventKind
from microfactory.station import StationState, StepRequest
from stations.grbl.actions import jog_as_motion
from stations.grbl.codes import needs_rehome
from stations.grbl.motion import JOG_CANCEL
from stations.grbl.programs import GrblPrograms
from stations.grbl.realtime import Override

log = logging.getLogger("stations.grbl")


class GrblMachineSteps(GrblPrograms):
    """Home, unlock, jog, jog cancel and overrides."""

    async def _step_home(self, step: StepRequest) -> dict[str, Any]:
        if self.state not in (StationState.IDLE, StationState.ALARM):
            raise StateError(f"station {self.id!r} is {self.state}: cannot home", hint="stop the step first")
        self.state_machine.ensure("clear", StationState.IDLE, cause="homing from alarm")
        self.state_machine.trigger_safely("start", cause="homing ($H)")
        self._waking = True  # a status asked just before $H was parsed still says Alarm: not a new alarm
        try:
            answer = await self.channel.command("$H", timeout_s=self.config.timeouts.step_s,
                                                phase="homing ($H)")
        finally:
            self._waking = False
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
        self.state_machine.ensure("clear", StationState.IDLE, cause="unlocked ($X)")
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

