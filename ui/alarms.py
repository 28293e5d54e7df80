"""Alarms and log: timestamped, by station and severity; acknowledge; filter."""

from __future__ import annotations

import time

from PyQt6.QtCore import Qt
from PyQt6.QtGui import QColor
from PyQt6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from microfactory.events import Event, EventKind
from ui.theme import SEVERITY_COLOURS

COLUMNS = ("time", "station", "severity", "code", "text", "recovery", "ack")
MAX_ROWS = 5000


class AlarmLog(QWidget):
    """A table of alarms (and warnings from the log); the newest on top."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels([c.capitalize() for c in COLUMNS])
        self.table.horizontalHeader().setStretchLastSection(False)  # type: ignore[union-attr]
        self.table.setColumnWidth(4, 420)
        self.table.setColumnWidth(5, 320)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.filter_station = QComboBox()
        self.filter_station.addItem("all stations")
        self.filter_severity = QComboBox()
        self.filter_severity.addItems(["all severities", "critical", "error", "warning", "info"])
        self.unacked = QLabel("0 unacknowledged")
        ack = QPushButton("Acknowledge selected")
        ack.clicked.connect(self.acknowledge_selected)
        ack_all = QPushButton("Acknowledge all")
        ack_all.clicked.connect(self.acknowledge_all)
        self.filter_station.currentIndexChanged.connect(self._refilter)
        self.filter_severity.currentIndexChanged.connect(self._refilter)
        row = QHBoxLayout()
        for w in (QLabel("Show"), self.filter_station, self.filter_severity, self.unacked):
            row.addWidget(w)
        row.addStretch(1)
        row.addWidget(ack)
        row.addWidget(ack_all)
        box = QVBoxLayout(self)
        box.addLayout(row)
        box.addWidget(self.table)

    @property
    def unacknowledged(self) -> int:
        return sum(1 for r in range(self.table.rowCount())
                   if (item := self.table.item(r, 6)) is not None and item.text() == "")

    def apply(self, event: Event) -> None:
        if event.kind == EventKind.ALARM:
            severity = str(event.get("severity") or "error")
            self.add(event.source, severity, str(event.get("code", "")), str(event.get("text", "")),
                     str(event.get("recovery") or ""))
        elif event.kind == EventKind.LOG and event.get("level") in ("warning", "error"):
            self.add(event.source, str(event.get("level")), "", str(event.get("text", "")), "")

    def add(self, station: str, severity: str, code: str, text: str, recovery: str) -> None:
        if self.filter_station.findText(station) < 0:
            self.filter_station.addItem(station)
        self.table.insertRow(0)
        values = (time.strftime("%H:%M:%S"), station, severity, code, text, recovery, "")
        colour = QColor(SEVERITY_COLOURS.get(severity, "#000000"))
        for col, value in enumerate(values):
            item = QTableWidgetItem(value)
            item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
            if col == 2:
                item.setForeground(colour)
            self.table.setItem(0, col, item)
        if self.table.rowCount() > MAX_ROWS:
            self.table.removeRow(self.table.rowCount() - 1)
        self._refilter()

    def _ack_row(self, row: int) -> None:
        item = self.table.item(row, 6)
        if item is not None and not item.text():
            item.setText(time.strftime("%H:%M:%S"))

    def acknowledge_selected(self) -> None:
        for index in self.table.selectionModel().selectedRows():  # type: ignore[union-attr]
            self._ack_row(index.row())
        self._refilter()

    def acknowledge_all(self) -> None:
        for row in range(self.table.rowCount()):
            self._ack_row(row)
        self._refilter()

    def _refilter(self) -> None:
        station = self.filter_station.currentText()
        severity = self.filter_severity.currentText()
        for row in range(self.table.rowCount()):
            st, sev = self.table.item(row, 1), self.table.item(row, 2)
            hide = (station != "all stations" and st is not None and st.text() != station) or \
                (severity != "all severities" and sev is not None and sev.text() != severity)
            self.table.setRowHidden(row, hide)
        self.unacked.setText(f"{self.unacknowledged} unacknowledged")
