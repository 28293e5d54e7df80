"""Event bus ordering and thread hand-over; the scaled clock; the station state table."""

from __future__ import annotations

import asyncio
import threading

import pytest
from transitions import MachineError

from microfactory.clock import ScaledClock
from microfactory.events import EventBus, EventKind, EventRecorder
from microfactory.station import StationMachine, StationState


def test_events_are_sequenced_and_filtered() -> None:
    bus = EventBus()
    seen: list[str] = []
    bus.subscribe(lambda e: seen.append(e.kind), kinds=[EventKind.ALARM])
    rec = EventRecorder(bus)
    bus.publish(EventKind.LOG, "cell", text="a")
    bus.publish(EventKind.ALARM, "mill", code=2)
    assert seen == ["alarm"]
    assert [e.seq for e in rec.events] == [1, 2]
    assert rec.events[1].get("code") == 2


def test_a_failing_subscriber_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    bus = EventBus()
    got: list[int] = []

    def broken(_e: object) -> None:
        raise RuntimeError("boom")

    bus.subscribe(broken)
    bus.subscribe(lambda e: got.append(e.seq))
    bus.publish("log", "x")
    assert got == [1]
    assert "boom" in caplog.text


def test_stream_receives_events_published_from_other_threads() -> None:
    bus = EventBus()

    async def go() -> list[int]:
        out: list[int] = []
        ready = asyncio.Event()

        async def consume() -> None:
            gen = bus.stream(kinds=["log"], until=lambda e: e.get("n") == 4)
            ready.set()
            async for event in gen:
                out.append(event.get("n"))

        task = asyncio.create_task(consume())
        await asyncio.sleep(0)  # let the consumer subscribe (it subscribes on first iteration)
        await ready.wait()

        def producer() -> None:
            for n in range(5):
                bus.publish("log", "t", n=n)

        # the subscription is made when the generator first runs; publish after it is in place
        while not bus._subs:
            await asyncio.sleep(0.001)
        threading.Thread(target=producer).start()
        await asyncio.wait_for(task, 5)
        return out

    assert asyncio.run(go()) == [0, 1, 2, 3, 4]


def test_recorder_wait_for_times_out_with_a_count() -> None:
    rec = EventRecorder(EventBus())
    with pytest.raises(TimeoutError, match="saw 0 events"):
        rec.wait_for(lambda e: True, timeout=0.05)


def test_scaled_clock_runs_faster_and_sleeps_shorter() -> None:
    clock = ScaledClock(100.0)
    start = clock.now()
    asyncio.run(clock.sleep(5.0))  # 5 process seconds = 0.05 s wall
    assert clock.now() - start >= 5.0
    assert clock.wall(10) == pytest.approx(0.1)
    with pytest.raises(ValueError):
        ScaledClock(0)


def test_station_state_table_allows_and_refuses() -> None:
    bus = EventBus()
    rec = EventRecorder(bus)
    m = StationMachine("mill", bus)
    assert m.state is StationState.OFFLINE
    assert not m.trigger_safely("start")  # cannot start while offline
    assert m.trigger_safely("link_up") and m.trigger_safely("ready")
    assert m.trigger_safely("start") and m.state is StationState.BUSY
    assert m.trigger_safely("alarm") and m.state is StationState.ALARM
    with pytest.raises(MachineError):
        m.trigger("start")  # type: ignore[attr-defined]
    assert m.trigger_safely("clear") and m.state is StationState.IDLE
    states = [e.get("state") for e in rec.of_kind("station.state")]
    assert states == ["connecting", "idle", "busy", "alarm", "idle"]
