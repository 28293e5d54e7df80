"""Running programs on a Grbl station: the ``gcode`` and ``check`` steps and the streaming they share.

:meth:`GrblPrograms.stream` streams checked lines, publishes throttled progress and waits until the
machine is Idle again; ``check`` runs a program in Grbl's check mode (``$C``, no motion). Kept apart
from the short machine steps (home, jog, ...) because streaming is the driver's largest job.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from microfactory.clock import loop_time
from microfactory.errors import (
    CommunicationError,
    Disconnected,
    MicrofactoryError,
    StationFault,
    StationTimeout,
)
from microfactory.events import EventKind, Severity
from microfactory.station import StepRequest
from microfactory.watchdog import Watchdog, WatchdogExpired
from stations.grbl import checkpoint
from stations.grbl.channel import RESET, ResetBeforeAnswer
from stations.grbl.codec import StatusReport
from stations.grbl.codes import describe_alarm, describe_error
from stations.grbl.motion import FEED_HOLD, GrblMotion
from stations.grbl.precheck import GrblPrecheck
from stations.grbl.stream_guard import Trouble, TroubleKind
from stations.grbl.stream_stop import error_fault, link_fault, resume_line, trouble_fault, unrun_from
from stations.grbl.streamer import ProgramLine, Streamer, StreamInterrupted, StreamMode, StreamResult

log = logging.getLogger("stations.grbl")

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
            # from what the machine really is: $G and $# (G92, tool length) read before every program
            self._require_ready(f"run {source}")
            try:
                checked = await self.check_program_now(program, source)
            except CommunicationError:
                self._fault_state()  # the machine did not tell its state: nothing may be sent
                raise
        else:
            self._require_ready(f"resume {source}")
            await self.read_machine_state(phase=f"before resuming {source}")
            checked = await self.check_resume(program, source, int(resume_from))
        checked.raise_for_problems()
        self._require_ready(f"run {source}")
        before = self.machine_state
        result = await self.stream(checked.lines, estimate_s=checked.estimate_s)
        left = await self.note_left_behind(before, source)
        data: dict[str, Any] = {"lines": result.acknowledged, "elapsed_s": result.elapsed_s,
                                "firmware": self.firmware, "source": source, "estimate_s": checked.estimate_s,
                                "left_behind": left}
        if resume_from is not None:
            data["resumed_from"] = int(resume_from)
        return data


    async def stream(self, lines: list[ProgramLine], *, estimate_s: float | None = None,
                     mode: StreamMode | None = None) -> StreamResult:
        """Stream already-checked lines and wait until the machine is Idle again.

        Any early end (``error:N`` with ``stop_on_error``, a desync, a lost answer, a noisy cable, the
        link or the machine failing) stops the machine (feed hold, then soft reset) where the link still
        allows it and raises a :class:`StationFault` saying what happened, how far the program got, and
        which ``--from-line`` resumes it.
        """
        self._require_ready("stream a program")
        self.stopped_program = False
        self.state_machine.trigger_safely("start")
        timeouts = self.config.timeouts
        streamer = self._streamer(mode or self.stream_mode, self.stop_on_error)
        streamer.paused = lambda line: self._program_paused(line, streamer)
        port = self.transport.port

        every = self.options.progress_every
        last_t = [0.0]

        def progress(done: int, total: int, remaining_s: float | None) -> None:
            if done % checkpoint.CHECKPOINT_LINES == 0 and done < total:
                self._checkpoint(checkpoint.running(lines, done, planner_blocks=blocks,
                                                    rx_bytes=self.build.rx_bytes))
            # one event per line would cost the streamer host time on long programs: publish every
            # ``progress_every`` lines, or (0) at most ~10 per second; the first and last always
            if done not in (1, total):
                if every:
                    if done % every:
                        return
                else:
                    now = loop_time()
                    if now - last_t[0] < PROGRESS_PERIOD_S:
                        return
                    last_t[0] = now
            self.bus.publish(EventKind.STATION_PROGRESS, self.id, done=done, total=total,
                             remaining_s=remaining_s)

        unexpected = len(self.channel.unexpected)
        self.last_stream = None
        # no checkpoint at the start: "from line 1" is what rework already offers, and each one is a
        # journal commit (an fsync) on the loop
        blocks = self.build.planner_blocks or checkpoint.STOCK_PLANNER_BLOCKS
        try:
            try:
                result = await streamer.stream(lines, estimate_s=estimate_s, progress=progress)
            except StreamInterrupted as exc:
                self.last_stream = exc.result
                raise await self._interrupted(exc, lines, port) from exc.cause
            self.last_stream = result
            if result.errors:
                first = result.errors[0]
                reached = await self._stop_after_failure() if self.stop_on_error else True
                self._account_flush(result, lines)
                raise error_fault(self.id, port, first, result, lines, reached=reached,
                                  garbled=result.garbled)
            try:
                await self._wait_idle(timeouts.step_s, unexpected)
            except StreamInterrupted as exc:
                result.detected_t = exc.result.detected_t
                exc.result = result
                result.doubtful = 1
                raise await self._interrupted(exc, lines, port) from None
        except MicrofactoryError:  # StationFault, CommunicationError and the rest
            self._fault_state()
            if self.last_stream is not None:
                self._checkpoint(checkpoint.at_stop(lines, self.last_stream.confirmed, self.last_stream.sent))
            raise
        if self.stopped_program or self.estopped:  # the Idle came from the stop's reset (state: its own)
            why = "emergency stop" if self.estopped else "stop"
            self._checkpoint(checkpoint.at_stop(lines, result.confirmed, result.sent))
            raise StationFault(self.id, "ESTOP" if self.estopped else "STOPPED",
                               f"the program was cut short by a {why} ({result.acknowledged} of "
                               f"{len(lines)} lines accepted, motion after the stop not run)",
                               recovery="check the part and the machine; run the step again or scrap")
        self.state_machine.trigger_safely("finish")
        return result

    def _checkpoint(self, point: checkpoint.Checkpoint) -> None:
        """Publish how far the program got (the engine journals it: see :mod:`stations.grbl.checkpoint`)."""
        self.bus.publish(EventKind.STATION_PROGRESS, self.id, remaining_s=None, **point.fields())

    def _streamer(self, mode: StreamMode, stop_on_error: bool) -> Streamer:
        timeouts = self.config.timeouts
        return Streamer(self.channel, rx_bytes=self.build.rx_bytes, mode=mode, stop_on_error=stop_on_error,
                        answer_timeout_s=timeouts.answer_s, step_timeout_s=timeouts.step_s,
                        dead=self.poller.dead, failure=lambda: self.poller.failure, alive=self._alive,
                        poller=self.poller, planner_blocks=self.build.planner_blocks,
                        dwell_scale=1.0 / max(self.clock.speed, 1e-9),
                        watchdog=Watchdog(self.clock, timeouts.step_s,
                                          what=f"station {self.id!r}: waiting for one answer"))

    async def _interrupted(self, exc: StreamInterrupted, lines: list[ProgramLine],
                           port: str) -> MicrofactoryError:
        """Stop the machine after an early end and build the message that tells the truth about it."""
        cause = exc.cause
        if (self.stopped_program or self.estopped) and exc.trouble is None:
            # the operator's stop or E-stop flushed the lines: that is the story, not the link
            why = "emergency stop" if self.estopped else "stop"
            self._account_flush(exc.result, lines)
            return StationFault(self.id, "ESTOP" if self.estopped else "STOPPED",
                                f"{port}: the program was cut short by a {why} "
                                f"({exc.result.confirmed} of {len(lines)} lines acknowledged and run, motion "
                                "after the stop not run)",
                                recovery="check the part and the machine; run the step again or scrap, or "
                                         f"{_resume_hint(lines, exc.result)}")
        if exc.trouble is not None:
            reached = await self._stop_after_failure()
            if not reached:
                self.flushed_blocks = None
            self._account_flush(exc.result, lines)
            log.info("%s: stream stopped: %s", self.id, exc.trouble.text)
            return trouble_fault(self.id, port, exc.trouble, exc.result, lines, reached=reached)
        alarm = isinstance(cause, StationFault) and cause.code.startswith("ALARM:")
        # after a reset of its own Grbl would run the lines still on the wire: stop that too
        self.flushed_blocks = None
        stopped: bool | None
        if isinstance(cause, Disconnected):
            # the port went away: what was in the planner is unknown, and a stop sent now would reach a
            # reopened (so reset) machine if the reconnect got there first, and measure its empty planner
            stopped = False
        else:
            stopped = None if alarm else await self._stop_after_failure()
        if not stopped or isinstance(cause, ResetBeforeAnswer):
            self.flushed_blocks = None  # the machine threw its planner away (alarm, reset) or may not have
        self._account_flush(exc.result, lines)
        return link_fault(self.id, port, cause or RuntimeError("stream ended"), exc.result, lines,
                          reached=stopped)

    def _account_flush(self, result: StreamResult, lines: list[ProgramLine]) -> None:
        """After a stop: lines answered ``ok`` but still in the planner when the reset flushed it did not
        run; the resume point moves back to the first of them (see :func:`unrun_from`)."""
        errors = {id(e.line) for e in result.errors}
        end = result.acknowledged + result.answered_after_error
        accepted = [i for i in range(min(end, len(lines))) if id(lines[i]) not in errors]
        # unknown (an alarm, a reset of its own, a stop that was not confirmed): as many as it can hold
        blocks = self.flushed_blocks if self.flushed_blocks is not None else self.build.planner_blocks
        first = unrun_from(lines, accepted, blocks)
        if first is not None:
            result.ran_before = first

    async def _stop_after_failure(self) -> bool:
        """Feed hold, then soft reset; True when Grbl's reset banner proved the stop arrived."""
        self.flushed_blocks = None
        if not self.transport.connected:
            return False
        if self.poller.dead.is_set():
            # it does not answer '?': send the stop bytes, but no banner will prove they arrived
            self.channel.realtime(FEED_HOLD)
            self.channel.realtime(RESET)
            self.channel.forget_resets()  # no banner is expected from a machine that does not answer
            self.channel.fail_pending(StationFault(self.id, "reset", "stopped after the machine went quiet",
                                                   recovery="check the machine"))
            return False
        try:
            await self._stop_motion()
        except (CommunicationError, StationFault) as exc:
            log.warning("%s: the stop after a failure was not confirmed: %s", self.id, exc)
            return False
        self.poller.start()  # after a dead-man stop the poller had ended; the machine answers again
        return True

    def _program_paused(self, line: ProgramLine, streamer: Streamer) -> None:
        """``M0`` reached and Grbl holds: ask the operator (resume / stop), never wait in silence."""
        text = (f"the program paused at {line.where} ({line.text!r}, M0): resume or stop?")
        self.bus.publish(EventKind.ALARM, self.id, code="M0", text=text, severity=str(Severity.WARNING),
                         recovery="resume (cycle start) to continue, or stop")
        ask = self.ask_operator
        if ask is None:
            log.warning("%s: %s (resume with cycle start)", self.id, text)
            return

        async def answer() -> None:
            choice = await ask(text, ("resume", "stop"))
            if choice == "resume":
                streamer.resumed()
                await self.resume()
                self.bus.publish(EventKind.ALARM_CLEARED, self.id, code="M0")
            else:
                streamer.interrupt(Trouble(TroubleKind.OPERATOR_STOP,
                                           f"the operator stopped the program at its pause at {line.where}"))

        task = asyncio.get_running_loop().create_task(answer(), name=f"{self.id}-m0")
        self._prompt_tasks.add(task)
        task.add_done_callback(self._prompt_tasks.discard)

    def _alive(self, since: float) -> bool:
        """True when a status report came recently: the machine is busy, not dead."""
        return loop_time() - self.poller.last_t <= self.config.timeouts.status_s + self.poller.period_s

    async def _wait_idle(self, timeout_s: float, unexpected: int | None = None) -> StatusReport:
        """Wait until the machine is Idle with its planner empty, under a :class:`Watchdog` of
        ``timeout_s`` process seconds that does not count time the machine reports ``Hold`` or
        ``Door`` (a feed hold, an open safety door). ``unexpected``: the count of answers with no line
        waiting when the program's last line was answered; one more is a desync."""
        blocks = self.build.planner_blocks
        dog = Watchdog(self.clock, timeout_s, what=f"station {self.id!r}: the program reaching Idle")

        def done(report: StatusReport) -> bool:
            dog.held_if("machine", report.state in MACHINE_HOLDS)
            if unexpected is not None and len(self.channel.unexpected) > unexpected:
                text = self.channel.unexpected[-1]
                raise StreamInterrupted(StreamResult(), trouble=Trouble(
                    TroubleKind.DESYNC, f"an answer {text!r} came after the last line had been answered: one "
                    "answer was duplicated or invented by line noise, so a line was counted as done before "
                    "Grbl answered it"))
            if report.state == "Alarm":
                raise StationFault(self.id, f"ALARM:{self.alarm_code}", "alarm while running",
                                   recovery=describe_alarm(self.alarm_code or 0).recovery)
            if report.state != "Idle":
                return False
            return report.planner_free is None or blocks is None or report.planner_free >= blocks

        # ask at once rather than at the next poll: the program's last 'ok' came when its motion ended, so
        # the Idle is one status exchange away (half a poll period earlier on average, on a bench too)
        self.poller.ask()
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
                try:
                    result = await self._streamer(self.stream_mode, False).stream(checked.lines)
                except StreamInterrupted as exc:
                    raise await self._interrupted(exc, checked.lines, self.transport.port) from exc.cause
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


def _resume_hint(lines: list[ProgramLine], result: StreamResult) -> str:
    n = resume_line(lines, result.confirmed)
    return f"resume with --from-line {n}" if n is not None else "check the part"
