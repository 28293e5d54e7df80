"""Resume a lot whose process was SIGKILLed, decide the steps in flight, or close the lot with a reason."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys
import time
from pathlib import Path

import pytest

from microfactory.cli import main
from microfactory.engine import resume
from microfactory.engine.fakes import plate_line, plate_lot, resume_plate_lot
from microfactory.engine.journal import Journal
from microfactory.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
HARNESS = ROOT / "benchmarks" / "traceability.py"


def outcome(db: Path) -> dict[str, tuple[str, str | None]]:
    j = Journal.open_existing(db)
    try:
        out = {}
        for p in j.parts("K"):
            inspections = [s for s in j.steps(p["part"]) if s.step == "inspect" and s.ok]
            out[p["part"]] = (p["state"], inspections[-1].verdict if inspections else None)
        return out
    finally:
        j.close()


@pytest.mark.timeout(240)
def test_a_sigkilled_lot_resumes_to_the_same_parts_and_verdicts(tmp_path: Path) -> None:
    db, reference = tmp_path / "killed.sqlite", tmp_path / "reference.sqlite"
    j = Journal(reference)
    asyncio.run(plate_lot(j, 24, seed=3, fail_every=7, speed=500, lot_id="K"))
    j.close()
    child = subprocess.Popen(
        [
            sys.executable,
            str(HARNESS),
            "--child",
            str(db),
            "--kill-parts",
            "24",
            "--seed",
            "3",
            "--speed",
            "500",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "started"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # kill once some parts are done and others are in flight
        probe = Journal.open_existing(db)
        done = sum(p["state"] == "passed" for p in probe.parts("K"))
        doubt = probe.in_doubt("K")
        probe.close()
        if done >= 3 and doubt:
            break
        time.sleep(0.01)  # polling interval of the probe, not a wait for a device
    child.kill()
    child.wait(timeout=30)
    child.stdout.close()
    j = Journal(db)
    assert resume.open_lots(j) and j.in_doubt("K")
    summary = asyncio.run(resume_plate_lot(j, seed=3, fail_every=7, speed=500, user="qa"))
    assert summary.state == "complete"
    interrupted = [s for s in j.steps(lot="K") if s.data.get("interrupted")]
    assert interrupted and all(s.data["decision"] in ("rerun", "rework") for s in interrupted)
    ok_visits = [s.key.rsplit("/", 1)[0] for s in j.steps(lot="K") if s.ok]
    assert len(ok_visits) == len(set(ok_visits))  # no step completed twice
    assert j.verify().intact and j.run("K")["state"] == "complete" and not j.in_doubt("K")
    j.close()
    assert outcome(db) == outcome(reference)


def crashed_lot(db: Path) -> None:
    """What a process killed while the 2nd part was being milled leaves: part 1 milled and routed to the
    wash, part 2's mill intent without completion, the lot's run record without an end."""
    j = Journal(db)
    j.begin_run("K", recipe="watch-plate", version="1.0", cell="", parts=2, parameters={}, t=0.0)
    for n, (part, steps) in enumerate((("K-001", ("cut", "mill")), ("K-002", ("cut",)))):
        for step in steps:
            key = f"K/{part}/{step}/1/0"
            j.intent(
                key,
                lot="K",
                part=part,
                step=step,
                station=step,
                firmware="fw",
                attempt=0,
                request={"action": "gcode"},
                t=n + 1.0,
            )
            j.done(key, ok=True, verdict=None, data={}, t=n + 2.0)
        j.part(part, "K", "at_station", reworks=0, energy_j=1.0, t=n + 2.0, step="wash" if n == 0 else "mill")
    j.intent(
        "K/K-002/mill/1/0",
        lot="K",
        part="K-002",
        step="mill",
        station="mill",
        firmware="fw",
        attempt=0,
        request={"action": "gcode"},
        t=5.0,
    )
    j.close()


@pytest.mark.parametrize("answer", ["rework", "scrap"])
def test_interrupted_machining_asks_and_the_decision_is_on_record(tmp_path: Path, answer: str) -> None:
    db = tmp_path / "runs.sqlite"
    crashed_lot(db)
    j = Journal(db)
    asked: list[str] = []

    async def go() -> None:
        engine, procedure = plate_line(j, speed=500)
        for station in engine.stations.values():
            await station.connect()
        engine.bind_loop()

        def ask(item: resume.Interrupted) -> str:
            asked.append(item.question())
            return answer

        await resume.resume(engine, procedure, ask=ask, by="eng")

    asyncio.run(go())
    assert len(asked) == 1 and "Part K-002 was in step 'mill'" in asked[0] and "Rework" in asked[0]
    mills = [s for s in j.steps("K-002") if s.step == "mill"]
    assert (
        mills[0].data["interrupted"] and mills[0].data["decision"] == answer and mills[0].data["by"] == "eng"
    )
    parts = {p["part"]: p for p in j.parts("K")}
    assert parts["K-001"]["state"] == "passed"
    if answer == "rework":
        assert [s.key for s in mills] == ["K/K-002/mill/1/0", "K/K-002/mill/1/1"] and mills[1].ok
        assert parts["K-002"]["state"] == "passed"
    else:
        assert len(mills) == 1 and parts["K-002"]["state"] == "scrapped"
        assert "interrupted by a crash; scrapped on resume" in parts["K-002"]["reason"]
    k001_cuts = [s for s in j.steps("K-001") if s.step in ("cut", "mill")]
    assert len(k001_cuts) == 2  # part 1's finished steps were not run again
    assert j.verify().intact
    j.close()


def test_an_interrupted_wash_reruns_by_policy_without_asking(tmp_path: Path) -> None:
    db = tmp_path / "runs.sqlite"
    crashed_lot(db)
    j = Journal(db)
    j.intent(
        "K/K-001/wash/1/0",
        lot="K",
        part="K-001",
        step="wash",
        station="wash",
        firmware="fw",
        attempt=0,
        request={"action": "wash"},
        t=6.0,
    )

    def never(item: resume.Interrupted) -> str:
        assert item.record.step == "mill", "only machining asks"
        return "rework"

    async def go() -> None:
        engine, procedure = plate_line(j, speed=500)
        for station in engine.stations.values():
            await station.connect()
        engine.bind_loop()
        await resume.resume(engine, procedure, ask=never, by="eng")

    asyncio.run(go())
    wash = [s for s in j.steps("K-001") if s.step == "wash"]
    assert wash[0].data["decision"] == "rerun" and wash[0].data["policy"] == "rerun" and wash[1].ok
    j.close()


def test_resume_refuses_another_recipe(tmp_path: Path) -> None:
    db = tmp_path / "runs.sqlite"
    crashed_lot(db)
    j = Journal(db)
    _engine, procedure = plate_line(j)
    with pytest.raises(ConfigError, match=r"lot K ran watch-plate version 1\.0, not watch-plate 2\.0"):
        resume.plan(j, dataclasses.replace(procedure, version="2.0"))
    j.close()


def test_a_lot_is_closed_without_resuming_with_a_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "runs.sqlite"
    crashed_lot(db)
    assert main(["journal", str(db)]) == 1  # a step in doubt
    capsys.readouterr()
    assert main(["resume", "--db", str(db), "--close"]) == 2
    assert "closing a lot needs a reason" in capsys.readouterr().err
    assert main(["resume", "--db", str(db), "--close", "--reason", "power cut; parts quarantined"]) == 0
    assert "lot K closed without resuming: power cut; parts quarantined" in capsys.readouterr().out
    j = Journal.open_existing(db)
    run = j.run("K")
    assert (run["state"], run["closed_reason"]) == ("closed", "power cut; parts quarantined")
    assert not j.in_doubt("K")
    assert all("lot closed without resuming" in p["reason"] for p in j.parts("K"))
    assert j.verify().intact
    j.close()
    assert main(["resume", "--db", str(db)]) == 2
    assert "no open lot" in capsys.readouterr().err
