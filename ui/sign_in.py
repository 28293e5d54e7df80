"""Who is at the panel: sign-in with the core's users and roles (``microfactory.access``), never a
dropdown anyone can switch.

The user book lives in the run journal the app writes (``--db``), like the CLI's. Passwords are checked
with scrypt (memory-hard, tens of milliseconds), so every check runs on a worker thread and comes back
through a signal. A first sign-in with a password an admin set asks for a new one at once (the core
refuses everything else until then). A journal without users is *open*: lots may run as before, but
nothing that needs a signature (releasing a recipe, an engineer's trial run of a draft) is offered —
``microfactory users init --db PATH`` creates the first admin.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from PyQt6 import sip
from PyQt6.QtCore import pyqtSignal
from PyQt6.QtWidgets import (
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from microfactory.access.users import Permission, Session, UserBook
from microfactory.errors import MicrofactoryError


class Access:
    """The signed-in session (or none) of one user book; what the panel may offer now."""

    def __init__(self, book: UserBook) -> None:
        self.book = book
        self.session: Session | None = None
        self.open = True  # no users in the journal (decided off the GUI thread by :meth:`refresh_open`)

    def refresh_open(self) -> bool:
        """Blocking (reads the journal): call it from a worker thread."""
        self.open = self.book.empty
        return self.open

    def may(self, permission: Permission) -> bool:
        """What the buttons show; the core checks again (a live session) when the action is done."""
        if self.session is None:
            return self.open and permission == Permission.RUN_LOT
        user = self.session.user
        return not user.must_change and user.may(permission)

    @property
    def who(self) -> str:
        """The user id recorded with what this panel does ("" when nobody is signed in)."""
        return self.session.user.id if self.session is not None else ""


def in_worker(owner: QWidget, signal: Any, work: Callable[[], Any], then: Callable[[Any], None]) -> None:
    """Run ``work`` on a thread; ``then(result or exception)`` on the GUI thread via ``signal``."""
    def run() -> None:
        try:
            result: Any = work()
        except MicrofactoryError as exc:  # shown to the user by ``then``
            result = exc
        if not sip.isdeleted(owner):
            signal.emit(then, result)

    threading.Thread(target=run, daemon=True, name="ui-sign-in").start()


class SignInDialog(QDialog):
    """User id and password; then, if the password must change, the new one twice."""

    signed_in = pyqtSignal(object)  # Session
    worker_done = pyqtSignal(object, object)

    def __init__(self, access: Access, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Sign in")
        self.access = access
        self.worker_done.connect(lambda then, result: then(result))
        self.user = QLineEdit()
        self.user.setObjectName("signInUser")
        self.password = QLineEdit()
        self.password.setObjectName("signInPassword")
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.new_password = QLineEdit()
        self.new_password.setEchoMode(QLineEdit.EchoMode.Password)
        self.repeat = QLineEdit()
        self.repeat.setEchoMode(QLineEdit.EchoMode.Password)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #c62828; font-weight: 600;")
        self.ok = QPushButton("Sign in")
        self.ok.setObjectName("signInOk")
        self.ok.setDefault(True)
        cancel = QPushButton("Cancel")
        self.form = QFormLayout()
        self.form.addRow("User id", self.user)
        self.form.addRow("Password", self.password)
        self.form.addRow("New password", self.new_password)
        self.form.addRow("New password again", self.repeat)
        self._show_change(False)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(cancel)
        buttons.addWidget(self.ok)
        box = QVBoxLayout(self)
        box.addLayout(self.form)
        box.addWidget(self.message)
        box.addLayout(buttons)
        self.ok.clicked.connect(self.submit)
        cancel.clicked.connect(self.reject)
        self._pending: Session | None = None

    def _show_change(self, show: bool) -> None:
        for field in (self.new_password, self.repeat):
            field.setVisible(show)
            label = self.form.labelForField(field)
            if label is not None:
                label.setVisible(show)

    def submit(self) -> None:
        self.ok.setEnabled(False)
        self.message.setText("checking…")
        book = self.access.book
        if self._pending is not None:  # the first sign-in's new password
            if self.new_password.text() != self.repeat.text():
                self.message.setText("The two new passwords differ: type the same one twice.")
                self.ok.setEnabled(True)
                return
            session, old, new = self._pending, self.password.text(), self.new_password.text()
            in_worker(self, self.worker_done, lambda: book.change_password(session, old, new), self._changed)
            return
        user, password = self.user.text().strip(), self.password.text()
        in_worker(self, self.worker_done, lambda: book.sign_in(user, password), self._checked)

    def _checked(self, result: Any) -> None:
        self.ok.setEnabled(True)
        if isinstance(result, MicrofactoryError):
            self.message.setText(str(result))
            return
        if result.user.must_change:
            self._pending = result
            self._show_change(True)
            self.user.setEnabled(False)
            self.message.setText("This password was set for you: choose your own now (at least 10 "
                                 "characters).")
            self.ok.setText("Change and sign in")
            return
        self.signed_in.emit(result)
        self.accept()

    def _changed(self, result: Any) -> None:
        self.ok.setEnabled(True)
        if isinstance(result, MicrofactoryError):
            self.message.setText(str(result))
            return
        self.signed_in.emit(result)
        self.accept()


class SessionBar(QWidget):
    """Who is signed in, always in the top bar, with Sign in / Sign out."""

    changed = pyqtSignal()  # the session changed: the panel re-decides what it offers
    worker_done = pyqtSignal(object, object)

    def __init__(self, access: Access, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.access = access
        self.worker_done.connect(lambda then, result: then(result))
        self.who = QLabel("")
        self.who.setObjectName("signedIn")
        self.who.setWordWrap(True)
        self.who.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)  # never widens
        self.who.setMinimumWidth(150)
        self.button = QPushButton("Sign in…")
        self.button.setObjectName("signInButton")
        self.button.clicked.connect(self._pressed)
        box = QHBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(self.who)
        box.addWidget(self.button)
        self.dialog: SignInDialog | None = None
        self._show()
        in_worker(self, self.worker_done, access.refresh_open, lambda _r: self._show())

    def _show(self) -> None:
        session = self.access.session
        if session is not None:
            self.who.setText(f"{session.user.name}\n{session.user.role.value}")
            self.who.setToolTip(f"Signed in: {session.user.name} ({session.user.id}, "
                                f"{session.user.role.value})")
            self.button.setText("Sign out")
        elif self.access.open:
            self.who.setText("No users in this journal")
            self.who.setToolTip("Lots may run; releasing a recipe needs users and an engineer signed "
                                "in: microfactory users init --db PATH creates the first admin")
            self.button.setText("Sign in…")
        else:
            self.who.setText("Not signed in")
            self.button.setText("Sign in…")

    def _pressed(self) -> None:
        session = self.access.session
        if session is not None:
            self.access.session = None
            in_worker(self, self.worker_done, lambda: self.access.book.sign_out(session), lambda _r: None)
            self._show()
            self.changed.emit()
            return
        self.dialog = SignInDialog(self.access, self)
        self.dialog.signed_in.connect(self._signed_in)
        self.dialog.show()

    def _signed_in(self, session: Session) -> None:
        self.access.session = session
        self.access.open = False
        self._show()
        self.changed.emit()
