"""Run journal (stub while the engine lands)."""

from __future__ import annotations

from pathlib import Path

from microfactory.events import EventBus


class Journal:
    def __init__(self, path: str | Path, *, bus: EventBus | None = None) -> None:
        self.path = str(path)

    def close(self) -> None:
        pass
