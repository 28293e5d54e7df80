"""Vision view: the last inspected frame with its overlay (fitted features, tolerance colours, defects)
and the measurement table — or, with *Live view* on, what the camera sees now (twice a second), with the
last inspection's holes and defects drawn over it.

The annotated PNG is read into a ``QImage`` on a worker thread (``QImage`` is safe off the GUI thread,
``QPixmap`` is not), then shown; the GUI thread never touches the disk. Live frames come from the camera
station's ``preview()`` on the engine's loop (it takes no frame from the inspections); the conversion to
a ``QImage`` happens on that thread too, and a new frame is asked for only when the last one has
arrived, so a slow camera never queues work.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from PyQt6.QtCore import QPointF, QRectF, Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QColor, QImage, QPainter, QPen, QPixmap
from PyQt6.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from microfactory.events import Event, EventKind

log = logging.getLogger("ui.vision")
PASS, FAIL = QColor("#2e7d32"), QColor("#c62828")


LIVE_MS = 500

#: ``preview()`` of the camera station: a future of ``(grey frame, scale)`` or None; None when there is
#: no camera (or the engine is not up yet).
Preview = Callable[[], "Future[Any] | None"]


def to_qimage(preview: Any) -> tuple[QImage, float] | None:
    """A preview ``(grey uint8 array, scale)`` as an owned ``QImage`` (safe to make off the GUI thread)."""
    if not preview:
        return None
    frame, scale = preview
    height, width = frame.shape[:2]
    image = QImage(frame.data, width, height, int(frame.strides[0]), QImage.Format.Format_Grayscale8)
    return image.copy(), float(scale)


def draw_overlay(image: QImage, scale: float, measurements: dict[str, Any]) -> QImage:
    """The last inspection's holes (green within tolerance, red not) and defect boxes over a live frame."""
    out = image.convertToFormat(QImage.Format.Format_RGB32)
    failed = {str(f.get("feature", "")).split(".")[0] for f in measurements.get("features") or []
              if f.get("verdict", f.get("ok")) not in ("pass", True)}
    painter = QPainter(out)
    try:
        for hole in measurements.get("holes") or []:
            colour = FAIL if str(hole.get("id")) in failed else PASS
            painter.setPen(QPen(colour, 2))
            r = float(hole.get("r_px", 0)) * scale
            painter.drawEllipse(QPointF(float(hole.get("x_px", 0)) * scale,
                                        float(hole.get("y_px", 0)) * scale), r, r)
        painter.setPen(QPen(FAIL, 2))
        for defect in measurements.get("defects") or []:
            box = defect.get("bbox") or []
            if len(box) == 4:
                x, y, w, h = (float(v) * scale for v in box)
                painter.drawRect(QRectF(x, y, max(w, 4.0), max(h, 4.0)))
    finally:
        painter.end()
    return out


