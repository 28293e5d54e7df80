"""The Grbl 1.1 station: the cut (laser) and machine (mill) stations of the cell.

:class:`GrblStation` speaks Grbl's bytes through a :class:`~stations.grbl.channel.GrblChannel` and keeps
the station state machine in step with what Grbl reports. Safety first: every program and jog is
pre-checked against the cell's limits before any byte is sent, the cell's limits are checked against the
machine's own ``$$`` on connect, and :meth:`GrblStation.emergency_stop` writes feed hold and soft reset
at once from any thread.

The station is composed of mixins, one job each: :mod:`~stations.grbl.core` (state, channel callbacks,
shared helpers), :mod:`~stations.grbl.link` (connect, reconnect, close), :mod:`~stations.grbl.motion`
(hold, resume, stop, reset, E-stop), :mod:`~stations.grbl.standby` (sleep and wake),
:mod:`~stations.grbl.precheck` (limits), :mod:`~stations.grbl.programs` (``gcode``, ``check``,
streaming) and :mod:`~stations.grbl.steps` (``home``, ``unlock``, ``jog``, ``jog_cancel``,
``override``); the step params checks are in :mod:`~stations.grbl.actions`.
"""

from __future__ import annotations

from microfactory.clock import loop_time
from microfactory.errors import Disconnected, StateError
from microfactory.station import StationStatus, StepRequest, StepResult
from stations.grbl.actions import ACTIONS, jog_as_motion, override_problems, resume_problems
from stations.grbl.link import GrblLink
from stations.grbl.standby import GrblStandby
from stations.grbl.steps import GrblMachineSteps


class GrblStation(GrblMachineSteps, GrblStandby, GrblLink):
    """A Grbl 1.1 machine (laser cutter when ``limits.laser``, else a mill).

    Options (cell file ``options:``) are :class:`~stations.grbl.options.GrblOptions`, validated when the
    cell loads and again here (an unknown or out-of-range key raises ``ConfigError``).
    """

    kind = "grbl"

    async def identify(self) -> str:
        """The firmware id read by ``$I`` on connect (``Grbl 1.1h.20190830 [OPT:V,15,128]``)."""
        return self.firmware

    async def status(self) -> StationStatus:
        """A fresh status report (asks ``?`` now)."""
        report = await self.poller.fresh(self.config.timeouts.status_s)
        return StationStatus(self.state, report.as_fields())

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
        started = loop_time()
        data = await getattr(self, f"_step_{step.action}")(step)
        return StepResult(True, data=data, duration_s=loop_time() - started)


__all__ = ["ACTIONS", "Disconnected", "GrblStation", "jog_as_motion", "override_problems",
           "resume_problems"]
