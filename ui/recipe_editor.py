"""Recipe editor for operators: a form generated from the recipe's parameter schema, the step list with
stations and routing, save as a new draft version (comments kept), diff between versions, release.

Validation is the core's own (``microfactory.recipe.validate_recipe``) and, like every file read or
write, runs on a worker thread; results come back through a signal, so typing never freezes the panel.
A value outside a parameter's bounds shows its error next to the field and saving is refused.
"""

from __future__ import annotations

import difflib
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PyQt6 import sip
from PyQt6.QtCore import pyqtSignal
from PyQt6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from microfactory import yamlfile
from microfactory.cell import Cell
from microfactory.errors import MicrofactoryError
from microfactory.recipe import compile_recipe, load_recipe, validate_recipe
from microfactory.recipe.parameters import ParameterSpec, ParameterValueError

ROLES = ("Operator", "Engineer")
STEP_KINDS = ("cut", "machine", "wash", "inspect", "manual", "transfer")


def next_version(version: str) -> str:
    """``1.1`` → ``1.2``; ``3`` → ``4``; anything else gets ``.1`` appended."""
    m = re.match(r"^(.*?)(\d+)$", version)
    return f"{m.group(1)}{int(m.group(2)) + 1}" if m else f"{version}.1"


def bound_problem(spec: ParameterSpec, value: Any) -> str:
    """The inline error for ``value`` in the core's own words, or empty when it is within bounds."""
    if spec.type in ("int", "float") and isinstance(value, (int, float)):
        try:
            spec.check_bounds(value)
        except ParameterValueError as exc:
            return f"{exc} — enter a value between {spec.min:g} and {spec.max:g}" \
                if spec.min is not None and spec.max is not None else str(exc)
    return ""


def decimals_for(spec: ParameterSpec) -> int:
    """Decimals a float field shows: 3 for small quantities (a 0.05 mm depth), 1 for large ones (feeds)."""
    numbers = [abs(float(x)) for x in (spec.min, spec.max, spec.default) if isinstance(x, (int, float))]
    return 3 if max(numbers, default=1.0) < 10 else 1


def base(path: Path) -> str:
    """The recipe a file is a version of: ``watch-plate-v1.2.yaml`` → ``watch-plate``."""
    return re.sub(r"-v\d+(\.\d+)*$", "", path.stem)


def save_version(source: Path, values: dict[str, Any], *, release: bool, author: str = "") -> Path:
    """Write a new version of the recipe beside ``source`` with new parameter defaults; keeps comments.

    The new file is ``<id>-v<version>.yaml``; its status is ``released`` or ``draft``.
    """
    doc = yamlfile.load(source)
    root = doc.root
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


