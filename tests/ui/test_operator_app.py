"""The operator app on the simulated cell: a lot updates the tiles, E-stop stops every station, the
recipe editor refuses out-of-bounds values, prompts are answered, a fault shows and recovers. (How long
the GUI thread stalls is a figure: benchmarks/gui_responsiveness.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "recipes" / "watch-plate-rework.yaml"


def test_a_lot_updates_the_tiles(window, qtbot) -> None:  # type: ignore[no-untyped-def]
    seen: set[str] = set()
    window.bridge.engine_event.connect(
        lambda e, _t: seen.add(f"{e.source}:{e.get('state')}") if e.kind == "station.state" else None)
    window.start_lot(RECIPE, 2)
    # manual load steps need an operator: answer every prompt the banner shows
    def answer_banner() -> bool:
        banner = window.run_control.banner
        if banner.active:
            banner.choice_buttons()[0].click()
        return window.overview.lot.value() >= 1

    qtbot.waitUntil(answer_banner, timeout=60_000)
    tiles = window.overview.tiles
    assert any(s.startswith("cut:busy") for s in seen), seen
    assert any(s.startswith("wash:busy") for s in seen), seen
    assert "last:" in tiles["inspect"].part.text() or "part:" in tiles["inspect"].part.text()
    assert "good" in window.overview.counts.text()


def test_estop_stops_every_station(window, qtbot) -> None:  # type: ignore[no-untyped-def]
    window.start_lot(RECIPE, 3)
    qtbot.waitUntil(lambda: window.cell_state.text() == "EXECUTE", timeout=20_000)
    qtbot.mouseClick(window.estop, pytest.importorskip("PyQt6.QtCore").Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.cell_state.text() in ("ABORTED", "ABORTING"), timeout=20_000)
    qtbot.waitUntil(lambda: window.cell_state.text() == "ABORTED", timeout=20_000)
    sims = window.controller.simulators
    for sid in ("cut", "mill"):
        state = sims[sid].link.call(lambda d=sims[sid].device: d.state_text()) \
            if hasattr(sims[sid].device, "state_text") else sims[sid].state
        assert not str(state).startswith("Run"), (sid, state)
    assert "E-STOP" in window.statusBar().currentMessage()


def test_out_of_bounds_parameter_shows_an_error_and_refuses_saving(qtbot, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import shutil

    from microfactory.cell import load_cell
    from ui.recipe_editor import RecipeEditor

    for name in ("watch-plate-rework.yaml",):
        shutil.copy(REPO / "recipes" / name, tmp_path / name)
    shutil.copytree(REPO / "recipes" / "programs", tmp_path / "programs")
    shutil.copytree(REPO / "recipes" / "drawings", tmp_path / "drawings")
    editor = RecipeEditor(tmp_path, load_cell(REPO / "recipes" / "cells" / "sim.yaml"))
    qtbot.addWidget(editor)
    qtbot.waitUntil(lambda: bool(editor.fields), timeout=10_000)
    name, spec = next((n, s) for n, s in editor.specs.items() if s.max is not None)
    too_big = spec.max * 10 if spec.type == "float" else int(spec.max * 10)
    editor.fields[name].setValue(too_big)  # type: ignore[attr-defined]
    assert "above its maximum" in editor.errors[name].text()
    assert not editor.save_button.isEnabled()
    editor.save(release=False)
    assert "Not saved" in editor.problems.text()
    assert sorted(p.name for p in tmp_path.glob("*.yaml")) == ["watch-plate-rework.yaml"]
    editor.fields[name].setValue(spec.default)  # type: ignore[attr-defined]
    qtbot.waitUntil(lambda: editor.save_button.isEnabled(), timeout=20_000)
    assert not editor.release_button.isEnabled()  # operators cannot release
    editor.save(release=False)
    qtbot.waitUntil(lambda: "saved" in editor.status.text() or "Not saved" in editor.problems.text(),
                    timeout=10_000)
    assert "Not saved" not in editor.problems.text(), editor.problems.text()
    saved = next(tmp_path.glob("*-v*.yaml")).read_text()
    assert "status: draft" in saved and "#" in saved  # comments kept


def test_a_prompt_is_answered_from_the_banner(window, qtbot) -> None:  # type: ignore[no-untyped-def]
    window.start_lot(REPO / "recipes" / "shim.yaml", 1)
    banner = window.run_control.banner
    assert banner.isVisible() and not banner.active  # always there, idle until a prompt comes
    qtbot.waitUntil(lambda: banner.active, timeout=20_000)
    assert "Operator:" in banner.text.text()
    first_prompt = banner.prompt_id
    banner.choice_buttons()[0].click()
    qtbot.waitUntil(lambda: banner.prompt_id != first_prompt, timeout=20_000)


def test_an_injected_alarm_shows_and_reset_recovers(window, qtbot) -> None:  # type: ignore[no-untyped-def]
    panel = window.faults
    panel.station.setCurrentText("mill")
    panel.fault.setCurrentText("alarm")
    panel.params.setText("code=1")
    before = window.alarms.table.rowCount()
    panel.inject()
    qtbot.waitUntil(lambda: window.alarms.table.rowCount() > before, timeout=20_000)
    assert window.overview.tiles["mill"].state.text() == "ALARM"
    assert window.overview.tiles["mill"].alarm.text()
    # the operator's recovery: Manual mode, then Unlock ($X) on the mill (reset first: Grbl ignores
    # everything after a hard-limit alarm until it is reset; the simulated mill has no homing switches)
    manual = window.manual
    manual.mode_button.click()
    qtbot.waitUntil(lambda: "manual" in window.mode.text().lower(), timeout=20_000)
    manual.grbl.setCurrentText("mill")
    unlock = next(b for b in manual.findChildren(type(window.estop)) if b.text().startswith("Unlock"))
    qtbot.waitUntil(unlock.isEnabled, timeout=5_000)
    unlock.click()
    qtbot.waitUntil(lambda: manual.message.text().startswith("mill: unlock") and
                    "…" not in manual.message.text(), timeout=30_000)  # not the mode change's answer
    assert manual.message.text() == "mill: unlock: done", manual.message.text()
    qtbot.waitUntil(lambda: window.overview.tiles["mill"].state.text() == "IDLE", timeout=20_000)
    def recent() -> list[str]:
        return [window.overview.recent.item(i).text() for i in range(window.overview.recent.count())]

    qtbot.waitUntil(lambda: any("mill: ALARM" in line for line in recent()), timeout=5_000)
    window.alarms.acknowledge_all()
    assert window.alarms.unacknowledged == 0


def test_closing_the_window_stops_a_running_lot_and_the_stations(window, qtbot) -> None:  # type: ignore[no-untyped-def]
    states: list[str] = []
    window.engine.subscribe(lambda e: states.append(str(e.get("state"))), ["cell.state"])
    window.simulated_operator = True
    window.start_lot(RECIPE, 3)
    qtbot.waitUntil(lambda: window.cell_state.text() == "EXECUTE", timeout=20_000)
    with qtbot.waitSignal(window.closed, timeout=60_000):
        window.close()  # returns at once; the shutdown runs on a worker thread
    assert window.lot_future is not None and window.lot_future.done()
    assert states[-1].lower() in ("stopped", "aborted"), states


def test_status_reports_are_coalesced_per_station(qtbot) -> None:  # type: ignore[no-untyped-def]
    import threading

    from microfactory.events import Event, EventKind
    from ui.bridge import EngineBridge

    bridge = EngineBridge(status_hz=20.0)
    got: list[Event] = []
    bridge.engine_event.connect(lambda e, _t: got.append(e))

    def flood() -> None:  # 16 stations × 50 reports from a foreign thread, then one step event
        for n in range(50):
            for s in range(16):
                bridge.on_event(Event(EventKind.STATION_STATUS, f"s{s}", {"n": n}))
        bridge.on_event(Event(EventKind.STEP, "s0", {"phase": "done"}))

    thread = threading.Thread(target=flood)
    thread.start()
    thread.join(10)
    qtbot.waitUntil(lambda: any(e.kind == EventKind.STEP for e in got), timeout=5_000)
    qtbot.waitUntil(lambda: {e.source for e in got if e.kind == EventKind.STATION_STATUS} ==
                    {f"s{s}" for s in range(16)}, timeout=5_000)
    statuses = [e for e in got if e.kind == EventKind.STATION_STATUS]
    assert len(statuses) < 16 * 50 / 4  # coalesced, not one signal per report
    assert all(e.data["n"] == 49 for e in statuses[-16:])  # the newest report of each station wins
    bridge.close()
