"""The engine on scripted stations: pipelining, fault policies, prompts, hold/stop/abort, journal, energy."""

from __future__ import annotations

import asyncio

import pytest
from engine_support import Line, drive, run, until, watch_plate

from microfactory.engine.packml import PackMLState
from microfactory.errors import StateError
from microfactory.events import EventKind
from microfactory.procedure import FaultAction, FaultPolicy, Procedure, Step, StepKind
from microfactory.station import StepRequest, StepResult
from microfactory.testing import ManualClock

S = PackMLState


def fail_third(request: StepRequest, n: int) -> str:
    return "fail" if n == 3 else "pass"


def test_a_lot_runs_pipelined_with_rework_and_every_station_serves_one_part_at_a_time() -> None:
    async def main() -> None:
        clock = ManualClock()  # process time alone: a loaded machine must not lengthen the steps
        line = await Line(clock=clock, cam={"verdicts": fail_third}).connect()
        summary = await drive(clock, line.engine.run_lot(watch_plate(in_flight=3), parts=6))
        assert summary.state == "complete"
        assert (summary.passed, summary.scrapped, summary.reworked) == (6, 0, 1)
        assert all(st.max_active == 1 for st in line.stations.values())
        assert len(line.stations["mill"].calls) == 7  # one rework visit
        # pipelined: far below one part at a time (13 s per part + the rework's 11 s)
        assert summary.elapsed_s < 0.75 * (6 * 13 + 11)
        assert line.cell_states() == ["starting", "execute", "completing", "complete"]

    run(main())


def test_rework_is_bounded_then_the_part_is_scrapped() -> None:
    async def main() -> None:
        line = await Line(cam={"verdicts": lambda r, n: "fail"}).connect()
        summary = await line.engine.run_lot(watch_plate(max_rework=2), parts=2)
        assert (summary.passed, summary.scrapped) == (0, 2)
        assert len(line.stations["cam"].calls) == 2 * 3  # first inspection + 2 reworks each

    run(main())


@pytest.mark.parametrize("retries, fails, expect_passed", [(2, 2, 1), (1, 2, 0)])
def test_retry_policy_retries_then_falls_back(retries: int, fails: int, expect_passed: int) -> None:
    async def main() -> None:
        line = await Line(mill={"faults": lambda r, n: "E1" if n <= fails else None}).connect()
        pol = FaultPolicy(FaultAction.RETRY, retries=retries, then=FaultAction.SCRAP)
        summary = await line.engine.run_lot(watch_plate(policy=pol), parts=1)
        assert summary.passed == expect_passed and summary.scrapped == 1 - expect_passed
        phases = [e.data["phase"] for e in line.events(EventKind.STEP) if e.data["step"] == "machine"]
        assert phases.count("retry") == retries if expect_passed == 0 else phases.count("retry") == fails
        assert line.events(EventKind.ALARM)

    run(main())


def test_scrap_policy_scraps_the_part_and_the_lot_carries_on() -> None:
    async def main() -> None:
        line = await Line(wash={"faults": lambda r, n: "LID" if n == 1 else None}).connect()
        summary = await line.engine.run_lot(watch_plate(policy=FaultPolicy(FaultAction.SCRAP)), parts=3)
        assert (summary.passed, summary.scrapped, summary.state) == (2, 1, "complete")

    run(main())


def test_abort_policy_estops_every_station_and_leaves_parts_unfinished() -> None:
    async def main() -> None:
        line = await Line(mill={"faults": lambda r, n: "SPINDLE"}).connect()
        summary = await line.engine.run_lot(watch_plate(policy=FaultPolicy(FaultAction.ABORT)), parts=3)
        assert summary.state == "aborted" and summary.passed == 0 and summary.unfinished == 3
        assert all(st.estops == 1 for st in line.stations.values())
        with pytest.raises(StateError, match="clear"):
            await line.engine.run_lot(watch_plate(), parts=1)
        line.engine.apply("clear")
        await until(lambda: line.engine.machine.state == S.STOPPED)
        line.stations["mill"].faults = None
        again = await line.engine.run_lot(watch_plate(), parts=1)  # Stopped → Reset → Idle → lot
        assert again.passed == 1

    run(main())


@pytest.mark.parametrize("choice, passed, scrapped, state", [
    ("retry", 1, 0, "complete"), ("scrap", 0, 1, "complete"), ("abort", 0, 0, "aborted")])
def test_hold_policy_asks_the_operator(choice: str, passed: int, scrapped: int, state: str) -> None:
    async def main() -> None:
        line = await Line(wash={"faults": lambda r, n: "LEVEL" if n == 1 else None}).connect()
        line.answer_when_asked({"fault": choice})
        summary = await line.engine.run_lot(watch_plate(policy=FaultPolicy(FaultAction.HOLD)), parts=1)
        assert (summary.passed, summary.scrapped, summary.state) == (passed, scrapped, state)
        prompts = line.events(EventKind.PROMPT)
        assert len(prompts) == 1 and prompts[0].data["choices"] == ["retry", "scrap", "abort"]
        assert "held" in line.cell_states()

    run(main())