class VisionView(QWidget):
    """Shows the newest inspection, or the camera live with the newest inspection drawn over it."""

    image_loaded = pyqtSignal(QImage, str)
    live_frame = pyqtSignal(object)  # (QImage, scale) or None, from the engine thread

    def __init__(self, parent: QWidget | None = None, *, preview: Preview | None = None) -> None:
        super().__init__(parent)
        self.preview = preview
        self.last_measurements: dict[str, Any] = {}
        self.live_frames = 0
        self._asking = False
        self.live_button = QPushButton("Live view")
        self.live_button.setCheckable(True)
        self.live_button.setToolTip("Show what the camera sees now (twice a second), with the last "
                                    "inspection's holes and defects over it")
        self.live_button.toggled.connect(self.set_live)
        self._live_timer = QTimer(self)
        self._live_timer.setInterval(LIVE_MS)
        self._live_timer.timeout.connect(self._ask_frame)
        self.live_frame.connect(self._show_live)
        self.picture = QLabel("No part inspected yet.")
        self.picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.picture.setMinimumSize(480, 360)  # the tab fits a 1024 px panel beside its table
        self.picture.setStyleSheet("background: #202020; color: #dddddd;")
        self.verdict = QLabel("")
        self.verdict.setStyleSheet("font-size: 20px; font-weight: 800;")
        self.caption = QLabel("")
        self.caption.setWordWrap(True)
        self.table = QTableWidget(0, 5)
        self.table.setHorizontalHeaderLabels(["feature", "measured mm", "nominal mm", "± mm", "verdict"])
        header = self.table.horizontalHeader()
        assert header is not None
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.defects = QLabel("")
        self.defects.setWordWrap(True)
        side = QWidget()
        side_box = QVBoxLayout(side)
        side_box.addWidget(self.live_button)
        side_box.addWidget(self.verdict)
        side_box.addWidget(self.caption)
        side_box.addWidget(self.table, 1)
        side_box.addWidget(self.defects)
        split = QSplitter()
        split.addWidget(self.picture)
        split.addWidget(side)
        split.setSizes([820, 580])
        box = QHBoxLayout(self)
        box.addWidget(split)
        self.image_loaded.connect(self._show_image)
        self.inspections = 0

    def apply(self, event: Event) -> None:
        if event.kind != EventKind.STEP or event.get("phase") not in ("done", "failed"):
            return
        data: dict[str, Any] = dict(event.get("data") or {})
        measurements = data.get("measurements")
        if not isinstance(measurements, dict):
            return
        self.inspections += 1
        self.last_measurements = measurements
        verdict = str(event.get("verdict") or measurements.get("verdict") or "error")
        self.verdict.setText(f"{event.get('part')}: {verdict.upper()}")
        self.verdict.setStyleSheet(f"font-size: 20px; font-weight: 800; color: "
                                   f"{'#2e7d32' if verdict == 'pass' else '#c62828'};")
        reasons = event.get("reasons") or measurements.get("reasons") or []
        self.caption.setText("; ".join(str(r) for r in reasons) or "all features within tolerance")
        self._fill_table(measurements)
        defects = measurements.get("defects") or []
        self.defects.setText("Defects: " + (", ".join(f"{d.get('class')} at {d.get('bbox')}" for d in defects)
                                            if defects else "none"))
        image = data.get("image")
        if image and not self.live_button.isChecked():
            sha = str(data.get("sha256", ""))
            threading.Thread(target=self._load, args=(str(image), sha), daemon=True).start()

    def _fill_table(self, measurements: dict[str, Any]) -> None:
        features = measurements.get("features") or []
        self.table.setRowCount(len(features))
        for row, feature in enumerate(features):
            ok = feature.get("verdict", feature.get("ok")) in ("pass", True)
            values = (feature.get("feature", ""), feature.get("measured", ""),
                      feature.get("nominal", ""), feature.get("tol", feature.get("tolerance", "")),
                      "pass" if ok else "fail")
            for col, value in enumerate(values):
                item = QTableWidgetItem(f"{value:.4f}" if isinstance(value, float) else str(value))
                if col == 4:
                    item.setForeground(PASS if ok else FAIL)
                self.table.setItem(row, col, item)

    def _load(self, path: str, sha256: str) -> None:
        image = QImage(path)
        if image.isNull():
            log.warning("annotated image %s could not be read", path)
            return
        try:
            self.image_loaded.emit(image, sha256)
        except RuntimeError:  # the window closed while the file was being read: nothing to show it on
            log.debug("vision view closed before %s was shown", path)

    def _show_image(self, image: QImage, sha256: str) -> None:
        pixmap = QPixmap.fromImage(image).scaled(self.picture.size(), Qt.AspectRatioMode.KeepAspectRatio,
                                                 Qt.TransformationMode.SmoothTransformation)
        self.picture.setPixmap(pixmap)
        self.picture.setToolTip(f"sha256 {sha256}")

    # -- live view --------------------------------------------------------------------------------
    def set_live(self, on: bool) -> None:
        """Live view on: a frame every ``LIVE_MS`` while the view is shown; off: the last inspection."""
        if on and self.preview is None:
            self.live_button.setChecked(False)
            return
        if on:
            self._live_timer.start()
            self._ask_frame()
        else:
            self._live_timer.stop()
            self.picture.setText("Live view off: the next inspection is shown.")

    def _ask_frame(self) -> None:
        if self._asking or self.preview is None or not self.isVisible():
            return
        future = self.preview()
        if future is None:
            self.picture.setText("No camera connected yet.")
            return
        self._asking = True

        def done(f: Future[Any]) -> None:  # on the engine thread
            try:
                frame = None if f.cancelled() or f.exception() is not None else to_qimage(f.result())
            finally:
                self._asking = False
            try:
                self.live_frame.emit(frame)
            except RuntimeError:  # the window closed meanwhile
                log.debug("vision view closed before a live frame was shown")

        future.add_done_callback(done)

    def _show_live(self, frame: Any) -> None:
        if frame is None or not self.live_button.isChecked():
            if frame is None:
                self.picture.setText("The camera has no frame to show now.")
            return
        image, scale = frame
        shown = draw_overlay(image, scale, self.last_measurements)
        self.live_frames += 1
        pixmap = QPixmap.fromImage(shown)
        self.picture.setPixmap(pixmap.scaled(self.picture.size(), Qt.AspectRatioMode.KeepAspectRatio,
                                             Qt.TransformationMode.FastTransformation))
        self.picture.setToolTip("live · overlay: the last inspection")
