"""The virtual clock's jump rule: time moves only while every actor waits, to the earliest deadline.

No wall-clock assertions: every check is on simulated time and on order.
"""

from __future__ import annotations

import asyncio
import math
import threading

import pytest

from microfactory.clock import parse_speed
from microfactory.simclock import VirtualClock, run


def test_an_hour_of_sleep_is_one_jump_to_its_deadline() -> None:
    async def main(clock: VirtualClock) -> tuple[float, float]:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await asyncio.sleep(3600.0)
        return t0, loop.time()

    t0, t1 = run(main)
    assert t1 - t0 == pytest.approx(3600.0, abs=1e-9)


def test_timers_fire_in_deadline_order_at_their_own_times() -> None:
    async def main(clock: VirtualClock) -> list[tuple[str, float]]:
        seen: list[tuple[str, float]] = []

        async def at(name: str, s: float) -> None:
            await asyncio.sleep(s)
            seen.append((name, clock.now()))

        await asyncio.gather(at("c", 3.0), at("a", 1.0), at("b", 2.5))
        return seen

    seen = run(main)
    assert [n for n, _ in seen] == ["a", "b", "c"]
    assert [t for _, t in seen] == pytest.approx([1.0, 2.5, 3.0], abs=1e-9)


def test_time_stands_still_while_a_thread_actor_is_busy() -> None:
    """A thread that has not reached its wait holds the clock; the loop's 10 s timer waits for it."""
    release = threading.Event()

    async def main(clock: VirtualClock) -> tuple[float, float, float]:
        actor = clock.actor("worker")
        seen: list[float] = []

        def work() -> None:
            release.wait(30)
            seen.append(clock.now())  # still busy: the clock cannot have moved
            actor.wait_fds([], deadline=None, wall_cap=0.0)
            actor.close()

        thread = threading.Thread(target=work)
        thread.start()
        sleeper = asyncio.ensure_future(asyncio.sleep(10.0))
        await asyncio.sleep(0)  # the loop is idle now, the worker is not
        before = clock.now()
        release.set()
        await sleeper
        thread.join(5)
        return before, seen[0], clock.now()

    before, during, after = run(main)
    assert before == 0.0 and during == 0.0
    assert after == pytest.approx(10.0)


def test_a_thread_actor_wakes_at_its_deadline() -> None:
    async def main(clock: VirtualClock) -> float:
        woke: list[float] = []

        def link() -> None:
            actor = clock.actor("link")
            actor.wait_fds([], deadline=7.25)
            woke.append(clock.now())
            actor.close()

        thread = threading.Thread(target=link)
        thread.start()
        await asyncio.to_thread(thread.join, 5)  # the loop waits on an executor job: counted as work
        await asyncio.sleep(100.0)  # nothing else due: jumps
        return woke[0]

    assert run(main) == pytest.approx(7.25)


def test_bytes_in_flight_hold_the_clock_until_read() -> None:
    """A byte counted as sent on a channel keeps the clock still until it is counted as received."""
    async def main(clock: VirtualClock) -> tuple[float, float]:
        clock.sent("/dev/pts/x>", 3)
        sleeper = asyncio.ensure_future(asyncio.sleep(5.0))
        for _ in range(50):  # many loop turns: the clock may not move meanwhile
            await asyncio.sleep(0)
        held = clock.now()
        clock.received("/dev/pts/x>", 3)
        await sleeper
        return held, clock.now()

    held, after = run(main)
    assert held == 0.0
    assert after == pytest.approx(5.0)


def test_paced_clock_reaches_the_same_times() -> None:
    """×50 plays the same timers at the same simulated times as max."""
    async def main(clock: VirtualClock) -> list[float]:
        out = []
        for s in (0.01, 0.02, 0.005):
            await asyncio.sleep(s)
            out.append(round(clock.now(), 9))
        return out

    assert run(main, pace=50.0) == run(main) == pytest.approx([0.01, 0.03, 0.035])


@pytest.mark.parametrize("text, value", [("max", math.inf), ("MAX", math.inf), ("20", 20.0), ("0.5", 0.5)])
def test_speed_accepts_positive_numbers_and_max(text: str, value: float) -> None:
    assert parse_speed(text) == value


@pytest.mark.parametrize("text", ["0", "-3", "nan", "inf", "fast", ""])
def test_speed_refuses_the_rest_saying_what_it_accepts(text: str) -> None:
    with pytest.raises(ValueError, match=r"positive .*'max'"):
        parse_speed(text)


def test_a_virtual_clock_refuses_a_bad_pace() -> None:
    for pace in (0.0, -1.0, math.nan):
        with pytest.raises(ValueError):
            VirtualClock(pace)
