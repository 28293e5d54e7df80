"""The shop store's PostgreSQL schema: ordered migrations, a ``schema_version`` table, row-level security.

Why PostgreSQL holds its own tables rather than a copy of each cell's SQLite file: many cells and several
partner companies share one database, so every row names its ``cell`` and its ``partner`` (the tenant
whose lot, recipe, program, parameter value, measurement, image hash or report it is). Row-level
security is ENABLEd and FORCEd on every table, with policies on the session's partner
(:func:`shop_partner`), so the tables' owner is held to them too.

The session's partner is ``current_setting('microfactory.partner')``, and it counts only when the login
is a member of that partner's role: a partner that runs ``SET microfactory.partner = 'other'`` gets no
partner at all (0 rows), never the other's rows. Logins are members of ``microfactory_app``, which has
the table privileges and is neither owner nor BYPASSRLS.

What a pooled machine's owner sees of a partner's work: ``machine_time`` (each step's station, start,
end, busy seconds, ok), ``machine_energy`` (busy seconds and Wh per lot and station), ``machine_alarms``
(code and text) and ``station_holds``/``hold_log`` — never ``steps``, ``programs``, ``parameter_values``,
``measurements`` or ``step_data`` of the partner.

Migrations run in one transaction under an advisory lock (two cells starting at once never both
migrate); each is recorded in ``schema_version`` with the time it was applied.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import psycopg
from psycopg import sql

from microfactory.errors import ConfigError

log = logging.getLogger("microfactory.shop.schema")

#: The application role: table privileges, no ownership, NOBYPASSRLS. Partner and cell logins are members.
APP_ROLE = "microfactory_app"
#: ``pg_advisory_xact_lock`` key for migrations ("MFSH").
MIGRATION_LOCK = 0x4D465348

_ME = "(SELECT shop_partner())"

#: Tables only their partner reads and writes (``partner = me``).
PRIVATE = ("lots", "parameter_values", "recipes", "programs", "parts", "step_data", "lot_reports",
           "part_links", "bookings")
#: Tables a customer may read for a part a partner shared with it (``shares``), besides the partner.
SHARED = {"steps": "steps", "measurements": "measurements", "image_hashes": "measurements"}
#: Machine-time tables: the partner whose work it was and the machine's owner (``owner = me``) read them.
MACHINE = ("machine_time", "machine_energy", "machine_alarms", "hold_log")

_V1_TABLES = """
CREATE TABLE partners (
    partner text PRIMARY KEY, login_role text NOT NULL UNIQUE, name text NOT NULL DEFAULT '');
CREATE FUNCTION shop_partner() RETURNS text LANGUAGE sql STABLE AS $$
    SELECT p.partner FROM public.partners p
    WHERE p.partner = pg_catalog.current_setting('microfactory.partner', true)
      AND pg_catalog.pg_has_role(current_user, p.login_role, 'MEMBER') $$;
CREATE TABLE cells (
    cell text PRIMARY KEY, partner text NOT NULL REFERENCES partners, login_role text NOT NULL UNIQUE,
    name text NOT NULL DEFAULT '');
CREATE TABLE stations (
    cell text NOT NULL REFERENCES cells, station text NOT NULL, partner text NOT NULL REFERENCES partners,
    kind text NOT NULL DEFAULT '', pooled boolean NOT NULL DEFAULT false, PRIMARY KEY (cell, station));
CREATE TABLE cell_sync (
    cell text PRIMARY KEY REFERENCES cells, high_water bigint NOT NULL DEFAULT 0,
    last_hash text NOT NULL DEFAULT repeat('0', 64), synced_at timestamptz);
CREATE TABLE journal_records (
    cell text NOT NULL, seq bigint NOT NULL, partner text NOT NULL REFERENCES partners,
    what text NOT NULL, body text NOT NULL, hash text NOT NULL,
    synced_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (cell, seq));
CREATE TABLE lots (
    cell text NOT NULL, lot text NOT NULL, partner text NOT NULL REFERENCES partners, recipe text NOT NULL,
    version text NOT NULL, parts integer NOT NULL, state text, started_at timestamptz,
    ended_at timestamptz, recipe_sha256 text, operator text, PRIMARY KEY (cell, lot));
