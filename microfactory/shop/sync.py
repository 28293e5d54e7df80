"""Ship a cell's journal to the shop store: idempotent, resumable, chain-checked on arrival.

The cell's SQLite journal stays the source of truth (a cell runs on while the shop server is down). Its
audit trail is the outbox: every record has the journal's own key (``seq``) and hash. A sync pass, in
one PostgreSQL transaction:

1. locks the cell's row of ``cell_sync`` (``FOR UPDATE``: two syncs of one cell never interleave) and
   reads how far the store has the chain (``high_water``, ``last_hash``);
2. reads the next records from the journal and checks that they continue that chain (the first one's
   hash is ``sha256(last_hash + body)``, seqs without a gap): a journal that is not the one the store
   follows is refused (:class:`SyncRefused`), never merged;
3. inserts them into ``journal_records`` with ``ON CONFLICT (cell, seq) DO NOTHING``, each under the
   partner its lot belongs to, and refreshes the partner's tables (lots, parts, steps, measurements…)
   from the journal's current rows (upserts keyed by the journal's keys: replaying them is harmless);
4. moves ``high_water`` and ``last_hash`` in the same transaction.

A pass killed anywhere (the cell, the server, the network) commits all of it or none of it; the next
pass starts from what the store has. So every record arrives exactly once, in order, with its chain.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import psycopg

from microfactory.engine import audit
from microfactory.engine import schema as journal_schema
from microfactory.errors import MicrofactoryError
from microfactory.shop.chain import relink
from microfactory.shop.store import StoreUnavailable, connect

log = logging.getLogger("microfactory.shop.sync")

#: Records per transaction: large enough to amortise the round trips, small enough to commit often.
BATCH = 2000
#: Audit ``what``s whose record names a lot directly.
LOT_RECORDS = frozenset({"run", "run_end", "part", "intent"})


class SyncRefused(MicrofactoryError):
    """The journal does not continue the chain the store holds for this cell (another file, or an
    edited one): nothing is shipped."""


@dataclass
class Shipped:
    """What one :meth:`CellSync.sync` did: records shipped, the store's position after it."""

    records: int = 0
    high_water: int = 0
    last_hash: str = audit.GENESIS
    by_partner: dict[str, int] = field(default_factory=dict)


