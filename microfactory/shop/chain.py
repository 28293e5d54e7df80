"""The value chain: a part keeps one identity across cells and partners; its genealogy follows it.

A part's shop id is where it was born, ``CELL/PART`` (:func:`~microfactory.shop.reading.part_uid`). When
it moves on (cut in cell A by one partner, machined in cell B by another), the receiving partner links
its local part to that id (:func:`link_part`); from then on its steps, measurements and image hashes
carry the same id, in the store and in every later sync. Each partner reads its own steps of the part;
a customer reads a partner's steps (or measurements) of it once the partner shared them
(:func:`share`) — row-level security applies the agreement, never the query.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import errors

from microfactory.errors import ConfigError

#: Re-point a partner's rows of one cell at the ids its links give (run as that partner).
RELINK = (
    "UPDATE steps s SET part_uid = l.part_uid FROM part_links l WHERE l.cell = s.cell AND l.part = s.part "
    "AND s.cell = %(cell)s AND s.part_uid <> l.part_uid",
    "UPDATE parts p SET part_uid = l.part_uid FROM part_links l WHERE l.cell = p.cell AND l.part = p.part "
    "AND p.cell = %(cell)s AND p.part_uid <> l.part_uid",
    "UPDATE measurements m SET part_uid = s.part_uid FROM steps s WHERE s.cell = m.cell AND s.key = m.key "
    "AND m.cell = %(cell)s AND m.part_uid <> s.part_uid",
    "UPDATE image_hashes m SET part_uid = s.part_uid FROM steps s WHERE s.cell = m.cell AND s.key = m.key "
    "AND m.cell = %(cell)s AND m.part_uid <> s.part_uid",
)


def relink(cur: psycopg.Cursor[Any] | psycopg.Connection, cell: str) -> int:
    """Apply the links of ``cell`` to the connected partner's rows; returns the steps re-pointed."""
    linked = cur.execute("SELECT EXISTS (SELECT 1 FROM part_links WHERE cell = %s)", (cell,)).fetchone()
    if not linked or not linked[0]:
        return 0  # the common case: nothing of this cell came from elsewhere (one query, not four)
    moved = 0
    for n, statement in enumerate(RELINK):
        result = cur.execute(statement, {"cell": cell})
        moved += result.rowcount if n == 0 else 0
    return moved


def link_part(db: psycopg.Connection, *, cell: str, part: str, uid: str) -> int:
    """Say that ``part`` of the connected partner's ``cell`` is the part ``uid`` (born elsewhere); returns
    how many of its steps were already in the store. A part linked to another id is refused."""
    if "/" not in uid:
        raise ConfigError.single("--as", f"{uid!r} is not a part's shop id", hint="write it as CELL/PART")
    with db.transaction():
        row = db.execute("INSERT INTO part_links (cell, part, partner, part_uid) VALUES (%s, %s, "
                         "shop_partner(), "
                         "%s) ON CONFLICT (cell, part) DO UPDATE SET part_uid = part_links.part_uid "
                         "RETURNING part_uid", (cell, part, uid)).fetchone()
        if row is None or row[0] != uid:
            raise ConfigError.single("--as", f"{cell}/{part} is already part {row[0] if row else '?'}",
                                     hint="a part keeps one identity; check the part id")
        return relink(db, cell)


def share(db: psycopg.Connection, uid: str, *, customer: str, scope: str = "steps") -> None:
    """Let ``customer`` read the connected partner's steps (``scope`` "steps") or measurements and image
    hashes ("measurements") of part ``uid``."""
    try:
        with db.transaction():
            db.execute("INSERT INTO shares (partner, part_uid, customer, scope) VALUES (shop_partner(), %s, "
                       "%s, "
                       "%s) ON CONFLICT DO NOTHING", (uid, customer, scope))
    except errors.ForeignKeyViolation:
        raise ConfigError.single("--customer", f"no partner {customer!r} in the shop store",
                                 hint="the shop administrator registers partners") from None
    except errors.NotNullViolation:
        raise ConfigError.single("--partner", "this login does not act for the partner it names",
                                 hint="connect with the partner's own login") from None


def genealogy(db: psycopg.Connection, uid: str) -> list[dict[str, Any]]:
    """Every step of part ``uid`` the connected partner may read, in time order, across cells."""
    rows = db.execute("SELECT cell, partner, key, step, station, ok, verdict, intent_at, done_at FROM steps "
                      "WHERE part_uid = %s ORDER BY intent_at, cell, key", (uid,)).fetchall()
    return [{"cell": r[0], "partner": r[1], "key": r[2], "step": r[3], "station": r[4], "ok": r[5],
             "verdict": r[6], "intent_at": r[7], "done_at": r[8]} for r in rows]
