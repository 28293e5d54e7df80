"""The run journal: SQLite in WAL mode, append-only, written before and after every step.

Why before *and* after: an intent row (with its idempotency key) is committed before a single byte goes
to the station, and the completion row after the station answers. A process that crashes between the two
leaves an intent without a completion — on restart that step is *in doubt* and must be asked about,
never silently run twice (:meth:`Journal.in_doubt`).

Tables: ``audit`` (every write below, hash-chained: :mod:`microfactory.engine.audit`),
``runs`` (one per lot run: recipe, version, cell), ``parts`` (final state per part),
``steps`` (intent/completion per key, with station, firmware, verdict and data: the genealogy of every
part), ``events`` (the bus, minus high-rate progress/status). Times are process seconds of the engine's
clock plus the wall time (UTC ISO) for people.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from microfactory.engine import audit, schema
from microfactory.errors import ConfigError, MicrofactoryError, StateError
from microfactory.events import Event, EventBus, EventKind

log = logging.getLogger("microfactory.engine.journal")

#: High-rate kinds the journal does not keep (they are live display only).
#: Also those whose content the journal keeps elsewhere: a step event's fields are its ``steps`` row, a
#: measurement is in its inspection step's data, a part event is a ``parts`` record (and its steps), the
#: energy is in each part's record and the lot summary.
SKIPPED_KINDS = frozenset({EventKind.STATION_PROGRESS.value, EventKind.STATION_STATUS.value,
                           EventKind.ENERGY.value, EventKind.STEP.value, EventKind.MEASUREMENT.value,
                           EventKind.PART.value})
#: Buffered bus events ride along with a record's transaction once this many are waiting (fewer,
#: larger batches: each costs its audit record a rowid range and a digest) …
EVENT_GROUP = 32
#: … and get a transaction of their own at this many, when no record write came.
EVENT_BATCH = 256


@dataclass(frozen=True)
class StepRecord:
    """One row of ``steps``: the genealogy of one step served to one part."""

    key: str
    lot: str
    part: str
    step: str
    station: str | None
    firmware: str | None
    attempt: int
    intent_s: float
    done_s: float | None
    ok: bool | None
    verdict: str | None
    data: dict[str, Any] = field(default_factory=dict)


#: A lot's steps by their key prefix ``lot/`` (a range of the primary key: no index of its own).
_LOT_KEYS = "key >= ? AND key < ? AND lot = ?"


def _lot_keys(lot: str) -> tuple[str, str, str]:
    return (f"{lot}/", f"{lot}0", lot)  # "0" is the character after "/"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _json(value: Any) -> str:
    return json.dumps(value, default=str, sort_keys=True)


class Journal:
    """Append-only SQLite journal. ``path`` ``":memory:"`` for tests; otherwise a file (WAL mode).

    Writers: the engine loop (steps, runs, parts) and the bus subscriber (events, from any thread);
    one lock serialises them on one connection. A new file is created only when the first record is
    written (a run that fails to connect leaves no empty journal behind); an existing one is checked
    (:mod:`~microfactory.engine.schema`: a foreign file is refused untouched, an older one migrated).

    Durability: runs, parts, steps, requests and the audit trail are committed with
    ``synchronous=FULL`` (the WAL is fsynced at each commit: a step's intent is on the disk before a
    byte goes to the station, so a power cut can never make a sent step look unsent). Bus events are
    display history: they are buffered and written in the transaction of the next record (or every
    :data:`EVENT_BATCH` events), so they cost no fsync of their own and at most the events since the
    last record are lost in a power cut.
    """

    @classmethod
    def open_existing(cls, path: str | Path) -> Journal:
        """Open a journal written by a run, read-only; a missing, empty or foreign file is a ConfigError
        and is left exactly as it was."""
        journal = cls.__new__(cls)
        journal._setup(str(path), None)
        journal._db = schema.open_read_only(path)
        journal._writable = False
        journal._last_hash = audit.last_hash(journal._db)
        return journal

    def __init__(self, path: str | Path, *, bus: EventBus | None = None) -> None:
        self._setup(str(path), bus)
        if self.path == ":memory:" or Path(self.path).exists():
            self._open()

    def _setup(self, path: str, bus: EventBus | None) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = None
        self._writable = True
        self._closed = False
        self._last_hash = audit.GENESIS
        self._pending: list[tuple[Any, ...]] = []
        self.migrated_from: int | None = None
        self._subscription = bus.subscribe(self._on_event) if bus is not None else None

    def _open(self) -> sqlite3.Connection:
        if self._db is None:
            self._db, self.migrated_from = schema.open_for_writing(self.path)
            self._last_hash = audit.last_hash(self._db)
            if self.migrated_from is not None:
                self.audited(lambda db: None, "migrate", {"from": self.migrated_from, "to": schema.VERSION,
                                                           "at": _now()})
        return self._db

    def audited(self, write: Callable[[sqlite3.Connection], None], what: str,
                record: dict[str, Any]) -> None:
        """Run ``write`` and append its audit record ``what`` in one transaction (for the modules that
        keep their own tables in this file: users, signatures, recipe releases)."""
        with self._lock:
            self._audited_locked(write, what, record)

    def _audited_locked(self, write: Callable[[sqlite3.Connection], None], what: str,
                        record: dict[str, Any]) -> None:
        if not self._writable:
            raise MicrofactoryError(f"{self.path} was opened read-only", hint="open it with Journal(path)")
        db = self._open()
        db.execute("BEGIN IMMEDIATE")
        try:
            write(db)
            now = len(self._pending) >= EVENT_GROUP or what in ("run_end", "events")
            batch = self._flush_events(db) if now else None
            digest = audit.append(db, self._last_hash, what, {**record, "events": batch} if batch else record)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._last_hash = digest

    def _record(self, sql: str, args: tuple[Any, ...], what: str, record: dict[str, Any]) -> None:
        """A write about runs, parts or steps, with its audit record in the same transaction."""
        def write(db: sqlite3.Connection) -> None:
            db.execute(sql, args)

        self.audited(write, what, record)

    def record_change(self, *, table: str, key: str, field: str, old: Any, new: Any, reason: str,
                      by: str, write: Callable[[sqlite3.Connection], None]) -> None:
        """A change to an existing record (21 CFR 11.10(e)): who, when, old and new value, and why,
        audited in the transaction that makes the change."""
        if not reason.strip():
            raise MicrofactoryError(f"changing {table} {key} {field} needs a reason",
                                    hint="say why the record changes (--reason TEXT)")
        self.audited(write, "change", {"table": table, "key": key, "field": field, "old": old, "new": new,
                                        "reason": reason, "by": by, "at": _now()})

    def listen(self, bus: EventBus) -> None:
        """Keep ``bus``'s events (when the journal was made before the bus)."""
        if self._subscription is not None:
            self._subscription.cancel()
        self._subscription = bus.subscribe(self._on_event)

    def write_unaudited(self, sql: str, args: tuple[Any, ...] = ()) -> None:
        """A write that is not a record (session bookkeeping, the failed-password counter)."""
        with self._lock:
            if not self._writable:
                raise MicrofactoryError(f"{self.path} was opened read-only",
                                        hint="open it with Journal(path)")
            db = self._open()
            db.execute(sql, args)

    def execute(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Read rows (for the modules that keep their own tables in this file: users, signatures)."""
        return self._read(sql, args)

    @property
    def writable(self) -> bool:
        return self._writable

    def verify(self) -> audit.Verification:
        """Recompute the audit chain and compare it with the tables (see :mod:`~.audit`)."""
        with self._lock:
            if self._db is None:
                return audit.Verification()
            return audit.verify(self._db)

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            if self._db is None:
                return []
            return list(self._db.execute(sql, args).fetchall())

    # -- runs and parts ---------------------------------------------------------------------------
    def begin_run(self, lot: str, *, recipe: str, version: str, cell: str, parts: int,
                  parameters: dict[str, Any], t: float, recipe_sha256: str = "", user: str = "",
                  recipe_path: str = "", cell_path: str = "", partner: str = "") -> None:
        """Record a new lot. A lot id already in the journal is refused (StateError), never replaced:
        the first run's record is evidence. ``partner`` is the company the lot is run for (the shop
        store files its records under it; empty: the cell's own)."""
        at = _now()
        record = {"lot": lot, "recipe": recipe, "version": version, "cell": cell, "parts": parts,
                  "parameters": parameters, "t": t, "at": at, "recipe_sha256": recipe_sha256, "user": user,
                  "recipe_path": recipe_path, "cell_path": cell_path}
        if partner:
            record["partner"] = partner

        def write(db: sqlite3.Connection) -> None:
            row = db.execute("SELECT started_at, state FROM runs WHERE lot = ?", (lot,)).fetchone()
            if row is not None:
                raise StateError(f"lot {lot!r} is already in the journal {self.path} (started {row[0]}, "
                                 f"{row[1] or 'never ended'}); a lot id is never reused",
                                 hint="give a new lot id; an unfinished lot is resumed or closed "
                                      "(microfactory resume --db PATH)")
            db.execute("INSERT INTO runs (lot, recipe, version, cell, parts, parameters, started_s, "
                       "started_at, recipe_sha256, user, recipe_path, cell_path, partner) "
                       "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                       (lot, recipe, version, cell, parts, _json(parameters), t, at, recipe_sha256, user,
                        recipe_path, cell_path, partner or None))

        self.audited(write, "run", record)

    def end_run(self, lot: str, *, state: str, summary: dict[str, Any], t: float, reason: str = "",
                by: str = "") -> None:
        """Record how a lot ended (``reason`` and ``by`` when it was closed by a person)."""
        at = _now()
        record: dict[str, Any] = {"lot": lot, "state": state, "summary": summary, "t": t, "at": at}
        if reason:
            record.update(closed_reason=reason, by=by)
        self._record("UPDATE runs SET ended_s = ?, ended_at = ?, state = ?, summary = ?, closed_reason = ? "
                     "WHERE lot = ?", (t, at, state, _json(summary), reason or None, lot), "run_end", record)

    def part(self, part: str, lot: str, state: str, *, reworks: int, energy_j: float, t: float,
             reason: str = "", step: str = "", rework_steps: dict[str, int] | None = None) -> None:
        """Record a part's state; ``reason`` says why it was scrapped (or left unfinished); ``step`` is
        where it goes next and ``rework_steps`` its reworks per step (what resume needs)."""
        rw = _json(rework_steps) if rework_steps else ""
        record: dict[str, Any] = {"part": part, "lot": lot, "state": state, "reworks": reworks,
                                  "energy_j": round(energy_j, 3), "t": round(t, 3)}
        for key, value in (("reason", reason), ("step", step), ("rework_steps", rw)):
            if value:
                record[key] = value
        self._record("INSERT INTO parts (part, lot, state, reworks, energy_j, updated_s, reason, step, "
                     "rework_steps) VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT(part) DO UPDATE SET "
                     "state=excluded.state, reworks=excluded.reworks, energy_j=excluded.energy_j, "
                     "updated_s=excluded.updated_s, reason=excluded.reason, step=excluded.step, "
                     "rework_steps=excluded.rework_steps",
                     (part, lot, state, reworks, round(energy_j, 3), round(t, 3), reason or None,
                      step or None, rw or None), "part", record)

    def part_positions(self, lot: str) -> dict[str, dict[str, Any]]:
        """Each recorded part of ``lot``: state, next step, reworks per step, energy (J) — for resume."""
        rows = self._read("SELECT part, state, step, rework_steps, energy_j, reason FROM parts "
                          "WHERE lot = ?", (lot,))
        return {r[0]: {"state": r[1], "step": r[2] or "", "reworks": json.loads(r[3]) if r[3] else {},
                       "energy_j": r[4], "reason": r[5] or ""} for r in rows}

    # -- steps ------------------------------------------------------------------------------------
    def intent(self, key: str, *, lot: str, part: str, step: str, station: str | None, firmware: str,
               attempt: int, request: dict[str, Any], t: float) -> None:
        """Record that ``step`` is about to be sent. Raises ``sqlite3.IntegrityError`` on a reused key:
        a key is never run twice. The request (a G-code program can be kilobytes) is stored once per
        distinct content in ``requests``; the step row and the audit record name it by sha256."""
        at = _now()
        body = _json(request)
        digest = hashlib.sha256(body.encode("utf-8")).hexdigest()

        def write(db: sqlite3.Connection) -> None:
            db.execute("INSERT OR IGNORE INTO requests (sha256, body) VALUES (?, ?)", (digest, body))
            db.execute("INSERT INTO steps (key, lot, part, step, station, firmware, attempt, request, "
                       "intent_s, intent_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                       (key, lot, part, step, station, firmware, attempt, digest, round(t, 3), at))

        self.audited(write, "intent", {"key": key, "lot": lot, "part": part, "step": step,
                                        "station": station, "firmware": firmware, "attempt": attempt,
                                        "request": digest, "t": round(t, 3), "at": at})

    def done(self, key: str, *, ok: bool, verdict: str | None, data: dict[str, Any], t: float) -> None:
        """Record the step's completion (after the station answered, or failed)."""
        text = _json(data)
        self._record("UPDATE steps SET done_s = ?, ok = ?, verdict = ?, data = ? WHERE key = ?",
                     (round(t, 3), int(ok), verdict, text, key),
                     "done", {"key": key, "ok": ok, "verdict": verdict,
                              "data": hashlib.sha256(text.encode("utf-8")).hexdigest(), "t": round(t, 3)})

    def steps(self, part: str | None = None, *, lot: str | None = None) -> list[StepRecord]:
        """Genealogy: every step row (of one part, or of one lot), in intent order."""
        where, args = ("WHERE part = ?", (part,)) if part else (f"WHERE {_LOT_KEYS}", _lot_keys(lot)) if lot \
            else ("", ())
        rows = self._read("SELECT key, lot, part, step, station, firmware, attempt, intent_s, done_s, ok, "
                          f"verdict, data FROM steps {where} ORDER BY rowid", args)
        return [StepRecord(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8],
                           None if r[9] is None else bool(r[9]), r[10], json.loads(r[11]) if r[11] else {})
                for r in rows]

    def request(self, digest: str) -> dict[str, Any]:
        """The request a step sent, by the sha256 its row holds."""
        rows = self._read("SELECT body FROM requests WHERE sha256 = ?", (digest,))
        return dict(json.loads(rows[0][0])) if rows else {}

    def in_doubt(self, lot: str | None = None) -> list[StepRecord]:
        """Steps with an intent and no completion: sent (maybe) but never confirmed."""
        where, args = (f"AND {_LOT_KEYS}", _lot_keys(lot)) if lot else ("", ())
        rows = self._read("SELECT key, lot, part, step, station, firmware, attempt, intent_s, done_s, ok, "
                          f"verdict, data FROM steps WHERE done_s IS NULL {where} ORDER BY rowid", args)
        return [StepRecord(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], None, None, None, {})
                for r in rows]

    def completed(self, key: str) -> bool:
        return bool(self._read("SELECT 1 FROM steps WHERE key = ? AND done_s IS NOT NULL", (key,)))

    def runs(self) -> list[dict[str, Any]]:
        """Every lot run, oldest first; ``state`` is None for a run that never ended (killed process)."""
        rows = self._read("SELECT lot, recipe, state, summary, version, cell, parts, started_at, ended_at, "
                          "parameters, recipe_sha256, user, closed_reason, started_s, ended_s, "
                          "recipe_path, cell_path, partner FROM runs ORDER BY rowid")
        return [{"lot": r[0], "recipe": r[1], "state": r[2], "summary": json.loads(r[3]) if r[3] else None,
                 "version": r[4], "cell": r[5], "parts": r[6], "started_at": r[7], "ended_at": r[8],
                 "parameters": json.loads(r[9]) if r[9] else {}, "recipe_sha256": r[10] or "",
                 "user": r[11] or "", "closed_reason": r[12] or "", "started_s": r[13], "ended_s": r[14],
                 "recipe_path": r[15] or "", "cell_path": r[16] or "", "partner": r[17] or ""}
                for r in rows]

    def run(self, lot: str) -> dict[str, Any]:
        """One lot's run record; ConfigError (bad input) naming the latest lots when it is not there."""
        runs = self.runs()
        for run in runs:
            if run["lot"] == lot:
                return run
        known = ", ".join(r["lot"] for r in runs[-5:]) or "none"
        raise ConfigError.single(self.path, f"no lot {lot!r} in this journal (latest lots: {known})",
                                 hint=f"`microfactory journal {self.path}` lists the lots")

    def parts(self, lot: str) -> list[dict[str, Any]]:
        """Each part of ``lot`` as last recorded: state, rework count, energy (J), scrap reason."""
        rows = self._read("SELECT part, state, reworks, energy_j, reason FROM parts WHERE lot = ? "
                          "ORDER BY part", (lot,))
        return [{"part": r[0], "state": r[1], "reworks": r[2], "energy_j": r[3], "reason": r[4] or ""}
                for r in rows]

    def part_record(self, part: str) -> dict[str, Any]:
        """One part's last record (state, reworks, energy J, reason), or {} when none was written."""
        rows = self._read("SELECT part, lot, state, reworks, energy_j, reason FROM parts WHERE part = ?",
                          (part,))
        return {"part": rows[0][0], "lot": rows[0][1], "state": rows[0][2], "reworks": rows[0][3],
                "energy_j": rows[0][4], "reason": rows[0][5] or ""} if rows else {}

    def part_states(self, lot: str) -> dict[str, str]:
        rows = self._read("SELECT part, state FROM parts WHERE lot = ?", (lot,))
        return {str(r[0]): str(r[1]) for r in rows}

    # -- events -----------------------------------------------------------------------------------
    def _on_event(self, event: Event) -> None:
        if event.kind in SKIPPED_KINDS:
            return
        row = (event.seq, round(event.t, 3), event.kind, event.source, _json(dict(event.data)))
        with self._lock:
            if self._closed:
                log.warning("journal closed; event %s from %s not stored", event.kind, event.source)
                return
            self._pending.append(row)
            if len(self._pending) >= EVENT_BATCH and self._db is not None and self._writable:
                self._audited_locked(lambda db: None, "events", {})

    def _flush_events(self, db: sqlite3.Connection) -> dict[str, Any] | None:
        """Write the buffered events (inside the caller's transaction, under the lock); returns the
        rowid range and sha256 of the rows written, which the transaction's audit record carries, so an
        edited or deleted event shows in ``verify`` like any record."""
        if not (self._pending and self._writable):
            self._pending.clear()
            return None
        db.executemany("INSERT INTO events (seq, t, kind, source, data) VALUES (?,?,?,?,?)", self._pending)
        last = int(db.execute("SELECT last_insert_rowid()").fetchone()[0])
        batch = {"rows": [last - len(self._pending) + 1, last], "sha256": audit.events_digest(self._pending)}
        self._pending.clear()
        return batch

    def event_count(self, kind: str | None = None) -> int:
        self.flush()
        if kind is None:
            return int(self._read("SELECT COUNT(*) FROM events")[0][0]) if self._db else 0
        return int(self._read("SELECT COUNT(*) FROM events WHERE kind = ?", (kind,))[0][0]) if self._db else 0

    def flush(self) -> None:
        """Write buffered events now (only into a journal that already has a record)."""
        with self._lock:
            if self._db is not None and self._writable and self._pending and not self._closed:
                self._audited_locked(lambda db: None, "events", {})

    def close(self) -> None:
        if self._subscription is not None:
            self._subscription.cancel()
            self._subscription = None
        self.flush()
        with self._lock:
            self._closed = True
            if self._db is not None:
                self._db.close()
