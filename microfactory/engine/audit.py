"""A hash-chained audit trail beside the run journal: evidence that the record was not altered.

Medical and aerospace customers must show that a part's record is the one written at the time. Every
journal write about runs, parts and steps is also appended here as a canonical JSON body, chained with
SHA-256 (``hash = sha256(previous hash + body)``) in the same SQLite transaction. :func:`verify` recomputes
the chain and replays it against the ``runs``/``parts``/``steps`` tables: an edited, deleted or inserted
row — in the trail or in the tables — is named. It is tamper-*evident*, not tamper-proof: someone who
rewrites the whole chain is caught only by comparing the last hash with a copy kept elsewhere, which is
why :func:`verify` returns it.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

GENESIS = "0" * 64


def body_of(what: str, record: dict[str, Any]) -> str:
    """The canonical text that is hashed: sorted keys, no spaces, UTF-8."""
    return json.dumps({"what": what, **record}, sort_keys=True, separators=(",", ":"), default=str,
                      ensure_ascii=False)


def chain(prev: str, body: str) -> str:
    return hashlib.sha256((prev + body).encode("utf-8")).hexdigest()


def last_hash(db: sqlite3.Connection) -> str:
    row = db.execute("SELECT hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    return str(row[0]) if row else GENESIS


def append(db: sqlite3.Connection, prev: str, what: str, record: dict[str, Any]) -> str:
    """Append one record after ``prev``; returns its hash (the caller keeps it for the next one).

    The ``prev`` column is left empty: it can only ever be the previous record's hash, which is chained
    into this one's (64 bytes a record saved; records of older journals keep theirs and are checked)."""
    body = body_of(what, record)
    digest = chain(prev, body)
    db.execute("INSERT INTO audit (what, body, prev, hash) VALUES (?, ?, '', ?)", (what, body, digest))
    return digest


@dataclass
class Verification:
    """What :func:`verify` found: records checked, the last hash, and every problem named."""

    records: int = 0
    last_hash: str = GENESIS
    problems: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class Table:
    """How one table is replayed from the trail: the audit ``whats`` that write it, its key column and
    the columns compared (``select`` lists the key first, then ``fields`` in order)."""

    kind: str
    table: str
    whats: tuple[str, ...]
    key: str
    fields: tuple[str, ...]

    @property
    def select(self) -> str:
        return f"SELECT {', '.join((self.key, *self.fields))} FROM {self.table}"


#: Every audited table. ``change`` records (who, when, old, new, reason) also update the replay.
TABLES = (
    Table("run", "runs", ("run", "run_end"), "lot",
          ("recipe", "version", "parts", "state", "recipe_sha256", "user", "closed_reason", "partner")),
    Table("part", "parts", ("part",), "part", ("lot", "state", "reworks", "reason", "step", "rework_steps")),
    Table("step", "steps", ("intent", "done"), "key",
          ("part", "step", "station", "firmware", "attempt", "ok", "verdict", "request", "data")),
    Table("user", "users", ("user",), "id", ("name", "role", "pw_hash", "active", "must_change", "locked")),
    Table("signature", "signatures", ("signature",), "id",
          ("user", "name", "meaning", "subject", "subject_sha256", "signed_at")),
    Table("recipe", "recipes", ("recipe",), "ref", ("recipe", "version", "sha256", "status")),
)


def _norm(name: str, table_value: Any, trail_value: Any) -> tuple[Any, Any]:
    """Make a table cell and a trail value comparable (NULL = "", ints for booleans, hashed blobs)."""
    if name in ("request", "data") and isinstance(trail_value, dict):
        table_value = json.loads(table_value) if table_value else None  # schema-1 records keep the body
    elif name in ("data",) and table_value is not None:
        table_value = hashlib.sha256(str(table_value).encode("utf-8")).hexdigest()
    if isinstance(trail_value, bool):
        trail_value = int(trail_value)
    if isinstance(table_value, bool):
        table_value = int(table_value)
    return (None if table_value == "" else table_value), (None if trail_value == "" else trail_value)


