"""One read interface over both stores: a cell's SQLite journal and the shop's PostgreSQL store.

What a report, the genealogy view or a test asks of "the store" — the lots, one part's steps in order,
its measurements, the schema version, whether the chain verifies — is the same question on an embedded
cell and on a shop; :class:`JournalStore` answers it from the journal, :class:`ShopStore` from
PostgreSQL as one partner sees it (row-level security decides what that is). A part is named by its
shop-wide id ``cell/part`` (:func:`part_uid`), which the value chain keeps across cells.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import psycopg

from microfactory.engine import audit
from microfactory.engine import schema as journal_schema
from microfactory.engine.journal import Journal
from microfactory.shop import schema as shop_schema
from microfactory.shop.verify import verify_cell


def part_uid(cell: str, part: str) -> str:
    """A part's shop-wide identity: the cell it was born in and its id there."""
    return f"{cell}/{part}"


@dataclass(frozen=True)
class LotRow:
    cell: str
    lot: str
    partner: str
    recipe: str
    version: str
    parts: int
    state: str


@dataclass(frozen=True)
class StepRow:
    """One step of a part's genealogy (no program, no raw data: those stay with their partner)."""

    cell: str
    partner: str
    key: str
    step: str
    station: str
    ok: bool | None
    verdict: str


class LotStore(Protocol):
    def lots(self) -> list[LotRow]: ...
    def genealogy(self, uid: str) -> list[StepRow]: ...
    def measurements(self, uid: str) -> dict[str, float]: ...
    def schema_version(self) -> int: ...
    def verify(self) -> audit.Verification: ...


class JournalStore:
    """The embedded store: one cell's journal; every row is the cell's own (``partner`` its default)."""

    def __init__(self, journal: Journal, *, cell: str, partner: str = "") -> None:
        self.journal, self.cell, self.partner = journal, cell, partner

    def lots(self) -> list[LotRow]:
        return [LotRow(self.cell, r["lot"], r["partner"] or self.partner, r["recipe"], r["version"],
                       r["parts"],
                       r["state"] or "") for r in self.journal.runs()]

    def genealogy(self, uid: str) -> list[StepRow]:
        cell, _, part = uid.partition("/")
        if cell != self.cell:
            return []
        partners = {r["lot"]: r["partner"] or self.partner for r in self.journal.runs()}
        return [StepRow(self.cell, partners.get(s.lot, self.partner), s.key, s.step, s.station or "", s.ok,
                        s.verdict or "") for s in self.journal.steps(part)]

    def measurements(self, uid: str) -> dict[str, float]:
        cell, _, part = uid.partition("/")
        out: dict[str, float] = {}
        if cell != self.cell:
            return out
        for s in self.journal.steps(part):
            for f in (s.data.get("measurements") or {}).get("features") or []:
                out[str(f["feature"])] = float(f["measured"])
        return out

    def schema_version(self) -> int:
        rows = self.journal.execute("PRAGMA user_version")
        return int(rows[0][0]) if rows else journal_schema.VERSION

    def verify(self) -> audit.Verification:
        return self.journal.verify()


class ShopStore:
    """The shop store as ``partner`` sees it through ``db`` (a connection from
    :func:`~microfactory.shop.store.connect`); ``cell`` names the cell whose chain :meth:`verify` checks
    (then ``db`` must be that cell's login)."""

    def __init__(self, db: psycopg.Connection, *, cell: str = "") -> None:
        self.db, self.cell = db, cell

    def lots(self) -> list[LotRow]:
        rows = self.db.execute("SELECT cell, lot, partner, recipe, version, parts, coalesce(state, '') "
                               "FROM lots ORDER BY started_at, cell, lot").fetchall()
        return [LotRow(*r) for r in rows]

    def genealogy(self, uid: str) -> list[StepRow]:
        rows = self.db.execute("SELECT cell, partner, key, step, coalesce(station, ''), ok, "
                               "coalesce(verdict, '') "
                               "FROM steps WHERE part_uid = %s ORDER BY intent_at, cell, key",
                               (uid,)).fetchall()
        return [StepRow(*r) for r in rows]

    def measurements(self, uid: str) -> dict[str, float]:
        rows = self.db.execute("SELECT name, measured FROM measurements WHERE part_uid = %s ORDER BY cell, "
                               "key",
                               (uid,)).fetchall()
        return {str(r[0]): float(r[1]) for r in rows}

    def schema_version(self) -> int:
        return shop_schema.version(self.db)

    def verify(self) -> audit.Verification:
        return verify_cell(self.db, self.cell)

    def report(self, lot: str) -> dict[str, object]:
        row = self.db.execute("SELECT summary FROM lot_reports WHERE lot = %s", (lot,)).fetchone()
        return dict(row[0]) if row else {}
