"""Manual control (unit mode Manual or Maintenance): jog, home, unlock on Grbl stations; wash start /
abort / set point; camera snapshot.

Every action is an engine command (:meth:`EngineThread.manual_step`), never a station call: the engine
refuses it unless the unit mode is Manual or Maintenance and the cell waits, pre-checks it and journals
it. The panels follow the engine's own state, compared as enums (``"Execute"`` is not ``"execute"``:
that string comparison once left the panels live in the middle of a lot)."""

from __future__ import annotations

import concurrent.futures
import logging
from typing import Any

from PyQt6.QtCore import pyqtSignal
from PyQt6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from microfactory.cell import Cell
from microfactory.engine.api import Controller, EngineThread
from microfactory.engine.manual import MANUAL_MODES, WAIT_STATES
from microfactory.engine.packml import PackMLState, UnitMode
from microfactory.station import StepRequest
from ui.slots import guarded

log = logging.getLogger("ui.manual")


class ManualControl(QWidget):
    """Buttons that send one step to one station, in Manual mode only."""

    result = pyqtSignal(str)

    def __init__(self, cell: Cell, engine: EngineThread, controller: Controller,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.engine, self.controller = engine, controller
        self.ready = False
        self.cell_state = PackMLState.IDLE
        self.mode = UnitMode.PRODUCTION
        kinds = {s.id: s.kind for s in cell.stations}
        self.mode_button = QPushButton("Enter Manual mode")
        self.mode_button.setCheckable(True)
        self.mode_button.toggled.connect(self._mode)
        self.message = QLabel("Manual control is available in Manual or Maintenance mode while no lot runs.")
        self.message.setWordWrap(True)
        self.result.connect(self.message.setText)
        self.panels: list[QWidget] = []
        self.grbl = QComboBox()
        self.grbl.addItems([s for s, k in kinds.items() if k == "grbl"])
        self.step = QDoubleSpinBox()
        self.step.setRange(0.001, 50)
        self.step.setValue(1.0)
        self.step.setSuffix(" mm")
        motion = QGroupBox("Motion (Grbl)")
        grid = QGridLayout(motion)
        grid.addWidget(self.grbl, 0, 0, 1, 2)
        grid.addWidget(self.step, 0, 2)
        home = QPushButton("Home ($H)")
        home.setToolTip("Re-home the axes. After an alarm the controller is soft-reset first (Grbl answers "
                        "nothing until then).")
        home.clicked.connect(lambda: self.recover(self.grbl.currentText(), "home"))
        unlock = QPushButton("Unlock ($X)")
        unlock.setToolTip("Clear an alarm that keeps the position (soft limit, abort); after a hard limit "
                          "or a lost position, Home instead.")
        unlock.clicked.connect(lambda: self.recover(self.grbl.currentText(), "unlock"))
        grid.addWidget(home, 1, 0)
        grid.addWidget(unlock, 1, 1)
        for col, axis in enumerate("XYZ"):
            for row, sign in ((2, "-"), (3, "+")):
                button = QPushButton(f"{axis}{sign}")
                button.clicked.connect(lambda _=False, a=axis, s=sign: self.jog(a, s))
                grid.addWidget(button, row, col)
        wash = QGroupBox("Wash")
        wash_box = QHBoxLayout(wash)
        self.wash = QComboBox()
        self.wash.addItems([s for s, k in kinds.items() if k == "wash"])
        self.setpoint = QSpinBox()
        self.setpoint.setRange(20, 80)
        self.setpoint.setValue(40)
        self.setpoint.setSuffix(" °C")
        self.wash_time = QSpinBox()
        self.wash_time.setRange(1, 3600)
        self.wash_time.setValue(60)
        self.wash_time.setSuffix(" s")
        start = QPushButton("Start wash")
        start.clicked.connect(lambda: self.send(self.wash.currentText(), "wash", {
            "temperature_c": self.setpoint.value(), "time_s": self.wash_time.value(), "power_pct": 60}))
        abort = QPushButton("Abort wash")
        abort.clicked.connect(lambda: self.stop(self.wash.currentText()))
        for w in (self.wash, QLabel("set point"), self.setpoint, self.wash_time, start, abort):
            wash_box.addWidget(w)
        camera = QGroupBox("Camera")
        cam_box = QHBoxLayout(camera)
        self.camera = QComboBox()
        self.camera.addItems([s for s, k in kinds.items() if k == "camera"])
        snap = QPushButton("Snapshot + inspect")
        snap.clicked.connect(lambda: self.send(self.camera.currentText(), "inspect", {}))
        cam_box.addWidget(self.camera)
        cam_box.addWidget(snap)
        self.panels = [motion, wash, camera]
        box = QVBoxLayout(self)
        box.addWidget(self.mode_button)
        box.addWidget(self.message)
        for panel in self.panels:
            box.addWidget(panel)
        box.addStretch(1)
        self._update()

    def show_error(self, text: str) -> None:
        self.message.setText(text)

    def set_ready(self, ready: bool) -> None:
        self.ready = ready
        self._update()

    def set_cell_state(self, state: str, mode: str | None = None) -> None:
        """From a ``cell.state`` event: the state and unit mode as the engine has them."""
        try:
            self.cell_state = PackMLState(str(state).lower())
            if mode is not None:
                self.mode = UnitMode(str(mode).lower())
        except ValueError:
            log.warning("unknown cell state %r / mode %r: manual control stays off", state, mode)
            self.cell_state = PackMLState.EXECUTE  # fail safe: treat the unknown as a running lot
        self._update()

    @property
    def allowed(self) -> bool:
        """What the engine would allow (it decides again on each command)."""
        return self.ready and self.mode in MANUAL_MODES and self.cell_state in WAIT_STATES

    def _update(self) -> None:
        enabled = self.allowed
        for panel in self.panels:
            panel.setEnabled(enabled)
        manual = self.mode in MANUAL_MODES
        if self.mode_button.isChecked() != manual:
            self.mode_button.blockSignals(True)
            self.mode_button.setChecked(manual)
            self.mode_button.blockSignals(False)
        self.mode_button.setText("Leave Manual mode" if manual else "Enter Manual mode")
        self.mode_button.setEnabled(self.ready and self.cell_state in WAIT_STATES)

    @guarded
    def _mode(self, manual: bool) -> None:
        mode = UnitMode.MANUAL if manual else UnitMode.PRODUCTION
        future = self.engine.set_mode(mode)
        future.add_done_callback(lambda f: self._done(f, f"mode {mode.value}"))

    @guarded
    def jog(self, axis: str, sign: str) -> None:
        distance = self.step.value() * (-1 if sign == "-" else 1)
        self.send(self.grbl.currentText(), "jog", {"jog": f"G91 {axis}{distance:.3f} F300", "wait": True})

    @guarded
    def send(self, station_id: str, action: str, params: dict[str, Any]) -> None:
        """One manual step through the engine (refused there unless Manual/Maintenance and waiting)."""
        if not station_id:
            self.message.setText(f"no station for {action} in this cell")
            return
        self.message.setText(f"{station_id}: {action}…")
        future = self.engine.manual_step(station_id, StepRequest(action, params), operator="manual tab")
        future.add_done_callback(lambda f: self._done(f, f"{station_id}: {action}"))

    @guarded
    def recover(self, station_id: str, action: str) -> None:
        """Home or unlock a Grbl station; the engine soft-resets it first when it is in alarm (Grbl
        answers nothing but "Reset to continue" until then)."""
        self.send(station_id, action, {})

    @guarded
    def stop(self, station_id: str) -> None:
        if station_id:
            future = self.engine.stop_station(station_id)
            future.add_done_callback(lambda f: self._done(f, f"{station_id}: stop"))

    def _done(self, future: concurrent.futures.Future[Any], what: str) -> None:
        """Called on the engine thread: only emits a signal (queued to the GUI thread)."""
        exc = future.exception()
        if exc is not None:
            self.result.emit(f"{what} refused or failed: {exc}")
            return
        value = future.result()
        ok = getattr(value, "ok", True)
        verdict = getattr(value, "verdict", None)
        reasons = "; ".join(getattr(value, "reasons", []) or [])
        self.result.emit(f"{what}: " + ("done" if ok else f"failed: {reasons}")
                         + (f" ({verdict})" if verdict else ""))
