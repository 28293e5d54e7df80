"""The journal file: what makes a SQLite file ours, its schema version, migrations, read-only opening.

A journal says what it is in its SQLite header: ``PRAGMA application_id`` = :data:`APPLICATION_ID`
("MFJL") and ``PRAGMA user_version`` = its schema version. Journals written before versions existed
(schema 1: application id 0, tables ``runs``, ``steps`` and ``audit``) are recognised by their tables.

- **Reading** (:func:`open_read_only`) never writes: the file is opened with a ``mode=ro`` URI, a
  foreign SQLite database, an empty file or a non-SQLite file is refused (:class:`ConfigError`, exit 2)
  and left byte-for-byte as it was. An older journal is read through an in-memory copy migrated there,
  so the file itself stays old until a run writes to it.
- **Writing** (:func:`open_for_writing`) creates a new journal, or migrates an older one in place
  inside one transaction (logged, and recorded in the audit trail by the caller), or refuses a foreign
  file or one written by a newer microfactory.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

from microfactory.errors import ConfigError

log = logging.getLogger("microfactory.engine.schema")

APPLICATION_ID = 0x4D464A4C  # "MFJL"
VERSION = 5
SQLITE_MAGIC = b"SQLite format 3\x00"
HINT = "give a journal that `microfactory run --db PATH` wrote"

#: The current schema (version 5), made on a new file.
SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    lot TEXT PRIMARY KEY, recipe TEXT NOT NULL, version TEXT NOT NULL, cell TEXT NOT NULL,
    parts INTEGER NOT NULL, parameters TEXT NOT NULL, started_s REAL, started_at TEXT,
    ended_s REAL, ended_at TEXT, state TEXT, summary TEXT,
    recipe_sha256 TEXT, user TEXT, closed_reason TEXT, recipe_path TEXT, cell_path TEXT, partner TEXT);
CREATE TABLE IF NOT EXISTS parts (
    part TEXT PRIMARY KEY, lot TEXT NOT NULL, state TEXT NOT NULL, reworks INTEGER NOT NULL DEFAULT 0,
    energy_j REAL NOT NULL DEFAULT 0, updated_s REAL, reason TEXT, step TEXT, rework_steps TEXT);
CREATE TABLE IF NOT EXISTS steps (
    key TEXT PRIMARY KEY, lot TEXT NOT NULL, part TEXT NOT NULL, step TEXT NOT NULL, station TEXT,
    firmware TEXT, attempt INTEGER NOT NULL, request TEXT NOT NULL, intent_s REAL NOT NULL,
    intent_at TEXT NOT NULL, done_s REAL, ok INTEGER, verdict TEXT, data TEXT);
CREATE INDEX IF NOT EXISTS steps_part ON steps(part);
CREATE TABLE IF NOT EXISTS requests (sha256 TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER, t REAL NOT NULL, kind TEXT NOT NULL, source TEXT NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL, pw_hash TEXT NOT NULL,
    active INTEGER NOT NULL DEFAULT 1, must_change INTEGER NOT NULL DEFAULT 1,
    locked INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    token_sha256 TEXT PRIMARY KEY, user TEXT NOT NULL, kind TEXT NOT NULL, started_at TEXT NOT NULL,
    last_s REAL NOT NULL, expires_s REAL, ended INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS signatures (
    id TEXT PRIMARY KEY, user TEXT NOT NULL, name TEXT NOT NULL, meaning TEXT NOT NULL,
    subject TEXT NOT NULL, subject_sha256 TEXT NOT NULL, signed_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS recipes (
    ref TEXT PRIMARY KEY, recipe TEXT NOT NULL, version TEXT NOT NULL, sha256 TEXT NOT NULL,
    status TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY, what TEXT NOT NULL, body TEXT NOT NULL, prev TEXT NOT NULL, hash TEXT NOT NULL);
"""

#: Tables every journal has had since schema 1 (how an unversioned journal is recognised).
LEGACY_TABLES = frozenset({"runs", "parts", "steps", "audit"})


def _to_2(db: sqlite3.Connection) -> None:
    """Schema 1 → 2: who ran a lot and with which recipe file, why a part was scrapped or a lot closed,
    step requests stored once by content hash."""
    for sql in ("ALTER TABLE runs ADD COLUMN recipe_sha256 TEXT", "ALTER TABLE runs ADD COLUMN user TEXT",
                "ALTER TABLE runs ADD COLUMN closed_reason TEXT", "ALTER TABLE parts ADD COLUMN reason TEXT",
                "CREATE TABLE IF NOT EXISTS requests (sha256 TEXT PRIMARY KEY, body TEXT NOT NULL)"):
        db.execute(sql)


def _create_missing(db: sqlite3.Connection) -> None:
    """Create the tables of :data:`SCHEMA` a file lacks, statement by statement (``executescript``
    would commit the caller's transaction)."""
    for statement in SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)


