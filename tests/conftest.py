"""Suite-wide: hardware options, and a fixture that fails any test leaving work running.

``--port PATH --port-kind grbl|wash`` runs the station contract suite on a real device
(``tests/stations/test_frontend_contract.py``); without it the hardware cases are skipped.

The leak check (ophyd-async fails tests that leave an asyncio task running; bluesky joins its engine
thread): a task still pending when ``asyncio.run`` returns (which would otherwise be cancelled there
silently) or a non-daemon thread the test started and left alive fails the test, naming it. Work left
running is a supervision bug: a stale job that completes a later state, a writer thread that keeps a port.
"""

from __future__ import annotations

import asyncio
import asyncio.runners
import threading
from collections.abc import Iterator
from typing import Any

import pytest

THREAD_GRACE_S = 2.0  # a thread asked to stop may take a moment to notice; none should need longer


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--port", default="", help="a real station's serial port for the contract suite")
    parser.addoption("--port-kind", default="grbl", choices=("grbl", "wash"),
                     help="what is on --port (default grbl)")


def _describe(task: asyncio.Task[Any]) -> str:
    coro = task.get_coro()
    where = getattr(coro, "__qualname__", repr(coro))
    return f"task {task.get_name()!r} ({where})"


@pytest.fixture(autouse=True)
def no_leaked_work(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail the test if it leaves an asyncio task pending at the end of ``asyncio.run`` or a
    non-daemon thread alive."""
    leaked: list[str] = []
    cancel_all = asyncio.runners._cancel_all_tasks  # type: ignore[attr-defined]

    def recording(loop: asyncio.AbstractEventLoop) -> None:
        leaked.extend(_describe(t) for t in asyncio.all_tasks(loop) if not t.done())
        cancel_all(loop)

    monkeypatch.setattr(asyncio.runners, "_cancel_all_tasks", recording)
    before = set(threading.enumerate())
    yield
    alive = []
    for thread in set(threading.enumerate()) - before:
        if thread.daemon:
            continue
        thread.join(THREAD_GRACE_S)
        if thread.is_alive():
            alive.append(f"thread {thread.name!r}")
    if leaked or alive:
        pytest.fail("the test left work running: " + "; ".join(leaked + alive), pytrace=False)