def _at(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


@dataclass
class _Batch:
    """The records of one pass, and what they touch, read from the journal in one read transaction."""

    records: list[tuple[int, str, str, str]]
    lots: set[str] = field(default_factory=set)
    ended: set[str] = field(default_factory=set)
    parts: set[str] = field(default_factory=set)
    steps: set[str] = field(default_factory=set)
    event_rows: list[tuple[int, int]] = field(default_factory=list)


class CellSync:
    """Ships one cell's journal (``journal``: its SQLite file) to the store at ``dsn``, logged in as the
    cell. ``cell`` is the cell's id, ``owner`` the partner owning it (records about no lot go to it)."""

    def __init__(self, journal: str | Path, dsn: str, *, cell: str, owner: str, batch: int = BATCH) -> None:
        self.journal = Path(journal)
        self.dsn = dsn
        self.cell = cell
        self.owner = owner
        self.batch = batch
        self._db: psycopg.Connection | None = None

    # -- the store side ---------------------------------------------------------------------------
    def _store(self) -> psycopg.Connection:
        if self._db is None or self._db.closed or self._db.broken:
            self._db = connect(self.dsn, self.owner)
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def position(self) -> tuple[int, str]:
        """How far the store holds this cell's chain: (last seq, its hash)."""
        row = self._store().execute("SELECT high_water, last_hash FROM cell_sync WHERE cell = %s",
                                    (self.cell,)).fetchone()
        self._store().rollback()
        if row is None:
            raise SyncRefused(f"cell {self.cell!r} is not registered in the shop store (or this login is "
                              "not the cell's)", hint=f"the shop administrator runs: microfactory shop cell "
                                                      f"add {self.cell} --partner PARTNER")
        return int(row[0]), str(row[1])

    def sync(self) -> Shipped:
        """Ship everything the store does not have yet, in passes of :attr:`batch` records."""
        total = Shipped()
        while True:
            done = self._pass()
            total.records += done.records
            total.high_water, total.last_hash = done.high_water, done.last_hash
            for partner, n in done.by_partner.items():
                total.by_partner[partner] = total.by_partner.get(partner, 0) + n
            if done.records < self.batch:
                return total

    def _pass(self) -> Shipped:
        try:
            db = self._store()
            with db.transaction():
                row = db.execute("SELECT high_water, last_hash FROM cell_sync WHERE cell = %s FOR UPDATE",
                                 (self.cell,)).fetchone()
                if row is None:
                    raise SyncRefused(f"cell {self.cell!r} is not registered in the shop store (or this "
                                      "login is not the cell's)",
                                      hint=f"microfactory shop cell add {self.cell} --partner PARTNER")
                high, last = int(row[0]), str(row[1])
                if not self.journal.exists():
                    return Shipped(0, high, last)  # the cell has written nothing yet
                local = journal_schema.open_read_only(self.journal)
                try:
                    batch = self._read(local, high)
                    self._check_chain(batch.records, high, last)
                    shipped = self._ship(db, local, batch)
                finally:
                    local.close()
                if batch.records:
                    high, last = batch.records[-1][0], batch.records[-1][3]
                    db.execute("UPDATE cell_sync SET high_water = %s, last_hash = %s, synced_at = now() "
                               "WHERE cell = %s", (high, last, self.cell))
            return Shipped(len(batch.records), high, last, shipped)
        except psycopg.OperationalError as exc:
            self.close()
            raise StoreUnavailable(f"the shop store went away during a sync of {self.cell}: "
                                   f"{str(exc).strip()}", hint="the next sync resumes where the store "
                                                               "stopped") from None

    # -- the journal side -------------------------------------------------------------------------
    def _read(self, local: sqlite3.Connection, after: int) -> _Batch:
        rows = local.execute("SELECT seq, what, body, hash FROM audit WHERE seq > ? ORDER BY seq LIMIT ?",
                             (after, self.batch)).fetchall()
        batch = _Batch([(int(r[0]), str(r[1]), str(r[2]), str(r[3])) for r in rows])
        for _seq, what, body, _digest in batch.records:
            record = json.loads(body)
            if what in ("run", "run_end"):
                batch.lots.add(record["lot"])
                if what == "run_end":
                    batch.ended.add(record["lot"])
            elif what == "part":
                batch.parts.add(record["part"])
            elif what in ("intent", "done"):
                batch.steps.add(record["key"])
            elif what == "change":
                target = {"runs": batch.lots, "parts": batch.parts, "steps": batch.steps}.get(record["table"])
                if target is not None:
                    target.add(str(record["key"]))
            if isinstance(record.get("events"), dict):
                first, last = record["events"]["rows"]
                batch.event_rows.append((int(first), int(last)))
        return batch

    def _check_chain(self, records: list[tuple[int, str, str, str]], high: int, last: str) -> None:
        prev, expected = last, high + 1
        for seq, what, body, digest in records:
            if seq != expected:
                raise SyncRefused(f"{self.journal}: audit record {expected} is missing (next is {seq}); "
                                  f"the store holds cell {self.cell} up to {high}",
                                  hint=f"microfactory journal {self.journal} --verify")
            if audit.chain(prev, body) != digest:
                raise SyncRefused(f"{self.journal}: audit record {seq} ({what}) does not continue the chain "
                                  f"the store holds for cell {self.cell} (up to record {high}): it is "
                                  "another journal, or it was edited; nothing was shipped",
                                  hint=f"microfactory journal {self.journal} --verify; a cell keeps one "
                                       "journal for its life in the shop")
            prev, expected = digest, seq + 1

    # -- shipping ---------------------------------------------------------------------------------
    def _ship(self, db: psycopg.Connection, local: sqlite3.Connection, batch: _Batch) -> dict[str, int]:
        partners = {str(r[0]): (r[1] or self.owner) for r in local.execute("SELECT lot, partner FROM runs")}
        part_lot = {str(r[0]): str(r[1]) for r in local.execute("SELECT part, lot FROM parts")}

        def partner_of(what: str, record: dict[str, Any]) -> str:
            if what in LOT_RECORDS:
                return partners.get(str(record["lot"]), self.owner)
            if what == "done":
                return partners.get(str(record["key"]).split("/", 1)[0], self.owner)
            if what == "change":
                key = str(record["key"])
                lot = {"runs": key, "parts": part_lot.get(key, ""), "steps": key.split("/", 1)[0]}
                return partners.get(lot.get(record["table"], ""), self.owner)
            return self.owner

        grouped: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        for seq, what, body, digest in batch.records:
            grouped[partner_of(what, json.loads(body))].append((self.cell, seq, what, body, digest))
        owners = {str(r[0]): str(r[1]) for r in db.execute(
            "SELECT station, partner FROM stations WHERE cell = %s", (self.cell,))}
        rows = _Rows(self.cell, self.owner, partners, owners)
        rows.read(local, batch)
        for partner in sorted(set(grouped) | rows.partners()):
            db.execute("SELECT set_config('microfactory.partner', %s, true)", (partner,))
            with db.cursor() as cur:
                if grouped.get(partner):
                    cur.executemany("INSERT INTO journal_records (partner, cell, seq, what, body, hash) "
                                    f"VALUES ('{_quote(partner)}', %s, %s, %s, %s, %s) "
                                    "ON CONFLICT (cell, seq) DO NOTHING", grouped[partner])
                rows.write(cur, partner)
                relink(cur, self.cell)
        db.execute("SELECT set_config('microfactory.partner', %s, true)", (self.owner,))
        return {p: len(r) for p, r in grouped.items()}


def _quote(text: str) -> str:
    return text.replace("'", "''")


class _Rows:
    """The partner tables' rows for one pass, read from the journal's current rows (``_Rows.read``) and
    upserted per partner (``_Rows.write``)."""

    UPSERTS: ClassVar[dict[str, str]] = {
        "lots": ("INSERT INTO lots (cell, lot, partner, recipe, version, parts, state, started_at, ended_at, "
                 "recipe_sha256, operator) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (cell, lot) "
                 "DO UPDATE SET state = excluded.state, ended_at = excluded.ended_at"),
        "parameter_values": ("INSERT INTO parameter_values (cell, lot, name, partner, value) "
                             "VALUES (%s,%s,%s,%s,%s) ON CONFLICT DO NOTHING"),
        "recipes": ("INSERT INTO recipes (partner, sha256, recipe, version) VALUES (%s,%s,%s,%s) "
                    "ON CONFLICT DO NOTHING"),
        "lot_reports": ("INSERT INTO lot_reports (cell, lot, partner, state, summary) VALUES "
                        "(%s,%s,%s,%s,%s) "
                        "ON CONFLICT (cell, lot) DO UPDATE SET state = excluded.state, summary = "
                        "excluded.summary"),
        "machine_energy": ("INSERT INTO machine_energy (cell, lot, station, owner, partner, busy_s, "
                           "energy_wh, "
                           "steps, ended_at) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT DO NOTHING"),
        "parts": ("INSERT INTO parts (cell, part, partner, lot, part_uid, state, reworks, energy_j, reason) "
                  "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (cell, part) DO UPDATE SET "
                  "state = excluded.state, reworks = excluded.reworks, energy_j = excluded.energy_j, "
                  "reason = excluded.reason"),
        "programs": "INSERT INTO programs (partner, sha256, body) VALUES (%s,%s,%s) ON CONFLICT DO NOTHING",
        "steps": ("INSERT INTO steps (cell, key, partner, lot, part, part_uid, step, station, attempt, "
                  "intent_at, done_at, busy_s, ok, verdict, program_sha256) VALUES (%s,%s,%s,%s,%s,"
                  "coalesce((SELECT l.part_uid FROM part_links l WHERE l.cell = %s AND l.part = %s), %s),"
                  "%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (cell, key) DO UPDATE SET done_at = "
                  "excluded.done_at, "
                  "busy_s = excluded.busy_s, ok = excluded.ok, verdict = excluded.verdict"),
        "step_data": ("INSERT INTO step_data (cell, key, partner, data) VALUES (%s,%s,%s,%s) "
                      "ON CONFLICT (cell, key) DO UPDATE SET data = excluded.data"),
        "measurements": ("INSERT INTO measurements (cell, key, name, partner, part_uid, measured, nominal, "
                         "tol, "
                         "ok) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT DO NOTHING"),
        "image_hashes": ("INSERT INTO image_hashes (cell, key, partner, part_uid, sha256) VALUES "
                         "(%s,%s,%s,%s,%s) "
                         "ON CONFLICT DO NOTHING"),
        "machine_time": ("INSERT INTO machine_time (cell, key, station, owner, partner, started_at, "
                         "ended_at, "
                         "busy_s, ok) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (cell, key) DO UPDATE "
                         "SET ended_at = excluded.ended_at, busy_s = excluded.busy_s, ok = excluded.ok"),
        "machine_alarms": ("INSERT INTO machine_alarms (cell, event_row, station, owner, partner, code, "
                           "text, "
                           "t_s) VALUES (%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT DO NOTHING"),
    }

    def __init__(self, cell: str, owner: str, partners: dict[str, str], owners: dict[str, str]) -> None:
        self.cell, self.owner, self.lot_partner, self.station_owner = cell, owner, partners, owners
        self.by_partner: dict[str, dict[str, list[tuple[Any, ...]]]] = defaultdict(lambda: defaultdict(list))

    def partners(self) -> set[str]:
        return set(self.by_partner)

    def _add(self, partner: str, table: str, row: tuple[Any, ...]) -> None:
        self.by_partner[partner][table].append(row)

    def _partner(self, lot: str) -> str:
        return self.lot_partner.get(lot, self.owner)

    def _owner(self, station: str) -> str:
        return self.station_owner.get(station, self.owner)

    def read(self, local: sqlite3.Connection, batch: _Batch) -> None:
        for lot in sorted(batch.lots):
            self._lot(local, lot, ended=lot in batch.ended)
        for part in sorted(batch.parts):
            for r in local.execute("SELECT part, lot, state, reworks, energy_j, reason FROM parts WHERE "
                                   "part = ?",
                                   (part,)):
                p = self._partner(r[1])
                self._add(p, "parts", (self.cell, r[0], p, r[1], f"{self.cell}/{r[0]}", r[2], r[3], r[4],
                                       r[5]))
        for key in sorted(batch.steps):
            self._step(local, key)
        for first, last in batch.event_rows:
            self._alarms(local, first, last)

    def _lot(self, local: sqlite3.Connection, lot: str, *, ended: bool) -> None:
        row = local.execute("SELECT lot, recipe, version, parts, state, started_at, ended_at, recipe_sha256, "
                            "user, parameters, summary FROM runs WHERE lot = ?", (lot,)).fetchone()
        if row is None:
            return
        p = self._partner(lot)
        self._add(p, "lots", (self.cell, lot, p, row[1], row[2], row[3], row[4], _at(row[5]), _at(row[6]),
                              row[7], row[8]))
        for name, value in sorted(json.loads(row[9] or "{}").items()):
            self._add(p, "parameter_values", (self.cell, lot, name, p, json.dumps(value, default=str)))
        if row[7]:
            self._add(p, "recipes", (p, row[7], row[1], row[2]))
        if ended and row[10]:
            summary = json.loads(row[10])
            self._add(p, "lot_reports", (self.cell, lot, p, row[4] or "", json.dumps(summary)))
            stations = summary.get("stations") if isinstance(summary, dict) else None
            for sid, use in sorted((stations or {}).items()):
                self._add(p, "machine_energy", (self.cell, lot, sid, self._owner(sid), p,
                                                float(use.get("busy_s", 0.0)), float(use.get("energy_wh",
                                                                                             0.0)),
                                                int(use.get("steps", 0)), _at(row[6])))

    def _step(self, local: sqlite3.Connection, key: str) -> None:
        r = local.execute("SELECT key, lot, part, step, station, attempt, request, intent_s, intent_at, "
                          "done_s, "
                          "ok, verdict, data FROM steps WHERE key = ?", (key,)).fetchone()
        if r is None:
            return
        lot, part, station = str(r[1]), str(r[2]), r[4]
        p, uid = self._partner(lot), f"{self.cell}/{part}"
        intent_at = _at(r[8])
        done_at = intent_at + timedelta(seconds=float(r[9]) - float(r[7])) if intent_at and r[9] is not None \
            else None
        data = json.loads(r[12]) if r[12] else {}
        busy = data.get("duration_s") if isinstance(data, dict) else None
        ok = None if r[10] is None else bool(r[10])
        body = local.execute("SELECT body FROM requests WHERE sha256 = ?", (r[6],)).fetchone()
        if body is not None:
            self._add(p, "programs", (p, r[6], body[0]))
        self._add(p, "steps", (self.cell, key, p, lot, part, self.cell, part, uid, r[3], station, r[5],
                               intent_at, done_at, busy, ok, r[11], r[6]))
        if r[12] is not None:
            self._add(p, "step_data", (self.cell, key, p, r[12]))
        self._measurements(p, key, uid, data)
        if station:
            self._add(p, "machine_time", (self.cell, key, station, self._owner(station), p, intent_at,
                                          done_at,
                                          busy, ok))

    def _measurements(self, partner: str, key: str, uid: str, data: dict[str, Any]) -> None:
        measured = data.get("measurements") if isinstance(data, dict) else None
        if isinstance(measured, dict):
            for f in measured.get("features") or []:
                self._add(partner, "measurements", (self.cell, key, str(f.get("feature")), partner, uid,
                                                    f.get("measured"), f.get("nominal"), f.get("tol"),
                                                    f.get("ok")))
        if isinstance(data, dict) and isinstance(data.get("sha256"), str):
            self._add(partner, "image_hashes", (self.cell, key, partner, uid, data["sha256"]))

    def _alarms(self, local: sqlite3.Connection, first: int, last: int) -> None:
        for rowid, source, t, body in local.execute(
                "SELECT rowid, source, t, data FROM events WHERE rowid BETWEEN ? AND ? AND kind = 'alarm'",
                (first, last)):
            data = json.loads(body)
            owner = self._owner(str(source))
            lot = str(data.get("lot", ""))
            self._add(self._partner(lot) if lot else owner, "machine_alarms",
                      (self.cell, rowid, source, owner, self._partner(lot) if lot else owner,
                       str(data.get("code", "")), str(data.get("text", "")), t))

    def write(self, cur: psycopg.Cursor[Any], partner: str) -> None:
        tables = self.by_partner.get(partner, {})
        for table, sql_text in self.UPSERTS.items():
            if tables.get(table):
                cur.executemany(sql_text, tables[table])


def follow(syncs: Iterable[CellSync], stop: threading.Event, *, every_s: float = 0.25,
           on_pass: Callable[[CellSync, bool], None] | None = None, final_retry_s: float = 0.0) -> None:
    """Sync each cell every ``every_s`` until ``stop`` is set, then once more (retried for up to
    ``final_retry_s`` while the store is unreachable); an unreachable store is logged once per outage and
    retried (the cells keep their journals meanwhile). ``on_pass`` hears each pass (the cell, whether it
    reached the store)."""
    cells = list(syncs)
    down = False
    deadline: float | None = None
    while True:
        final = stop.is_set()
        if final and deadline is None:
            deadline = time.monotonic() + final_retry_s
        for cell in cells:
            try:
                cell.sync()
                ok = True
                if down:
                    log.warning("shop store reachable again: %s caught up", cell.cell)
                    down = False
            except StoreUnavailable as exc:
                ok = False
                if not down:
                    log.warning("%s", exc)
                down = True
            if on_pass is not None:
                on_pass(cell, ok)
        if final and (not down or time.monotonic() >= (deadline or 0.0)):
            if down:
                log.warning("the shop store is still unreachable: the journal's last records are not "
                            "shipped yet; `microfactory shop sync` ships them")
            return
        if final:
            time.sleep(every_s)
        else:
            stop.wait(every_s)
