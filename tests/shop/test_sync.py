"""Shipping a cell's journal: exactly once, in order, chain-checked — also when the cell is killed mid-sync,
the server is killed mid-sync, or the network is gone while the cell keeps working."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest

from microfactory.engine.journal import Journal
from microfactory.shop.cable import Cable
from microfactory.shop.localserver import LocalServer
from microfactory.shop.reading import ShopStore
from microfactory.shop.store import StoreUnavailable
from microfactory.shop.sync import CellSync, SyncRefused, follow
from tests.shop.conftest import Shop, record_lot


@pytest.fixture
def cell(shop: Shop) -> Shop:
    shop.partner("acme")
    shop.partner("bolt")
    shop.cell("c1", "acme", stations={"mill": "acme", "inspect": "acme"}, pooled=("mill",))
    return shop


def local_records(journal: Path) -> int:
    j = Journal.open_existing(journal)
    try:
        return j.verify().records
    finally:
        j.close()


def exactly_once(shop: Shop, journal: Path) -> None:
    """Every record of the journal is in the store once, in order, and the chains agree on both sides."""
    with psycopg.connect(shop.admin) as admin:
        seqs = [r[0] for r in admin.execute("SELECT seq FROM journal_records WHERE cell = 'c1' ORDER BY seq")]
        steps = admin.execute("SELECT count(*), count(DISTINCT key) FROM steps WHERE cell = 'c1'").fetchone()
    assert seqs == list(range(1, local_records(journal) + 1))
    local = Journal.open_existing(journal)
    local_steps = len(local.steps())
    local_verdict = local.verify()
    local.close()
    assert steps == (local_steps, local_steps)
    db = shop.connect("acme", login="cell:c1")
    remote = ShopStore(db, cell="c1").verify()
    db.close()
    assert remote.intact, remote.problems
    assert local_verdict.intact and remote.last_hash == local_verdict.last_hash


def test_a_second_sync_ships_nothing_and_a_new_lot_only_its_records(cell: Shop, tmp_path: Path) -> None:
    journal = tmp_path / "c1.sqlite"
    record_lot(journal, "L1", partner="acme")
    sync = cell.sync(journal, "c1", "acme")
    assert sync.sync().records == 12
    assert sync.sync().records == 0
    record_lot(journal, "L2", partner="bolt", parts=1)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):  # c1 may not file bolt's lots yet
        sync.sync()
    from microfactory.shop import store

    store.serve(cell.admin, "c1", "bolt")
    shipped = sync.sync()
    assert (shipped.records, shipped.by_partner) == (7, {"bolt": 7})
    sync.close()
    exactly_once(cell, journal)


def test_a_journal_that_does_not_continue_the_stores_chain_is_refused(cell: Shop, tmp_path: Path) -> None:
    record_lot(tmp_path / "c1.sqlite", "L1", partner="acme")
    sync = cell.sync(tmp_path / "c1.sqlite", "c1", "acme")
    sync.sync()
    sync.close()
    record_lot(tmp_path / "other.sqlite", "X1", partner="acme", parts=3)  # another file, longer chain
    impostor = cell.sync(tmp_path / "other.sqlite", "c1", "acme")
    with pytest.raises(SyncRefused, match="does not continue the chain"):
        impostor.sync()
    impostor.close()
    exactly_once(cell, tmp_path / "c1.sqlite")


def hold_table(shop: Shop) -> psycopg.Connection:
    """An administrator's transaction locking ``lot_reports``: a sync that reaches it waits, mid-transaction
    (its journal records already inserted, not committed)."""
    admin = psycopg.connect(shop.admin)
    admin.execute("LOCK TABLE lot_reports IN ACCESS EXCLUSIVE MODE")
    return admin


def wait_for_blocked_sync(shop: Shop, proc: subprocess.Popen[bytes] | None = None,
                          timeout_s: float = 60.0) -> None:
    role = f"{shop.db}_cell_c1"
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(shop.admin, autocommit=True) as admin:
        while True:
            row = admin.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = %s "
                                "AND wait_event_type = 'Lock'", (role,)).fetchone()
            if row and row[0] >= 1:
                return
            if proc is not None and proc.poll() is not None:
                raise AssertionError(f"the sync ended before the lock: {proc.communicate()}")
            assert time.monotonic() < deadline, "the sync never reached the locked table"
            time.sleep(0.02)  # polling the server's activity view


def test_a_cell_killed_mid_sync_leaves_nothing_half_shipped(cell: Shop, tmp_path: Path) -> None:
    journal = tmp_path / "c1.sqlite"
    record_lot(journal, "L1", partner="acme", parts=3)
    lock = hold_table(cell)
    proc = subprocess.Popen([str(Path(sys.executable).parent / "microfactory"), "shop", "sync",
                             "--db", str(journal), "--store", cell.logins["cell:c1"], "--cell", "c1",
                             "--partner", "acme"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for_blocked_sync(cell, proc)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        lock.rollback()
        lock.close()
    with psycopg.connect(cell.admin) as admin:
        assert admin.execute("SELECT count(*) FROM journal_records").fetchone() == (0,)
    sync = cell.sync(journal, "c1", "acme")
    assert sync.sync().records == 17
    sync.close()
    exactly_once(cell, journal)


def test_the_server_killed_mid_sync_loses_and_doubles_nothing(cell: Shop, tmp_path: Path,
                                                              pg_server: LocalServer) -> None:
    journal = tmp_path / "c1.sqlite"
    record_lot(journal, "L1", partner="acme")
    first = cell.sync(journal, "c1", "acme")
    first.sync()
    record_lot(journal, "L2", partner="acme", parts=3)
    outcome: list[BaseException] = []

    def ship() -> None:
        try:
            first.sync()
        except BaseException as exc:
            outcome.append(exc)

    lock = hold_table(cell)
    worker = threading.Thread(target=ship)
    worker.start()
    wait_for_blocked_sync(cell)
    pg_server.kill()
    worker.join(timeout=60)
    lock.close()
    assert len(outcome) == 1 and isinstance(outcome[0], StoreUnavailable)
    pg_server.start()
    assert first.sync().records == 17  # L2, from where the store stopped
    first.close()
    exactly_once(cell, journal)


def test_the_cell_works_on_while_the_network_is_gone_and_catches_up(cell: Shop, tmp_path: Path,
                                                                    pg_server: LocalServer) -> None:
    journal = tmp_path / "c1.sqlite"
    cable = Cable(pg_server.port)
    dsn = cell.logins["cell:c1"].replace(f":{pg_server.port}/", f":{cable.port}/")
    sync = CellSync(journal, dsn, cell="c1", owner="acme")
    passes: list[bool] = []
    failed, caught_up = threading.Event(), threading.Event()

    def on_pass(_: CellSync, ok: bool) -> None:
        passes.append(ok)
        if not ok:
            failed.set()
        elif failed.is_set():
            caught_up.set()

    stop = threading.Event()
    follower = threading.Thread(target=follow, args=([sync], stop),
                                kwargs={"every_s": 0.05, "on_pass": on_pass})
    record_lot(journal, "L1", partner="acme")
    follower.start()
    try:
        cable.unplug()
        record_lot(journal, "L2", partner="acme")  # the cell keeps its journal while the shop is away
        assert failed.wait(timeout=60)
        record_lot(journal, "L3", partner="acme")
        with psycopg.connect(cell.admin) as admin:
            row = admin.execute("SELECT high_water FROM cell_sync WHERE cell = 'c1'").fetchone()
        assert row is not None and row[0] < local_records(journal)
        cable.plug()
        assert caught_up.wait(timeout=60)
    finally:
        stop.set()
        follower.join(timeout=60)
        cable.unplug()
        sync.close()
    assert False in passes and passes[-1] is True
    exactly_once(cell, journal)
