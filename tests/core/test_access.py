"""Users, roles, sessions and electronic signatures in the core (21 CFR Part 11), on a real journal file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from microfactory.access import signatures as esig
from microfactory.access.users import MAX_FAILURES, Permission, Role, Session, UserBook, password_matches
from microfactory.engine.journal import Journal
from microfactory.errors import AccessDenied, StateError

ROOT = Path(__file__).resolve().parents[2]


class Clock:
    """Wall seconds the test moves by hand (session timeouts without waiting)."""

    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def book(tmp_path: Path) -> UserBook:
    return UserBook(Journal(tmp_path / "runs.sqlite"), now=Clock())


def admin_session(book: UserBook) -> Session:
    first = book.first_admin()
    session = book.sign_in("admin", first)
    with pytest.raises(AccessDenied, match="must change the password first"):
        book.add(session, "ann", "Ann Operator", Role.OPERATOR, "initial-pass-1")
    return book.change_password(session, first, "admin-password-2")


def person(book: UserBook, admin: Session, uid: str, role: Role) -> Session:
    book.add(admin, uid, uid.title() + " Person", role, "initial-pass-1")
    s = book.sign_in(uid, "initial-pass-1")
    return book.change_password(s, "initial-pass-1", f"{uid}-secret-pw")


def test_passwords_are_scrypt_hashes_never_the_password(book: UserBook) -> None:
    admin = admin_session(book)
    book.add(admin, "ann", "Ann Operator", Role.OPERATOR, "initial-pass-1")
    (stored,) = book.journal.execute("SELECT pw_hash FROM users WHERE id = 'ann'")[0]
    assert stored.startswith("scrypt$16384$8$1$") and "initial-pass-1" not in stored
    assert password_matches("initial-pass-1", stored) and not password_matches("initial-pass-2", stored)


def test_the_first_admin_only_once_and_unique_ids(book: UserBook) -> None:
    admin = admin_session(book)
    with pytest.raises(StateError, match="already has users"):
        book.first_admin()
    book.add(admin, "ann", "Ann Operator", Role.OPERATOR, "initial-pass-1")
    with pytest.raises(StateError, match="user id 'ann' is taken"):
        book.add(admin, "ann", "Another Ann", Role.QUALITY, "initial-pass-1")
    with pytest.raises(AccessDenied, match="at least 10 characters"):
        book.add(admin, "bob", "Bob", Role.OPERATOR, "short")


def test_roles_decide_what_a_user_may_do(book: UserBook) -> None:
    admin = admin_session(book)
    ann = person(book, admin, "ann", Role.OPERATOR)
    assert book.require(ann, Permission.RUN_LOT).id == "ann"
    with pytest.raises(AccessDenied, match=r"\(operator\) may not release a recipe(.|\n)*may: engineer"):
        book.require(ann, Permission.RELEASE_RECIPE)
    with pytest.raises(AccessDenied, match="may not manage users"):
        book.add(ann, "eve", "Eve", Role.ADMIN, "initial-pass-1")
    with pytest.raises(AccessDenied, match="may not approve"):
        book.require(admin, Permission.APPROVE_REPORT)  # an admin signs nothing


def test_lock_out_after_failed_attempts_and_an_audited_unlock(book: UserBook) -> None:
    admin = admin_session(book)
    person(book, admin, "ann", Role.OPERATOR)
    for n in range(1, MAX_FAILURES):
        with pytest.raises(AccessDenied, match=f"{MAX_FAILURES - n} attempt"):
            book.sign_in("ann", "wrong-password")
    with pytest.raises(AccessDenied, match="is now locked"):
        book.sign_in("ann", "wrong-password")
    with pytest.raises(AccessDenied, match="is locked"):
        book.sign_in("ann", "ann-secret-pw")  # even the right password
    with pytest.raises(Exception, match="needs a reason"):
        book.unlock(admin, "ann", reason=" ")
    book.unlock(admin, "ann", reason="called the help desk, identity checked")
    assert book.sign_in("ann", "ann-secret-pw").user.id == "ann"
    changes = [r[0] for r in book.journal.execute("SELECT body FROM audit WHERE what = 'change'")]
    lock = [c for c in changes if '"field":"locked"' in c]
    assert '"by":"(lock-out)"' in lock[0] and '"new":1' in lock[0] and '"old":0' in lock[0]
    assert '"by":"admin"' in lock[1] and "identity checked" in lock[1]
    assert book.journal.verify().intact


def test_sessions_time_out_and_ci_tokens_expire_and_never_sign(book: UserBook) -> None:
    admin = admin_session(book)
    ann = person(book, admin, "ann", Role.QUALITY)
    clock = book.now
    assert isinstance(clock, Clock)
    clock.t += book.idle_timeout_s - 1
    book.require(ann, Permission.APPROVE_REPORT)  # used: the idle time restarts
    clock.t += book.idle_timeout_s + 1
    with pytest.raises(AccessDenied, match="has ended"):
        book.session(ann.token)
    admin = book.sign_in("admin", "admin-password-2")
    token = book.issue_token(admin, "ann", hours=1, reason="nightly CI lot")
    ci = book.session(token)
    assert ci.kind == "token" and ci.user.id == "ann"
    with pytest.raises(AccessDenied, match="a CI token cannot sign"):
        esig.sign(book, ci, "ann-secret-pw", "approved", "lot:L1", "0" * 64)
    clock.t += 3601
    with pytest.raises(AccessDenied, match="has ended"):
        book.session(token)


def lot(journal: Journal, lot_id: str = "L1") -> None:
    journal.begin_run(lot_id, recipe="watch-plate", version="1.0", cell="bench", parts=1, parameters={},
                      t=0.0)
    journal.intent(f"{lot_id}/p1/inspect/1/0", lot=lot_id, part="p1", step="inspect", station="cam",
                   firmware="cam", attempt=0, request={"action": "inspect"}, t=1.0)
    journal.done(f"{lot_id}/p1/inspect/1/0", ok=True, verdict="pass", data={"w": 20.0}, t=2.0)
    journal.part("p1", lot_id, "passed", reworks=0, energy_j=1.0, t=2.0)
    journal.end_run(lot_id, state="complete", summary={"passed": 1}, t=3.0)


def test_an_approval_is_bound_to_the_lot_and_shows_a_later_change(book: UserBook, tmp_path: Path) -> None:
    admin = admin_session(book)
    quinn = person(book, admin, "quinn", Role.QUALITY)
    lot(book.journal)
    digest = esig.lot_digest(book.journal, "L1")
    with pytest.raises(AccessDenied, match="wrong password"):
        esig.sign(book, quinn, "not-my-password", "approved", "lot:L1", digest)
    sig = esig.sign(book, quinn, "quinn-secret-pw", "approved", "lot:L1", digest)
    assert (sig.name, sig.meaning, sig.user) == ("Quinn Person", esig.Meaning.APPROVED, "quinn")
    assert sig.signed_at.endswith("+00:00")
    (checked,) = esig.check(book.journal, "lot:L1", esig.lot_digest(book.journal, "L1"))
    assert checked.valid
    book.journal.close()
    raw = sqlite3.connect(tmp_path / "runs.sqlite")
    raw.execute("UPDATE steps SET verdict = 'fail'")
    raw.commit()
    raw.close()
    journal = Journal.open_existing(tmp_path / "runs.sqlite")
    (checked,) = esig.check(journal, "lot:L1", esig.lot_digest(journal, "L1"))
    assert not checked.valid and "lot:L1 changed after it was signed" in checked.why
    assert not journal.verify().intact


def test_editing_a_signature_row_shows_in_verify(book: UserBook, tmp_path: Path) -> None:
    admin = admin_session(book)
    quinn = person(book, admin, "quinn", Role.QUALITY)
    lot(book.journal)
    esig.sign(book, quinn, "quinn-secret-pw", "approved", "lot:L1", esig.lot_digest(book.journal, "L1"))
    book.journal.close()
    raw = sqlite3.connect(tmp_path / "runs.sqlite")
    raw.execute("UPDATE signatures SET name = 'Someone Else'")
    raw.commit()
    raw.close()
    problems = Journal.open_existing(tmp_path / "runs.sqlite").verify().problems
    assert any("signature" in p and "name is 'Someone Else'" in p for p in problems)


def test_a_released_recipe_is_immutable(book: UserBook, tmp_path: Path) -> None:
    admin = admin_session(book)
    eng = person(book, admin, "eng", Role.ENGINEER)
    recipe = tmp_path / "watch-plate.yaml"
    source = (ROOT / "recipes/watch-plate.yaml").read_text()
    recipe.write_text(source.replace("programs/", str(ROOT / "recipes/programs") + "/")
                      .replace("drawings/", str(ROOT / "recipes/drawings") + "/"))
    sig = esig.release_recipe(book, eng, "eng-secret-pw", recipe)
    assert (sig.meaning, sig.subject) == (esig.Meaning.RELEASED, "recipe:watch-plate@1.0")
    assert esig.check_recipe(book.journal, "watch-plate", "1.0", recipe) is None
    recipe.write_text(recipe.read_text().replace("author: microfactory examples", "author: someone"))
    assert "changed after release" in (esig.check_recipe(book.journal, "watch-plate", "1.0", recipe) or "")
    with pytest.raises(StateError, match=r"already released with other content(.|\n)*new version"):
        esig.release_recipe(book, eng, "eng-secret-pw", recipe)
    quinn = person(book, admin, "quinn", Role.QUALITY)
    with pytest.raises(AccessDenied, match="may not release a recipe"):
        esig.release_recipe(book, quinn, "quinn-secret-pw", recipe)
    assert book.journal.verify().intact
