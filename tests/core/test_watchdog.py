"""The one watchdog: counts only un-held process time, on a clock the test moves by hand."""

from __future__ import annotations

import asyncio
import math

import pytest

from microfactory.testing import ManualClock, settle
from microfactory.watchdog import Watchdog, WatchdogExpired


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(asyncio.wait_for(coro, 10.0))


def test_an_8_s_step_held_for_8_s_under_a_10_s_limit_does_not_time_out() -> None:
    """Issue 10 point 5: held time is not counted (the old watchdog scrapped this step at t = 10 s)."""
    async def main() -> tuple[str, float, float]:
        clock = ManualClock()
        dog = Watchdog(clock, 10.0, what="step 'machine'")
        done = asyncio.Event()

        async def step() -> str:
            await done.wait()
            return "ok"

        watched = asyncio.ensure_future(dog.run(step()))
        await clock.advance(1.0)       # 1 s running
        dog.hold("cell")
        await clock.advance(8.0)       # 8 s held: not counted
        dog.release("cell")
        await clock.advance(7.0)       # 7 s running: 8 s of work in all, at t = 16 s
        assert not watched.done()
        done.set()
        result = await watched
        return result, dog.elapsed_s, clock.now()

    result, elapsed, now = run(main())
    assert result == "ok"
    assert elapsed == pytest.approx(8.0)
    assert now == pytest.approx(16.0)


def test_un_held_time_past_the_limit_expires_and_stops_the_work() -> None:
    async def main() -> tuple[float, list[float], bool]:
        clock = ManualClock()
        dog = Watchdog(clock, 10.0, what="step 'machine'")
        stopped: list[float] = []
        cancelled = asyncio.Event()

        async def step() -> None:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.set()
                raise

        async def stop() -> None:
            stopped.append(clock.now())

        watched = asyncio.ensure_future(dog.run(step(), on_expiry=stop))
        await clock.advance(4.0)
        dog.hold("cell")
        await clock.advance(100.0)     # a long hold never expires the watchdog
        assert not watched.done()
        dog.release("cell")
        await clock.advance(5.9)
        assert not watched.done()
        await clock.advance(0.2)
        with pytest.raises(WatchdogExpired) as info:
            await watched
        assert "step 'machine' ran longer than 10 s" in str(info.value)
        await settle()
        return clock.now(), stopped, cancelled.is_set()

    _now, stopped, cancelled = run(main())
    assert stopped == [pytest.approx(110.0)]
    assert cancelled


def test_every_hold_reason_must_be_released_before_counting_resumes() -> None:
    async def main() -> list[float]:
        clock = ManualClock()
        dog = Watchdog(clock, 5.0)
        seen = []
        await clock.advance(1.0)
        dog.hold("cell")
        dog.hold("door")
        await clock.advance(3.0)
        dog.release("cell")
        await clock.advance(3.0)        # the door still holds
        seen.append(dog.elapsed_s)
        dog.release("door")
        await clock.advance(2.0)
        seen.append(dog.elapsed_s)
        seen.append(dog.remaining_s)
        return seen

    assert run(main()) == [pytest.approx(1.0), pytest.approx(3.0), pytest.approx(2.0)]


def test_restart_is_a_dead_man_kick() -> None:
    async def main() -> tuple[bool, bool]:
        clock = ManualClock()
        dog = Watchdog(clock, 2.0, what="an answer")
        expiry = asyncio.ensure_future(dog.expired())
        for _ in range(5):
            await clock.advance(1.5)
            dog.restart()
        alive = not expiry.done()
        await clock.advance(2.0)
        return alive, expiry.done()

    assert run(main()) == (True, True)


def test_a_caller_cancelled_cancels_the_work() -> None:
    async def main() -> bool:
        clock = ManualClock()
        dog = Watchdog(clock, 10.0)
        cancelled = asyncio.Event()

        async def step() -> None:
            try:
                await asyncio.Event().wait()
            finally:
                cancelled.set()

        watched = asyncio.ensure_future(dog.run(step()))
        await clock.advance(1.0)
        watched.cancel()
        await settle()
        return cancelled.is_set() and watched.cancelled() and clock.sleepers == 0

    assert run(main())


@pytest.mark.parametrize("limit", [0.0, -1.0, math.nan])
def test_a_limit_that_would_switch_the_watchdog_off_is_refused(limit: float) -> None:
    with pytest.raises(ValueError, match="must be > 0 s"):
        Watchdog(ManualClock(), limit, what="step 'x'")


def test_no_limit_never_expires() -> None:
    async def main() -> bool:
        clock = ManualClock()
        dog = Watchdog(clock, None)
        expiry = asyncio.ensure_future(dog.expired())
        await clock.advance(1e9)
        done = expiry.done()
        expiry.cancel()
        await settle()
        return done

    assert run(main()) is False
