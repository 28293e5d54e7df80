"""The run dialog: an operator starts a lot of a recipe with this lot's own values, no code.

It lists the released recipes (an engineer also sees drafts, for trial runs, marked so), the lot size,
and the recipe's operator-adjustable parameters with their labels, units and bounds. A value outside its
bounds is explained under its field at once; the core's whole validation of the recipe *with these
values* on this cell (``validate_recipe``) runs on a worker thread after every change, and Start is
enabled only once the latest values have passed it. The values go to the engine with the lot and are
journaled with it.

The dialog is not modal and carries its own E-stop button: the E-stop stays in reach while it is open
(Esc and F12 still work application-wide).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PyQt6 import sip
from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtWidgets import (
    QComboBox,
    QDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from microfactory.cell import Cell
from microfactory.errors import MicrofactoryError
from microfactory.recipe import load_recipe, validate_recipe
from ui.parameter_form import ParameterForm
from ui.recipe_editor import problem_target

MAX_PARTS = 10_000


def runnable_recipes(folder: Path, *, drafts: bool) -> list[tuple[str, Path]]:
    """(label, path) of the recipes an operator may run: released ones; with ``drafts`` also drafts
    (an engineer's trial run), marked. Recipes that do not load are left out (the editor shows why)."""
    out = []
    for path in sorted(folder.glob("*.yaml")):
        try:
            recipe = load_recipe(path)
        except MicrofactoryError:
            continue
        status = recipe.spec.recipe.status
        if status == "released" or (drafts and status == "draft"):
            mark = "" if status == "released" else " — draft, trial run"
            out.append((f"{recipe.name} (v{recipe.version}){mark}", path))
    return out


class RunDialog(QDialog):
    """Choose a recipe, a lot size and this lot's values; Start hands them to ``run_requested``."""

    run_requested = pyqtSignal(object, int, object)  # recipe path, parts, {parameter: value}
    worker_done = pyqtSignal(object, object)  # (callback, result) from a worker thread

    def __init__(self, recipes_dir: Path, cell: Cell, *, emergency_stop: Callable[[], None],
                 drafts: bool = False, may_run: bool = True, select: Path | None = None, parts: int = 10,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Run a lot")
        self.setModal(False)
        self.cell = cell
        self.recipes_dir = recipes_dir
        self._select = select
        self._generation = 0  # the newest validation asked for; older answers are dropped
        self.validated_ok = False
        self.may_run = may_run
        self.worker_done.connect(self._deliver)
        self.recipe = QComboBox()
        self.recipe.setMinimumWidth(320)
        self.parts = QSpinBox()
        self.parts.setRange(1, MAX_PARTS)
        self.parts.setValue(parts)
        self.parts.setSuffix(" parts")
        self.parts.setMinimumHeight(44)
        self.form = ParameterForm()
        self.form.edited.connect(self.validate)
        self.problems = QLabel("")
        self.problems.setWordWrap(True)
        self.problems.setStyleSheet("color: #c62828; font-weight: 600;")
        self.status = QLabel("loading the recipes…")
        self.start_button = QPushButton("Start lot")
        self.start_button.setObjectName("startLot")
        self.start_button.setEnabled(False)
        cancel = QPushButton("Cancel")
        estop = QPushButton("E-STOP")
        estop.setObjectName("estop")
        estop.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        estop.clicked.connect(emergency_stop)
        self.start_button.clicked.connect(self.start)
        cancel.clicked.connect(self.reject)
        self.recipe.currentIndexChanged.connect(lambda _i: self._open(self.recipe.currentData()))
        top = QHBoxLayout()
        top.addWidget(QLabel("Recipe"))
        top.addWidget(self.recipe, 1)
        top.addWidget(self.parts)
        top.addWidget(estop)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.form)
        buttons = QHBoxLayout()
        buttons.addWidget(self.status, 1)
        buttons.addWidget(cancel)
        buttons.addWidget(self.start_button)
        box = QVBoxLayout(self)
        box.addLayout(top)
        box.addWidget(QLabel("This lot's values (the recipe's defaults until you change them)"))
        box.addWidget(scroll, 1)
        box.addWidget(self.problems)
        box.addLayout(buttons)
        self.resize(720, 560)
        self._in_worker(lambda: runnable_recipes(recipes_dir, drafts=drafts), self._fill)

    # -- worker plumbing -------------------------------------------------------------------------
    def _deliver(self, callback: Callable[[Any], None], result: Any) -> None:
        if not sip.isdeleted(self):
            callback(result)

    def _in_worker(self, work: Callable[[], Any], then: Callable[[Any], None]) -> None:
        def run() -> None:
            try:
                result: Any = work()
            except Exception as exc:  # shown by the callback, never dropped
                result = exc
            if sip.isdeleted(self):
                return  # the operator closed the dialog meanwhile: nobody waits for the answer
            with contextlib.suppress(RuntimeError):  # ... or closed it just now
                self.worker_done.emit(then, result)

        threading.Thread(target=run, daemon=True, name="run-dialog").start()

    # -- recipes ---------------------------------------------------------------------------------
    def _fill(self, recipes: Any) -> None:
        if isinstance(recipes, Exception):
            self.status.setText(f"cannot list the recipes: {recipes}")
            return
        if not recipes:
            self.status.setText("No released recipe in the recipes folder: an engineer releases one in "
                                "the Recipes tab.")
            return
        wanted = Path(self._select).resolve() if self._select is not None else None
        index = next((i for i, (_l, p) in enumerate(recipes) if wanted and p.resolve() == wanted), 0)
        self.recipe.blockSignals(True)  # one load for the recipe chosen, not one per item added
        for label, path in recipes:
            self.recipe.addItem(label, path)
        self.recipe.setCurrentIndex(index)
        self.recipe.blockSignals(False)
        self._open(self.recipe.currentData())

    def _open(self, path: Path | None) -> None:
        if path is None:
            return
        self.validated_ok = False
        self.start_button.setEnabled(False)
        self.status.setText("reading the recipe…")
        self._in_worker(lambda: (path, load_recipe(path)), self._show)

    def _show(self, loaded: Any) -> None:
        if isinstance(loaded, Exception):
            self.problems.setText(str(loaded))
            return
        path, recipe = loaded
        if path != self.recipe.currentData():
            return  # the operator has chosen another recipe meanwhile
        self.form.show_specs([s for s in recipe.parameters().values() if s.adjustable])
        self.validate()

    # -- validation ------------------------------------------------------------------------------
    def validate(self) -> None:
        """Bounds at once under each field; then the core's validation with these values, off the GUI
        thread. Start waits for the answer about the newest values."""
        self._generation += 1
        self.validated_ok = False
        self.start_button.setEnabled(False)
        path = self.recipe.currentData()
        if not self.form.check_bounds() or path is None:
            self.status.setText("Fix the values marked in red.")
            return
        self.problems.setText("")
        self.status.setText("checking the recipe with these values on this cell…")
        values, generation = self.form.values(), self._generation
        self._in_worker(lambda: (generation, validate_recipe(path, self.cell, values=values)),
                        self._validated)

    def _validated(self, answer: Any) -> None:
        if isinstance(answer, Exception):
            self.problems.setText(str(answer))
            self.status.setText("The recipe could not be checked.")
            return
        generation, report = answer
        if generation != self._generation:
            return  # a check of values the operator has changed since
        names = list(self.form.specs)
        rest = []
        for problem in report.problems:
            kind, target = problem_target(problem.field, names)
            if not (kind == "parameter" and self.form.show_problem(str(target), problem.message)):
                rest.append(str(problem))
        self.problems.setText("\n".join(rest[:6]))
        self.validated_ok = bool(report.valid)
        self.start_button.setEnabled(self.validated_ok and self.may_run)
        if not self.may_run:
            self.status.setText("Sign in to run a lot (this journal has users).")
        else:
            self.status.setText("Ready to start." if report.valid else "Not startable: see the problems.")

    def start(self) -> None:
        if not (self.validated_ok and self.may_run):
            return
        self.run_requested.emit(self.recipe.currentData(), self.parts.value(), self.form.values())
        self.accept()
