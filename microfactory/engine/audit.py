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

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY, what TEXT NOT NULL, body TEXT NOT NULL, prev TEXT NOT NULL, hash TEXT NOT NULL);
"""
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
    """Append one record after ``prev``; returns its hash (the caller keeps it for the next one)."""
    body = body_of(what, record)
    digest = chain(prev, body)
    db.execute("INSERT INTO audit (what, body, prev, hash) VALUES (?, ?, ?, ?)", (what, body, prev, digest))
    return digest


@dataclass
class Verification:
    records: int = 0
    last_hash: str = GENESIS
    problems: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.problems


def verify(db: sqlite3.Connection) -> Verification:
    """Recompute the chain, then compare what it says with the journal's tables."""
    out = Verification()
    prev = GENESIS
    runs: dict[str, dict[str, Any]] = {}
    parts: dict[str, dict[str, Any]] = {}
    steps: dict[str, dict[str, Any]] = {}
    expected_seq = None
    for seq, what, body, stored_prev, digest in db.execute(
            "SELECT seq, what, body, prev, hash FROM audit ORDER BY seq"):
        if expected_seq is not None and seq != expected_seq:
            out.problems.append(f"audit records {expected_seq}..{seq - 1} are missing")
        expected_seq = seq + 1
        if stored_prev != prev or chain(prev, body) != digest:
            out.problems.append(f"audit record {seq} ({what}) does not chain: it was edited, or one "
                                "before it was removed")
        prev = digest
        out.records += 1
        record = json.loads(body)
        if what in ("run", "run_end"):
            runs.setdefault(record["lot"], {}).update(record)
        elif what == "part":
            parts[record["part"]] = record
        elif what in ("intent", "done"):
            steps.setdefault(record["key"], {}).update(record)
    out.last_hash = prev
    rows = db.execute("SELECT lot, recipe, version, parts, state FROM runs")
    _compare("run", {r[0]: tuple(r[1:]) for r in rows},
             {k: (r["recipe"], r["version"], r["parts"], r.get("state")) for k, r in runs.items()}, out)
    _compare("part", {r[0]: tuple(r[1:]) for r in db.execute("SELECT part, lot, state, reworks FROM parts")},
             {k: (r["lot"], r["state"], r["reworks"]) for k, r in parts.items()}, out)
    rows = db.execute("SELECT key, part, step, station, firmware, attempt, ok, verdict FROM steps")
    _compare("step", {r[0]: (*r[1:6], None if r[6] is None else bool(r[6]), r[7]) for r in rows},
             {k: (r["part"], r["step"], r["station"], r["firmware"], r["attempt"], r.get("ok"),
                  r.get("verdict")) for k, r in steps.items()}, out)
    return out


def _compare(kind: str, table: dict[str, tuple[Any, ...]], trail: dict[str, tuple[Any, ...]],
             out: Verification) -> None:
    """Name every row of ``kind`` whose table values differ from what the audit trail recorded."""
    for key in sorted(set(table) | set(trail)):
        row, rec = table.get(key), trail.get(key)
        if row is None:
            out.problems.append(f"{kind} {key}: in the audit trail, missing from the {kind}s table")
        elif rec is None:
            out.problems.append(f"{kind} {key}: in the {kind}s table, not in the audit trail")
        elif row != rec:
            out.problems.append(f"{kind} {key}: the {kind}s table has {row}, the audit trail {rec}")
