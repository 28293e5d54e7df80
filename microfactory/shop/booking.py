"""Pooled machine time: a queue of bookings on shared stations, claimed with leases.

A partner books time on a station (its own, or another's pooled one): a ``bookings`` row, ``queued``.
Whoever runs the work claims the next booking of a station: ``SELECT … FOR UPDATE SKIP LOCKED`` takes
it (two workers never take the same booking and never wait on each other), and a row in
``station_holds`` — one per station, its primary key — makes the hold exclusive across partners: a
second partner's claim on a held station fails on that key, so two partners are never on one station at
once, whatever the timing. A hold has a lease (:data:`LEASE_S`): the holder renews it while it works and
releases it when done; a holder that crashed stops renewing, and once the lease expired anyone's next
claim clears it (the policies let any partner delete an expired hold, and only that). Hours held are in
``hold_log``; the hours a machine actually worked are in ``machine_time`` (from the synced journal).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import psycopg
from psycopg import errors

from microfactory.errors import ConfigError, StateError

#: Default lease of a hold (s): renew well within it; a crashed holder frees the station after it.
LEASE_S = 120.0


class BookingState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    INTERRUPTED = "interrupted"  # its holder's lease expired (a crash) before it released


@dataclass(frozen=True)
class Claim:
    """A held station: the booking, whose it is, and until when the lease runs."""

    booking: int
    cell: str
    station: str
    partner: str
    lot: str
    lease_until: datetime


def _me(db: psycopg.Connection) -> str:
    row = db.execute("SELECT shop_partner()").fetchone()
    if not row or not row[0]:
        raise ConfigError.single("store", "this login does not act for the partner it names",
                                 hint="connect with the partner's own login and --partner NAME")
    return str(row[0])


def book(db: psycopg.Connection, *, cell: str, station: str, lot: str = "", hours: float = 0.0) -> int:
    """Queue a booking of ``cell``/``station`` for the connected partner; returns its id. A station that
    is neither the partner's nor pooled is refused (ConfigError)."""
    me = _me(db)
    with db.transaction():
        row = db.execute("SELECT partner, pooled FROM stations WHERE cell = %s AND station = %s",
                         (cell, station)).fetchone()
        if row is None:
            raise ConfigError.single("station", f"no station {station!r} in cell {cell!r} in the shop store",
                                     hint="microfactory shop status lists the stations")
        if row[0] != me and not row[1]:
            raise ConfigError.single("station", f"{cell}/{station} belongs to {row[0]} and is not pooled",
                                     hint="book a pooled station, or ask its owner to pool it")
        booked = db.execute("INSERT INTO bookings (partner, cell, station, lot, hours) VALUES "
                            "(%s,%s,%s,%s,%s) "
                            "RETURNING id", (me, cell, station, lot, hours)).fetchone()
    assert booked is not None
    return int(booked[0])


def claim(db: psycopg.Connection, *, cell: str, station: str, lease_s: float = LEASE_S) -> Claim | None:
    """Take the connected partner's next queued booking of the station and hold the station; None when
    the partner has none queued or the station is held (by anyone, until its lease expires)."""
    me = _me(db)
    with db.transaction():
        row = db.execute("SELECT id, lot FROM bookings WHERE cell = %s AND station = %s AND state = 'queued' "
                         "ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED", (cell, station)).fetchone()
        if row is None:
            return None
        booking, lot = int(row[0]), str(row[1])
        db.execute("DELETE FROM station_holds WHERE cell = %s AND station = %s AND lease_until < now()",
                   (cell, station))
        try:
            with db.transaction():
                held = db.execute("INSERT INTO station_holds (cell, station, partner, booking, lease_until) "
                                  "VALUES (%s, %s, %s, %s, now() + make_interval(secs => %s)) "
                                  "RETURNING lease_until", (cell, station, me, booking, lease_s)).fetchone()
        except errors.UniqueViolation:
            return None
        assert held is not None
        owner = db.execute("SELECT partner FROM stations WHERE cell = %s AND station = %s",
                           (cell, station)).fetchone()
        db.execute("UPDATE bookings SET state = 'running', claimed_at = now() WHERE id = %s", (booking,))
        db.execute("INSERT INTO hold_log (booking, cell, station, owner, partner, claimed_at, lease_until) "
                   "VALUES (%s, %s, %s, %s, %s, clock_timestamp(), %s)",
                   (booking, cell, station, owner[0] if owner else me, me, held[0]))
    return Claim(booking, cell, station, me, lot, held[0])