def events_digest(rows: list[tuple[Any, ...]]) -> str:
    """sha256 of event rows (seq, t, kind, source, data) as inserted."""
    body = json.dumps([list(r) for r in rows], separators=(",", ":"), default=str)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def _check_events(db: sqlite3.Connection, batches: list[tuple[int, dict[str, Any]]],
                  out: Verification) -> None:
    """Each batch of events hashes as its audit record says; no row after the first batch is uncovered
    (events of a schema-1 journal, written before batches were audited, are not evidence)."""
    covered = 0
    for seq, batch in batches:
        first, last = int(batch["rows"][0]), int(batch["rows"][1])
        rows = [tuple(r) for r in db.execute("SELECT seq, t, kind, source, data FROM events "
                                             "WHERE rowid BETWEEN ? AND ? ORDER BY rowid", (first, last))]
        covered += last - first + 1
        if len(rows) != last - first + 1 or events_digest(rows) != batch["sha256"]:
            out.problems.append(f"events rows {first}..{last} (audit record {seq}) were edited or deleted")
    if not batches:
        return
    start = min(int(b["rows"][0]) for _, b in batches)
    total = int(db.execute("SELECT COUNT(*) FROM events WHERE rowid >= ?", (start,)).fetchone()[0])
    if total > covered:
        out.problems.append(f"{total - covered} event row(s) are not in the audit trail (inserted later)")


def verify(db: sqlite3.Connection) -> Verification:
    """Recompute the chain, then compare what it says with the journal's tables."""
    out = Verification()
    prev = GENESIS
    replay: dict[str, dict[str, dict[str, Any]]] = {t.kind: {} for t in TABLES}
    by_what = {what: t for t in TABLES for what in t.whats}
    by_table = {t.table: t for t in TABLES}
    expected_seq = None
    batches: list[tuple[int, dict[str, Any]]] = []
    for seq, what, body, stored_prev, digest in db.execute(
            "SELECT seq, what, body, prev, hash FROM audit ORDER BY seq"):
        if expected_seq is not None and seq != expected_seq:
            out.problems.append(f"audit records {expected_seq}..{seq - 1} are missing")
        expected_seq = seq + 1
        if stored_prev not in ("", prev) or chain(prev, body) != digest:
            out.problems.append(f"audit record {seq} ({what}) does not chain: it was edited, or one "
                                "before it was removed")
        prev = digest
        out.records += 1
        record = json.loads(body)
        if isinstance(record.get("events"), dict):
            batches.append((seq, record["events"]))
        spec = by_what.get(what)
        if spec is not None:
            key = str(record[spec.key])
            rows = replay[spec.kind]
            if what in ("run", "intent", "signature") and key in rows:
                out.problems.append(f"{spec.kind} {key}: written twice in the audit trail (record {seq}); "
                                    "the first record was replaced")
            rows.setdefault(key, {}).update(record)
        elif what == "change" and record.get("table") in by_table:
            target = by_table[record["table"]]
            replay[target.kind].setdefault(str(record["key"]), {})[record["field"]] = record["new"]
    out.last_hash = prev
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    for spec in TABLES:
        if spec.table in tables:
            _compare(spec, db, replay[spec.kind], out)
    if "events" in tables:
        _check_events(db, batches, out)
    if "requests" in tables:
        for digest, body in db.execute("SELECT sha256, body FROM requests"):
            if hashlib.sha256(body.encode("utf-8")).hexdigest() != digest:
                out.problems.append(f"request {digest[:12]}: its body was edited (it no longer hashes to "
                                    "its key)")
    return out


def _compare(spec: Table, db: sqlite3.Connection, trail: dict[str, dict[str, Any]],
             out: Verification) -> None:
    """Name every row of ``spec`` whose table values differ from what the audit trail recorded."""
    table = {str(r[0]): r[1:] for r in db.execute(spec.select)}
    for key in sorted(set(table) | set(trail)):
        row, rec = table.get(key), trail.get(key)
        if row is None:
            out.problems.append(f"{spec.kind} {key}: in the audit trail, missing from the {spec.table} table")
            continue
        if rec is None:
            out.problems.append(f"{spec.kind} {key}: in the {spec.table} table, not in the audit trail")
            continue
        for name, value in zip(spec.fields, row, strict=True):
            have, want = _norm(name, value, rec.get(name))
            if have != want:
                out.problems.append(f"{spec.kind} {key}: {name} is {have!r} in the {spec.table} table, "
                                    f"{want!r} in the audit trail")
