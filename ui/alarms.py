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
        self._unacked = 0

    @property
    def unacknowledged(self) -> int:
        """Rows not yet acknowledged (kept as a count: adding a row must not walk the whole table)."""
        return self._unacked

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
        self._unacked += 1
        if self.table.rowCount() > MAX_ROWS:
            last = self.table.rowCount() - 1
            dropped = self.table.item(last, 6)
            if dropped is not None and not dropped.text():
                self._unacked -= 1
            self.table.removeRow(last)
        self.table.setRowHidden(0, self._hidden(station, severity))
        self.unacked.setText(f"{self._unacked} unacknowledged")

    def _hidden(self, station: str, severity: str) -> bool:
        shown_station = self.filter_station.currentText()
        shown_severity = self.filter_severity.currentText()
        return (shown_station != "all stations" and station != shown_station) or \
            (shown_severity != "all severities" and severity != shown_severity)

    def _ack_row(self, row: int) -> None:
        item = self.table.item(row, 6)
        if item is not None and not item.text():
            item.setText(time.strftime("%H:%M:%S"))
            self._unacked -= 1

    def acknowledge_selected(self) -> None:
        for index in self.table.selectionModel().selectedRows():  # type: ignore[union-attr]
            self._ack_row(index.row())
        self._refilter()

    def acknowledge_all(self) -> None:
        for row in range(self.table.rowCount()):
            self._ack_row(row)
        self._refilter()

    def _refilter(self) -> None:
        """Show the rows the filters select (on a filter change or an acknowledge, not per row added)."""
        for row in range(self.table.rowCount()):
            st, sev = self.table.item(row, 1), self.table.item(row, 2)
            self.table.setRowHidden(row, self._hidden(st.text() if st else "", sev.text() if sev else ""))
        self.unacked.setText(f"{self._unacked} unacknowledged")
