"""The step editor: an operator adds, removes, reorders and re-routes a recipe's steps, no code.

It edits the recipe's own round-trip YAML document (``procedure:``) in place, so every comment and every
step that was not touched is written back as it was. Each row is one step: its id, kind, station, where
a pass and a fail go, and how often a part may take the fail route; the selected step's settings (the
program, feeds, wash set points, drawing …) are its kind's block, edited as YAML text. Every change is
handed to the recipe editor, which validates the edited recipe against the cell on a worker thread and
puts each problem on the row it is about.
"""

from __future__ import annotations

import io
from typing import Any

from PyQt6.QtCore import pyqtSignal
from PyQt6.QtGui import QColor
from PyQt6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError

STEP_KINDS = ("cut", "machine", "wash", "inspect", "manual", "transfer")
#: Settings a new step of each kind starts with (the validator says what else it needs).
NEW_SETTINGS: dict[str, dict[str, Any]] = {
    "cut": {"program": "programs/"}, "machine": {"program": "programs/"}, "wash": {"program": "MAIN"},
    "inspect": {"drawing": "drawings/"}, "manual": {"prompt": "", "duration_s": 30},
    "transfer": {"duration_s": 15},
}
_RED, _CLEAR = QColor("#ffcdd2"), QColor(0, 0, 0, 0)
COLUMNS = ("step", "kind", "station", "on pass", "on fail", "max rework")
AUTO = "(by kind)"


def _flow_yaml() -> YAML:
    yaml = YAML()
    yaml.default_flow_style = False
    return yaml


def kind_of(step: Any) -> str:
    return next((k for k in STEP_KINDS if k in step), "")


