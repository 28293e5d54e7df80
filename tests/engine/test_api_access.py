"""The API enforces the user book: once a journal has users, a lot needs a live session with the role."""

from __future__ import annotations

from pathlib import Path

import pytest
from engine_support import DURATIONS, POWER, run, watch_plate

from microfactory.access.users import Role, UserBook
from microfactory.cell import Cell, CellInfo, StationConfig
from microfactory.clock import ScaledClock
from microfactory.engine.api import Controller
from microfactory.engine.fakes import FakeStation
from microfactory.engine.journal import Journal
from microfactory.errors import AccessDenied
from microfactory.events import EventBus


def users(db: Path) -> None:
    j = Journal(db)
    book = UserBook(j)
    first = book.first_admin()
    admin = book.change_password(book.sign_in("admin", first), first, "admin-password-2")
    for uid, role in (("olga", Role.OPERATOR), ("quinn", Role.QUALITY)):
        book.add(admin, uid, uid.title(), role, "initial-pass-1")
        book.change_password(book.sign_in(uid, "initial-pass-1"), "initial-pass-1", f"{uid}-password-1")
    j.close()


def test_a_lot_needs_a_signed_in_user_with_the_role(tmp_path: Path) -> None:
    db = tmp_path / "runs.sqlite"
    users(db)
    clock = ScaledClock(500)
    bus = EventBus(clock)
    stations = {
        s: FakeStation(s, bus=bus, clock=clock, duration_s=d, power=POWER[s]) for s, d in DURATIONS.items()
    }
    cell = Cell(cell=CellInfo(id="bench"), stations=[StationConfig(id=s, kind="fake") for s in DURATIONS])

    async def main() -> None:
        async with Controller(cell, stations=stations, bus=bus, clock=clock, db=db) as ctl:
            with pytest.raises(AccessDenied, match="needs a signed-in user"):
                await ctl.run_lot(watch_plate(), parts=1, lot_id="A")
            ctl.sign_in("quinn", "quinn-password-1")
            with pytest.raises(AccessDenied, match=r"'quinn' \(quality\) may not run a lot"):
                await ctl.run_lot(watch_plate(), parts=1, lot_id="A")
            ctl.sign_in("olga", "olga-password-1")
            summary = await ctl.run_lot(watch_plate(), parts=1, lot_id="A")
            assert summary.passed == 1
            assert [(r["lot"], r["user"]) for r in ctl.journal.runs()] == [("A", "olga")]

    run(main())