CREATE TABLE parameter_values (
    cell text NOT NULL, lot text NOT NULL, name text NOT NULL, partner text NOT NULL REFERENCES partners,
    value text NOT NULL, PRIMARY KEY (cell, lot, name));
CREATE TABLE recipes (
    partner text NOT NULL REFERENCES partners, sha256 text NOT NULL, recipe text NOT NULL,
    version text NOT NULL, PRIMARY KEY (partner, sha256));
CREATE TABLE programs (
    partner text NOT NULL REFERENCES partners, sha256 text NOT NULL, body text NOT NULL,
    PRIMARY KEY (partner, sha256));
CREATE TABLE parts (
    cell text NOT NULL, part text NOT NULL, partner text NOT NULL REFERENCES partners, lot text NOT NULL,
    part_uid text NOT NULL, state text NOT NULL, reworks integer NOT NULL, energy_j double precision,
    reason text, PRIMARY KEY (cell, part));
CREATE TABLE part_links (
    cell text NOT NULL, part text NOT NULL, partner text NOT NULL REFERENCES partners,
    part_uid text NOT NULL, PRIMARY KEY (cell, part));
CREATE TABLE steps (
    cell text NOT NULL, key text NOT NULL, partner text NOT NULL REFERENCES partners, lot text NOT NULL,
    part text NOT NULL, part_uid text NOT NULL, step text NOT NULL, station text, attempt integer NOT NULL,
    intent_at timestamptz, done_at timestamptz, busy_s double precision, ok boolean, verdict text,
    program_sha256 text, PRIMARY KEY (cell, key));
CREATE INDEX steps_part_uid ON steps (part_uid);
CREATE TABLE step_data (
    cell text NOT NULL, key text NOT NULL, partner text NOT NULL REFERENCES partners, data text NOT NULL,
    PRIMARY KEY (cell, key));
CREATE TABLE measurements (
    cell text NOT NULL, key text NOT NULL, name text NOT NULL, partner text NOT NULL REFERENCES partners,
    part_uid text NOT NULL, measured double precision, nominal double precision, tol double precision,
    ok boolean, PRIMARY KEY (cell, key, name));
CREATE TABLE image_hashes (
    cell text NOT NULL, key text NOT NULL, partner text NOT NULL REFERENCES partners,
    part_uid text NOT NULL, sha256 text NOT NULL, PRIMARY KEY (cell, key));
CREATE TABLE lot_reports (
    cell text NOT NULL, lot text NOT NULL, partner text NOT NULL REFERENCES partners, state text NOT NULL,
    summary jsonb NOT NULL, PRIMARY KEY (cell, lot));
CREATE TABLE shares (
    partner text NOT NULL REFERENCES partners, part_uid text NOT NULL,
    customer text NOT NULL REFERENCES partners, scope text NOT NULL CHECK (scope IN ('steps',
                                                                                     'measurements')),
    agreed_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (partner, part_uid, customer, scope));
CREATE TABLE machine_time (
    cell text NOT NULL, key text NOT NULL, station text NOT NULL, owner text NOT NULL REFERENCES partners,
    partner text NOT NULL REFERENCES partners, started_at timestamptz, ended_at timestamptz,
    busy_s double precision, ok boolean, PRIMARY KEY (cell, key));
CREATE TABLE machine_energy (
    cell text NOT NULL, lot text NOT NULL, station text NOT NULL, owner text NOT NULL REFERENCES partners,
    partner text NOT NULL REFERENCES partners, busy_s double precision NOT NULL,
    energy_wh double precision NOT NULL, steps integer NOT NULL, ended_at timestamptz,
    PRIMARY KEY (cell, lot, station));
CREATE TABLE machine_alarms (
    cell text NOT NULL, event_row bigint NOT NULL, station text NOT NULL,
    owner text NOT NULL REFERENCES partners, partner text NOT NULL REFERENCES partners, code text,
    text text, t_s double precision, PRIMARY KEY (cell, event_row));
