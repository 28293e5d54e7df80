"""A byte trace an engineer can attach to a bug report, and that a test can replay.

One JSON object per line: ``{"t": 0.012345, "port": "mill", "dir": "tx"|"rx"|"rt", "data": "G1 X1\\n"}``
where ``t`` is seconds since the trace started, ``dir`` is host→device (``tx``), device→host (``rx``) or
a realtime byte (``rt``), and ``data`` is the bytes decoded as latin-1 (so every byte survives).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO


@dataclass(frozen=True)
class TraceRecord:
    t: float
    port: str
    direction: str
    data: bytes


class ByteTrace:
    """Thread-safe writer of a JSON-lines byte trace (``path``), or an in-memory one (``path=None``)."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._fh: IO[str] | None = self.path.open("a", encoding="utf-8") if self.path else None
        self._t0 = time.monotonic()
        self._lock = threading.Lock()
        self.records: list[TraceRecord] = []

    def record(self, port: str, direction: str, data: bytes) -> None:
        """Record bytes that have just been received (or sent, when order does not matter)."""
        with self._lock:
            self._append(port, direction, data)

    @contextmanager
    def sending(self, port: str, direction: str, data: bytes) -> Iterator[None]:
        """Record ``data`` as sent once the body (the write) succeeds.

        The trace is held across the write, so an answer the reader thread receives meanwhile is
        recorded after the bytes that caused it: a fast device can answer before a write call returns,
        and a trace with the answer first would mislead whoever reads it. A failed write is not recorded.
        """
        with self._lock:
            yield
            self._append(port, direction, data)

    def _append(self, port: str, direction: str, data: bytes) -> None:
        rec = TraceRecord(time.monotonic() - self._t0, port, direction, bytes(data))
        if self._fh is not None:
            self._fh.write(json.dumps({"t": round(rec.t, 6), "port": port, "dir": direction,
                                       "data": data.decode("latin-1")}) + "\n")
            self._fh.flush()
        else:
            self.records.append(rec)

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None


def read_trace(path: str | Path) -> Iterator[TraceRecord]:
    """Read a trace written by :class:`ByteTrace`."""
    with Path(path).open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                obj = json.loads(line)
                yield TraceRecord(float(obj["t"]), obj["port"], obj["dir"], obj["data"].encode("latin-1"))
