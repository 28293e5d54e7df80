"""Scripted stations for tests, the benchmark and docs: no bytes, timing from the shared clock.

A :class:`FakeStation` runs each step for ``duration_s`` process seconds (a number or a function of the
request), honours hold/resume (held time does not count), and can be scripted to fail (``faults``) or to
give inspection verdicts (``verdicts``) and result data (``data``: :class:`MeasuringCamera` gives what the
vision station reports). It counts what the engine asked of it, so tests can assert that
no station ever served two parts at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from microfactory.cell import PowerProfile, StationConfig
from microfactory.clock import Clock
from microfactory.engine.journal import Journal
from microfactory.errors import StationFault
from microfactory.estop import EStopLatch
from microfactory.events import EventBus
from microfactory.station import Station, StationMachine, StationStatus, StepRequest, StepResult

Script = Callable[[StepRequest, int], Any]


class FakeStation(Station):
    """A station that only exists in the clock. ``n`` passed to scripts counts calls from 1."""

    kind = "fake"

    def __init__(self, station_id: str, *, bus: EventBus, clock: Clock,
                 duration_s: float | Callable[[StepRequest], float] = 1.0,
                 verdicts: Script | None = None, faults: Script | None = None,
                 power: PowerProfile | None = None, standby_after_s: float | None = None,
                 firmware: str = "fake 1.0", data: Script | None = None) -> None:
        # Not Station.__init__: a fake has no port to be handed.
        self.config = StationConfig(id=station_id, kind="fake", power=power or PowerProfile(),
                                    standby_after_s=standby_after_s)
        self.id = station_id
        self.bus = bus
        self.clock = clock
        self.state_machine = StationMachine(station_id, bus)
        self.part: str | None = None
        self.firmware = firmware
        self.estop_latch = EStopLatch(station_id, self.passes_when_latched)
        self.duration_s = duration_s
        self.verdicts = verdicts
        self.faults = faults
        self.data = data
        self.calls: list[StepRequest] = []
        self.active = 0
        self.max_active = 0
        self.estops = 0
        self.holds = 0
        self.standbys = 0
        self._running = asyncio.Event()
        self._running.set()
        self._interrupt = asyncio.Event()  # set by hold/stop to cut the current sleep short
        self._stopped = False

    async def connect(self) -> None:
        self.state_machine.trigger_safely("link_up")
        self.state_machine.trigger_safely("ready")

    async def identify(self) -> str:
        return self.firmware

    async def status(self) -> StationStatus:
        return StationStatus(self.state, {"calls": len(self.calls)})

    def check_step(self, step: StepRequest) -> list[str]:
        return [] if step.action else ["no action given"]

    async def run_step(self, step: StepRequest) -> StepResult:
        self.estop_latch.refuse(f"step {step.action!r}")  # what a driver's port does while latched
        self.calls.append(step)
        n = len(self.calls)
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        self.part, self._stopped = step.part, False
        self.state_machine.trigger_safely("start")
        try:
            total = self.duration_s(step) if callable(self.duration_s) else self.duration_s
            await self._process(total)
            code = self.faults(step, n) if self.faults else None
            if code:
                self.state_machine.trigger_safely("fault")
                raise StationFault(self.id, str(code), "scripted fault", recovery="reset the station")
            extra = self.data(step, n) if self.data else {}  # before the verdict, which may follow it
            verdict = self.verdicts(step, n) if self.verdicts else None
            self.state_machine.trigger_safely("finish")
            return StepResult(ok=True, verdict=verdict, data={"n": n, **extra}, duration_s=total)
        finally:
            self.active -= 1
            self.part = None

    async def _process(self, seconds: float) -> None:
        """Sleep ``seconds`` of process time, not counting time spent held."""
        left = seconds
        while left > 0:
            await self._running.wait()
            if self._stopped:
                raise StationFault(self.id, "STOPPED", "step stopped", recovery="reset the station")
            t0 = self.clock.now()
            sleeper = asyncio.ensure_future(self.clock.sleep(left))
            held = asyncio.ensure_future(self._interrupt.wait())
            try:
                done, _ = await asyncio.wait({sleeper, held}, return_when=asyncio.FIRST_COMPLETED)
            finally:  # also when the step is cancelled: leave no sleeper behind
                sleeper.cancel()
                held.cancel()
            left = 0.0 if sleeper in done else left - (self.clock.now() - t0)
            self._latched()
        if self._stopped:
            raise StationFault(self.id, "STOPPED", "step stopped", recovery="reset the station")

    def _latched(self) -> None:
        if self.estopped:
            self.state_machine.trigger_safely("alarm")
            raise StationFault(self.id, "ESTOP", "emergency stop", recovery="Clear, then reset the station")

    def _signal(self) -> None:
        self._interrupt.set()

    async def hold(self) -> None:
        self.holds += 1
        self._running.clear()
        self._signal()
        self.state_machine.trigger_safely("request_hold")
        self.state_machine.trigger_safely("hold_complete")

    async def resume(self) -> None:
        self._interrupt.clear()
        self._running.set()
        self.state_machine.trigger_safely("resume")

    async def stop(self) -> None:
        self._stopped = True
        self._running.set()
        self._signal()

    async def reset(self) -> None:
        self._stopped = False
        self._interrupt.clear()
        self._running.set()
        self.state_machine.to_idle(cause="reset")

    async def close(self) -> None:
        self.state_machine.trigger_safely("link_down")

    def send_stop_bytes(self) -> None:
        """Counts the E-stop; the step in progress sees the latch when it next wakes (any thread)."""
        self.estops += 1

    async def standby(self, on: bool) -> None:
        self.standbys += int(on)
        await super().standby(on)


#: The features of the watch plate's drawing: (name, nominal mm, tolerance ± mm).
PLATE_FEATURES = (("outline.width", 20.0, 0.02), ("outline.height", 16.0, 0.02), ("J1.diameter", 2.4, 0.01),
                  ("S1.diameter", 1.2, 0.01), ("S2.diameter", 1.2, 0.01), ("P1.diameter", 0.8, 0.008),
                  ("J1.position", 0.0, 0.03), ("S1.position", 0.0, 0.03))


class MeasuringCamera:
    """A ``data`` script giving, per inspection, what the vision station reports: each feature measured
    against its nominal and tolerance (mm), the holes, the verdict's reasons and an image sha256.

    Deterministic per part and visit (seeded by ``seed``, the part id and how many times that part was
    inspected), so a lot resumed after a crash measures exactly what an uninterrupted lot measures.
    With ``fail_every`` N: part numbers divisible by N are always out of tolerance (reworked once, then
    scrapped), part numbers ≡ 1 (mod N) fail their first inspection only (reworked, then pass).
    Use :meth:`verdict` as the station's ``verdicts`` script so the verdict matches the data."""

    def __init__(self, seed: int = 1, *, fail_every: int = 0) -> None:
        self.seed = seed
        self.fail_every = fail_every
        self._visits: dict[str, int] = {}
        self._last: dict[int, bool] = {}

    def _fails(self, part: str, visit: int) -> bool:
        if not self.fail_every:
            return False
        number = int(part.rsplit("-", 1)[-1]) if part.rsplit("-", 1)[-1].isdigit() else 0
        return number % self.fail_every == 0 or (number % self.fail_every == 1 and visit == 1)

    def __call__(self, step: StepRequest, n: int) -> dict[str, Any]:
        import hashlib
        import random

        part = step.part or ""
        fields = (step.key or "").split("/")  # lot/part/step/visit/attempt: the visit survives a resume
        visit = int(fields[3]) if len(fields) == 5 and fields[3].isdigit() else self._visits.get(part, 0) + 1
        self._visits[part] = visit
        rng = random.Random(f"{self.seed}/{part}/{visit}")
        out = self._fails(part, visit)
        features: list[dict[str, Any]] = []
        for i, (name, nominal, tol) in enumerate(PLATE_FEATURES):
            dev = rng.gauss(0.0, tol / 4)
            if out and i == 2:
                dev = tol * 1.6
            features.append({"feature": name, "nominal": nominal, "tol": tol,
                             "measured": round(nominal + dev, 5), "deviation": round(dev, 5),
                             "ok": abs(dev) <= tol})
        reasons = [f"{f['feature']} {f['deviation']:+.4f} mm outside ±{f['tol']}" for f in features
                   if not f["ok"]]
        self._last[n] = not reasons
        image = hashlib.sha256(f"{part}/{visit}".encode()).hexdigest()
        holes = [{"id": f["feature"].split(".")[0], "d_mm": f["measured"],
                  "r_px": round(f["measured"] * 50, 4), "rms_px": 0.028, "x_mm": 3.0 + i,
                  "x_px": 537.87 + 100 * i, "y_mm": 3.0, "y_px": 1526.52}
                 for i, f in enumerate(features) if f["feature"].endswith("diameter")]
        return {"measurements": {"features": features, "defects": [], "holes": holes, "ms": 73.8,
                                 "outline": {"angle_deg": -1.0992, "height_mm": features[1]["measured"],
                                             "width_mm": features[0]["measured"]}},
                "sha256": image, "reasons": reasons, "firmware": "CV_IMAGES fake",
                "image": f"/tmp/microfactory-images/inspect/{part}-{visit:02d}.png"}

    def verdict(self, step: StepRequest, n: int) -> str:
        return "pass" if self._last.get(n, True) else "fail"


