"""Cell overview: a tile per station, lot progress, parts in flight, the PackML state and unit mode."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from PyQt6.QtCore import Qt, QTimer
from PyQt6.QtGui import QColor
from PyQt6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from microfactory.cell import Cell, StationConfig
from microfactory.events import Event, EventKind
from ui.bridge import short
from ui.theme import SEVERITY_COLOURS, STATE_COLOURS, badge_style, restyle

GRBL_STATES = {"Idle": "ready", "Run": "moving", "Hold": "feed hold", "Jog": "jogging", "Home": "homing",
               "Alarm": "alarm (locked)", "Door": "door open", "Check": "check mode", "Sleep": "asleep"}
RECENT_LINES = 200
#: Four tiles side by side fit a 1024 px wide panel PC with the window's margins.
TILE_MIN_WIDTH = 220
#: What of an alarm fits a tile's two lines at its narrowest; the whole text is the tooltip and in the
#: Alarms tab.
ALARM_CHARS = 64


def remaining_text(done: float, total: float, remaining_s: float | None) -> str:
    """A step's progress in words: ``done/total · N s left``; an estimate that has run out while the
    step is still going says "finishing" instead of a misleading "0 s left"."""
    text = f"{done:.0f}/{total:.0f}" if isinstance(done, float) or isinstance(total, float) \
        else f"{done}/{total}"
    if total and done >= total:
        return text + " · done"
    if remaining_s is None:
        return text
    if remaining_s < 0.5:
        return text + " · finishing"
    return text + f" · {remaining_s:.0f} s left"


def _xyz(value: Any) -> str:
    if isinstance(value, (list, tuple)) and len(value) >= 3:
        return " ".join(f"{axis} {float(v):.3f}" for axis, v in zip("XYZ", value, strict=False)) + " mm"
    return ""


def describe_status(data: Mapping[str, Any]) -> str:
    """A station's live status report in the shop's words (units included), for its tile.

    Grbl reports (``state``/``wpos``/``feed``/``spindle``) and wash reports (``phase``/``temperature_c``/
    ``power_w``/``remaining_s``) are recognised; anything else is shown as ``name value`` pairs.
    """
    parts: list[str] = []
    if "phase" in data:  # wash
        parts.append(str(data["phase"]).lower())
        if data.get("temperature_c") is not None:
            parts.append(f"{float(data['temperature_c']):.1f} °C")
        if data.get("power_w") is not None:
            parts.append(f"{float(data['power_w']):.0f} W")
        if data.get("remaining_s"):
            parts.append(f"{float(data['remaining_s']):.0f} s left")
        return " · ".join(parts)
    if "wpos" in data or "mpos" in data:  # Grbl
        state = str(data.get("state") or "")
        parts.append(GRBL_STATES.get(state.split(":")[0], state))
        position = _xyz(data.get("wpos")) or _xyz(data.get("mpos"))
        if position:
            parts.append(position)
        if data.get("feed"):
            parts.append(f"{float(data['feed']):.0f} mm/min")
        if data.get("spindle"):
            parts.append(f"S {float(data['spindle']):.0f}")
        return " · ".join(parts)
    plain = {k: v for k, v in data.items() if k != "state" and not isinstance(v, (dict, list))}
    return " · ".join(f"{k} {v}" for k, v in list(plain.items())[:4])


class StationTile(QFrame):
    """One station at a glance: kind, state colour, current part, progress, last alarm."""

    def __init__(self, config: StationConfig, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("tile")
        self.station_id = config.id
        self.setMinimumSize(TILE_MIN_WIDTH, 190)
        title = QLabel(config.label)
        title.setObjectName("tileTitle")
        title.setWordWrap(True)
        self.kind = QLabel(f"{config.kind} · {config.id}" + (" · simulated" if config.simulated else ""))
        self.state = QLabel("offline")
        self.state.setObjectName("stateBadge")
        self.state.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.part = QLabel("part: —")
        self.part.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(True)
        self.detail = QLabel("")
        self.detail.setWordWrap(True)
        self.alarm = QLabel("")
        self.alarm.setWordWrap(True)
        self.alarm.setStyleSheet("color: #c62828; font-weight: 600;")
        head = QHBoxLayout()
        head.addWidget(title, 1)
        head.addWidget(self.state)
        # text changes every few hundred ms: fixed line heights and widths that ignore the text keep a
        # new value from relayouting (and repainting) the whole page
        lines = self.fontMetrics().lineSpacing()
        for label, rows in ((self.kind, 1), (self.part, 3), (self.detail, 2), (self.alarm, 2)):
            label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
            label.setFixedHeight(rows * lines + 6)
            label.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)  # clip the end only
        self.progress.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        box = QVBoxLayout(self)
        box.addLayout(head)
        box.addWidget(self.kind)
        box.addWidget(self.part)
        box.addWidget(self.progress)
        box.addWidget(self.detail)
        box.addWidget(self.alarm)
        box.addStretch(1)
        self.set_state("offline")

    def set_state(self, state: str) -> None:
        self.state.setText(state.upper())
        restyle(self.state, badge_style(STATE_COLOURS.get(state, "#4a4a4a")))

    def apply(self, event: Event) -> None:
        kind = event.kind
        if kind == EventKind.STATION_STATE:
            self.set_state(str(event.get("state")))
        elif kind == EventKind.STATION_PROGRESS:
            done, total = event.get("done", 0) or 0, event.get("total", 0) or 0
            self.progress.setValue(int(1000 * done / total) if total else 0)
            self.progress.setFormat(remaining_text(done, total, event.get("remaining_s")))
        elif kind == EventKind.STATION_STATUS:
            self.detail.setText(short(describe_status(event.data), 120))
        elif kind == EventKind.ALARM:
            text = f"⚠ {event.get('text', '')}"
            if event.get("recovery"):
                text += f" — {event.get('recovery')}"
            self.alarm.setText(short(text, ALARM_CHARS))
            self.alarm.setToolTip(text)  # the whole text, however long; the Alarms tab has it too
        elif kind == EventKind.STEP:
            phase = event.get("phase")
            if phase == "intent":
                self.part.setText(f"part: {event.get('part')}\nstep: {event.get('step')}")
                self.progress.setValue(0)
                self.progress.setFormat("")
            elif phase in ("done", "failed"):
                verdict = event.get("verdict")
                self.part.setText(f"last: {event.get('part')}\nstep: {event.get('step')} · "
                                  f"{verdict or ('ok' if event.get('ok') else 'failed')}")
                self.progress.setValue(1000 if event.get("ok") else self.progress.value())


def lot_counts(passed: int, scrapped: int, reworked: int) -> str:
    """Finished parts, each counted once; how many of them took a rework route is said apart."""
    text = f"good {passed} · scrap {scrapped}"
    return text + (f" ({reworked} reworked)" if reworked else "")


class CellOverview(QWidget):
    """Header (cell state, mode, lot progress, parts in flight) and the station tiles."""

    def __init__(self, cell: Cell, parent: QWidget | None = None, *, speed: float = 1.0) -> None:
        super().__init__(parent)
        self.tiles: dict[str, StationTile] = {}
        simulated = speed != 1.0
        #: said after every duration shown: a simulated lot's ETA is not wall time
        self.time_note = f" (sim. ×{speed:g})" if simulated else ""
        self.lot = QProgressBar()
        self.lot.setFormat("no lot running")
        self.lot.setTextVisible(True)
        self.lot.setMinimumHeight(32)
        self.in_flight = QLabel("parts in flight: —")
        self.lot_id = QLabel("no lot")
        self.lot_id.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.clock_note = QLabel(f"times shown in simulated time (×{speed:g})" if simulated else "")
        self.clock_note.setStyleSheet("color: #6d6d6d;")
        self.counts = QLabel("good 0 · scrap 0")
        self.counts.setStyleSheet("font-size: 16px; font-weight: 600;")
        self.counts.setToolTip("Each part is counted once: good or scrap when it is finished; reworked "
                               "parts are also in good or scrap")
        self.counts.setMinimumWidth(200)
        self.in_flight.setMinimumWidth(140)
        header = QHBoxLayout()
        header.addWidget(self.lot, 2)
        header.addWidget(self.counts, 1)
        header.addWidget(self.in_flight)
        about = QHBoxLayout()
        about.addWidget(self.lot_id, 1)
        about.addWidget(self.clock_note)
        grid = QGridLayout()
        columns = min(4, len(cell.stations)) or 1
        for index, config in enumerate(cell.stations):
            tile = StationTile(config)
            self.tiles[config.id] = tile
            grid.addWidget(tile, index // columns, index % columns)
        self.recent = QListWidget()
        self.recent.setObjectName("recent")
        self.recent.setToolTip("What the cell did lately, newest first")
        self.recent.setUniformItemSizes(True)  # one line each: no per-item size pass on every insertion
        box = QVBoxLayout(self)
        box.addLayout(header)
        box.addLayout(about)
        box.addLayout(grid)
        box.addWidget(QLabel("Recent activity"))
        box.addWidget(self.recent, 1)
        self._lines: list[tuple[str, str | None]] = []
        self._recent_timer = QTimer(self)
        self._recent_timer.setInterval(250)
        self._recent_timer.timeout.connect(self._show_lines)
        self._recent_timer.start()

    def _note(self, text: str, colour: str | None = None) -> None:
        self._lines.append((f"{time.strftime('%H:%M:%S')}  {text}", colour))

    def _show_lines(self) -> None:
        """Timer: add the lines gathered since the last tick in one go (each insertion at the top
        repaints the whole list, so per event it would be the costliest thing on the page)."""
        if not self._lines:
            return
        lines, self._lines = self._lines, []
        self.recent.setUpdatesEnabled(False)
        for text, colour in lines[-RECENT_LINES:]:
            item = QListWidgetItem(text)
            if colour:
                item.setForeground(QColor(colour))
            self.recent.insertItem(0, item)
        while self.recent.count() > RECENT_LINES:
            self.recent.takeItem(self.recent.count() - 1)
        self.recent.setUpdatesEnabled(True)

    def _record(self, event: Event) -> None:
        """One line per finished step, alarm, prompt and lot change (never per status report)."""
        kind = event.kind
        if kind == EventKind.STEP and event.get("phase") in ("done", "failed"):
            verdict = event.get("verdict") or ("ok" if event.get("ok") else "failed")
            colour = None if event.get("ok") and verdict in ("ok", "pass") else SEVERITY_COLOURS["warning"]
            self._note(f"{event.source}: {event.get('step')} of {event.get('part')} — {verdict}", colour)
        elif kind == EventKind.ALARM:
            severity = str(event.get("severity") or "error")
            self._note(f"{event.source}: ALARM {event.get('text', '')}",
                       SEVERITY_COLOURS.get(severity, SEVERITY_COLOURS["error"]))
        elif kind == EventKind.ALARM_CLEARED:
            self._note(f"{event.source}: alarm cleared")
        elif kind == EventKind.PROMPT:
            self._note(f"operator asked: {event.get('text')}", SEVERITY_COLOURS["info"])
        elif kind == EventKind.LOT and event.get("phase") in ("started", "done", "aborted", "stopped"):
            self._note(f"lot {event.get('lot', '')} {event.get('phase')}")

    def apply(self, event: Event) -> None:
        self._record(event)
        if event.kind == EventKind.LOT:
            total = event.get("total") or 0
            passed, scrapped = event.get("passed", 0) or 0, event.get("scrapped", 0) or 0
            self.lot.setRange(0, max(total, 1))
            self.lot.setValue(passed + scrapped)
            eta = event.get("eta_s")
            phase = event.get("phase")
            self.lot_id.setText(f"lot {event.get('lot', '')}")
            self.lot.setFormat(f"{passed + scrapped}/{total} parts"
                               + (f" · ETA {eta / 60:.0f} min{self.time_note}" if eta and phase != "done"
                                  else "")
                               + (" · done" if phase == "done" else ""))
            self.counts.setText(lot_counts(passed, scrapped, event.get("reworked", 0) or 0))
            self.in_flight.setText(f"parts in flight: {event.get('in_flight', 0) or 0}")
            return
        tile = self.tiles.get(event.source) or self.tiles.get(str(event.get("station") or ""))
        if tile is not None:
            tile.apply(event)
