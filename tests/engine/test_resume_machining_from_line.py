"""A lot killed (SIGKILL) mid-machining on a Grbl continues from the first line that may not have run.

The simulator lives in the test's process, so it outlives the killed controller, runs what it had been
sent (or, as a stock Arduino board does, resets when the port is opened again and throws its planner
away) and keeps the record of every line it carried out. The resume answers ``continue``: every program
line must then have run at least once, and any line that ran twice must lie in the range the question
named before anyone chose.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from microfactory import registry
from microfactory.clock import ScaledClock
from microfactory.engine import resume
from microfactory.engine.journal import Journal
from simulators.grbl import GrblHandle
from stations.grbl.stream_guard import grbl_form

sys.path.insert(0, str(Path(__file__).parent))
from grbl_kill_child import SETTINGS, SPEED, job, line

CHILD = Path(__file__).parent / "grbl_kill_child.py"
KILL_AT = 200  # answers: the checkpoint after which the controller is killed


def kill_mid_program(db: Path, sim: GrblHandle) -> None:
    child = subprocess.Popen([sys.executable, str(CHILD), str(db), sim.port], stdout=subprocess.PIPE,
                             text=True)
    assert child.stdout is not None
    try:
        for text in child.stdout:  # blocks on the child's own output; it ends if the child dies
            words = text.split()
            if words[:1] == ["checkpoint"] and int(words[1]) >= KILL_AT:
                os.kill(child.pid, signal.SIGKILL)
                break
            assert words != ["done"], "the program ended before the kill: make it longer"
    finally:
        child.kill()
        child.wait(30)
    assert child.returncode == -signal.SIGKILL


@pytest.mark.timeout(240)
@pytest.mark.parametrize("reset_on_open", [True, False], ids=["stock-board-resets-on-open", "no-reset"])
def test_a_killed_machining_step_continues_from_the_first_line_that_may_not_have_run(
        tmp_path: Path, reset_on_open: bool) -> None:
    db = tmp_path / "lot.sqlite"
    program = job()
    sim: GrblHandle = registry.simulator("grbl").start(
        {"settings": SETTINGS, "reset_on_open": reset_on_open}, ScaledClock(SPEED))
    try:
        kill_mid_program(db, sim)
        # a board that does not reset on open runs what it was sent: the operator resumes once it rests
        # (a resume while it still moves holds the cell: the mill is not idle)
        deadline = time.monotonic() + 60
        while sim.link.call(lambda: sim.device.state.value) != "Idle":
            assert time.monotonic() < deadline, "the machine never came to rest after the kill"
            time.sleep(0.05)
        questions: list[str] = []
        choices: list[tuple[str, ...]] = []

        async def go() -> None:
            journal = Journal(db)
            try:
                engine, procedure = line(journal, sim.port)
                for station in engine.stations.values():
                    await station.connect()

                def ask(item: resume.Interrupted) -> str:
                    questions.append(item.question())
                    choices.append(item.choices)
                    return "continue"

                summary = await resume.resume(engine, procedure, ask=ask, by="tester")
                assert summary.state == "complete" and summary.passed == 1
                for station in engine.stations.values():
                    await station.close()
            finally:
                journal.close()

        asyncio.run(asyncio.wait_for(go(), 60))
        executed = Counter(sim.executed_lines)
    finally:
        sim.close()

    assert choices == [("rework", "scrap", "continue")]
    journal = Journal.open_existing(db)
    try:
        steps = journal.steps(lot="K")
        verified = journal.verify()
    finally:
        journal.close()
    interrupted, resumed = steps
    decision = interrupted.data
    first, last = int(decision["continue_from"]), int(decision["may_have_run_to"])
    assert decision["decision"] == "continue" and decision["by"] == "tester"
    assert f"from line {first}" in questions[0] and f"lines {first} to {last} may already have run" \
        in questions[0]
    assert resumed.ok and resumed.data["resumed_from"] == first
    assert verified.intact, verified.problems

    forms = [grbl_form(text) for text in program]
    moves = forms[2:]  # every move is unique; the first two lines are modal, which the preamble repeats
    assert all(executed[f] >= 1 for f in forms), "a program line never ran: it was skipped"
    twice = [n for n, f in enumerate(forms, start=1) if n > 2 and executed[f] > 1]
    assert all(first <= n <= last for n in twice), (twice, first, last)
    print(f"continue from {first}, may have run to {last}; ran twice: {len(twice)} line(s)")
    assert all(executed[f] <= 2 for f in moves)
    # the kill came at KILL_AT answers: the machine had run (or held in its buffers) lines past it
    assert first <= KILL_AT + 2 < last