def plate_line(journal: Journal, *, seed: int = 1, fail_every: int = 0, speed: float = 2000.0) -> Any:
    """The watch-plate line (cut → mill → wash → inspect, one rework loop back to the wash) on fake
    stations with a :class:`MeasuringCamera`, journaled in ``journal``: the benchmark's and the report and
    resume tests' line. Returns ``(engine, procedure)``; connect with :func:`connect_line`."""
    from microfactory.clock import ScaledClock
    from microfactory.engine.runner import Engine
    from microfactory.procedure import FaultPolicy, Procedure, Step, StepKind

    clock = ScaledClock(speed)
    bus = EventBus(clock)
    camera = MeasuringCamera(seed, fail_every=fail_every)
    power = {sid: PowerProfile(busy_w=b, idle_w=i, standby_w=s)
             for sid, (b, i, s) in {"cut": (40, 6, 1), "mill": (120, 10, 2), "wash": (200, 15, 3),
                                    "cam": (5, 2, 0.5)}.items()}
    durations = {"cut": 2.0, "mill": 6.0, "wash": 4.0, "cam": 1.0}
    stations = {sid: FakeStation(sid, bus=bus, clock=clock, duration_s=d, power=power[sid],
                                 firmware=f"{sid} fw 1.0", data=camera if sid == "cam" else None,
                                 verdicts=camera.verdict if sid == "cam" else None)
                for sid, d in durations.items()}
    journal.listen(bus)
    pol = FaultPolicy()
    steps = (Step("cut", StepKind.CUT, "cut", StepRequest("gcode"), on_pass="mill", fault_policy=pol),
             Step("mill", StepKind.MACHINE, "mill", StepRequest("gcode"), on_pass="wash", fault_policy=pol),
             Step("wash", StepKind.WASH, "wash", StepRequest("wash"), on_pass="inspect", fault_policy=pol),
             Step("inspect", StepKind.INSPECT, "cam", StepRequest("inspect"), on_pass="done", on_fail="wash",
                  max_rework=1, fault_policy=pol))
    procedure = Procedure("watch-plate", "1.0", "Watch plate", steps, "cut", lot_size=1, parts_in_flight=4)
    return Engine(stations, bus=bus, clock=clock, journal=journal), procedure


