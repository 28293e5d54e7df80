"""``microfactory users``, ``sign`` and ``release``: the user book and electronic signatures of a journal.

``users init`` creates the first admin with a one-time password (printed once; it must be changed at the
first sign-in: ``users passwd``). An admin adds users (``users add``), changes roles, unlocks, deactivates
(each with ``--reason``, audited) and issues CI tokens. ``sign --lot L --meaning approved`` signs a lot
report (quality); ``release RECIPE`` releases a recipe file (engineer). Passwords: see
:mod:`microfactory.cli.signin`. Exit 0; 1 when access is refused; 2 for bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from microfactory.access import signatures as esig
from microfactory.access.users import Permission, Role, UserBook
from microfactory.cli import arguments
from microfactory.cli.signin import ask_password, signed_in
from microfactory.engine.journal import Journal


def register(subparsers: Any) -> None:
    """Add ``users``, ``sign`` and ``release``."""
    users = subparsers.add_parser("users", help="users and roles of a journal (21 CFR Part 11)",
                                  description="Users, roles, lock-out and CI tokens, kept in the journal.")
    sub = users.add_subparsers(dest="action", metavar="ACTION", required=True)
    init = sub.add_parser("init", help="create the first admin (one-time password, printed once)")
    init.add_argument("--id", default="admin", help="the admin's user id (default: admin)")
    init.add_argument("--name", default="Administrator", help="the admin's full name")
    listing = sub.add_parser("list", help="list the users (reads only)")
    listing.add_argument("--json", action="store_true")
    passwd = sub.add_parser("passwd", help="change your own password (the old one, then the new one twice)")
    passwd.add_argument("--user", required=True, help="your user id")
    add = sub.add_parser("add", help="add a user (an admin; they change the password at first sign-in)")
    add.add_argument("--id", required=True)
    add.add_argument("--name", required=True, help="full name, as signatures show it")
    add.add_argument("--role", required=True, choices=[r.value for r in Role])
    for name, text in (("role", "change a user's role"), ("unlock", "unlock a locked user"),
                       ("deactivate", "deactivate a user (never deleted)"), ("token", "issue a CI token")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--id", required=True, help="the user concerned")
        p.add_argument("--reason", required=True, help="why (recorded in the audit trail)")
        if name == "role":
            p.add_argument("--role", dest="new_role", required=True, choices=[r.value for r in Role])
        if name == "token":
            p.add_argument("--hours", type=arguments.positive_float, default=12.0,
                           help="validity (default 12 h)")
    managed = [sub.choices[n] for n in ("role", "unlock", "deactivate", "token")]
    for p in (init, listing, passwd, add, *managed):
        p.add_argument("--db", required=True, metavar="PATH", help="the SQLite journal")
        if p not in (init, listing, passwd):
            p.add_argument("--as", dest="admin", required=True, metavar="ADMIN", help="the admin's user id")
    users.set_defaults(func=handle_users)

    sign = subparsers.add_parser("sign", help="e-sign a lot report: approved or reviewed (asks the password)",
                                 description="An electronic signature (name, UTC time, meaning) bound to the "
                                             "sha256 of the lot's records: a later change shows it invalid.")
    sign.add_argument("--db", required=True, metavar="PATH")
    sign.add_argument("--lot", required=True)
    sign.add_argument("--meaning", required=True, choices=[esig.Meaning.APPROVED.value,
                                                           esig.Meaning.REVIEWED.value])
    sign.add_argument("--user", required=True, help="the signer's user id (the password is asked)")
    sign.set_defaults(func=handle_sign)

    release = subparsers.add_parser("release", help="release a recipe file (engineer; e-signature)",
                                    description="Sign a recipe file as released; that version is then "
                                                "immutable: a change needs a new version.")
    release.add_argument("recipe", metavar="RECIPE")
    release.add_argument("--db", required=True, metavar="PATH")
    release.add_argument("--user", required=True)
    release.set_defaults(func=handle_release)


def handle_users(args: argparse.Namespace) -> int:
    if args.action == "list":
        journal = Journal.open_existing(args.db)
        try:
            users = UserBook(journal).users()
        finally:
            journal.close()
        rows = [{"id": u.id, "name": u.name, "role": u.role.value, "active": u.active, "locked": u.locked,
                 "must_change": u.must_change} for u in users]
        if args.json:
            print(json.dumps(rows))
        for r in rows if not args.json else []:
            flags = ", ".join(f for f, on in (("locked", r["locked"]), ("inactive", not r["active"]),
                                              ("must change password", r["must_change"])) if on)
            print(f"{r['id']:<12} {r['role']:<9} {r['name']}" + (f"  ({flags})" if flags else ""))
        return 0
    journal = Journal(args.db)
    try:
        return _users_write(UserBook(journal), args)
    finally:
        journal.close()


def _users_write(book: UserBook, args: argparse.Namespace) -> int:
    if args.action == "init":
        password = book.first_admin(args.id, args.name)
        print(f"first admin {args.id!r} created; one-time password (shown once): {password}")
        print(f"change it now: microfactory users passwd --db {args.db} --user {args.id}")
        return 0
    if args.action == "passwd":
        old = ask_password(f"current password for {args.user}: ")
        session = book.sign_in(args.user, old)
        new = ask_password("new password: ")
        if ask_password("new password again: ") != new:
            print("error: the two new passwords differ; nothing changed", file=sys.stderr)
            return 2
        book.change_password(session, old, new)
        print(f"password of {args.user} changed")
        return 0
    admin = book.sign_in(args.admin, ask_password(f"password for {args.admin}: "))
    if args.action == "add":
        initial = ask_password(f"initial password for {args.id}: ")
        user = book.add(admin, args.id, args.name, args.role, initial)
        print(f"user {user.id} ({user.role.value}) added; they must change the password at first sign-in")
    elif args.action == "role":
        book.set_role(admin, args.id, args.new_role, reason=args.reason)
        print(f"user {args.id} is now {args.new_role}")
    elif args.action == "unlock":
        book.unlock(admin, args.id, reason=args.reason)
        print(f"user {args.id} unlocked")
    elif args.action == "deactivate":
        book.deactivate(admin, args.id, reason=args.reason)
        print(f"user {args.id} deactivated")
    elif args.action == "token":
        token = book.issue_token(admin, args.id, hours=args.hours, reason=args.reason)
        print(f"export MICROFACTORY_TOKEN={token}   # {args.id}, {args.hours:g} h; may run lots, never sign")
    return 0


def handle_sign(args: argparse.Namespace) -> int:
    journal = Journal(args.db)
    try:
        journal.run(args.lot)
        book = UserBook(journal)
        perm = esig.NEEDS[esig.Meaning(args.meaning)]
        session = signed_in(book, args.user, perm, allow_token=False)
        digest = esig.lot_digest(journal, args.lot)
        sig = esig.sign(book, session, ask_password(f"re-enter the password of {args.user} to sign: "),
                        args.meaning, esig.lot_subject(args.lot), digest)
    finally:
        journal.close()
    print(f"lot {args.lot} {sig.meaning.value} by {sig.name} ({sig.user}) at {sig.signed_at}; "
          f"bound to sha256 {digest}")
    return 0


def handle_release(args: argparse.Namespace) -> int:
    journal = Journal(args.db)
    try:
        book = UserBook(journal)
        session = signed_in(book, args.user, Permission.RELEASE_RECIPE, allow_token=False)
        sig = esig.release_recipe(book, session, ask_password(f"re-enter the password of {args.user} to "
                                                              "release: "), args.recipe)
    finally:
        journal.close()
    print(f"{sig.subject} released by {sig.name} at {sig.signed_at}; bound to sha256 {sig.subject_sha256}")
    return 0
