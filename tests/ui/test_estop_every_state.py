"""E-stop in every state of the app, slots that never raise into Qt (PyQt6 aborts on that), and the
Manual tab following the engine's state as enums with every action an engine command.

pytest-qt fails a test when an exception escapes a slot, so each press below would fail it the way the
app used to abort."""

from __future__ import annotations

from pathlib import Path

import pytest
from PyQt6.QtCore import Qt

from microfactory.cell import Cell, load_cell
from microfactory.events import Event, EventKind

REPO = Path(__file__).resolve().parents[2]
SIM = REPO / "recipes" / "cells" / "sim.yaml"


def broken_cell() -> Cell:
    """The simulated bench with the mill's cable pulled: connecting fails."""
    cell = load_cell(SIM)
    stations = [s.model_copy(update={"port": "/dev/microfactory-no-such-port"}) if s.id == "mill" else s
                for s in cell.stations]
    return cell.model_copy(update={"stations": stations})


@pytest.fixture
def make_window(qtbot, tmp_path):  # type: ignore[no-untyped-def]
    from PyQt6.QtCore import QSettings

    from ui.app import MainWindow

    QSettings.setPath(QSettings.Format.NativeFormat, QSettings.Scope.UserScope, str(tmp_path))
    made = []

    def make(cell: Cell) -> MainWindow:
        win = MainWindow(cell, speed=300.0, recipes_dir=REPO / "recipes")
        qtbot.addWidget(win)
        win.show()
        made.append(win)
        return win

    yield make
    for win in made:
        win.stop_lot()
        win.engine.stop(timeout_s=30)
        win.bridge.close()


def status(win) -> str:  # type: ignore[no-untyped-def]
    return str(win.statusBar().currentMessage())


def test_estop_before_the_engine_exists_and_after_a_failed_connect(make_window, qtbot) -> None:  # type: ignore[no-untyped-def]
    win = make_window(broken_cell())
    qtbot.mouseClick(win.estop, Qt.MouseButton.LeftButton)  # nothing connected yet
    assert "E-STOP" in status(win)
    with qtbot.waitSignal(win.engine_ready, timeout=30_000) as blocker:
        win.start_engine()
    assert "no-such-port" in blocker.args[0]
    qtbot.mouseClick(win.estop, Qt.MouseButton.LeftButton)  # after the failed connect
    assert "E-STOP" in status(win)
    win.run_control._pressed("start")  # Start after a failed connect: the run dialog, no abort
    win.start_lot(REPO / "recipes" / "watch-plate-rework.yaml", 1)  # what the dialog's Run calls
    qtbot.waitUntil(lambda: "did not connect" in status(win), timeout=20_000)
    win.command("reset")
    assert "did not connect" in status(win), status(win)
    win.manual.send("cut", "jog", {"jog": "G91 X1 F300"})
    assert "did not connect" in win.manual.message.text()


def test_estop_while_connecting_aborts_the_cell_once_connected(make_window, qtbot) -> None:  # type: ignore[no-untyped-def]
    win = make_window(load_cell(SIM))
    with qtbot.waitSignal(win.engine_ready, timeout=30_000) as blocker:
        win.start_engine()
        qtbot.mouseClick(win.estop, Qt.MouseButton.LeftButton)  # while the stations connect
    assert blocker.args == [""]
    qtbot.waitUntil(lambda: win.cell_state.text() == "ABORTED", timeout=20_000)
    assert all(st.estopped for st in win.controller.stations.values())


def cell_event(state: str, mode: str) -> Event:
    return Event(EventKind.CELL_STATE, "cell", {"state": state, "previous": "idle", "mode": mode,
                                                "allowed": []})


def test_the_manual_tab_follows_the_engine_state_as_enums(window) -> None:  # type: ignore[no-untyped-def]
    manual = window.manual
    window.on_event(cell_event("execute", "maintenance"), 0.0)  # a lot runs: locked out
    assert not any(p.isEnabled() for p in manual.panels)
    window.on_event(cell_event("idle", "production"), 0.0)
    assert not any(p.isEnabled() for p in manual.panels)
    window.on_event(cell_event("idle", "manual"), 0.0)
    assert all(p.isEnabled() for p in manual.panels)
    window.on_event(cell_event("held", "manual"), 0.0)
    assert not any(p.isEnabled() for p in manual.panels)


def test_a_jog_from_the_manual_tab_is_an_engine_step_in_the_journal(window, qtbot) -> None:  # type: ignore[no-untyped-def]
    manual = window.manual
    manual.jog("X", "+")  # Production mode: the engine refuses it
    qtbot.waitUntil(lambda: "refused" in manual.message.text(), timeout=10_000)
    assert "Manual or Maintenance" in manual.message.text()
    window.engine.set_mode("manual").result(10)
    qtbot.waitUntil(lambda: all(p.isEnabled() for p in manual.panels), timeout=10_000)
    manual.grbl.setCurrentText("mill")
    manual.jog("X", "+")
    qtbot.waitUntil(lambda: manual.message.text().endswith("done"), timeout=20_000)
    rows = window.engine.call(_manual_rows(window.controller)).result(10)
    assert [(r.station, r.step, bool(r.ok)) for r in rows] == [("mill", "manual:jog", True)]


async def _manual_rows(controller):  # type: ignore[no-untyped-def]
    return controller.journal.steps(lot="manual")
