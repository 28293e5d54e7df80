"""`run` shows every alarm and hold with its cause, and a STARVED hold asks the operator instead of
holding silently: at end of input the lot stops (issue 10 point 8)."""

from __future__ import annotations

import asyncio
import io

from engine_support import Line, run, until, watch_plate
from rich.console import Console

from microfactory.cli.run import AlarmReporter
from microfactory.engine.packml import PackMLState
from microfactory.events import EventKind

S = PackMLState


def test_a_starved_hold_is_shown_and_asked_and_no_answer_stops_the_lot() -> None:
    async def main() -> None:
        line = await Line().connect()
        out = io.StringIO()
        reporter = AlarmReporter(Console(file=out, width=200), line.engine)
        line.bus.subscribe(reporter.on_event, [EventKind.ALARM, EventKind.CELL_STATE])
        await line.stations["mill"].close()  # the mill's link died while idle
        lot = asyncio.ensure_future(line.engine.run_lot(watch_plate(in_flight=1), parts=1))
        await until(lambda: bool(line.engine.open_prompts()))
        (prompt,) = line.engine.open_prompts()
        assert prompt.reason == "interrupt" and prompt.choices == ("unhold", "stop", "abort")
        text = out.getvalue()
        assert "alarm cell: STARVED: parts are waiting but their stations are unavailable (mill)" in text
        assert "cell held" in text
        line.engine.answer(prompt.id, "stop")  # what the terminal does at end of input
        summary = await lot
        assert summary.state == "stopped"

    run(main())
