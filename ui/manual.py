"""Manual control (unit mode Manual): jog, home, unlock on Grbl stations; wash start / abort / set
point; camera snapshot. Disabled while the cell executes a lot; every action runs on the engine loop."""

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
from microfactory.errors import MicrofactoryError, StationFault
from microfactory.station import StepRequest

log = logging.getLogger("ui.manual")
BUSY_STATES = {"Starting", "Execute", "Holding", "Held", "Unholding", "Suspending", "Suspended",
               "Unsuspending", "Completing", "Stopping", "Aborting", "Clearing", "Resetting"}


class ManualControl(QWidget):
    """Buttons that send one step to one station, in Manual mode only."""

    result = pyqtSignal(str)

    def __init__(self, cell: Cell, engine: EngineThread, controller: Controller,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.engine, self.controller = engine, controller
        self.ready = False
        self.cell_state = "Idle"
        kinds = {s.id: s.kind for s in cell.stations}
        self.mode_button = QPushButton("Enter Manual mode")
        self.mode_button.setCheckable(True)
        self.mode_button.toggled.connect(self._mode)
        self.message = QLabel("Manual control is available in Manual mode while no lot runs.")
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

    def set_ready(self, ready: bool) -> None:
        self.ready = ready
        self._update()

    def set_cell_state(self, state: str) -> None:
        self.cell_state = state
        self._update()

    def _update(self) -> None:
        enabled = self.ready and self.mode_button.isChecked() and self.cell_state not in BUSY_STATES
        for panel in self.panels:
            panel.setEnabled(enabled)
        self.mode_button.setEnabled(self.ready and self.cell_state not in BUSY_STATES)

    def _mode(self, manual: bool) -> None:
        mode = "Manual" if manual else "Production"
        self.mode_button.setText("Leave Manual mode" if manual else "Enter Manual mode")
        try:
            future = self.engine._on_loop(lambda: self.controller.set_mode(mode))
        except MicrofactoryError as exc:
            self.message.setText(str(exc))
            return
        future.add_done_callback(lambda f: self._done(f, f"mode {mode}"))
        self._update()

    def jog(self, axis: str, sign: str) -> None:
        distance = self.step.value() * (-1 if sign == "-" else 1)
        self.send(self.grbl.currentText(), "jog", {"jog": f"G91 {axis}{distance:.3f} F300", "wait": True})

    def send(self, station_id: str, action: str, params: dict[str, Any]) -> None:
        station = self.controller.stations.get(station_id)
        if station is None:
            return
        request = StepRequest(action, params, key=f"manual-{action}")
        problems = station.check_step(request)
        if problems:
            self.message.setText(f"refused before sending: {'; '.join(problems)}")
            return
        self.message.setText(f"{station_id}: {action}…")
        future = self.engine.call(station.run_step(request))
        future.add_done_callback(lambda f: self._done(f, f"{station_id}: {action}"))

    def recover(self, station_id: str, action: str) -> None:
        """Home or unlock a Grbl station; in alarm, soft-reset it first.

        After a hard-limit or abort alarm Grbl answers nothing but "Reset to continue" until it is
        reset; the reset then reports that the machine stays locked, which ``$H``/``$X`` clears next.
        """
        station = self.controller.stations.get(station_id)
        if station is None:
            return
        request = StepRequest(action, {}, key=f"manual-{action}")

        async def reset_then_act() -> Any:
            if str(station.state) == "alarm":
                try:
                    await station.reset()
                except StationFault as exc:  # "stays locked": exactly what the next line clears
                    log.info("%s: reset before %s: %s", station_id, action, exc)
            return await station.run_step(request)

        self.message.setText(f"{station_id}: {action}…")
        future = self.engine.call(reset_then_act())
        future.add_done_callback(lambda f: self._done(f, f"{station_id}: {action}"))

    def stop(self, station_id: str) -> None:
        station = self.controller.stations.get(station_id)
        if station is not None:
            self.engine.call(station.stop()).add_done_callback(lambda f: self._done(f, f"{station_id}: stop"))

    def _done(self, future: concurrent.futures.Future[Any], what: str) -> None:
        exc = future.exception()
        if exc is not None:
            self.result.emit(f"{what} failed: {exc}")
            return
        value = future.result()
        verdict = getattr(value, "verdict", None)
        self.result.emit(f"{what}: done" + (f" ({verdict})" if verdict else ""))