async def connect_line(engine: Any) -> None:
    for station in engine.stations.values():
        await station.connect()
    engine.bind_loop()


async def plate_lot(journal: Journal, parts: int, *, seed: int = 1, fail_every: int = 0,
                    speed: float = 2000.0, lot_id: str = "L1", user: str = "") -> Any:
    """A watch-plate lot of ``parts`` on :func:`plate_line`; returns the :class:`LotSummary`."""
    engine, procedure = plate_line(journal, seed=seed, fail_every=fail_every, speed=speed)
    await connect_line(engine)
    engine.user = user
    return await engine.run_lot(procedure, parts=parts, lot_id=lot_id)


async def resume_plate_lot(journal: Journal, *, seed: int = 1, fail_every: int = 0, speed: float = 2000.0,
                           answer: str = "rework", user: str = "") -> Any:
    """Resume the journal's open watch-plate lot on a fresh :func:`plate_line`; interrupted machining
    is answered ``answer``. Returns the :class:`LotSummary` of the resumed run."""
    from microfactory.engine import resume

    engine, procedure = plate_line(journal, seed=seed, fail_every=fail_every, speed=speed)
    await connect_line(engine)
    engine.user = user
    return await resume.resume(engine, procedure, ask=lambda item: answer, by=user or "(harness)")
