"""The status poll slows down while the machine is at rest and speeds up at once when a line goes out.

Runs the production driver against the Grbl simulator on a virtual clock; counts reports per simulated
second, never wall time.
"""

from __future__ import annotations

from microfactory import registry, simclock
from microfactory.cell import StationConfig
from microfactory.events import EventBus
from microfactory.station import PortHandle, StepRequest
from stations.grbl import GrblStation

SETTINGS = {110: 600, 111: 600, 112: 500, 120: 100, 121: 100, 122: 100, 130: 120, 131: 120, 132: 10}


def station_config(port: str, **options: object) -> StationConfig:
    return StationConfig.model_validate({
        "id": "mill", "kind": "grbl", "port": port,
        "limits": {"envelope": {"x": [-120, 0], "y": [-120, 0], "z": [-5, 0]}, "max_feed_mm_min": 600},
        "timeouts": {"connect_s": 2.0, "answer_s": 2.0, "status_s": 1.0},
        "options": {"home_on_connect": True, **options}})


def run_counts(**options: object) -> tuple[int, int, float]:
    """Reports in 20 s at rest, reports while a ~6 s program runs, and the program's duration (s)."""

    async def main(clock: simclock.VirtualClock) -> tuple[int, int, float]:
        sim = registry.simulator("grbl").start({"settings": SETTINGS}, clock)
        station = GrblStation(station_config(sim.port, **options), bus=EventBus(clock), clock=clock,
                              port=PortHandle(lambda: sim.port, simulator=sim))
        try:
            await station.connect()
            await clock.sleep(2.0)  # let the connect's own exchanges settle
            before = station.poller.count
            await clock.sleep(20.0)
            at_rest = station.poller.count - before
            program = ["G10 L2 P1 X-120 Y-120 Z0", "G21 G90 G54", "G0 X10 Y10", "G1 X70 F600", "M2"]
            before, t0 = station.poller.count, clock.now()
            await station.run_step(StepRequest("gcode", {"program": program, "source": "move.nc"}))
            return at_rest, station.poller.count - before, clock.now() - t0
        finally:
            await station.close()
            sim.close()

    return simclock.run(main)


def test_an_idle_machine_is_polled_at_the_idle_rate_and_a_running_one_at_the_busy_rate() -> None:
    at_rest, running, seconds = run_counts()
    assert 17 <= at_rest <= 23  # 1 Hz by default (idle_poll_hz), not the 200 of 10 Hz
    assert seconds > 5.0
    assert running >= 9 * seconds  # 10 Hz while the program runs: the poller woke when the lines went


def test_the_idle_rate_is_an_option_and_equal_rates_poll_always_at_the_busy_rate() -> None:
    at_rest, _, _ = run_counts(idle_poll_hz=10)
    assert 190 <= at_rest <= 210