def test_operator_retry_is_bounded_and_the_prompt_recommends_an_answer() -> None:
    """A station that keeps failing (a locked machine) gets Retry 3 times, then only Scrap/Abort."""
    async def main() -> None:
        line = await Line(wash={"faults": lambda r, n: "LEVEL"}).connect()
        line.answer_when_asked(lambda ev: "retry" if "retry" in ev.data["choices"] else "scrap")
        summary = await line.engine.run_lot(watch_plate(policy=FaultPolicy(FaultAction.HOLD)), parts=1)
        assert (summary.passed, summary.scrapped, summary.state) == (0, 1, "complete")
        prompts = [e.data for e in line.events(EventKind.PROMPT) if e.data["reason"] == "fault"]
        assert [p["choices"] for p in prompts] == [["retry", "scrap", "abort"]] * 3 + [["scrap", "abort"]]
        assert [p["recommended"] for p in prompts][-1] == "scrap"
        assert "3 left" in prompts[0]["text"] and "1 left" in prompts[2]["text"]
        assert "not offered again" in prompts[-1]["text"]
        assert len(line.stations["wash"].calls) == 4  # the first try and three operator retries

    run(main())


def test_an_unanswered_fault_prompt_keeps_the_cell_held_and_guesses_nothing() -> None:
    async def main() -> None:
        line = await Line(wash={"faults": lambda r, n: "LEVEL" if n == 1 else None}).connect()
        lot = asyncio.ensure_future(line.engine.run_lot(watch_plate(policy=FaultPolicy()), parts=2))
        await until(lambda: line.engine.machine.state == S.HELD)
        calls = {sid: len(st.calls) for sid, st in line.stations.items()}
        await line.clock.sleep(200.0)  # 200 process seconds with nobody answering
        assert line.engine.machine.state == S.HELD
        assert {sid: len(st.calls) for sid, st in line.stations.items()} == calls
        with pytest.raises(StateError, match="prompt"):
            line.engine.apply("unhold")
        (prompt,) = line.engine.open_prompts()
        line.engine.answer(prompt.id, "retry")
        summary = await lot
        assert summary.passed == 2

    run(main())


def manual_first(timeout_s: float | None) -> Procedure:
    base = watch_plate()
    load = Step("load", StepKind.MANUAL, None, StepRequest("manual"), on_pass="cut",
                prompt="Load stock into the laser", timeout_s=timeout_s)
    return Procedure("manual", "1", "with manual", (load, *base.steps), "load", parts_in_flight=2)


def test_manual_steps_are_prompts_one_operator_at_a_time() -> None:
    async def main() -> None:
        line = await Line().connect()
        line.answer_when_asked({"manual": "done"})
        summary = await line.engine.run_lot(manual_first(None), parts=3)
        assert summary.passed == 3
        prompts = line.events(EventKind.PROMPT)
        assert [p.data["text"] for p in prompts] == ["Load stock into the laser"] * 3
        answered = line.events(EventKind.PROMPT_ANSWERED)
        assert [a.data["id"] for a in answered] == [p.data["id"] for p in prompts]  # one at a time

    run(main())


def test_a_timed_out_manual_prompt_holds_the_cell_until_answered() -> None:
    async def main() -> None:
        line = await Line().connect()
        lot = asyncio.ensure_future(line.engine.run_lot(manual_first(30.0), parts=1))
        await until(lambda: line.engine.machine.state == S.HELD)
        assert any("unanswered" in e.data["text"] for e in line.events(EventKind.LOG))
        assert not line.stations["cut"].calls  # nothing guessed: the part never went on
        (prompt,) = line.engine.open_prompts()
        line.engine.answer(prompt.id, "done")
        summary = await lot
        assert summary.passed == 1 and line.cell_states()[-2:] == ["completing", "complete"]

    run(main())


def test_hold_pauses_busy_stations_and_unhold_resumes() -> None:
    async def main() -> None:
        line = await Line().connect()
        lot = asyncio.ensure_future(line.engine.run_lot(watch_plate(), parts=2))
        await until(lambda: bool(line.engine.serving))
        line.engine.apply("hold")
        await until(lambda: line.engine.machine.state == S.HELD)
        assert sum(st.holds for st in line.stations.values()) >= 1
        with pytest.raises(StateError, match="unhold"):
            line.engine.apply("start")
        line.engine.apply("unhold")
        assert (await lot).passed == 2

    run(main())


