"""The same store tests on both backends: a cell's SQLite journal and the shop's PostgreSQL store (after
a sync), read through one interface (:mod:`microfactory.shop.reading`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from microfactory.engine import schema as journal_schema
from microfactory.engine.journal import Journal
from microfactory.shop import schema as shop_schema
from microfactory.shop.reading import JournalStore, LotStore, ShopStore
from tests.shop.conftest import Shop, record_lot

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Path, Shop | None]]:
    journal = tmp_path / "c1.sqlite"
    record_lot(journal, "L1", partner="acme")
    record_lot(journal, "L2", partner="acme", parts=1, measured=20.01)
    if request.param == "sqlite":
        yield "sqlite", journal, None
        return
    shop: Shop = request.getfixturevalue("shop")
    shop.partner("acme")
    shop.cell("c1", "acme", stations={"mill": "acme", "inspect": "acme"})
    sync = shop.sync(journal, "c1", "acme")
    sync.sync()
    sync.close()
    yield "postgresql", journal, shop


def open_store(backend: tuple[str, Path, Shop | None]) -> tuple[LotStore, list[object]]:
    _, journal, shop = backend
    if shop is None:
        j = Journal(journal)
        return JournalStore(j, cell="c1", partner="acme"), [j]
    db = shop.connect("acme", login="cell:c1")
    return ShopStore(db, cell="c1"), [db]


def close(handles: list[object]) -> None:
    for h in handles:
        h.close()  # type: ignore[attr-defined]


def test_lots_genealogy_and_measurements_read_the_same(backend: tuple[str, Path, Shop | None]) -> None:
    store, handles = open_store(backend)
    try:
        lots = store.lots()
        assert [(lot.lot, lot.partner, lot.recipe, lot.parts, lot.state) for lot in lots] == [
            ("L1", "acme", "watch-plate", 2, "complete"), ("L2", "acme", "watch-plate", 1, "complete")]
        steps = store.genealogy("c1/L1-002")
        assert [(s.step, s.station, s.ok, s.verdict or None) for s in steps] == [
            ("mill", "mill", True, None), ("inspect", "inspect", True, "pass")]
        assert store.genealogy("c9/L1-002") == []
        assert store.measurements("c1/L2-001") == {"outline.width": 20.01}
    finally:
        close(handles)


def test_the_chain_verifies_and_an_edited_step_is_named(backend: tuple[str, Path, Shop | None]) -> None:
    _, journal, shop = backend
    store, handles = open_store(backend)
    try:
        result = store.verify()
        assert result.intact, result.problems
        assert result.records == 19  # 12 records of L1, 7 of L2
        local_last = Journal.open_existing(journal).verify().last_hash
        assert result.last_hash == local_last  # the same chain on both sides
    finally:
        close(handles)
    if shop is None:
        raw = sqlite3.connect(journal)
        raw.execute("UPDATE steps SET verdict = 'pass' WHERE key = 'L1/L1-001/mill/1/0'")
        raw.commit()
        raw.close()
    else:
        with psycopg.connect(shop.admin, autocommit=True) as admin:
            admin.execute("UPDATE steps SET verdict = 'pass' WHERE key = 'L1/L1-001/mill/1/0'")
    store, handles = open_store(backend)
    try:
        problems = store.verify().problems
        assert any("L1/L1-001/mill/1/0" in p and "verdict" in p for p in problems), problems
    finally:
        close(handles)


def test_the_schema_is_current_and_a_second_migration_changes_nothing(
        backend: tuple[str, Path, Shop | None]) -> None:
    kind, journal, shop = backend
    store, handles = open_store(backend)
    try:
        expected = journal_schema.VERSION if kind == "sqlite" else shop_schema.VERSION
        assert store.schema_version() == expected
    finally:
        close(handles)
    if shop is None:
        db, migrated = journal_schema.open_for_writing(str(journal))
        db.close()
    else:
        migrated = shop_schema.migrate(shop.admin)
        with psycopg.connect(shop.admin) as admin:
            applied = admin.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
        assert [r[0] for r in applied] == list(range(1, shop_schema.VERSION + 1))
    assert migrated is None


def test_a_store_newer_than_this_microfactory_is_refused(backend: tuple[str, Path, Shop | None]) -> None:
    from microfactory.errors import ConfigError

    _, journal, shop = backend
    if shop is None:
        raw = sqlite3.connect(journal)
        raw.execute(f"PRAGMA user_version = {journal_schema.VERSION + 1}")
        raw.commit()
        raw.close()
        with pytest.raises(ConfigError, match="newer than this microfactory"):
            Journal(journal)
    else:
        with psycopg.connect(shop.admin, autocommit=True) as admin:
            admin.execute("INSERT INTO schema_version (version, what) VALUES (%s, 'from the future')",
                          (shop_schema.VERSION + 1,))
        with pytest.raises(ConfigError, match="newer than this microfactory"):
            shop_schema.migrate(shop.admin)
