"""Vision view: the last inspected frame with its overlay (fitted features, tolerance colours, defects)
and the measurement table.

The annotated PNG is read into a ``QImage`` on a worker thread (``QImage`` is safe off the GUI thread,
``QPixmap`` is not), then shown; the GUI thread never touches the disk.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtGui import QColor, QImage, QPixmap
from PyQt6.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from microfactory.events import Event, EventKind

log = logging.getLogger("ui.vision")
PASS, FAIL = QColor("#2e7d32"), QColor("#c62828")


class VisionView(QWidget):
    """Shows the newest inspection."""

    image_loaded = pyqtSignal(QImage, str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.picture = QLabel("No part inspected yet.")
        self.picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.picture.setMinimumSize(640, 480)
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
        if image:
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