def test_stop_finishes_running_steps_and_admits_nothing_new() -> None:
    async def main() -> None:
        line = await Line().connect()
        lot = asyncio.ensure_future(line.engine.run_lot(watch_plate(in_flight=2), parts=6))
        await until(lambda: len(line.stations["mill"].calls) >= 1)
        line.engine.apply("stop")
        summary = await lot
        assert summary.state == "stopped" and summary.unfinished > 0
        fails = [e for e in line.events(EventKind.STEP) if e.data["phase"] == "failed"]
        assert not fails  # running steps finished normally
        assert len(line.stations["cut"].calls) <= 3

    run(main())


def test_emergency_stop_from_another_thread_aborts() -> None:
    async def main() -> None:
        line = await Line().connect()
        lot = asyncio.ensure_future(line.engine.run_lot(watch_plate(), parts=4))
        await until(lambda: bool(line.engine.serving))
        await asyncio.to_thread(line.engine.emergency_stop)
        summary = await lot
        assert summary.state == "aborted"
        assert all(st.estops == 1 for st in line.stations.values())
        assert any(e.data["code"] == "ESTOP" for e in line.events(EventKind.ALARM))

    run(main())


def test_journal_writes_intent_before_and_completion_after_each_step() -> None:
    async def main() -> None:
        line = await Line(cam={"verdicts": fail_third}).connect()
        seen: list[tuple[str, str, bool | None]] = []
        original = line.stations["mill"].run_step

        async def spy(request: StepRequest) -> StepResult:
            rows = {r.key: r for r in line.engine.journal.steps()}
            row = rows[request.key]
            seen.append((request.key, row.step, row.ok))  # intent is there, completion not yet
            return await original(request)

        line.stations["mill"].run_step = spy  # type: ignore[method-assign,assignment]
        summary = await line.engine.run_lot(watch_plate(), parts=3, lot_id="L1")
        assert len(seen) == 4 and all(ok is None for _, _, ok in seen)
        rows = line.engine.journal.steps()
        assert len(rows) == 3 * 4 + 3 and all(r.ok and r.done_s is not None for r in rows)
        assert len({r.key for r in rows}) == len(rows)
        assert not line.engine.journal.in_doubt()
        genealogy = line.engine.journal.steps("L1-001")
        assert [r.station for r in genealogy] == ["cut", "mill", "wash", "cam"]
        assert all(r.firmware == "fake 1.0" for r in genealogy)
        assert line.engine.journal.runs()[0]["summary"]["passed"] == summary.passed

    run(main())


def test_energy_sums_per_station_part_and_lot() -> None:
    async def main() -> None:
        clock = ManualClock()  # process time alone: a loaded machine must not lengthen the steps
        line = await Line(clock=clock).connect()
        summary = await drive(clock, line.engine.run_lot(watch_plate(), parts=3))
        for sid, use in summary.stations.items():
            power = line.stations[sid].config.power
            expected = power.busy_w * use.busy_s + power.idle_w * use.idle_s + power.standby_w * use.standby_s
            assert use.energy_j == pytest.approx(expected, rel=1e-9)
            lot_s = summary.ended_s - summary.started_s
            assert lot_s - 1e-6 <= use.busy_s + use.idle_s + use.standby_s <= lot_s + 2.0
        busy_j = sum(line.stations[s].config.power.busy_w * u.busy_s for s, u in summary.stations.items())
        assert sum(summary.part_energy_j.values()) == pytest.approx(busy_j, rel=1e-9)
        # each part: 2 s cut @40 W + 6 s mill @120 W + 4 s wash @200 W + 1 s cam @5 W = 1605 J
        # (a loaded machine only ever makes steps last longer, never shorter)
        for joules in summary.part_energy_j.values():
            assert 1605 * 0.999 <= joules <= 1605 * 1.2
        assert summary.energy_per_part_wh == pytest.approx(summary.energy_j / 3600 / 3)

    run(main())


def test_idle_stations_go_to_standby_and_are_woken_before_needed() -> None:
    async def main() -> None:
        kw = {"standby_after_s": 3.0}
        line = await Line(cut=kw, mill=kw, wash=kw, cam=kw).connect()
        summary = await line.engine.run_lot(watch_plate(in_flight=1), parts=2)
        assert summary.passed == 2
        assert line.stations["cam"].standbys >= 1  # idle through the first part's 12 s upstream
        assert summary.stations["cam"].standby_s > 0
        energy = line.events(EventKind.ENERGY)
        cam = [e.data["state"] for e in energy if e.source == "cam"]
        assert "standby" in cam and cam[cam.index("standby") + 1] == "idle"

    run(main())


