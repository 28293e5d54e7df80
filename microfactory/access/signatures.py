"""Electronic signatures (21 CFR 11.50, 11.70, 11.200) and recipe releases, kept in the run journal.

A signature shows the signer's printed name, the date and time (UTC) and the meaning (``released``,
``approved``, ``reviewed``); it needs the signer's password re-entered at the moment of signing (a CI
token never signs) and a role allowed that meaning. It is **bound to the sha256 of what was signed**
(:func:`lot_digest` of a lot's records, or the bytes of a recipe file): :func:`check` recomputes the
hash, so a record changed after signing shows its signature as invalid; and the signature row is in the
hash-chained audit trail, so editing the signature itself shows in ``journal --verify``.

A released recipe is immutable: releasing ``id`` ``version`` again with different content is refused
(a change is a new version), and :func:`check_recipe` says whether a file still is what was released.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from microfactory.access.users import Permission, Session, UserBook
from microfactory.engine.journal import Journal
from microfactory.errors import AccessDenied, StateError


class Meaning(StrEnum):
    RELEASED = "released"
    APPROVED = "approved"
    REVIEWED = "reviewed"


NEEDS = {Meaning.RELEASED: Permission.RELEASE_RECIPE, Meaning.APPROVED: Permission.APPROVE_REPORT,
         Meaning.REVIEWED: Permission.REVIEW_REPORT}


@dataclass(frozen=True)
class Signature:
    id: str
    user: str
    name: str
    meaning: Meaning
    subject: str
    subject_sha256: str
    signed_at: str

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "user": self.user, "name": self.name, "meaning": self.meaning.value,
                "subject": self.subject, "subject_sha256": self.subject_sha256, "signed_at": self.signed_at}


@dataclass(frozen=True)
class SignatureCheck:
    signature: Signature
    valid: bool
    why: str

    def as_dict(self) -> dict[str, Any]:
        return {**self.signature.as_dict(), "valid": self.valid, "why": self.why}


def sign(book: UserBook, session: Session, password: str, meaning: Meaning | str, subject: str,
         subject_sha256: str) -> Signature:
    """Sign ``subject`` (e.g. ``lot:L1``) with ``meaning``; the password is checked again here."""
    meaning = Meaning(meaning)
    if session.kind != "password":
        raise AccessDenied("a CI token cannot sign: a signature needs a person and their password",
                           hint="sign in with --user ID and the password")
    user = book.require(session, NEEDS[meaning])
    book.check_password(user.id, password)
    sig = Signature(uuid.uuid4().hex, user.id, user.name, meaning, subject, subject_sha256,
                    datetime.fromtimestamp(book.now(), UTC).isoformat(timespec="seconds"))

    def write(db: sqlite3.Connection) -> None:
        db.execute("INSERT INTO signatures (id, user, name, meaning, subject, subject_sha256, signed_at) "
                   "VALUES (?,?,?,?,?,?,?)", (sig.id, sig.user, sig.name, sig.meaning.value, sig.subject,
                                               sig.subject_sha256, sig.signed_at))

    book.journal.audited(write, "signature", sig.as_dict())
    return sig


def signatures(journal: Journal, subject: str) -> list[Signature]:
    rows = journal.execute("SELECT id, user, name, meaning, subject, subject_sha256, signed_at "
                           "FROM signatures WHERE subject = ? ORDER BY signed_at, rowid", (subject,))
    return [Signature(r[0], r[1], r[2], Meaning(r[3]), r[4], r[5], r[6]) for r in rows]


def check(journal: Journal, subject: str, current_sha256: str) -> list[SignatureCheck]:
    """Each signature of ``subject``, valid only if what it signed still hashes the same."""
    out = []
    for sig in signatures(journal, subject):
        same = sig.subject_sha256 == current_sha256
        out.append(SignatureCheck(sig, same, "" if same else
                                  f"{subject} changed after it was signed (signed {sig.subject_sha256[:12]}, "
                                  f"now {current_sha256[:12]})"))
    return out


# -- what is signed -------------------------------------------------------------------------------
def lot_subject(lot: str) -> str:
    return f"lot:{lot}"


def lot_digest(journal: Journal, lot: str) -> str:
    """sha256 of a lot's records as they are now: its run row, every part row and every step row."""
    run = journal.execute("SELECT lot, recipe, version, cell, parts, parameters, state, summary, "
                          "recipe_sha256, user, closed_reason FROM runs WHERE lot = ?", (lot,))
    parts = journal.execute("SELECT part, state, reworks, reason FROM parts WHERE lot = ? ORDER BY part",
                            (lot,))
    steps = journal.execute("SELECT key, part, step, station, firmware, attempt, request, intent_at, done_s, "
                            "ok, verdict, data FROM steps WHERE key >= ? AND key < ? AND lot = ? "
                            "ORDER BY key",
                            (f"{lot}/", f"{lot}0", lot))
    body = json.dumps({"run": run, "parts": parts, "steps": steps}, sort_keys=True, separators=(",", ":"),
                      default=str)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def recipe_subject(recipe: str, version: str) -> str:
    return f"recipe:{recipe}@{version}"


def file_digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def release_recipe(book: UserBook, session: Session, password: str, path: str | Path) -> Signature:
    """Release a recipe file: an e-signature ``released`` bound to its sha256, and a ``recipes`` record.

    A version already released with other content is refused: a released recipe is immutable and a
    change is a new version. The file must say ``status: released`` (the operator app offers only those).
    """
    from microfactory.recipe.loader import load_recipe  # late: the recipe package is heavier

    book.require(session, Permission.RELEASE_RECIPE)  # the role first: nothing about the file is told
    recipe = load_recipe(path)
    if recipe.spec.recipe.status != "released":
        raise StateError(f"{path}: status is {recipe.spec.recipe.status!r}",
                         hint="set `status: released` in the recipe header (a new version), then release it")
    digest = file_digest(path)
    ref = recipe_subject(recipe.id, recipe.version)
    rows = book.journal.execute("SELECT sha256 FROM recipes WHERE ref = ?", (ref,))
    if rows and rows[0][0] != digest:
        raise StateError(f"recipe {recipe.id} version {recipe.version} is already released with other "
                         f"content (sha256 {rows[0][0][:12]}…, this file {digest[:12]}…); a released "
                         "recipe never changes",
                         hint="give the changed recipe a new version and release that")
    if rows:
        raise StateError(f"recipe {recipe.id} version {recipe.version} is already released with this content",
                         hint="nothing to do")
    sig = sign(book, session, password, Meaning.RELEASED, ref, digest)

    def write(db: sqlite3.Connection) -> None:
        db.execute("INSERT INTO recipes (ref, recipe, version, sha256, status) VALUES (?,?,?,?,?)",
                   (ref, recipe.id, recipe.version, digest, "released"))

    book.journal.audited(write, "recipe", {"ref": ref, "recipe": recipe.id, "version": recipe.version,
                                           "sha256": digest, "status": "released", "signature": sig.id})
    return sig


def check_recipe(journal: Journal, recipe: str, version: str, path: str | Path) -> str | None:
    """None when ``path`` is the released content of ``recipe`` ``version`` (or it was never released
    in this journal); otherwise what is wrong, in words."""
    rows = journal.execute("SELECT sha256 FROM recipes WHERE ref = ?", (recipe_subject(recipe, version),))
    if not rows:
        return None
    digest = file_digest(path)
    if digest == rows[0][0]:
        return None
    return (f"{path} is not the released recipe {recipe} version {version}: it changed after release "
            f"(released sha256 {rows[0][0][:12]}…, the file now {digest[:12]}…)")
