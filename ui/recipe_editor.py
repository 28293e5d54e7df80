"""Recipe editor for operators: a form generated from the recipe's parameter schema, the step list with
stations and routing, save as a new draft version (comments kept), diff between versions, release.

Validation is the core's own (``microfactory.recipe.validate_recipe``) and, like every file read or
write, runs on a worker thread; results come back through a signal, so typing never freezes the panel.
A value outside a parameter's bounds shows its error next to the field and saving is refused.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import os
import re
import secrets
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PyQt6 import sip
from PyQt6.QtCore import pyqtSignal
from PyQt6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from microfactory import yamlfile
from microfactory.access import signatures as esig
from microfactory.access.users import Permission, Session, UserBook
from microfactory.cell import Cell
from microfactory.recipe import load_recipe, validate_recipe
from microfactory.recipe.parameters import ParameterSpec
from ui.parameter_form import ParameterForm
from ui.sign_in import Access
from ui.step_editor import StepEditor

STEP_KINDS = ("cut", "machine", "wash", "inspect", "manual", "transfer")


def next_version(version: str) -> str:
    """``1.1`` → ``1.2``; ``3`` → ``4``; anything else gets ``.1`` appended."""
    m = re.match(r"^(.*?)(\d+)$", version)
    return f"{m.group(1)}{int(m.group(2)) + 1}" if m else f"{version}.1"


_INDEXED = re.compile(r"^(parameters|procedure|steps)(?:\[(\d+)\]|\.(\d+))")


def problem_target(field: str, parameters: list[str]) -> tuple[str, str | int | None]:
    """What a validation problem's field path is about: ``("parameter", name)``, ``("step", row)``
    or ``("recipe", None)``. A ``--set`` problem's field is the parameter's name itself."""
    if field in parameters:
        return "parameter", field
    match = _INDEXED.match(field or "")
    if match is None:
        return "recipe", None
    index = int(match.group(2) or match.group(3))
    if match.group(1) == "parameters":
        return ("parameter", parameters[index]) if index < len(parameters) else ("recipe", None)
    return "step", index


def validate_edited(path: Path, doc: Any, cell: Cell, values: dict[str, Any]) -> Any:
    """Validate the recipe at ``path``, or its edited document ``doc`` as it would be saved: written to
    a hidden file beside it (relative program and drawing paths resolve the same), checked, removed;
    the problems name the recipe's own file."""
    if doc is None:
        return validate_recipe(path, cell, values=values)
    probe = path.with_name(f".{path.stem}.editing-{secrets.token_hex(4)}{path.suffix}")  # one per check
    try:
        yamlfile.dump_roundtrip(doc, probe)
        report = validate_recipe(probe, cell, values=values)
    finally:
        probe.unlink(missing_ok=True)
    report.problems[:] = [dataclasses.replace(p, file=str(path)) if Path(p.file).name == probe.name else p
                           for p in report.problems]
    return report


def base(path: Path) -> str:
    """The recipe a file is a version of: ``watch-plate-v1.2.yaml`` → ``watch-plate``."""
    return re.sub(r"-v\d+(\.\d+)*$", "", path.stem)


def save_version(source: Path, values: dict[str, Any], *, release: bool, author: str = "",
                 doc: Any = None) -> Path:
    """Write a new version of the recipe beside ``source`` with new parameter defaults (and, given
    ``doc``, its edited round-trip document: steps added, moved or re-routed); keeps comments.

    The new file is ``<id>-v<version>.yaml``; its status is ``released`` or ``draft``.
    """
    root = copy.deepcopy(doc) if doc is not None else yamlfile.load(source).root
    header = root["recipe"]
    header["version"] = next_version(str(header["version"]))
    header["status"] = "released" if release else "draft"
    if author:
        header["author"] = author
    for param in root.get("parameters") or []:
        if param["name"] in values:
            param["default"] = values[param["name"]]
    target = source.with_name(f"{header['id']}-v{header['version']}.yaml")
    yamlfile.dump_roundtrip(root, target)
    return target


def release_version(book: UserBook, session: Session, password: str, source: Path,
                    values: dict[str, Any], doc: Any = None) -> Path:
    """Write the new released version and sign it (``released``, bound to its sha256); a signature the
    core refuses (wrong password, role) leaves no released file behind."""
    target = save_version(source, values, release=True, author=session.user.name, doc=doc)
    try:
        esig.release_recipe(book, session, password, target)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return target