@pytest.mark.parametrize("choice, state", [("unhold", "complete"), ("stop", "stopped"), ("abort", "aborted")])
def test_interrupt_holds_and_asks(choice: str, state: str) -> None:
    async def main() -> None:
        line = await Line().connect()
        lot = asyncio.ensure_future(line.engine.run_lot(watch_plate(), parts=3))
        await until(lambda: bool(line.engine.serving))
        asked = line.engine.interrupt()
        await until(lambda: line.engine.machine.state == S.HELD)
        (prompt,) = line.engine.open_prompts()
        assert prompt.reason == "interrupt" and prompt.choices == ("unhold", "stop", "abort")
        line.engine.answer(prompt.id, choice)
        assert await asked == choice
        assert (await lot).state == state

    run(main())


@pytest.mark.parametrize("then", ["unhold", "stop"])
def test_a_station_whose_step_ends_as_the_hold_reaches_it_is_not_left_held(then: str) -> None:
    """The race behind an intermittent stall: the cell decides to hold the laser while it serves a part,
    the step ends before the hold arrives, and the laser ends up held but idle. Unhold (or Stop) must
    resume it, or the next part sent to it waits forever."""
    async def main() -> None:
        line = await Line().connect()
        cut = line.stations["cut"]
        hold_now = cut.hold

        async def late_hold() -> None:
            await until(lambda: cut.active == 0)  # the hold reaches the laser after its step ended
            await hold_now()

        cut.hold = late_hold  # type: ignore[method-assign]
        lot = asyncio.ensure_future(line.engine.run_lot(watch_plate(in_flight=1), parts=2))
        await until(lambda: "cut" in line.engine.serving)
        line.engine.apply("hold")
        await until(lambda: line.engine.machine.state == S.HELD)
        assert cut.holds == 1 and "cut" not in line.engine.serving
        line.engine.apply(then)
        summary = await asyncio.wait_for(lot, 20)
        assert cut._running.is_set()  # the laser is not left held
        if then == "unhold":
            assert (summary.state, summary.passed) == ("complete", 2)
        else:
            assert summary.state == "stopped"

    run(main())


def test_suspend_finishes_running_steps_then_unsuspend_carries_on() -> None:
    async def main() -> None:
        line = await Line().connect()
        lot = asyncio.ensure_future(line.engine.run_lot(watch_plate(in_flight=2), parts=4))
        await until(lambda: bool(line.engine.serving))
        line.engine.apply("suspend")
        await until(lambda: line.engine.machine.state == S.SUSPENDED)
        assert not line.engine.serving and not line.engine.tasks
        calls = sum(len(st.calls) for st in line.stations.values())
        await line.clock.sleep(50.0)
        assert sum(len(st.calls) for st in line.stations.values()) == calls
        line.engine.apply("unsuspend")
        assert (await lot).passed == 4

    run(main())


def test_a_step_that_overruns_its_timeout_is_a_fault() -> None:
    async def main() -> None:
        clock = ManualClock()  # 6 s steps under a 3 s limit: decided in process time, not by load
        line = await Line(clock=clock).connect()
        base = watch_plate(policy=FaultPolicy(FaultAction.SCRAP))
        slow = tuple(Step(s.id, s.kind, s.station, s.request, on_pass=s.on_pass, on_fail=s.on_fail,
                          fault_policy=s.fault_policy, timeout_s=3.0 if s.id == "machine" else None)
                     for s in base.steps)
        proc = Procedure(base.recipe_id, "1", base.name, slow, "cut", parts_in_flight=2)
        summary = await drive(clock, line.engine.run_lot(proc, parts=2))
        assert summary.scrapped == 2
        assert {e.data["code"] for e in line.events(EventKind.ALARM)} == {"TIMEOUT"}

    run(main())


def test_a_transfer_stops_counting_while_the_cell_holds() -> None:
    async def main() -> None:
        line = await Line().connect()
        steps = (
            Step("cut", StepKind.CUT, "cut", StepRequest("gcode"), on_pass="move"),
            Step("move", StepKind.TRANSFER, None, StepRequest("transfer"), on_pass="done", duration_s=30.0),
        )
        proc = Procedure("t", "1", "transfer", steps, "cut", parts_in_flight=1)
        lot = asyncio.ensure_future(line.engine.run_lot(proc, parts=1))
        await until(lambda: any(e.data.get("step") == "move" and e.data.get("phase") == "intent"
                                for e in line.events(EventKind.STEP)))
        line.engine.apply("hold")
        await until(lambda: line.engine.machine.state == S.HELD)
        await line.clock.sleep(100.0)  # far longer than the transfer, in process time
        assert not lot.done()
        assert not any(e.data.get("step") == "move" and e.data.get("phase") == "done"
                       for e in line.events(EventKind.STEP))
        line.engine.apply("unhold")
        summary = await lot
        assert summary.passed == 1
        (move,) = [e for e in line.events(EventKind.STEP) if e.data.get("step") == "move"
                   and e.data.get("phase") == "done"]
        assert move.data["duration_s"] >= 100.0  # the held time is in the step's wall span, not its count

    run(main())