def _to_3(db: sqlite3.Connection) -> None:
    """Schema 2 → 3: users, sessions, electronic signatures and recipe releases (21 CFR Part 11)."""
    _create_missing(db)


def _to_4(db: sqlite3.Connection) -> None:
    """Schema 3 → 4: where each part goes next and its reworks per step, and the recipe and cell files
    of each lot, so a killed lot resumes from ``resume --db PATH`` alone."""
    db.execute("ALTER TABLE parts ADD COLUMN step TEXT")
    db.execute("ALTER TABLE parts ADD COLUMN rework_steps TEXT")
    db.execute("ALTER TABLE runs ADD COLUMN recipe_path TEXT")
    db.execute("ALTER TABLE runs ADD COLUMN cell_path TEXT")


def _to_5(db: sqlite3.Connection) -> None:
    """Schema 4 → 5: the partner (company) each lot is run for, which the shop store files it under."""
    db.execute("ALTER TABLE runs ADD COLUMN partner TEXT")


#: Migration from version N to N + 1, keyed by N.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {1: _to_2, 2: _to_3, 3: _to_4, 4: _to_5}


def _refuse(path: Path, why: str, hint: str = HINT) -> ConfigError:
    return ConfigError.single(path, why, hint=hint)


def _check_header(path: Path) -> None:
    """Refuse what is not a SQLite file at all, before SQLite ever touches it."""
    if not path.is_file():
        raise _refuse(path, "no such run journal")
    with path.open("rb") as f:
        head = f.read(len(SQLITE_MAGIC))
    if not head:
        raise _refuse(path, "not a microfactory run journal (the file is empty)")
    if head != SQLITE_MAGIC:
        raise _refuse(path, "not a microfactory run journal (not an SQLite database)")


def version_of(db: sqlite3.Connection, path: Path) -> int:
    """The schema version of an open database, or ConfigError when it is not a journal."""
    try:
        app = int(db.execute("PRAGMA application_id").fetchone()[0])
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        raise _refuse(path, f"not a microfactory run journal ({exc})") from None
    if app == APPLICATION_ID:
        if version > VERSION:
            raise _refuse(path, f"journal schema {version} is newer than this microfactory's ({VERSION})",
                          hint="upgrade microfactory to read or write this journal")
        return version
    if app == 0 and version == 0 and tables >= LEGACY_TABLES:
        return 1
    what = f"application id {app:#x}" if app else f"tables {', '.join(sorted(tables)) or 'none'}"
    raise _refuse(path, f"not a microfactory run journal (a foreign SQLite database: {what})")


def open_read_only(path: str | Path) -> sqlite3.Connection:
    """Open an existing journal for reading only; an older schema is migrated in an in-memory copy."""
    file = Path(path)
    _check_header(file)
    db = sqlite3.connect(f"{file.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
    try:
        version = version_of(db, file)
    except BaseException:
        db.close()
        raise
    if version == VERSION:
        return db
    memory = sqlite3.connect(":memory:", check_same_thread=False)
    db.backup(memory)
    db.close()
    migrate(memory, version)
    return memory


def open_for_writing(path: str) -> tuple[sqlite3.Connection, int | None]:
    """Open (or create) a journal for a run; returns the connection and the version migrated from
    (None when nothing was migrated). A foreign or newer file is refused and not touched."""
    file = Path(path)
    fresh = path == ":memory:" or not file.exists() or file.stat().st_size == 0
    if not fresh:
        probe = open_read_only(file)  # refuses what is not ours, untouched
        probe.close()
    else:
        file.parent.mkdir(parents=True, exist_ok=True) if path != ":memory:" else None
    if fresh and path != ":memory:":
        _create(file)
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    if path == ":memory:":
        _initialise(db)
        old = None
    elif fresh:
        old = None
    else:
        old = version_of(db, file)
        if old < VERSION:
            log.warning("%s: migrating the run journal from schema %d to %d", path, old, VERSION)
            db.execute("BEGIN IMMEDIATE")
            try:
                migrate(db, old)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        else:
            old = None
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    return db, old


def _initialise(db: sqlite3.Connection) -> None:
    db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    db.execute(f"PRAGMA user_version = {VERSION}")
    db.executescript(SCHEMA)


def _create(file: Path) -> None:
    """Make a complete new journal beside ``file`` and rename it into place: a process killed while
    creating it leaves no half-made journal (only a stale ``.new`` file, replaced next time)."""
    temp = file.with_name(file.name + ".new")
    temp.unlink(missing_ok=True)
    db = sqlite3.connect(temp, isolation_level=None)
    try:
        _initialise(db)
        db.execute("PRAGMA journal_mode=WAL")
    finally:
        db.close()
    os.replace(temp, file)


def migrate(db: sqlite3.Connection, version: int) -> None:
    """Apply every migration from ``version`` to :data:`VERSION` (inside the caller's transaction)."""
    while version < VERSION:
        MIGRATIONS[version](db)
        version += 1
    db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    db.execute(f"PRAGMA user_version = {VERSION}")