class StepEditor(QWidget):
    """Steps and routing of one recipe document; ``edited`` fires after every change."""

    edited = pyqtSignal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.doc: Any = None
        self.stations: list[str] = []
        self._filling = False
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        header = self.table.horizontalHeader()
        assert header is not None
        header.setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QTableWidget.SelectionMode.SingleSelection)
        self.table.itemChanged.connect(self._text_changed)
        self.table.currentCellChanged.connect(lambda row, *_: self._show_settings(row))
        self.settings = QPlainTextEdit()
        self.settings.setObjectName("stepSettings")
        self.settings.setPlaceholderText("the selected step's settings (YAML)")
        self.settings_error = QLabel("")
        self.settings_error.setStyleSheet("color: #c62828;")
        apply = QPushButton("Apply settings")
        apply.clicked.connect(self.apply_settings)
        self.add_button = QPushButton("Add step")
        self.remove_button = QPushButton("Remove")
        up, down = QPushButton("Move up"), QPushButton("Move down")
        self.add_button.clicked.connect(lambda: self.add_step("transfer"))
        self.remove_button.clicked.connect(self.remove_step)
        up.clicked.connect(lambda: self.move_step(-1))
        down.clicked.connect(lambda: self.move_step(1))
        buttons = QHBoxLayout()
        for button in (self.add_button, self.remove_button, up, down):
            buttons.addWidget(button)
        buttons.addStretch(1)
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(self.table, 2)
        box.addLayout(buttons)
        box.addWidget(QLabel("Settings of the selected step"))
        box.addWidget(self.settings, 1)
        box.addWidget(self.settings_error)
        box.addWidget(apply)

    # -- the document ---------------------------------------------------------------------------
    @property
    def steps(self) -> Any:
        return self.doc["procedure"] if self.doc is not None else []

    def show_doc(self, doc: Any, stations: list[str]) -> None:
        """Show the round-trip document ``doc`` (its ``procedure:`` is edited in place)."""
        self.doc, self.stations = doc, stations
        self._fill()

    def _fill(self) -> None:
        self._filling = True
        try:
            self.table.setRowCount(len(self.steps))
            ids = [str(s.get("id", "")) for s in self.steps]
            for row, step in enumerate(self.steps):
                self.table.setItem(row, 0, QTableWidgetItem(str(step.get("id", ""))))
                self.table.setCellWidget(row, 1, self._combo(STEP_KINDS, kind_of(step), row, "kind"))
                station = str(step.get("station") or AUTO)
                self.table.setCellWidget(row, 2, self._combo((AUTO, *self.stations), station, row, "station"))
                routes = ("(next step)", *ids, "done", "scrap")
                self.table.setCellWidget(row, 3, self._combo(routes, str(step.get("on_pass") or routes[0]),
                                                             row, "on_pass"))
                fails = ("(scrap)", *ids, "done", "scrap")
                self.table.setCellWidget(row, 4, self._combo(fails, str(step.get("on_fail") or fails[0]),
                                                             row, "on_fail"))
                spin = QSpinBox()
                spin.setRange(0, 10)
                spin.setValue(int(step.get("max_rework", 0) or 0))
                spin.valueChanged.connect(lambda v, r=row: self._set(r, "max_rework", v or None))
                self.table.setCellWidget(row, 5, spin)
        finally:
            self._filling = False

    def _combo(self, options: tuple[str, ...], current: str, row: int, key: str) -> QComboBox:
        combo = QComboBox()
        combo.addItems(list(dict.fromkeys(options)))
        if combo.findText(current) < 0:
            combo.addItem(current)
        combo.setCurrentText(current)
        combo.currentTextChanged.connect(lambda text, r=row, k=key: self._choose(r, k, text))
        return combo

    def _choose(self, row: int, key: str, text: str) -> None:
        if self._filling:
            return
        if key == "kind":
            step = self.steps[row]
            old = kind_of(step)
            if old and old != text:
                del step[old]
                step[text] = CommentedMap(NEW_SETTINGS[text])
                self._show_settings(row)
            self.edited.emit()
            return
        value = None if text.startswith("(") else text
        self._set(row, key, value)

    def _set(self, row: int, key: str, value: Any) -> None:
        if self._filling or row >= len(self.steps):
            return
        step = self.steps[row]
        if value is None:
            step.pop(key, None)
        else:
            step[key] = value
        self.edited.emit()

    def _text_changed(self, item: QTableWidgetItem) -> None:
        if self._filling or item.column() != 0:
            return
        self._set(item.row(), "id", item.text().strip())
        self._fill()  # the routes list the new id

    # -- settings of the selected step -----------------------------------------------------------
    def _show_settings(self, row: int) -> None:
        if row < 0 or row >= len(self.steps):
            self.settings.setPlainText("")
            return
        block = self.steps[row].get(kind_of(self.steps[row]))
        text = io.StringIO()
        _flow_yaml().dump(dict(block) if block else {}, text)
        self.settings.setPlainText(text.getvalue())
        self.settings_error.setText("")

    def apply_settings(self) -> None:
        """Parse the settings text into the selected step's kind block; a YAML mistake is said here."""
        row = self.table.currentRow()
        if row < 0 or row >= len(self.steps):
            return
        try:
            value = YAML(typ="safe").load(self.settings.toPlainText()) or {}
        except YAMLError as exc:
            self.settings_error.setText(f"not valid YAML: {str(exc).splitlines()[0]}")
            return
        if not isinstance(value, dict):
            self.settings_error.setText("the settings must be `name: value` lines")
            return
        self.steps[row][kind_of(self.steps[row])] = CommentedMap(value)
        self.settings_error.setText("")
        self.edited.emit()

    # -- adding, removing, reordering ------------------------------------------------------------
    def add_step(self, kind: str) -> None:
        """A new step after the selected one (or at the end), with a fresh id and its kind's defaults."""
        ids = {str(s.get("id")) for s in self.steps}
        n = 1
        while f"step-{n}" in ids:
            n += 1
        step = CommentedMap([("id", f"step-{n}"), (kind, CommentedMap(NEW_SETTINGS[kind]))])
        row = self.table.currentRow()
        at = row + 1 if 0 <= row < len(self.steps) else len(self.steps)
        self.steps.insert(at, step)
        self._fill()
        self.table.selectRow(at)
        self.edited.emit()

    def remove_step(self) -> None:
        row = self.table.currentRow()
        if 0 <= row < len(self.steps) and len(self.steps) > 1:
            del self.steps[row]
            self._fill()
            self.edited.emit()

    def move_step(self, by: int) -> None:
        row = self.table.currentRow()
        to = row + by
        if 0 <= row < len(self.steps) and 0 <= to < len(self.steps):
            step = self.steps.pop(row)
            self.steps.insert(to, step)
            self._fill()
            self.table.selectRow(to)
            self.edited.emit()

    def mark(self, row: int, problem: str) -> None:
        """Show a validation problem on ``row`` (red id cell, the problem as its tooltip)."""
        item = self.table.item(row, 0)
        if item is not None:
            self.table.blockSignals(True)  # a colour is not an edit of the step's id
            item.setBackground(_RED)
            item.setToolTip(problem)
            self.table.blockSignals(False)

    def unmark(self) -> None:
        self.table.blockSignals(True)
        for row in range(self.table.rowCount()):
            item = self.table.item(row, 0)
            if item is not None:
                item.setBackground(_CLEAR)
                item.setToolTip("")
        self.table.blockSignals(False)
