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

import json
import logging
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from microfactory.engine import audit
from microfactory.errors import ConfigError
from microfactory.events import Event, EventBus, EventKind

log = logging.getLogger("microfactory.engine.journal")

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    lot TEXT PRIMARY KEY, recipe TEXT NOT NULL, version TEXT NOT NULL, cell TEXT NOT NULL,
    parts INTEGER NOT NULL, parameters TEXT NOT NULL, started_s REAL, started_at TEXT,
    ended_s REAL, ended_at TEXT, state TEXT, summary TEXT);
CREATE TABLE IF NOT EXISTS parts (
    part TEXT PRIMARY KEY, lot TEXT NOT NULL, state TEXT NOT NULL, reworks INTEGER NOT NULL DEFAULT 0,
    energy_j REAL NOT NULL DEFAULT 0, updated_s REAL);
CREATE TABLE IF NOT EXISTS steps (
    key TEXT PRIMARY KEY, lot TEXT NOT NULL, part TEXT NOT NULL, step TEXT NOT NULL, station TEXT,
    firmware TEXT, attempt INTEGER NOT NULL, request TEXT NOT NULL, intent_s REAL NOT NULL,
    intent_at TEXT NOT NULL, done_s REAL, ok INTEGER, verdict TEXT, data TEXT);
