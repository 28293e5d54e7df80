"""Fault injection for simulated stations: train operators, show reviewers the recovery.

Each simulator lists its faults (``SimulatorHandle.faults()``); injecting one runs on a worker thread
(it may write to the pty), never on the GUI thread.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from typing import Any

from PyQt6.QtCore import pyqtSignal
from PyQt6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget

from microfactory.simulation import SimulatorHandle

#: Faults an operator would recognise, with default parameters, per station kind.
SUGGESTED: Mapping[str, Mapping[str, dict[str, Any]]] = {
    "grbl": {"alarm": {"code": 1}, "drop": {}, "garble": {}, "silence": {}, "speak": {}, "unplug": {},
             "replug": {}, "door": {"open": True}},
    "wash": {"lid_open": {}, "lid_close": {}, "level_low": {}, "top_up": {}, "drop": {}, "unplug": {},
             "replug": {}},
    "camera": {"defect": {"cls": "chip"}, "dark": {}, "empty": {}, "unplug": {}, "replug": {}},
}


class FaultPanel(QWidget):
    """Choose a simulated station and a fault; inject it."""

    injected = pyqtSignal(str)  # emitted from the worker thread; Qt queues it to the GUI thread

    def __init__(self, simulators: Mapping[str, SimulatorHandle], kinds: Mapping[str, str],
                 executor: Executor, on_result: Callable[[str], None], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.simulators = simulators
        self.kinds = kinds
        self.executor = executor
        self.station = QComboBox()
        self.station.addItems(sorted(simulators))
        self.fault = QComboBox()
        self.params = QLineEdit()
        self.params.setPlaceholderText("parameters, e.g. code=2")
        self.inject_button = QPushButton("Inject fault")
        self.inject_button.clicked.connect(self.inject)
        self.result = QLabel("" if simulators else "No simulated stations in this cell.")
        self.station.currentTextChanged.connect(self._fill_faults)
        self.fault.currentTextChanged.connect(self._suggest_params)
        self.injected.connect(self.result.setText)
        self.injected.connect(on_result)
        row = QHBoxLayout()
        for w in (QLabel("Station"), self.station, QLabel("Fault"), self.fault, self.params,
                  self.inject_button):
            row.addWidget(w)
        box = QVBoxLayout(self)
        box.addLayout(row)
        box.addWidget(self.result)
        box.addStretch(1)
        self._fill_faults(self.station.currentText())

    def set_simulators(self, simulators: Mapping[str, SimulatorHandle]) -> None:
        """Show the simulators started when the cell connected."""
        self.simulators = simulators
        self.station.clear()
        self.station.addItems(sorted(simulators))
        self.result.setText("" if simulators else "No simulated stations in this cell.")

    def _fill_faults(self, station: str) -> None:
        self.fault.clear()
        sim = self.simulators.get(station)
        if sim is None:
            return
        suggested = SUGGESTED.get(self.kinds.get(station, ""), {})
        self.fault.addItems(sorted(sim.faults(), key=lambda n: (n not in suggested, n)))

    def _suggest_params(self, fault: str) -> None:
        suggested = SUGGESTED.get(self.kinds.get(self.station.currentText(), ""), {}).get(fault, {})
        self.params.setText(" ".join(f"{k}={v}" for k, v in suggested.items()))

    def parsed_params(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for word in self.params.text().split():
            key, _, value = word.partition("=")
            out[key] = int(value) if value.lstrip("-").isdigit() else \
                {"true": True, "false": False}.get(value.lower(), value)
        return out

    def inject(self) -> None:
        station, fault = self.station.currentText(), self.fault.currentText()
        sim = self.simulators.get(station)
        if sim is None or not fault:
            return
        params = self.parsed_params()
        future = self.executor.submit(sim.inject, fault, **params)
        self.result.setText(f"injecting {fault} on {station}…")

        def done(f: Any) -> None:
            exc = f.exception()
            self.injected.emit(f"{station}: {fault} injected" if exc is None
                               else f"{station}: {fault} failed: {exc}")

        future.add_done_callback(done)
