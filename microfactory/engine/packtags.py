"""PackTags (OMAC PackML tags) and live OEE from the event bus: what a plant system reads from the cell.

A subscriber of the bus (never part of the engine's decisions), safe to read from any thread. The tag
names follow OMAC PackTags v3 so an OPC UA server (OPC 30050) can publish them as they are:

- ``ProdProcessedCount`` — parts finished in the current lot (passed + scrapped);
- ``ProdDefectiveCount`` — parts scrapped;
- ``StopReason`` — the **first-out** alarm of the current or last stop: the first alarm after the cell
  last left Execute-without-alarm, i.e. the cause, not the alarms that followed from it; ``StopReasons``
  lists every stop of the lot, each with its first-out alarm and the alarms after it;
- ``StateCurrent`` and ``StateDurations`` (process s per PackML state in this lot);
- ``CurMachSpeed`` — parts per minute over the last :data:`SPEED_WINDOW` finished parts (process time);
- ``MachDesignSpeed`` — parts per minute the recipe's dry run says the line can do (60 ÷ the bottleneck's
  cycle time), set by :meth:`design`;
- ``OEE`` — :mod:`microfactory.engine.oee` with the design cycle as ideal cycle time.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

from microfactory.clock import Clock
from microfactory.engine import oee
from microfactory.engine.packml import PackMLState
from microfactory.events import Event, EventBus, EventKind

SPEED_WINDOW = 10
FINISHED = frozenset({"passed", "scrapped"})


class PackTags:
    """Live tags of one cell. ``snapshot()`` is the read API (a plain dict, JSON-ready)."""

    def __init__(self, bus: EventBus, clock: Clock) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._reset_lot()
        self.design_cycle_s = 0.0
        self._subscription = bus.subscribe(self._on_event, [EventKind.CELL_STATE, EventKind.LOT,
                                                            EventKind.PART, EventKind.ALARM])

    def _reset_lot(self) -> None:
        self.lot = ""
        self.processed = 0
        self.defective = 0
        self.durations = oee.StateDurations()
        self.stops: list[dict[str, Any]] = []
        self._stopped = False
        self._finished: deque[float] = deque(maxlen=SPEED_WINDOW + 1)

    def design(self, cycle_s: float) -> None:
        """The design cycle time (process s per part, the bottleneck's from the dry run)."""
        with self._lock:
            self.design_cycle_s = max(0.0, cycle_s)

    def close(self) -> None:
        self._subscription.cancel()

    # -- events (any thread) -----------------------------------------------------------------------
    def _on_event(self, event: Event) -> None:
        with self._lock:
            data = event.data
            if event.kind == EventKind.LOT and data.get("phase") == "started":
                self._reset_lot()
                self.lot = str(data.get("lot", ""))
                if self.durations.current is None:
                    self.durations.change(event.t, PackMLState.IDLE)
            elif event.kind == EventKind.CELL_STATE:
                self._state(event.t, PackMLState(str(data["state"])))
            elif event.kind == EventKind.PART and data.get("state") in FINISHED:
                self.processed += 1
                self.defective += data.get("state") == "scrapped"
                self._finished.append(event.t)
            elif event.kind == EventKind.ALARM:
                alarm = {"t": round(event.t, 3), "source": event.source, "code": data.get("code"),
                         "text": data.get("text")}
                if not self._stopped or not self.stops:
                    self.stops.append({"first_out": alarm, "after": [], "state": None})
                    self._stopped = True
                else:
                    self.stops[-1]["after"].append(alarm)

    def _state(self, t: float, state: PackMLState) -> None:
        self.durations.change(t, state)
        if state == PackMLState.EXECUTE:
            self._stopped = False
        elif self.stops and self._stopped and self.stops[-1]["state"] is None:
            self.stops[-1]["state"] = state.value

    # -- reading -----------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """Every tag now (process s, parts per minute)."""
        with self._lock:
            self.durations.settle(self.clock.now())
            speed = 0.0
            if len(self._finished) > 1 and self._finished[-1] > self._finished[0]:
                speed = 60.0 * (len(self._finished) - 1) / (self._finished[-1] - self._finished[0])
            factors = oee.compute(self.durations, ideal_cycle_s=self.design_cycle_s, processed=self.processed,
                                  good=self.processed - self.defective)
            current = self.durations.current
            return {
                "Lot": self.lot,
                "ProdProcessedCount": self.processed,
                "ProdDefectiveCount": self.defective,
                "StopReason": self.stops[-1]["first_out"] if self.stops else None,
                "StopReasons": [dict(s, after=list(s["after"])) for s in self.stops],
                "StateCurrent": current.value if current else None,
                "StateDurations": self.durations.as_dict(),
                "CurMachSpeed": round(speed, 3),
                "MachDesignSpeed": round(60.0 / self.design_cycle_s, 3) if self.design_cycle_s else 0.0,
                "OEE": factors.as_dict(),
            }