CREATE INDEX IF NOT EXISTS steps_part ON steps(part);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER, t REAL NOT NULL, kind TEXT NOT NULL, source TEXT NOT NULL, data TEXT NOT NULL);
"""

#: High-rate kinds the journal does not keep (they are live display only).
SKIPPED_KINDS = frozenset({EventKind.STATION_PROGRESS.value, EventKind.STATION_STATUS.value})


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


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _json(value: Any) -> str:
    return json.dumps(value, default=str, sort_keys=True)


class Journal:
    """Append-only SQLite journal. ``path`` ``":memory:"`` for tests; otherwise a file (WAL mode).

    Writers: the engine loop (steps, runs, parts) and the bus subscriber (events, from any thread);
    one lock serialises them on one connection.
    """

    @classmethod
    def open_existing(cls, path: str | Path) -> Journal:
        """Open a journal written by a run, for reading; a missing or foreign file is a ConfigError."""
        file = Path(path)
        if not file.is_file():
            raise ConfigError.single(file, "no such run journal", hint="give the --db PATH a run wrote to")
        try:
            journal = cls(file)
            journal.runs()
        except sqlite3.DatabaseError as exc:
            raise ConfigError.single(file, f"not a microfactory run journal ({exc})",
                                     hint="give the --db PATH a run wrote to") from None
        return journal

    def __init__(self, path: str | Path, *, bus: EventBus | None = None) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._db.executescript(audit.SCHEMA)
        self._last_hash = audit.last_hash(self._db)
        self._subscription = bus.subscribe(self._on_event) if bus is not None else None

    def _write(self, sql: str, args: tuple[Any, ...]) -> None:
        with self._lock:
            self._db.execute(sql, args)

    def _record(self, sql: str, args: tuple[Any, ...], what: str, record: dict[str, Any]) -> None:
        """A write about runs, parts or steps, with its audit record in the same transaction."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(sql, args)
                digest = audit.append(self._db, self._last_hash, what, record)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._last_hash = digest

    def verify(self) -> audit.Verification:
        """Recompute the audit chain and compare it with the tables (see :mod:`~.audit`)."""
        with self._lock:
            return audit.verify(self._db)

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return list(self._db.execute(sql, args).fetchall())

    # -- runs and parts ---------------------------------------------------------------------------
    def begin_run(self, lot: str, *, recipe: str, version: str, cell: str, parts: int,
                  parameters: dict[str, Any], t: float) -> None:
        at = _now()
        self._record("INSERT OR REPLACE INTO runs (lot, recipe, version, cell, parts, parameters, started_s, "
                     "started_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                     (lot, recipe, version, cell, parts, _json(parameters), t, at),
                     "run", {"lot": lot, "recipe": recipe, "version": version, "cell": cell, "parts": parts,
                             "parameters": parameters, "t": t, "at": at})

    def end_run(self, lot: str, *, state: str, summary: dict[str, Any], t: float) -> None:
        at = _now()
        self._record("UPDATE runs SET ended_s = ?, ended_at = ?, state = ?, summary = ? WHERE lot = ?",
                     (t, at, state, _json(summary), lot),
                     "run_end", {"lot": lot, "state": state, "summary": summary, "t": t, "at": at})

    def part(self, part: str, lot: str, state: str, *, reworks: int, energy_j: float, t: float) -> None:
        self._record("INSERT INTO parts (part, lot, state, reworks, energy_j, updated_s) "
                     "VALUES (?,?,?,?,?,?) ON CONFLICT(part) DO UPDATE SET state=excluded.state, "
                     "reworks=excluded.reworks, energy_j=excluded.energy_j, updated_s=excluded.updated_s",
                     (part, lot, state, reworks, energy_j, t),
                     "part", {"part": part, "lot": lot, "state": state, "reworks": reworks,
                              "energy_j": energy_j, "t": t})

    # -- steps ------------------------------------------------------------------------------------
    def intent(self, key: str, *, lot: str, part: str, step: str, station: str | None, firmware: str,
               attempt: int, request: dict[str, Any], t: float) -> None:
        """Record that ``step`` is about to be sent. Raises ``sqlite3.IntegrityError`` on a reused key:
        a key is never run twice."""
        at = _now()
        self._record("INSERT INTO steps (key, lot, part, step, station, firmware, attempt, request, "
                     "intent_s, intent_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                     (key, lot, part, step, station, firmware, attempt, _json(request), t, at),
                     "intent", {"key": key, "lot": lot, "part": part, "step": step, "station": station,
                                "firmware": firmware, "attempt": attempt, "request": request, "t": t,
                                "at": at})

    def done(self, key: str, *, ok: bool, verdict: str | None, data: dict[str, Any], t: float) -> None:
        """Record the step's completion (after the station answered, or failed)."""
        self._record("UPDATE steps SET done_s = ?, ok = ?, verdict = ?, data = ? WHERE key = ?",
                     (t, int(ok), verdict, _json(data), key),
                     "done", {"key": key, "ok": ok, "verdict": verdict, "data": data, "t": t})

    def steps(self, part: str | None = None) -> list[StepRecord]:
        """Genealogy: every step row (of one part), in intent order."""
        where, args = ("WHERE part = ?", (part,)) if part else ("", ())
        rows = self._read("SELECT key, lot, part, step, station, firmware, attempt, intent_s, done_s, ok, "
                          f"verdict FROM steps {where} ORDER BY rowid", args)
        return [StepRecord(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8],
                           None if r[9] is None else bool(r[9]), r[10]) for r in rows]

    def in_doubt(self, lot: str | None = None) -> list[StepRecord]:
        """Steps with an intent and no completion: sent (maybe) but never confirmed."""
        return [r for r in self.steps() if r.done_s is None and (lot is None or r.lot == lot)]

    def completed(self, key: str) -> bool:
        return bool(self._read("SELECT 1 FROM steps WHERE key = ? AND done_s IS NOT NULL", (key,)))

    def runs(self) -> list[dict[str, Any]]:
        """Every lot run, oldest first; ``state`` is None for a run that never ended (killed process)."""
        rows = self._read("SELECT lot, recipe, state, summary, version, cell, parts, started_at, ended_at "
                          "FROM runs ORDER BY rowid")
        return [{"lot": r[0], "recipe": r[1], "state": r[2], "summary": json.loads(r[3]) if r[3] else None,
                 "version": r[4], "cell": r[5], "parts": r[6], "started_at": r[7], "ended_at": r[8]}
                for r in rows]

    def parts(self, lot: str) -> list[dict[str, Any]]:
        """Each part of ``lot`` as last recorded: state, rework count, energy (J)."""
        rows = self._read("SELECT part, state, reworks, energy_j FROM parts WHERE lot = ? ORDER BY part",
                          (lot,))
        return [{"part": r[0], "state": r[1], "reworks": r[2], "energy_j": r[3]} for r in rows]

    def part_states(self, lot: str) -> dict[str, str]:
        rows = self._read("SELECT part, state FROM parts WHERE lot = ?", (lot,))
        return {str(r[0]): str(r[1]) for r in rows}

    # -- events -----------------------------------------------------------------------------------
    def _on_event(self, event: Event) -> None:
        if event.kind in SKIPPED_KINDS:
            return
        try:
            self._write("INSERT INTO events (seq, t, kind, source, data) VALUES (?,?,?,?,?)",
                        (event.seq, event.t, event.kind, event.source, _json(dict(event.data))))
        except sqlite3.ProgrammingError:
            log.warning("journal closed; event %s from %s not stored", event.kind, event.source)

    def event_count(self, kind: str | None = None) -> int:
        if kind is None:
            return int(self._read("SELECT COUNT(*) FROM events")[0][0])
        return int(self._read("SELECT COUNT(*) FROM events WHERE kind = ?", (kind,))[0][0])

    def close(self) -> None:
        if self._subscription is not None:
            self._subscription.cancel()
            self._subscription = None
        with self._lock:
            self._db.close()
