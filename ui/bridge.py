"""The engine↔Qt bridge: engine events in, Qt signals out, on the GUI thread.

The engine publishes from its own thread (and drivers from theirs). :class:`EngineBridge.on_event` is
the bus subscriber: it never touches a widget. Ordinary events are re-emitted as the ``engine_event`` signal,
which Qt queues to the GUI thread. ``station.status`` reports can arrive at 20 Hz × 16 stations, so they
are coalesced: only the newest report per station is kept and a GUI-thread timer flushes them at
``status_hz``. Each event is stamped with ``time.perf_counter()`` on arrival so the benchmark can measure
event-to-screen delay.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from PyQt6.QtCore import QObject, QTimer, pyqtSignal

from microfactory.events import Event, EventKind


class EngineBridge(QObject):
    """Thread-safe sink for engine events; emits them on the GUI thread."""

    engine_event = pyqtSignal(object, float)  # (Event, perf_counter at arrival)

    def __init__(self, status_hz: float = 50.0, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._lock = threading.Lock()
        self._latest_status: dict[str, tuple[Event, float]] = {}
        self._flush = QTimer(self)
        self._flush.setInterval(int(1000 / status_hz))
        self._flush.timeout.connect(self._flush_status)
        self._flush.start()

    def on_event(self, event: Event) -> None:
        """Bus subscriber: safe from any thread, never blocks, never touches widgets."""
        stamp = time.perf_counter()
        if event.kind == EventKind.STATION_STATUS:
            with self._lock:
                self._latest_status[event.source] = (event, stamp)
            return
        self.engine_event.emit(event, stamp)

    def _flush_status(self) -> None:
        with self._lock:
            pending, self._latest_status = self._latest_status, {}
        for event, stamp in pending.values():
            self.engine_event.emit(event, stamp)

    def close(self) -> None:
        self._flush.stop()


def short(value: Any, limit: int = 80) -> str:
    """A one-line rendering of a value for labels and tables."""
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
