"""What a partner sees of the shop: its status now, and its month in machine hours, energy and parts.

Both read through row-level security as the connected partner: the status lists the shop's stations and
who holds each (machine time is shop information), the partner's own cells and lots in progress, and
each station's utilisation over the last 24 h *as far as the partner may see it* (its own work, and all
work on machines it owns). The monthly report is the partner's bill and its machines' earnings: hours
and Wh its lots used per station (whosever it is), the hours other partners used on its machines, the
hours it held pooled stations, and its parts by final state.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg

from microfactory.errors import ConfigError

MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """``YYYY-MM`` → [first instant, first instant of the next month) in UTC; ConfigError otherwise."""
    m = MONTH.match(month)
    if not m:
        raise ConfigError.single("--month", f"{month!r} is not a month", hint="write it as YYYY-MM, e.g. "
                                                                              "2026-12")
    year, mon = int(m.group(1)), int(m.group(2))
    start = datetime(year, mon, 1, tzinfo=UTC)
    end = datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=UTC)
    return start, end


@dataclass
class StationStatus:
    cell: str
    station: str
    owner: str
    pooled: bool
    holder: str = ""
    lease_until: datetime | None = None
    busy_h_24h: float = 0.0

    @property
    def utilisation_24h(self) -> float:
        return self.busy_h_24h / 24.0


@dataclass
class ShopStatus:
    partner: str
    cells: list[str] = field(default_factory=list)
    stations: list[StationStatus] = field(default_factory=list)
    lots_in_progress: list[dict[str, Any]] = field(default_factory=list)
    queued: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"partner": self.partner, "cells": self.cells, "queued_bookings": self.queued,
                "lots_in_progress": self.lots_in_progress,
                "stations": [{"cell": s.cell, "station": s.station, "owner": s.owner, "pooled": s.pooled,
                              "held_by": s.holder or None,
                              "lease_until": s.lease_until.isoformat() if s.lease_until else None,
                              "busy_h_24h": round(s.busy_h_24h, 4),
                              "utilisation_24h": round(s.utilisation_24h, 4)} for s in self.stations]}


def partner_of(db: psycopg.Connection) -> str:
    row = db.execute("SELECT shop_partner()").fetchone()
    if not row or not row[0]:
        raise ConfigError.single("--partner", "this login does not act for the partner it names",
                                 hint="connect with the partner's own login (--store URL) and its --partner")
    return str(row[0])


def status(db: psycopg.Connection) -> ShopStatus:
    out = ShopStatus(partner_of(db))
    out.cells = [str(r[0]) for r in db.execute("SELECT cell FROM cells WHERE partner = %s ORDER BY cell",
                                               (out.partner,))]
    holds = {(r[0], r[1]): (str(r[2]), r[3]) for r in db.execute(
        "SELECT cell, station, partner, lease_until FROM station_holds WHERE lease_until >= now()")}
    busy = {(r[0], r[1]): float(r[2]) for r in db.execute(
        "SELECT cell, station, coalesce(sum(busy_s), 0) / 3600.0 FROM machine_time "
        "WHERE ended_at >= now() - interval '24 hours' GROUP BY cell, station")}
    for cell, station, owner, pooled in db.execute(
            "SELECT cell, station, partner, pooled FROM stations ORDER BY cell, station"):
        holder, lease = holds.get((cell, station), ("", None))
        out.stations.append(StationStatus(cell, station, owner, pooled, holder, lease,
                                          busy.get((cell, station), 0.0)))
    out.lots_in_progress = [{"cell": r[0], "lot": r[1], "recipe": r[2], "parts": r[3],
                             "started_at": r[4].isoformat() if r[4] else None} for r in db.execute(
        "SELECT cell, lot, recipe, parts, started_at FROM lots WHERE state IS NULL ORDER BY started_at")]
    row = db.execute("SELECT count(*) FROM bookings WHERE state = 'queued'").fetchone()
    out.queued = int(row[0]) if row else 0
    return out


def report(db: psycopg.Connection, month: str) -> dict[str, Any]:
    """The connected partner's month (``YYYY-MM``, UTC): machine hours and energy by station, hours others
    used its machines, hours it held pooled stations, parts by final state."""
    me = partner_of(db)
    start, end = month_bounds(month)
    used = [{"cell": r[0], "station": r[1], "owner": r[2], "machine_h": round(float(r[3]), 4),
             "steps": int(r[4])}
            for r in db.execute(
                "SELECT cell, station, owner, coalesce(sum(busy_s), 0) / 3600.0, count(*) FROM machine_time "
                "WHERE partner = %s AND started_at >= %s AND started_at < %s GROUP BY cell, station, owner "
                "ORDER BY cell, station", (me, start, end))]
    energy = {(r[0], r[1]): float(r[2]) for r in db.execute(
        "SELECT cell, station, sum(energy_wh) FROM machine_energy WHERE partner = %s AND ended_at >= %s "
        "AND ended_at < %s GROUP BY cell, station", (me, start, end))}
    for row in used:
        row["energy_wh"] = round(energy.get((row["cell"], row["station"]), 0.0), 4)
    lent = [{"cell": r[0], "station": r[1], "partner": r[2], "machine_h": round(float(r[3]), 4)}
            for r in db.execute(
                "SELECT cell, station, partner, coalesce(sum(busy_s), 0) / 3600.0 FROM machine_time "
                "WHERE owner = %s AND partner <> %s AND started_at >= %s AND started_at < %s "
                "GROUP BY cell, station, partner ORDER BY cell, station, partner", (me, me, start, end))]
    held = db.execute(
        "SELECT coalesce(sum(extract(epoch FROM least(coalesce(released_at, lease_until), %s) "
        "- greatest(claimed_at, %s))), 0) / 3600.0 FROM hold_log WHERE partner = %s AND claimed_at < %s "
        "AND coalesce(released_at, lease_until) >= %s", (end, start, me, end, start)).fetchone()
    parts = {str(r[0]): int(r[1]) for r in db.execute(
        "SELECT p.state, count(*) FROM parts p JOIN lots l USING (cell, lot) WHERE l.started_at >= %s "
        "AND l.started_at < %s GROUP BY p.state", (start, end))}
    lots = db.execute("SELECT count(*) FROM lots WHERE started_at >= %s AND started_at < %s",
                      (start, end)).fetchone()
    return {"partner": me, "month": month, "lots": int(lots[0]) if lots else 0, "parts": parts,
            "machine_h": round(sum(r["machine_h"] for r in used), 4),
            "energy_wh": round(sum(r["energy_wh"] for r in used), 4),
            "held_h": round(float(held[0]) if held else 0.0, 4), "by_station": used, "lent": lent}
