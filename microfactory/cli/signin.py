"""Who is at the keyboard: ``--user ID`` with a password prompt, or a CI token in ``MICROFACTORY_TOKEN``.

The password is read with :func:`getpass.getpass` on a terminal, or as one line from standard input when
it is not a terminal (scripts, CI: ``printf '%s\n' "$PW" | microfactory ...``); it is never an argument
(it would land in the shell history and the process list).
"""

from __future__ import annotations

import getpass
import os
import sys

from microfactory.access.users import TOKEN_ENV, Permission, Session, UserBook
from microfactory.errors import AccessDenied


def ask_password(prompt: str) -> str:
    """A password from the terminal (not echoed), or one line of stdin when stdin is not a terminal."""
    if sys.stdin.isatty():
        return getpass.getpass(prompt)
    line = sys.stdin.readline()
    if not line:
        raise AccessDenied("no password given", hint="type it at the prompt, or pipe it on standard input")
    return line.rstrip("\n")


def signed_in(book: UserBook, user: str | None, permission: Permission, *,
              allow_token: bool = True) -> Session:
    """The session of ``--user`` (password asked) or of the CI token, allowed ``permission``."""
    token = os.environ.get(TOKEN_ENV, "")
    if user:
        session = book.sign_in(user, ask_password(f"password for {user}: "))
    elif token and allow_token:
        session = book.session(token)
    else:
        what = "--user ID" + (f" (or a CI token in {TOKEN_ENV})" if allow_token else "")
        raise AccessDenied(f"this journal has users: {permission.value} needs {what}",
                           hint="`microfactory users list --db PATH` lists them")
    book.require(session, permission)
    return session