class RecipeEditor(QWidget):
    """The Recipes tab."""

    done = pyqtSignal(object, object)  # (callback, result) from a worker thread

    def __init__(self, recipes_dir: Path, cell: Cell, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.recipes_dir = recipes_dir
        self.cell = cell
        self.path: Path | None = None
        self.params = ParameterForm()
        self.params.edited.connect(self.validate)
        self.done.connect(self._deliver)
        self.recipe = QComboBox()
        self.recipe.setMinimumWidth(360)
        self.recipe.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        #: who is signed in (set by the window); releasing needs an engineer's e-signature
        self.access: Access | None = None
        self.signer = QLabel("")
        self.status = QLabel("")
        self.step_editor = StepEditor()
        self.step_editor.edited.connect(self._steps_edited)
        self.steps = self.step_editor.table
        #: the recipe's round-trip document while its steps are being edited (None: unchanged)
        self.edited_doc: Any = None
        self.problems = QLabel("")
        self.problems.setWordWrap(True)
        self.problems.setStyleSheet("color: #c62828; font-weight: 600;")
        self.save_button = QPushButton("Save as new draft")
        self.release_button = QPushButton("Release (engineer)")
        self.diff_with = QComboBox()
        diff_button = QPushButton("Diff")
        self.diff = QPlainTextEdit()
        self.diff.setReadOnly(True)
        self.recipe.currentIndexChanged.connect(lambda _i: self.open(self.recipe.currentData()))
        self.save_button.clicked.connect(lambda: self.save(release=False))
        self.release_button.clicked.connect(lambda: self.save(release=True))
        diff_button.clicked.connect(self.show_diff)
        top = QHBoxLayout()
        for w in (QLabel("Recipe"), self.recipe, self.status):
            top.addWidget(w)
        top.addStretch(1)
        form_box = QWidget()
        left = QVBoxLayout(form_box)
        left.addWidget(QLabel("Parameters"))
        left.addWidget(self.params)
        left.addWidget(self.problems)
        buttons = QHBoxLayout()
        buttons.addWidget(self.save_button)
        buttons.addWidget(self.release_button)
        left.addLayout(buttons)
        left.addStretch(1)
        right_box = QWidget()
        right = QVBoxLayout(right_box)
        right.addWidget(QLabel("Steps and routing"))
        right.addWidget(self.step_editor, 2)
        row = QHBoxLayout()
        row.addWidget(QLabel("Compare with"))
        row.addWidget(self.diff_with, 1)
        row.addWidget(diff_button)
        right.addLayout(row)
        right.addWidget(self.diff, 1)
        split = QSplitter()
        split.addWidget(form_box)
        split.addWidget(right_box)
        box = QVBoxLayout(self)
        box.addLayout(top)
        box.addWidget(split, 1)
        self.refresh_list()

    # -- worker plumbing -----------------------------------------------------------------------------
    def _deliver(self, callback: Callable[[Any], None], result: Any) -> None:
        if not sip.isdeleted(self):  # a worker can finish after the tab was closed
            callback(result)

    def _in_worker(self, work: Callable[[], Any], then: Callable[[Any], None]) -> None:
        def run() -> None:
            try:
                result: Any = work()
            except Exception as exc:  # shown to the user by the callback, never dropped
                result = exc
            self.done.emit(then, result)

        threading.Thread(target=run, daemon=True, name="recipe-editor").start()

    # -- loading -------------------------------------------------------------------------------------
    def refresh_list(self, select: Path | None = None) -> None:
        self._in_worker(lambda: sorted(self.recipes_dir.glob("*.yaml")),
                        lambda paths: self._fill(paths, select))

    def _fill(self, paths: Any, select: Path | None) -> None:
        if not isinstance(paths, Exception) and any(p.parent != self.recipes_dir for p in paths):
            return  # a listing of a folder the editor no longer shows
        if isinstance(paths, Exception):
            self.status.setText(str(paths))
            return
        self.recipe.blockSignals(True)
        self.recipe.clear()
        self.diff_with.clear()
        for path in paths:
            self.recipe.addItem(path.name, path)
            self.diff_with.addItem(path.name, path)
        self.recipe.blockSignals(False)
        index = next((i for i, p in enumerate(paths) if select is not None
                      and os.path.abspath(p) == os.path.abspath(select)), 0)
        self.recipe.setCurrentIndex(max(index, 0))
        if paths:
            current = paths[max(index, 0)]
            sibling = next((i for i, p in enumerate(paths)
                            if p != current and base(p) == base(current)), None)
            self.diff_with.setCurrentIndex(sibling if sibling is not None else max(index, 0))
        if self.recipe.count():
            self.open(self.recipe.currentData())

    def open(self, path: Path | None) -> None:
        if path is None:
            return
        self.path = path
        self._in_worker(lambda: self._load(path), self._show)

    def _load(self, path: Path) -> Any:
        """(recipe, its round-trip document for the step editor); a recipe that does not compile still
        opens (its problems show under the form and on its steps)."""
        recipe = load_recipe(path)
        return recipe, yamlfile.load(path).root

    def _show(self, loaded: Any) -> None:
        recipe, doc = loaded if isinstance(loaded, tuple) else (loaded, None)
        if not isinstance(recipe, Exception) and recipe.path != self.path:
            return  # a slower load of a recipe the operator has already left
        if isinstance(recipe, Exception):
            self.params.show_specs([])
            self.problems.setText(str(recipe))
            self._update_buttons()
            return
        self.status.setText(f"v{recipe.version} · {recipe.spec.recipe.status}")
        self.params.show_specs(recipe.parameters().values())
        self.edited_doc = None
        self.step_editor.show_doc(doc, [s.id for s in self.cell.stations])
        self.problems.setText("")
        self.validate()

    @property
    def specs(self) -> dict[str, ParameterSpec]:
        """The parameters of the recipe shown, by name."""
        return self.params.specs

    @property
    def fields(self) -> dict[str, QWidget]:
        return self.params.fields

    @property
    def errors(self) -> dict[str, QLabel]:
        return self.params.errors

    def values(self) -> dict[str, Any]:
        return self.params.values()

    # -- validation ----------------------------------------------------------------------------------
    def validate(self) -> bool:
        """Bounds inline at once; then the core's full validation on a worker thread."""
        values = self.values()
        bad = not self.params.check_bounds()
        self.inline_ok = not bad
        self._update_buttons()
        if not bad and self.path is not None:
            self.problems.setText("")
            self._generation += 1
            self.core_ok = False  # until the core has answered about what is shown now
            self._update_buttons()
            path, doc, generation = self.path, self.edited_doc, self._generation
            self._in_worker(lambda: (generation, validate_edited(path, doc, self.cell, values)),
                            self._validated)
        return not bad

    _generation = 0

    def _steps_edited(self) -> None:
        """A step was added, removed, moved, re-routed or its settings changed: validate what is shown."""
        self.edited_doc = self.step_editor.doc
        self.validate()

    def _validated(self, answer: Any) -> None:
        if isinstance(answer, tuple):
            generation, report = answer
            if generation != self._generation:
                return  # about values or steps changed since
        else:
            report = answer
        if isinstance(report, Exception):
            self.problems.setText(str(report))
            self.core_ok = False
        else:
            self.core_ok = bool(report.valid)
            self._place_problems(report.problems)
        self._update_buttons()

    def _place_problems(self, problems: list[Any]) -> None:
        """Each located problem next to what it is about: under its parameter's field, on its step's
        row (red, the problem as tooltip); the rest, with file:line, under the form."""
        self.step_editor.unmark()
        names = list(self.specs)
        rest: list[str] = []
        for problem in problems:
            where = f"line {problem.line}: " if problem.line else ""
            target = problem_target(problem.field, names)
            if target[0] == "parameter" and self.params.show_problem(str(target[1]), where + problem.message):
                continue
            if target[0] == "step" and isinstance(target[1], int):
                self.step_editor.mark(target[1], f"{problem.file}:{problem.line}: {problem.message}")
            rest.append(f"{problem.file}:{problem.line}: {problem.message}" if problem.line
                        else f"{problem.file}: {problem.message}")
        self.problems.setText("\n".join(rest[:8]))

    inline_ok = True
    core_ok = True

    def _update_buttons(self) -> None:
        ok = bool(self.specs or self.path) and self.inline_ok and self.core_ok
        self.save_button.setEnabled(ok)
        may_release = self.access is not None and self.access.may(Permission.RELEASE_RECIPE)
        self.release_button.setEnabled(ok and may_release)
        self.release_button.setToolTip("" if may_release else "Releasing needs a signed-in engineer (their "
                                       "password is asked again for the e-signature)")

    # -- saving and diff -----------------------------------------------------------------------------
    def set_access(self, access: Access) -> None:
        """The panel's sign-in: what the editor offers follows the signed-in user's role."""
        self.access = access
        self._update_buttons()

    def save(self, *, release: bool) -> None:
        if not self.core_ok or not self.validate() or self.path is None:
            self.problems.setText("Not saved: fix the values marked in red first.")
            return
        source, values = self.path, self.values()
        if not release:
            doc = self.edited_doc
            self._in_worker(lambda: save_version(source, values, release=False, doc=doc),
                            lambda target: self._saved(target, False))
            return
        access = self.access
        if access is None or access.session is None or not access.may(Permission.RELEASE_RECIPE):
            self.problems.setText("Only a signed-in engineer may release a recipe.")
            return
        password, ok = QInputDialog.getText(
            self, "Release: e-signature", f"{access.session.user.name}: re-enter your password to sign "
            "this release (meaning: released)", QLineEdit.EchoMode.Password)
        if not ok:
            return
        session, doc = access.session, self.edited_doc
        self._in_worker(lambda: release_version(access.book, session, password, source, values, doc),
                        lambda target: self._saved(target, True))

    def _saved(self, target: Any, release: bool) -> None:
        if isinstance(target, Exception):
            self.problems.setText(f"Not saved: {target}")
            return
        self.status.setText(f"saved {target.name} ({'released' if release else 'draft'})")
        self.refresh_list(select=target)

    def show_diff(self) -> None:
        a, b = self.path, self.diff_with.currentData()
        if a is None or b is None:
            return

        def work() -> str:
            left, right = Path(b).read_text().splitlines(), Path(a).read_text().splitlines()
            return "\n".join(difflib.unified_diff(left, right, Path(b).name, Path(a).name, lineterm="")) \
                or "(no differences)"

        self._in_worker(work, lambda text: self.diff.setPlainText(str(text)))