CREATE TABLE bookings (
    id bigserial PRIMARY KEY, partner text NOT NULL REFERENCES partners, cell text NOT NULL,
    station text NOT NULL, lot text NOT NULL DEFAULT '', hours double precision NOT NULL DEFAULT 0,
    state text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'done', 'interrupted')),
    requested_at timestamptz NOT NULL DEFAULT now(), claimed_at timestamptz, finished_at timestamptz,
    FOREIGN KEY (cell, station) REFERENCES stations);
CREATE INDEX bookings_queue ON bookings (cell, station, id) WHERE state = 'queued';
CREATE TABLE station_holds (
    cell text NOT NULL, station text NOT NULL, partner text NOT NULL REFERENCES partners,
    booking bigint NOT NULL, claimed_at timestamptz NOT NULL DEFAULT now(),
    lease_until timestamptz NOT NULL, PRIMARY KEY (cell, station),
    FOREIGN KEY (cell, station) REFERENCES stations);
CREATE TABLE hold_log (
    booking bigint PRIMARY KEY, cell text NOT NULL, station text NOT NULL,
    owner text NOT NULL REFERENCES partners, partner text NOT NULL REFERENCES partners,
    claimed_at timestamptz NOT NULL, lease_until timestamptz NOT NULL, released_at timestamptz, how text);
"""


def _v1_policies() -> list[str]:
    """Row-level security for every table of version 1 (ENABLE and FORCE, then the policies)."""
    out: list[str] = []
    tables = ("partners", "cells", "cell_sync", "stations", "journal_records", *PRIVATE, *SHARED, "shares",
              *MACHINE,
              "station_holds")
    for table in tables:
        out += [f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY", f"ALTER TABLE {table} FORCE ROW LEVEL "
                                                                  f"SECURITY"]
    member = "pg_catalog.pg_has_role(current_user, login_role, 'MEMBER')"
    out.append(f"CREATE POLICY own ON partners USING ({member})")
    # A cell reads its own row (its login) and its partner's; the shop's stations are listed to every
    # partner (which machines exist and who owns them is what pooling is about), written by their owner.
    out.append(f"CREATE POLICY own ON cells USING (partner = {_ME} OR {member})")
    # A cell's login (and only it) reads and moves its sync position, and reads back every record it
    # shipped, whichever partner the record belongs to (to verify the chain on this side).
    its_cell = ("EXISTS (SELECT 1 FROM cells c WHERE c.cell = {t}.cell AND "
                "pg_catalog.pg_has_role(current_user, c.login_role, 'MEMBER'))")
    out.append(f"CREATE POLICY cell_login ON cell_sync USING ({its_cell.format(t='cell_sync')})")
    out.append(f"CREATE POLICY cell_login ON journal_records FOR SELECT USING "
               f"({its_cell.format(t='journal_records')})")
    out.append("CREATE POLICY listed ON stations FOR SELECT USING (true)")
    out.append(f"CREATE POLICY own ON stations FOR ALL USING (partner = {_ME}) WITH CHECK (partner = {_ME})")
    for table in ("journal_records", *PRIVATE):
        out.append(f"CREATE POLICY own ON {table} USING (partner = {_ME}) WITH CHECK (partner = {_ME})")
    for table, scope in SHARED.items():
        out.append(f"CREATE POLICY own ON {table} USING (partner = {_ME}) WITH CHECK (partner = {_ME})")
        out.append(f"CREATE POLICY shared ON {table} FOR SELECT USING (EXISTS (SELECT 1 FROM shares s "
                   f"WHERE s.partner = {table}.partner AND s.part_uid = {table}.part_uid "
                   f"AND s.customer = {_ME} AND s.scope = '{scope}'))")
    out.append(f"CREATE POLICY own ON shares USING (partner = {_ME}) WITH CHECK (partner = {_ME})")
    out.append(f"CREATE POLICY customer ON shares FOR SELECT USING (customer = {_ME})")
    for table in MACHINE:
        out.append(f"CREATE POLICY own ON {table} USING (partner = {_ME}) WITH CHECK (partner = {_ME})")
        out.append(f"CREATE POLICY machine_owner ON {table} FOR SELECT USING (owner = {_ME})")
    # Who holds a pooled station is shop status: every partner reads it; only the holder changes it, and
    # anyone may clear a hold whose lease expired (its holder crashed).
    out.append("CREATE POLICY listed ON station_holds FOR SELECT USING (true)")
    out.append(f"CREATE POLICY claim ON station_holds FOR INSERT WITH CHECK (partner = {_ME})")
    out.append(f"CREATE POLICY renew ON station_holds FOR UPDATE USING (partner = {_ME}) "
               f"WITH CHECK (partner = {_ME})")
    out.append(f"CREATE POLICY release ON station_holds FOR DELETE "
               f"USING (partner = {_ME} OR lease_until < now())")
    return out


def _v1(db: psycopg.Connection) -> None:
    """Version 1: every table, the application role's privileges and row-level security."""
    db.execute(_V1_TABLES)
    for statement in _v1_policies():
        db.execute(statement)
    role = sql.Identifier(APP_ROLE)
    db.execute(sql.SQL("REVOKE ALL ON SCHEMA public FROM PUBLIC"))
    db.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(role))
    db.execute(sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {}")
               .format(role))
    db.execute(sql.SQL("REVOKE INSERT, UPDATE, DELETE ON partners, cells FROM {}").format(role))
    db.execute(sql.SQL("REVOKE INSERT, DELETE ON cell_sync FROM {}").format(role))
    db.execute(sql.SQL("REVOKE UPDATE, DELETE ON journal_records FROM {}").format(role))
    db.execute(sql.SQL("GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {}").format(role))
    db.execute(sql.SQL("REVOKE ALL ON FUNCTION shop_partner() FROM PUBLIC"))
    db.execute(sql.SQL("GRANT EXECUTE ON FUNCTION shop_partner() TO {}").format(role))


