"""Users, roles, passwords and sessions in the core, kept in the run journal (21 CFR Part 11).

Why in the core and in the journal: a role picked in an open GUI dropdown proves nothing; the same user
book must guard the CLI, the API and the app, and each record must name the person behind it in the file
the auditor receives. Rules (what a quality manager expects of a Part 11 system):

- unique user ids; one role each: ``operator`` (runs lots, answers prompts), ``engineer`` (also releases
  recipes and decides about interrupted machining), ``quality`` (reviews and approves lot reports, closes
  lots), ``admin`` (manages users only: an admin signs nothing);
- passwords hashed with scrypt (:func:`hashlib.scrypt`, memory-hard: N=2^14, r=8, p=1, 16 MiB, a 16-byte
  random salt per password); at least :data:`MIN_PASSWORD` characters;
- the first admin is created with a one-time password and must change it before doing anything else (as
  must every user whose password an admin set);
- :data:`MAX_FAILURES` wrong passwords in a row lock the account until an admin unlocks it, with a
  reason;
- a session ends after :data:`IDLE_TIMEOUT_S` without use; a CI token (``MICROFACTORY_TOKEN``) is a
  session an admin issued for a set time, which may run lots but never sign;
- every change to a user (role, lock, unlock, password, deactivation) is a record change: who, when,
  old value, new value, reason, audited (:meth:`Journal.record_change`).

Times are wall seconds (``time.time``; a ``now`` callable can be given for tests).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from microfactory.engine.journal import Journal
from microfactory.errors import AccessDenied, StateError

MIN_PASSWORD = 10
MAX_FAILURES = 5
IDLE_TIMEOUT_S = 15 * 60.0
TOKEN_ENV = "MICROFACTORY_TOKEN"
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


class Role(StrEnum):
    OPERATOR = "operator"
    ENGINEER = "engineer"
    QUALITY = "quality"
    ADMIN = "admin"


class Permission(StrEnum):
    RUN_LOT = "run a lot"
    DECIDE_RESUME = "decide how an interrupted step goes on"
    RELEASE_RECIPE = "release a recipe"
    REVIEW_REPORT = "review a lot report"
    APPROVE_REPORT = "approve a lot report"
    CLOSE_LOT = "close a lot without finishing it"
    MANAGE_USERS = "manage users"


PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.OPERATOR: frozenset({Permission.RUN_LOT}),
    Role.ENGINEER: frozenset({Permission.RUN_LOT, Permission.DECIDE_RESUME, Permission.RELEASE_RECIPE,
                              Permission.REVIEW_REPORT}),
    Role.QUALITY: frozenset({Permission.REVIEW_REPORT, Permission.APPROVE_REPORT, Permission.CLOSE_LOT,
                             Permission.DECIDE_RESUME}),
    Role.ADMIN: frozenset({Permission.MANAGE_USERS}),
}


def hash_password(password: str) -> str:
    """``scrypt$N$r$p$salt$key`` (base64): what the users table stores, never the password."""
    salt = secrets.token_bytes(16)
    key = hashlib.scrypt(password.encode("utf-8"), salt=salt, dklen=32, **_SCRYPT)
    b64 = base64.b64encode
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${b64(salt).decode()}${b64(key).decode()}"


def password_matches(password: str, stored: str) -> bool:
    """Constant-time check of ``password`` against a :func:`hash_password` string."""
    try:
        scheme, n, r, p, salt, key = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    got = hashlib.scrypt(password.encode("utf-8"), salt=base64.b64decode(salt), dklen=32, n=int(n), r=int(r),
                         p=int(p))
    return hmac.compare_digest(got, base64.b64decode(key))


@dataclass(frozen=True)
class User:
    id: str
    name: str
    role: Role
    active: bool
    must_change: bool
    locked: bool

    def may(self, permission: Permission) -> bool:
        return self.active and not self.locked and permission in PERMISSIONS[self.role]


@dataclass(frozen=True)
class Session:
    """A signed-in user. ``token`` is the secret the CLI/API/GUI hands back; the file keeps its sha256.
    ``kind`` is ``password`` (a person signed in) or ``token`` (CI: may run, never sign)."""

    token: str
    user: User
    kind: str


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


class UserBook:
    """The users of one journal file. All writes go through the journal (audited, ``synchronous=FULL``)."""

    def __init__(self, journal: Journal, *, now: Callable[[], float] = time.time,
                 idle_timeout_s: float = IDLE_TIMEOUT_S) -> None:
        self.journal = journal
        self.now = now
        self.idle_timeout_s = idle_timeout_s

    # -- reading ----------------------------------------------------------------------------------
    def get(self, user_id: str) -> User | None:
        rows = self.journal.execute("SELECT id, name, role, active, must_change, locked FROM users "
                                    "WHERE id = ?", (user_id,))
        if not rows:
            return None
        r = rows[0]
        return User(r[0], r[1], Role(r[2]), bool(r[3]), bool(r[4]), bool(r[5]))

    def users(self) -> list[User]:
        rows = self.journal.execute("SELECT id FROM users ORDER BY id")
        return [u for (uid,) in rows if (u := self.get(uid)) is not None]

    @property
    def empty(self) -> bool:
        return not self.journal.execute("SELECT 1 FROM users LIMIT 1")

    # -- the first admin and user administration ---------------------------------------------------
    def first_admin(self, user_id: str = "admin", name: str = "Administrator") -> str:
        """Create the first admin with a one-time password (returned: show it once); refused when the
        journal already has users. The admin must change the password at first sign-in."""
        if not self.empty:
            raise StateError("this journal already has users", hint="sign in as an admin to add users")
        password = secrets.token_urlsafe(12)
        self._insert(user_id, name, Role.ADMIN, password, by="(first run)")
        return password

    def add(self, admin: Session, user_id: str, name: str, role: Role | str, password: str) -> User:
        """An admin adds a user with an initial password the user must change at first sign-in."""
        self._require(admin, Permission.MANAGE_USERS)
        if self.get(user_id) is not None:
            raise StateError(f"user id {user_id!r} is taken (user ids are unique and never reused)",
                             hint="choose another id")
        self._insert(user_id, name, Role(role), password, by=admin.user.id)
        user = self.get(user_id)
        assert user is not None
        return user

    def _insert(self, user_id: str, name: str, role: Role, password: str, *, by: str) -> None:
        _check_password(password)
        if not user_id.strip() or not name.strip():
            raise StateError("a user needs an id and a full name", hint="--id ID --name 'Full Name'")
        pw = hash_password(password)
        at = _iso(self.now())

        def write(db: sqlite3.Connection) -> None:
            db.execute("INSERT INTO users (id, name, role, pw_hash, active, must_change, locked, failed, "
                       "created_at) VALUES (?,?,?,?,1,1,0,0,?)", (user_id, name, role.value, pw, at))

        self.journal.audited(write, "user", {"id": user_id, "name": name, "role": role.value, "pw_hash": pw,
                                             "active": 1, "must_change": 1, "locked": 0, "by": by, "at": at})

    def set_role(self, admin: Session, user_id: str, role: Role | str, *, reason: str) -> None:
        self._require(admin, Permission.MANAGE_USERS)
        self._change(admin.user.id, user_id, "role", Role(role).value, reason)

    def unlock(self, admin: Session, user_id: str, *, reason: str) -> None:
        self._require(admin, Permission.MANAGE_USERS)
        self._change(admin.user.id, user_id, "locked", 0, reason, also="failed = 0")

    def deactivate(self, admin: Session, user_id: str, *, reason: str) -> None:
        """A user leaves: never deleted (their records name them), only made inactive."""
        self._require(admin, Permission.MANAGE_USERS)
        self._change(admin.user.id, user_id, "active", 0, reason)
        self.journal.write_unaudited("UPDATE sessions SET ended = 1 WHERE user = ?", (user_id,))

    def reset_password(self, admin: Session, user_id: str, password: str, *, reason: str) -> None:
        """An admin sets a new initial password; the user must change it at the next sign-in."""
        self._require(admin, Permission.MANAGE_USERS)
        _check_password(password)
        self._change(admin.user.id, user_id, "pw_hash", hash_password(password), reason)
        self._change(admin.user.id, user_id, "must_change", 1, reason)

    def _change(self, by: str, user_id: str, column: str, new: object, reason: str, *,
                also: str = "") -> None:
        rows = self.journal.execute(f"SELECT {column} FROM users WHERE id = ?", (user_id,))
        if not rows:
            raise StateError(f"no user {user_id!r}", hint="`microfactory users list --db PATH` lists them")
        old = rows[0][0]
        extra = f", {also}" if also else ""

        def write(db: sqlite3.Connection) -> None:
            db.execute(f"UPDATE users SET {column} = ?{extra} WHERE id = ?", (new, user_id))

        self.journal.record_change(table="users", key=user_id, field=column, old=old, new=new, reason=reason,
                                   by=by, write=write)

    # -- signing in -------------------------------------------------------------------------------
    def sign_in(self, user_id: str, password: str) -> Session:
        """Check the password; a session (idle timeout) or AccessDenied. Failures count toward the
        lock-out and are audited; a password that must change gives a session that may only change it."""
        user = self.check_password(user_id, password)
        token = secrets.token_urlsafe(32)
        now = self.now()
        self.journal.write_unaudited(
            "INSERT INTO sessions (token_sha256, user, kind, started_at, last_s) VALUES (?,?,?,?,?)",
            (_sha(token), user.id, "password", _iso(now), now))
        return Session(token, user, "password")

    def check_password(self, user_id: str, password: str) -> User:
        """The re-entered password of a signature, or a sign-in: the user, or AccessDenied."""
        rows = self.journal.execute("SELECT pw_hash, failed FROM users WHERE id = ?", (user_id,))
        user = self.get(user_id)
        if user is None or not rows:
            raise AccessDenied(f"unknown user {user_id!r} or wrong password", hint="check the user id")
        if user.locked:
            raise AccessDenied(f"user {user_id!r} is locked after {MAX_FAILURES} wrong passwords",
                               hint="an admin unlocks it: microfactory users unlock --db PATH --id ID")
        if not user.active:
            raise AccessDenied(f"user {user_id!r} is deactivated", hint="ask an admin")
        if not password_matches(password, rows[0][0]):
            failed = int(rows[0][1]) + 1
            self.journal.write_unaudited("UPDATE users SET failed = ? WHERE id = ?", (failed, user_id))
            self.journal.audited(lambda db: None, "signin_failed", {"user": user_id, "failed": failed,
                                                                    "at": _iso(self.now())})
            if failed >= MAX_FAILURES:
                self._change("(lock-out)", user_id, "locked", 1, f"{failed} wrong passwords in a row")
                raise AccessDenied(f"user {user_id!r} is now locked after {failed} wrong passwords",
                                   hint="an admin unlocks it: microfactory users unlock --db PATH --id ID")
            raise AccessDenied(f"unknown user {user_id!r} or wrong password",
                               hint=f"{MAX_FAILURES - failed} attempt(s) left before the account locks")
        self.journal.write_unaudited("UPDATE users SET failed = 0 WHERE id = ?", (user_id,))
        return user

    def change_password(self, session: Session, old: str, new: str) -> Session:
        """The user changes their own password (the only thing a must-change session may do)."""
        self.check_password(session.user.id, old)
        _check_password(new)
        if old == new:
            raise AccessDenied("the new password must differ from the old one", hint="choose another")
        self._change(session.user.id, session.user.id, "pw_hash", hash_password(new), "password changed by "
                     "its user")
        if session.user.must_change:
            self._change(session.user.id, session.user.id, "must_change", 0, "first password changed")
        user = self.get(session.user.id)
        assert user is not None
        return Session(session.token, user, session.kind)

    def issue_token(self, admin: Session, user_id: str, *, hours: float, reason: str) -> str:
        """A CI token for ``user_id`` valid ``hours``: may run lots, never sign (a signature needs the
        person's password)."""
        self._require(admin, Permission.MANAGE_USERS)
        if self.get(user_id) is None:
            raise StateError(f"no user {user_id!r}", hint="add the user first")
        token = secrets.token_urlsafe(32)
        now = self.now()
        self.journal.write_unaudited(
            "INSERT INTO sessions (token_sha256, user, kind, started_at, last_s, expires_s) "
            "VALUES (?,?,?,?,?,?)",
            (_sha(token), user_id, "token", _iso(now), now, now + hours * 3600.0))
        self.journal.audited(lambda db: None, "token", {"user": user_id, "by": admin.user.id, "hours": hours,
                                                        "reason": reason, "at": _iso(now)})
        return token

    def session(self, token: str) -> Session:
        """The live session for ``token`` (touching it), or AccessDenied when unknown, ended or timed out."""
        rows = self.journal.execute("SELECT user, kind, last_s, expires_s, ended FROM sessions "
                                    "WHERE token_sha256 = ?", (_sha(token),))
        if not rows:
            raise AccessDenied("unknown session or token", hint="sign in again")
        user_id, kind, last_s, expires_s, ended = rows[0]
        now = self.now()
        if ended or (kind == "password" and now - float(last_s) > self.idle_timeout_s) \
                or (expires_s is not None and now > float(expires_s)):
            self._end(token)
            raise AccessDenied(f"the session of {user_id!r} has ended (idle more than "
                               f"{self.idle_timeout_s / 60:g} min, expired or signed out)",
                               hint="sign in again")
        user = self.get(user_id)
        if user is None or not user.active or user.locked:
            raise AccessDenied(f"user {user_id!r} may no longer sign in", hint="ask an admin")
        self.journal.write_unaudited("UPDATE sessions SET last_s = ? WHERE token_sha256 = ?",
                                     (now, _sha(token)))
        return Session(token, user, str(kind))

    def sign_out(self, session: Session) -> None:
        self._end(session.token)

    def _end(self, token: str) -> None:
        self.journal.write_unaudited("UPDATE sessions SET ended = 1 WHERE token_sha256 = ?", (_sha(token),))

    def require(self, session: Session, permission: Permission) -> User:
        """The session's user when it is live and may do ``permission``; AccessDenied otherwise."""
        return self._require(session, permission)

    def _require(self, session: Session, permission: Permission) -> User:
        live = self.session(session.token)
        if live.user.must_change:
            raise AccessDenied(f"user {live.user.id!r} must change the password first",
                               hint="microfactory users passwd --db PATH --user ID")
        if not live.user.may(permission):
            raise AccessDenied(f"user {live.user.id!r} ({live.user.role.value}) may not {permission.value}",
                               hint="roles that may: " + ", ".join(r.value for r, ps in PERMISSIONS.items()
                                                                   if permission in ps))
        return live.user


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccessDenied(f"a password needs at least {MIN_PASSWORD} characters", hint="choose a longer one")
