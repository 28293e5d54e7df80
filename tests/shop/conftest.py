"""A real PostgreSQL for the shop tests: one server per session (initdb in a temporary folder, a free
localhost port, run as the ``postgres`` user when the tests run as root), one fresh database per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from microfactory.engine.journal import Journal
from microfactory.shop import schema, store
from microfactory.shop.localserver import LocalServer
from microfactory.shop.sync import CellSync


@pytest.fixture(scope="session")
def pg_server() -> Iterator[LocalServer]:
    server = LocalServer()
    server.start()
    yield server
    server.remove()


@dataclass
class Shop:
    """One test's shop store: its database, its administrator, logins made with unique role names
    (roles are per server, databases per test)."""

    server: LocalServer
    db: str
    logins: dict[str, str] = field(default_factory=dict)

    @property
    def admin(self) -> str:
        return self.server.dsn(dbname=self.db)

    def partner(self, name: str) -> str:
        """Register partner ``name``; returns its login URL."""
        login = store.add_partner(self.admin, name, f"pw-{name}", role=f"{self.db}_{name}")
        self.logins[name] = login.dsn
        return login.dsn

    def cell(self, name: str, owner: str, *, stations: dict[str, str] | None = None,
             pooled: tuple[str, ...] = ()) -> str:
        """Register cell ``name`` of ``owner`` and its stations (station → owner); returns its login URL."""
        login = store.add_cell(self.admin, name, owner, f"pw-cell-{name}", role=f"{self.db}_cell_{name}")
        for station, station_owner in (stations or {}).items():
            store.add_station(self.admin, name, station, station_owner, pooled=station in pooled)
        self.logins[f"cell:{name}"] = login.dsn
        return login.dsn

    def connect(self, partner: str, *, login: str | None = None) -> psycopg.Connection:
        return store.connect(self.logins[login or partner], partner, autocommit=True)

    def sync(self, journal: Path, cell: str, owner: str) -> CellSync:
        return CellSync(journal, self.logins[f"cell:{cell}"], cell=cell, owner=owner)


def new_shop(server: LocalServer) -> Shop:
    """A fresh database on ``server``, migrated to the current schema."""
    name = f"shop_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server.admin_dsn, autocommit=True) as db:
        db.execute(f'CREATE DATABASE "{name}"')
    schema.migrate(server.dsn(dbname=name))
    return Shop(server, name)


@pytest.fixture
def shop(pg_server: LocalServer) -> Shop:
    return new_shop(pg_server)


def record_lot(path: Path, lot: str, *, partner: str = "", parts: int = 2, station: str = "mill",
               measured: float = 20.0) -> None:
    """A small lot written through the journal's own API: run, per part a machining step and an
    inspection with measurements and an image hash, the part's state, the lot's end."""
    j = Journal(path)
    j.begin_run(lot, recipe="watch-plate", version="3", cell="c", parts=parts,
                parameters={"feed": 450, "depth": 0.2}, t=0.0, recipe_sha256="ab" * 32, partner=partner)
    for n in range(1, parts + 1):
        part = f"{lot}-{n:03d}"
        key = f"{lot}/{part}/mill/1/0"
        j.intent(key, lot=lot, part=part, step="mill", station=station, firmware="Grbl 1.1h", attempt=0,
                 request={"action": "gcode", "params": {"program": [f"G1 X{n} F450", "M5"]}}, t=float(n))
        j.done(key, ok=True, verdict=None, data={"duration_s": 30.0 + n}, t=n + 30.0)
        key = f"{lot}/{part}/inspect/1/0"
        j.intent(key, lot=lot, part=part, step="inspect", station="inspect", firmware="cam", attempt=0,
                 request={"action": "inspect"}, t=n + 31.0)
        j.done(key, ok=True, verdict="pass", t=n + 32.0, data={
            "duration_s": 0.5, "sha256": f"{n:064x}",
            "measurements": {"features": [{"feature": "outline.width", "measured": measured, "nominal": 20.0,
                                           "tol": 0.02, "ok": True}]}})
        j.part(part, lot, "passed", reworks=0, energy_j=100.0 * n, t=n + 33.0)
    j.end_run(lot, state="complete", summary={"passed": parts, "stations": {
        station: {"busy_s": 60.0, "energy_wh": 3.0, "steps": parts},
        "inspect": {"busy_s": 1.0, "energy_wh": 0.1, "steps": parts}}}, t=100.0)
    j.close()
