"""The camera station end to end against the simulated camera (a hot folder the simulator renders into)."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest
from vision_support import SMALL_DRAWING

from microfactory.cell import StationConfig
from microfactory.clock import ScaledClock
from microfactory.errors import StationFault
from microfactory.events import EventBus, EventKind
from microfactory.station import PortHandle, StationState, StepRequest
from simulators.camera import SIMULATOR
from stations.vision import KIND, VisionStation


@pytest.fixture
def drawing_file(tmp_path: Path) -> Path:
    p = tmp_path / "plate.yaml"
    p.write_text(SMALL_DRAWING)
    return p


def _config(tmp_path: Path) -> StationConfig:
    return StationConfig(id="camera", kind="camera", port="sim", timeouts={"answer_s": 5},
                         options={"images_dir": str(tmp_path / "images")})


def test_kind_checks_steps_without_io(tmp_path: Path, drawing_file: Path) -> None:
    config = _config(tmp_path)
    assert KIND.name == "camera" and KIND.capabilities(config) == frozenset({"inspect"})
    assert KIND.check(StepRequest("inspect", {"drawing": str(drawing_file)}), config) == []
    assert KIND.check(StepRequest("wash"), config)
    bad = tmp_path / "bad.yaml"
    bad.write_text("drawing: x\noutline: {width: -1, height: 2}\n")
    problems = KIND.check(StepRequest("inspect", {"drawing": str(bad)}), config)
    assert problems and "bad.yaml:2" in problems[0]
    assert KIND.check(StepRequest("inspect", {"drawing": str(drawing_file), "defects": {"chip_mm": -1}}),
                      config)
    assert KIND.estimate_s(StepRequest("inspect"), config) == pytest.approx(0.17)
    assert KIND.check(StepRequest("calibrate", {"cols": 11, "rows": 9, "pitch_mm": 0.6}), config) == []
    assert "pitch_mm" in KIND.check(StepRequest("calibrate", {"cols": 11, "rows": 9}), config)[0]


def test_run_step_against_the_simulated_camera(tmp_path: Path, drawing_file: Path) -> None:
    sim = SIMULATOR.start({"drawing": str(drawing_file), "width": 1024, "height": 800, "seed": 3, "dust": 2},
                          ScaledClock(1.0))
    bus = EventBus()
    measured: list[str] = []
    bus.subscribe(lambda e: measured.append(e.get("feature")), kinds={EventKind.MEASUREMENT})
    station = VisionStation(_config(tmp_path), bus=bus, clock=ScaledClock(1.0),
                            port=PortHandle(lambda: sim.port, simulator=sim))
    step = StepRequest("inspect", {"drawing": str(drawing_file)}, part="P-001", key="k1")

    async def go() -> None:
        await station.connect()
        assert station.state == StationState.IDLE
        good = await station.run_step(step)
        assert good.ok and good.verdict == "pass", good.reasons
        image = Path(good.data["image"])
        assert hashlib.sha256(image.read_bytes()).hexdigest() == good.data["sha256"]
        assert {h["id"] for h in good.data["measurements"]["holes"]} == {"A", "B", "C"}
        assert "A.position" in measured
        sim.inject("defect", cls="crack")
        bad = await station.run_step(step)
        assert bad.ok and bad.verdict == "fail"
        assert any(d["class"] == "crack" for d in bad.data["measurements"]["defects"])
        sim.inject("empty")
        empty = await station.run_step(step)
        assert not empty.ok and empty.verdict == "error" and "no part" in empty.reasons[0]
        sim.inject("unplug")
        with pytest.raises(StationFault):
            await station.run_step(step)
        assert station.state == StationState.FAULTED
        sim.inject("replug")
        await station.reset()
        again = await station.run_step(step)
        assert again.verdict == "pass"
        sim.inject("target", cols=11, rows=9, pitch_mm=0.6, dot_mm=0.3)
        cal = await station.run_step(StepRequest("calibrate", {"cols": 11, "rows": 9, "pitch_mm": 0.6}))
        assert cal.ok, cal.reasons
        assert cal.data["mm_per_px"] == pytest.approx(0.01, rel=1e-3) and cal.data["residual_px"] < 0.05
        assert Path(cal.data["calibration"]).exists()
        after = await station.run_step(step)  # inspections now use the stored calibration
        assert after.verdict == "pass", after.reasons
        await station.close()

    try:
        asyncio.run(asyncio.wait_for(go(), 60))
    finally:
        sim.close()


def test_step_tolerance_overrides_apply_to_every_hole_or_one() -> None:
    from pathlib import Path

    import pytest

    from microfactory.drawing import load_drawing
    from microfactory.errors import ConfigError
    from stations.vision.job import with_tolerances

    drawing = load_drawing(Path(__file__).resolve().parents[2] / "recipes" / "drawings" / "watch-plate.yaml")
    first = drawing.holes[0].id
    changed = with_tolerances(drawing, {"position": 0.05, first: {"diameter": 0.004}})
    assert all(h.position_tol == 0.05 for h in changed.holes)
    assert changed.holes[0].diameter_tol == 0.004
    assert changed.tolerances.position == 0.05
    with pytest.raises(ConfigError, match="no hole 'Z9'"):
        with_tolerances(drawing, {"Z9": {"diameter": 0.01}})
    with pytest.raises(ConfigError, match="must be > 0"):
        with_tolerances(drawing, {"diameter": 0})
