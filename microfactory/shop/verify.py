"""The audit chain checked on the store's side: what arrived is what the cell's journal holds.

:func:`verify_cell` recomputes the chain of a cell's ``journal_records`` from the first record, checks
that no seq is missing and that it ends at the hash ``cell_sync`` holds, then replays the step and lot
records against the partner tables the sync filled (a step's station, attempt, verdict and program, the
sha256 of its data). Run it as the cell's login: it reads every record the cell shipped, and each
partner's rows under that partner's name.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import psycopg

from microfactory.engine import audit


def verify_cell(db: psycopg.Connection, cell: str) -> audit.Verification:
    """Check cell ``cell``'s chain in the store (``db``: the cell's login); problems are named."""
    out = audit.Verification()
    prev, expected = audit.GENESIS, 1
    trail: dict[str, dict[str, dict[str, Any]]] = {"steps": {}, "lots": {}}
    owner_of: dict[str, str] = {}
    rows = db.execute("SELECT seq, what, body, hash, partner FROM journal_records WHERE cell = %s ORDER BY "
                      "seq",
                      (cell,)).fetchall()
    for seq, what, body, digest, partner in rows:
        if seq != expected:
            out.problems.append(f"cell {cell}: records {expected}..{seq - 1} are missing from the store")
        expected = seq + 1
        if audit.chain(prev, body) != digest:
            out.problems.append(f"cell {cell}: record {seq} ({what}) does not chain: edited in the store, or "
                                "one before it was removed")
        prev = digest
        out.records += 1
        record = json.loads(body)
        if what in ("intent", "done"):
            trail["steps"].setdefault(record["key"], {}).update(record)
            owner_of[record["key"]] = partner
        elif what in ("run", "run_end"):
            trail["lots"].setdefault(record["lot"], {}).update(record)
    out.last_hash = prev
    position = db.execute("SELECT high_water, last_hash FROM cell_sync WHERE cell = %s", (cell,)).fetchone()
    if position is not None and (int(position[0]), str(position[1])) != (out.records, prev):
        out.problems.append(f"cell {cell}: the store's sync position ({position[0]}, "
                            f"{str(position[1])[:12]}) "
                            f"does not match its records ({out.records}, {prev[:12]})")
    _compare_steps(db, cell, trail["steps"], owner_of, out)
    return out


def _compare_steps(db: psycopg.Connection, cell: str, trail: dict[str, dict[str, Any]],
                   owner_of: dict[str, str], out: audit.Verification) -> None:
    by_partner: dict[str, list[str]] = {}
    for key, partner in owner_of.items():
        by_partner.setdefault(partner, []).append(key)
    for partner, keys in sorted(by_partner.items()):
        db.execute("SELECT set_config('microfactory.partner', %s, false)", (partner,))
        table = {r[0]: r[1:] for r in db.execute(
            "SELECT s.key, s.part, s.step, s.station, s.attempt, s.ok, s.verdict, s.program_sha256, d.data "
            "FROM steps s LEFT JOIN step_data d USING (cell, key) WHERE s.cell = %s AND s.key = ANY(%s)",
            (cell, keys))}
        for key in sorted(keys):
            rec, row = trail[key], table.get(key)
            if row is None:
                out.problems.append(f"cell {cell}: step {key} is in the records, missing from the steps "
                                    "table")
                continue
            have = {"part": row[0], "step": row[1], "station": row[2], "attempt": row[3], "ok": row[4],
                    "verdict": row[5], "request": row[6],
                    "data": None if row[7] is None else hashlib.sha256(row[7].encode("utf-8")).hexdigest()}
            for name, value in have.items():
                want = rec.get(name)
                if name == "data" and "data" not in rec:
                    continue
                if value != want:
                    out.problems.append(f"cell {cell}: step {key}: {name} is {value!r} in the store, "
                                        f"{want!r} in the records")
