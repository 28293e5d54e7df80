"""The engine↔Qt bridge: engine events in, Qt signals out, on the GUI thread, in bounded slices.

The engine publishes from its own thread (and drivers from theirs). :class:`EngineBridge.on_event` is
the bus subscriber: it never touches a widget and never blocks. Events go into a queue; one queued wake-up
per batch asks the GUI thread to drain it, and the drain re-emits them as ``engine_event`` for at most
``slice_ms`` before it yields to the event loop (the rest continues on the next turn). So a burst of a
few hundred events never holds the GUI thread — Qt would otherwise deliver every queued signal before it
served a single timer or repaint. ``station.status`` reports can arrive at 20 Hz × 16 stations, so they
are coalesced: only the newest report per station is kept and a GUI-thread timer flushes them at
``status_hz``. Each event is stamped with ``time.perf_counter()`` on arrival so the benchmark can measure
event-to-screen delay.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Any

from PyQt6.QtCore import QObject, QTimer, pyqtSignal

from microfactory.events import Event, EventKind


class EngineBridge(QObject):
    """Thread-safe sink for engine events; emits them on the GUI thread."""

    engine_event = pyqtSignal(object, float)  # (Event, perf_counter at arrival), on the GUI thread
    _wake = pyqtSignal()  # queued to the GUI thread: "there is something to drain"

    def __init__(self, status_hz: float = 50.0, slice_ms: float = 8.0, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._lock = threading.Lock()
        self._latest_status: dict[str, tuple[Event, float]] = {}
        self._pending: collections.deque[tuple[Event, float]] = collections.deque()
        self._wake_posted = False
        self._slice_s = slice_ms / 1000
        self._wake.connect(self._drain)
        self._flush = QTimer(self)
        self._flush.setInterval(int(1000 / status_hz))
        self._flush.timeout.connect(self._flush_status)
        self._flush.start()

    def on_event(self, event: Event) -> None:
        """Bus subscriber: safe from any thread, never blocks on the GUI, never touches widgets."""
        stamp = time.perf_counter()
        with self._lock:
            if event.kind == EventKind.STATION_STATUS:
                self._latest_status[event.source] = (event, stamp)
                return
            self._pending.append((event, stamp))
            if self._wake_posted:
                return
            self._wake_posted = True
        self._wake.emit()

    def _drain(self) -> None:
        """GUI thread: hand queued events to the widgets for one time slice, then yield."""
        end = time.perf_counter() + self._slice_s
        while time.perf_counter() < end:
            with self._lock:
                if not self._pending:
                    self._wake_posted = False
                    return
                event, stamp = self._pending.popleft()
            self.engine_event.emit(event, stamp)
        QTimer.singleShot(0, self._drain)  # more left: continue after timers and repaints had a turn

    def _flush_status(self) -> None:
        """GUI thread, at ``status_hz``: the newest report per station joins the queue, then a drain."""
        with self._lock:
            if not self._latest_status:
                return
            self._pending.extend(self._latest_status.values())
            self._latest_status = {}
            if self._wake_posted:
                return  # a drain is under way and will reach them
            self._wake_posted = True
        self._drain()

    def close(self) -> None:
        self._flush.stop()


def short(value: Any, limit: int = 80) -> str:
    """A one-line rendering of a value for labels and tables."""
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
