"""Running programs on a Grbl station: the ``gcode`` and ``check`` steps and the streaming they share.

:meth:`GrblPrograms.stream` streams checked lines, publishes throttled progress and waits until the
machine is Idle again; ``check`` runs a program in Grbl's check mode (``$C``, no motion). Kept apart
from the short machine steps (home, jog, ...) because streaming is the driver's largest job.
"""

from __future__ import annotations

import time
from typing import Any

from microfactory.errors import CommunicationError, StationFault, StationTimeout
from microfactory.events import EventKind
from microfactory.station import StepRequest
from microfactory.watchdog import Watchdog, WatchdogExpired
from stations.grbl.codec import StatusReport
from stations.grbl.codes import describe_alarm, describe_error
from stations.grbl.motion import GrblMotion
from stations.grbl.precheck import GrblPrecheck
from stations.grbl.streamer import ProgramLine, Streamer, StreamMode, StreamResult

PROGRESS_PERIOD_S = 0.1  # s between progress events while streaming (progress_every: 0)
MACHINE_HOLDS = frozenset({"Hold", "Door"})  # Grbl states in which the program's watchdog stops counting


class GrblPrograms(GrblPrecheck, GrblMotion):
    """The ``gcode`` and ``check`` steps, :meth:`stream`, and waiting for Idle."""

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


    def _alive(self, since: float) -> bool:
        """True when a status report came recently: the machine is busy, not dead."""
        return time.monotonic() - self.poller.last_t <= self.config.timeouts.status_s + self.poller.period_s

    async def _wait_idle(self, timeout_s: float) -> StatusReport:
        """Wait until the machine is Idle with its planner empty, under a :class:`Watchdog` of
        ``timeout_s`` process seconds that does not count time the machine reports ``Hold`` or
        ``Door`` (a feed hold, an open safety door)."""
        blocks = self.build.planner_blocks
        dog = Watchdog(self.clock, timeout_s, what=f"station {self.id!r}: the program reaching Idle")

        def done(report: StatusReport) -> bool:
            dog.held_if("machine", report.state in MACHINE_HOLDS)
            if report.state == "Alarm":
                raise StationFault(self.id, f"ALARM:{self.alarm_code}", "alarm while running",
                                   recovery=describe_alarm(self.alarm_code or 0).recovery)
            if report.state != "Idle":
                return False
            return report.planner_free is None or blocks is None or report.planner_free >= blocks

        try:
            return await dog.run(self.poller.wait_for(done, None, what="Idle after the program"))
        except WatchdogExpired as exc:
            seen = self.poller.last.label if self.poller.last else "no report"
            raise StationTimeout(f"{exc} (last state {seen})", port=self.transport.port,
                                 hint="the machine is still moving or stuck; stop it and check the "
                                      "program's feed rates against timeouts.step_s") from None

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