def renew(db: psycopg.Connection, hold: Claim, *, lease_s: float = LEASE_S) -> Claim:
    """Extend the lease; StateError when the hold was lost (it expired and another partner took the
    station): the work must stop, its station is no longer ours."""
    with db.transaction():
        row = db.execute("UPDATE station_holds SET lease_until = now() + make_interval(secs => %s) "
                         "WHERE cell = %s AND station = %s AND booking = %s RETURNING lease_until",
                         (lease_s, hold.cell, hold.station, hold.booking)).fetchone()
        if row is None:
            raise StateError(f"the hold on {hold.cell}/{hold.station} (booking {hold.booking}) was lost: its "
                             "lease expired", hint="stop the work on this station and book it again")
        db.execute("UPDATE hold_log SET lease_until = %s WHERE booking = %s", (row[0], hold.booking))
    return Claim(hold.booking, hold.cell, hold.station, hold.partner, hold.lot, row[0])


def release(db: psycopg.Connection, hold: Claim, *, state: BookingState = BookingState.DONE) -> None:
    """Free the station and close the booking (``done``, or ``interrupted`` when the work stopped)."""
    with db.transaction():
        db.execute("DELETE FROM station_holds WHERE cell = %s AND station = %s AND booking = %s",
                   (hold.cell, hold.station, hold.booking))
        db.execute("UPDATE bookings SET state = %s, finished_at = now() WHERE id = %s",
                   (state.value, hold.booking))
        db.execute("UPDATE hold_log SET released_at = clock_timestamp(), how = %s WHERE booking = %s",
                   (state.value, hold.booking))


def held(db: psycopg.Connection, booking: int) -> Claim:
    """The connected partner's hold of ``booking`` (StateError when it holds none: released, expired and
    taken, or another partner's)."""
    row = db.execute("SELECT h.booking, h.cell, h.station, h.partner, b.lot, h.lease_until "
                     "FROM station_holds h JOIN bookings b ON b.id = h.booking "
                     "WHERE h.booking = %s AND h.partner = shop_partner()", (booking,)).fetchone()
    if not db.autocommit:
        db.rollback()
    if row is None:
        raise StateError(f"booking {booking} holds no station for this partner (released, or its lease "
                         "expired)", hint="microfactory shop status shows who holds each station")
    return Claim(int(row[0]), str(row[1]), str(row[2]), str(row[3]), str(row[4]), row[5])


def recover(db: psycopg.Connection) -> list[int]:
    """After a crash: the connected partner's running bookings whose hold is gone (expired and cleared,
    or expired now) become ``interrupted``, their held time ending at the lease's end. Returns their ids."""
    with db.transaction():
        rows = db.execute(
            "SELECT b.id FROM bookings b WHERE b.state = 'running' AND NOT EXISTS (SELECT 1 FROM "
            "station_holds h "
            "WHERE h.booking = b.id AND h.lease_until >= now()) FOR UPDATE OF b").fetchall()
        ids = [int(r[0]) for r in rows]
        if ids:
            db.execute("DELETE FROM station_holds WHERE booking = ANY(%s)", (ids,))
            db.execute("UPDATE bookings SET state = 'interrupted', finished_at = now() WHERE id = ANY(%s)",
                       (ids,))
            db.execute("UPDATE hold_log SET released_at = lease_until, how = 'lease expired' "
                       "WHERE booking = ANY(%s) AND released_at IS NULL", (ids,))
    return ids
