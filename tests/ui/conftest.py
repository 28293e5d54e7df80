"""Qt tests run offscreen against the simulated cell (real drivers over ptys to the simulators)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    """The main window on recipes/cells/sim.yaml at ×300, stations connected; closed safely after."""
    from PyQt6.QtCore import QSettings

    from microfactory.cell import load_cell
    from ui.app import MainWindow

    QSettings.setPath(QSettings.Format.NativeFormat, QSettings.Scope.UserScope, str(tmp_path))
    cell = load_cell(REPO / "recipes" / "cells" / "sim.yaml")
    win = MainWindow(cell, speed=300.0, recipes_dir=REPO / "recipes", simulated_operator=False)
    qtbot.addWidget(win)
    win.show()
    with qtbot.waitSignal(win.engine_ready, timeout=30_000) as blocker:
        win.start_engine()
    assert blocker.args == [""], blocker.args
    yield win
    win.stop_lot()
    win.engine.stop(timeout_s=30)
    win.bridge.close()