class RecipeEditor(QWidget):
    """The Recipes tab."""

    done = pyqtSignal(object, object)  # (callback, result) from a worker thread

    def __init__(self, recipes_dir: Path, cell: Cell, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.recipes_dir = recipes_dir
        self.cell = cell
        self.path: Path | None = None
        self.specs: dict[str, ParameterSpec] = {}
        self.fields: dict[str, QWidget] = {}
        self.errors: dict[str, QLabel] = {}
        self.done.connect(self._deliver)
        self.recipe = QComboBox()
        self.recipe.setMinimumWidth(360)
        self.recipe.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.role = QComboBox()
        self.role.addItems(ROLES)
        self.status = QLabel("")
        self.form = QFormLayout()
        self.steps = QTableWidget(0, 6)
        self.steps.setHorizontalHeaderLabels(["step", "kind", "station", "on pass", "on fail", "max rework"])
        self.steps.horizontalHeader().setSectionResizeMode(  # type: ignore[union-attr]
            QHeaderView.ResizeMode.Stretch)
        self.steps.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
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
        self.role.currentTextChanged.connect(lambda _r: self._update_buttons())
        self.save_button.clicked.connect(lambda: self.save(release=False))
        self.release_button.clicked.connect(lambda: self.save(release=True))
        diff_button.clicked.connect(self.show_diff)
        top = QHBoxLayout()
        for w in (QLabel("Recipe"), self.recipe, QLabel("Role"), self.role, self.status):
            top.addWidget(w)
        top.addStretch(1)
        form_box = QWidget()
        left = QVBoxLayout(form_box)
        left.addWidget(QLabel("Parameters"))
        left.addLayout(self.form)
        left.addWidget(self.problems)
        buttons = QHBoxLayout()
        buttons.addWidget(self.save_button)
        buttons.addWidget(self.release_button)
        left.addLayout(buttons)
        left.addStretch(1)
        right_box = QWidget()
        right = QVBoxLayout(right_box)
        right.addWidget(QLabel("Steps and routing"))
        right.addWidget(self.steps, 2)
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
        """(recipe, station per step) — the stations the core resolves on this cell, by kind and
        capability; a recipe that does not compile still opens (its problems show under the form)."""
        recipe = load_recipe(path)
        try:
            stations = {st.id: st.station for st in compile_recipe(recipe, self.cell).steps}
        except MicrofactoryError:
            stations = {}
        return recipe, stations

    def _show(self, loaded: Any) -> None:
        recipe, stations = loaded if isinstance(loaded, tuple) else (loaded, {})
        if not isinstance(recipe, Exception) and recipe.path != self.path:
            return  # a slower load of a recipe the operator has already left
        while self.form.rowCount():
            self.form.removeRow(0)
        self.fields.clear()
        self.errors.clear()
        if isinstance(recipe, Exception):
            self.problems.setText(str(recipe))
            self.specs = {}
            self._update_buttons()
            return
        self.status.setText(f"v{recipe.version} · {recipe.spec.recipe.status}")
        self.specs = recipe.parameters()
        for name, spec in self.specs.items():
            field = self._field(spec)
            error = QLabel("")
            error.setStyleSheet("color: #c62828;")
            holder = QWidget()
            row = QVBoxLayout(holder)
            row.setContentsMargins(0, 0, 0, 0)
            row.addWidget(field)
            row.addWidget(error)
            bounds = f" [{spec.min:g}…{spec.max:g}]" if spec.min is not None and spec.max is not None else ""
            label = QLabel(f"{name} ({spec.unit}){bounds}" if spec.unit else f"{name}{bounds}")
            label.setToolTip(spec.description)
            self.form.addRow(label, holder)
            self.fields[name], self.errors[name] = field, error
        self.steps.setRowCount(len(recipe.steps))
        for row_index, step in enumerate(recipe.steps):
            kind = next((k for k in STEP_KINDS if getattr(step, k) is not None), "?")
            values = (step.id, kind, step.station or stations.get(step.id) or "—",
                      step.on_pass or recipe.next_step(row_index), step.on_fail or "scrap",
                      str(step.max_rework))
            for col, value in enumerate(values):
                self.steps.setItem(row_index, col, QTableWidgetItem(str(value)))
        self.problems.setText("")
        self.validate()

    def _field(self, spec: ParameterSpec) -> QWidget:
        """A spin box with the unit and bounds shown; the range is left open so a wrong value can be
        typed and is then explained, instead of being silently clamped."""
        widget: QWidget
        if spec.type == "int":
            box = QSpinBox()
            box.setRange(-2_000_000_000, 2_000_000_000)
            box.setValue(int(spec.default))
            box.valueChanged.connect(lambda _v: self.validate())
            widget = box
        elif spec.type == "float":
            dbox = QDoubleSpinBox()
            dbox.setDecimals(decimals_for(spec))
            dbox.setRange(-1e9, 1e9)
            if spec.min is not None and spec.max is not None:
                dbox.setSingleStep(round((spec.max - spec.min) / 100, decimals_for(spec)) or 0.001)
            dbox.setValue(float(spec.default))
            dbox.valueChanged.connect(lambda _v: self.validate())
            widget = dbox
        elif spec.type == "bool":
            check = QCheckBox()
            check.setChecked(bool(spec.default))
            check.toggled.connect(lambda _v: self.validate())
            widget = check
        else:
            line = QLineEdit(str(spec.default))
            line.textChanged.connect(lambda _v: self.validate())
            widget = line
        if spec.unit and isinstance(widget, (QSpinBox, QDoubleSpinBox)):
            widget.setSuffix(f" {spec.unit}")
        widget.setMinimumHeight(40)
        widget.setToolTip(spec.description)
        return widget

    def values(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, widget in self.fields.items():
            if isinstance(widget, (QSpinBox, QDoubleSpinBox)):
                out[name] = widget.value()
            elif isinstance(widget, QCheckBox):
                out[name] = widget.isChecked()
            elif isinstance(widget, QLineEdit):
                out[name] = widget.text()
        return out

    # -- validation ----------------------------------------------------------------------------------
    def validate(self) -> bool:
        """Bounds inline at once; then the core's full validation on a worker thread."""
        values = self.values()
        bad = False
        for name, spec in self.specs.items():
            problem = bound_problem(spec, values.get(name))
            self.errors[name].setText(problem)
            bad = bad or bool(problem)
        self.inline_ok = not bad
        self._update_buttons()
        if not bad and self.path is not None:
            self.problems.setText("")
            path = self.path
            self._in_worker(lambda: validate_recipe(path, self.cell, values=values), self._validated)
        return not bad

    def _validated(self, report: Any) -> None:
        if isinstance(report, Exception):
            self.problems.setText(str(report))
            self.core_ok = False
        else:
            self.core_ok = bool(report.valid)
            self.problems.setText("\n".join(f"{p.file}:{p.line}: {p.message}" for p in report.problems[:8]))
        self._update_buttons()

    inline_ok = True
    core_ok = True

    def _update_buttons(self) -> None:
        ok = bool(self.specs or self.path) and self.inline_ok and self.core_ok
        self.save_button.setEnabled(ok)
        self.release_button.setEnabled(ok and self.role.currentText() == "Engineer")

    # -- saving and diff -----------------------------------------------------------------------------
    def save(self, *, release: bool) -> None:
        if not self.validate() or self.path is None:
            self.problems.setText("Not saved: fix the values marked in red first.")
            return
        if release and self.role.currentText() != "Engineer":
            self.problems.setText("Only an engineer may release a recipe.")
            return
        source, values = self.path, self.values()
        self._in_worker(lambda: save_version(source, values, release=release),
                        lambda target: self._saved(target, release))

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