#: Ordered migrations: ``MIGRATIONS[i]`` takes the schema from version i to i + 1.
MIGRATIONS: Sequence[tuple[str, object]] = (("tables, roles and row-level security", _v1),)
VERSION = len(MIGRATIONS)


def version(db: psycopg.Connection) -> int:
    """The store's schema version (0: a database microfactory never migrated)."""
    exists = db.execute("SELECT to_regclass('public.schema_version') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return 0
    row = db.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def migrate(admin_dsn: str) -> int | None:
    """Bring the store at ``admin_dsn`` (its owner, or a superuser) to :data:`VERSION`; returns the version
    migrated from, or None when it was current. A store newer than this microfactory is refused."""
    with psycopg.connect(admin_dsn) as db, db.transaction():
        db.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        db.execute("CREATE TABLE IF NOT EXISTS schema_version (version integer PRIMARY KEY, "
                   "what text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")
        db.execute("ALTER TABLE schema_version ENABLE ROW LEVEL SECURITY")
        db.execute("ALTER TABLE schema_version FORCE ROW LEVEL SECURITY")
        found = db.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (APP_ROLE,)).fetchone()
        if not found:
            db.execute(sql.SQL("CREATE ROLE {} NOLOGIN NOSUPERUSER NOBYPASSRLS")
                       .format(sql.Identifier(APP_ROLE)))
        old = version(db)
        if old > VERSION:
            raise ConfigError.single("store", f"the shop store's schema {old} is newer than this "
                                     f"microfactory's ({VERSION})", hint="upgrade microfactory")
        if old == VERSION:
            return None
        for number in range(old, VERSION):
            what, step = MIGRATIONS[number]
            log.warning("shop store: migrating schema %d → %d (%s)", number, number + 1, what)
            step(db)  # type: ignore[operator]
            db.execute("INSERT INTO schema_version (version, what) VALUES (%s, %s)", (number + 1, what))
        db.execute("DROP POLICY IF EXISTS readable ON schema_version")
        db.execute("CREATE POLICY readable ON schema_version FOR SELECT USING (true)")
        db.execute(sql.SQL("GRANT SELECT ON schema_version TO {}").format(sql.Identifier(APP_ROLE)))
        return old
