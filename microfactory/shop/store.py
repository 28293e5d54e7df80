"""Connecting to the shop store, and the shop administrator's work: partners, cells, stations.

A partner connects with its own login (a PostgreSQL role that is a member of
:data:`~microfactory.shop.schema.APP_ROLE`) and names itself in ``microfactory.partner``; a cell's sync
connects with the cell's login, which is a member of the partners whose lots the cell runs (its owner,
and each partner that books one of its pooled stations). Only the administrator (the database owner or
a superuser) creates roles and registers partners, cells and stations.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import psycopg
from psycopg import sql

from microfactory.errors import ConfigError, MicrofactoryError
from microfactory.shop import schema

NAME = re.compile(r"^[a-z][a-z0-9_-]{0,40}$")


def is_store_url(text: str) -> bool:
    """``postgresql://`` or ``postgres://``: the shop store (anything else is a SQLite journal path)."""
    return urlsplit(text).scheme in ("postgresql", "postgres")


def check_name(what: str, name: str) -> str:
    """A partner, cell or station name: lower-case letters, digits, ``-``, ``_`` (ConfigError, exit 2)."""
    if not NAME.match(name):
        raise ConfigError.single(what, f"{name!r} is not a valid {what} name",
                                 hint="use lower-case letters, digits, - and _, starting with a letter")
    return name


def connect(dsn: str, partner: str, *, autocommit: bool = False, connect_timeout_s: float = 5.0
            ) -> psycopg.Connection:
    """A connection acting for ``partner``. The setting is only a claim: the policies honour it only when
    the login is a member of the partner's role (:func:`~microfactory.shop.schema` ``shop_partner``)."""
    try:
        db = psycopg.connect(dsn, autocommit=True, connect_timeout=max(1, round(connect_timeout_s)))
    except psycopg.OperationalError as exc:
        raise StoreUnavailable(f"the shop store is unreachable: {str(exc).strip()}",
                               hint="is the server up and the URL right? the cell keeps its journal; "
                                    "`microfactory shop sync` catches up later") from None
    db.execute("SELECT set_config('microfactory.partner', %s, false)", (partner,))
    db.autocommit = autocommit
    return db


class StoreUnavailable(MicrofactoryError):
    """The shop store cannot be reached now (a cell carries on; its journal is shipped later)."""


@dataclass(frozen=True)
class Login:
    """A PostgreSQL login the administrator made: its role name and the URL to connect with."""

    role: str
    dsn: str


def _login_dsn(admin_dsn: str, role: str, password: str) -> str:
    parts = urlsplit(admin_dsn)
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"postgresql://{role}:{password}@{host}{port}{parts.path}"


def _create_login(db: psycopg.Connection, role: str, password: str) -> None:
    exists = db.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
    verb = "ALTER" if exists else "CREATE"
    db.execute(sql.SQL(verb + " ROLE {} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE PASSWORD {}")
               .format(sql.Identifier(role), sql.Literal(password)))
    db.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(schema.APP_ROLE), sql.Identifier(role)))


def add_partner(admin_dsn: str, partner: str, password: str, *, name: str = "", role: str = "") -> Login:
    """Register a partner company with its own login (role name ``role``, default the partner's name)."""
    check_name("partner", partner)
    role = role or partner
    with psycopg.connect(admin_dsn) as db, db.transaction():
        _create_login(db, role, password)
        db.execute("INSERT INTO partners (partner, login_role, name) VALUES (%s, %s, %s) "
                   "ON CONFLICT (partner) DO UPDATE SET name = excluded.name", (partner, role, name))
    return Login(role, _login_dsn(admin_dsn, role, password))


def _partner_role(db: psycopg.Connection, partner: str) -> str:
    row = db.execute("SELECT login_role FROM partners WHERE partner = %s", (partner,)).fetchone()
    if row is None:
        raise ConfigError.single("partner", f"no partner {partner!r} in the shop store",
                                 hint="register it first: microfactory shop partner add NAME")
    return str(row[0])


def add_cell(admin_dsn: str, cell: str, partner: str, password: str, *, role: str = "") -> Login:
    """Register a cell owned by ``partner``, with the login its sync uses (a member of its owner)."""
    check_name("cell", cell)
    role = role or f"cell-{cell}"
    with psycopg.connect(admin_dsn) as db, db.transaction():
        owner = _partner_role(db, partner)
        _create_login(db, role, password)
        db.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(owner), sql.Identifier(role)))
        db.execute("INSERT INTO cells (cell, partner, login_role) VALUES (%s, %s, %s) "
                   "ON CONFLICT (cell) DO NOTHING", (cell, partner, role))
        db.execute("INSERT INTO cell_sync (cell) VALUES (%s) ON CONFLICT (cell) DO NOTHING", (cell,))
    return Login(role, _login_dsn(admin_dsn, role, password))


def serve(admin_dsn: str, cell: str, partner: str) -> None:
    """Let ``cell`` file lots for ``partner`` (a partner that books its pooled stations): the cell's
    login becomes a member of the partner's role."""
    with psycopg.connect(admin_dsn) as db, db.transaction():
        row = db.execute("SELECT login_role FROM cells WHERE cell = %s", (cell,)).fetchone()
        if row is None:
            raise ConfigError.single("cell", f"no cell {cell!r} in the shop store",
                                     hint="register it first: microfactory shop cell add NAME")
        db.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(_partner_role(db, partner)),
                                                   sql.Identifier(str(row[0]))))


def add_station(admin_dsn: str, cell: str, station: str, owner: str, *, kind: str = "",
                pooled: bool = False) -> None:
    """Register a station of ``cell`` owned by ``owner``; ``pooled``: other partners may book it."""
    check_name("station", station)
    with psycopg.connect(admin_dsn) as db, db.transaction():
        _partner_role(db, owner)
        db.execute("INSERT INTO stations (cell, station, partner, kind, pooled) VALUES (%s,%s,%s,%s,%s) "
                   "ON CONFLICT (cell, station) DO UPDATE SET partner = excluded.partner, "
                   "kind = excluded.kind, pooled = excluded.pooled", (cell, station, owner, kind, pooled))
