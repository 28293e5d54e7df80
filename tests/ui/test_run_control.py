"""Run control as an operator meets it: every PackML state shows exactly the buttons of the commands it
accepts, prompts are readable whole with the recommended answer marked, the panel fits 1024×768, and
after an E-stop the app alone recovers (Clear → Reset → Start) without a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from microfactory.engine.packml import Command, PackMLState, allowed_commands
from microfactory.events import Event, EventKind

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "recipes" / "watch-plate-rework.yaml"


def cell_state(state: PackMLState) -> Event:
    return Event(EventKind.CELL_STATE, "cell", {"state": state.value, "mode": "production",
                                               "allowed": [c.value for c in allowed_commands(state)]})


@pytest.mark.parametrize("state", list(PackMLState))
def test_every_state_shows_exactly_the_commands_it_accepts(qtbot, state: PackMLState) -> None:  # type: ignore[no-untyped-def]
    from ui.run_control import COMMANDS, RunControl

    control = RunControl(REPO / "recipes", lambda name: None)
    qtbot.addWidget(control)
    control.show()
    slots = {name: button.geometry() for name, button in control.buttons.items()}
    control.apply(cell_state(state))
    accepted = {c.value for c in allowed_commands(state)} & {c.value for c in COMMANDS}
    assert control.shown_commands() == accepted
    for name, button in control.buttons.items():
        assert button.isVisible() == (name in accepted), name
        assert button.geometry() == slots[name], f"{name} moved"  # hidden ones keep their slots


def test_aborted_offers_clear_and_stopped_offers_reset(qtbot) -> None:  # type: ignore[no-untyped-def]
    from ui.run_control import RunControl

    control = RunControl(REPO / "recipes", lambda name: None)
    qtbot.addWidget(control)
    control.apply(cell_state(PackMLState.ABORTED))
    assert control.shown_commands() == {"clear"}
    control.apply(cell_state(PackMLState.STOPPED))
    assert control.shown_commands() == {"reset", "abort"}
    assert Command.COMPLETE.value not in control.buttons  # the engine's own, not an operator's


def test_a_long_fault_prompt_is_shown_whole_with_the_recommended_answer_marked(qtbot) -> None:  # type: ignore[no-untyped-def]
    from ui.run_control import PromptBanner

    banner = PromptBanner()
    qtbot.addWidget(banner)
    banner.resize(900, 60)
    banner.show()
    idle_height = banner.sizeHint().height()
    reason = "the washer reports fluid level low (-310, 'System error;level low'); refill the tank " * 4
    banner.show_prompt(Event(EventKind.PROMPT, "cell", {
        "id": "p7", "text": f"Step 'wash' failed for part P-3 on wash: {reason}. Retry the step (3 left), "
                            "scrap the part, or abort the cell?",
        "choices": ["retry", "scrap", "abort"], "recommended": "retry", "station": "wash", "part": "P-3"}))
    banner.resize(900, banner.sizeHint().height())
    qtbot.waitUntil(lambda: banner.text.height() >= banner.text.heightForWidth(banner.text.width()),
                    timeout=5_000)
    assert banner.sizeHint().height() > idle_height  # it grew to fit the text: nothing is cut off
    assert banner.text.text().endswith("(wash · P-3)") and "abort the cell?" in banner.text.text()
    texts = [b.text() for b in banner.choice_buttons()]
    assert texts == ["Retry (recommended)", "Scrap", "Abort"]
    assert banner.recommended == "retry"
    banner.clear("p7")
    assert not banner.active and banner.recommended == ""


def test_the_panel_fits_1024x768_with_every_control_on_screen(window, qtbot) -> None:  # type: ignore[no-untyped-def]
    window.resize(1024, 768)
    qtbot.waitUntil(lambda: window.width() <= 1024 and window.height() <= 768, timeout=5_000)
    for widget in (window.centralWidget(), window.run_control, window.overview):
        widget.layout().activate()  # lay out now, at the new size
    frame = window.rect()

    def on_screen(widget) -> bool:  # type: ignore[no-untyped-def]
        top_left = widget.mapTo(window, widget.rect().topLeft())
        bottom_right = widget.mapTo(window, widget.rect().bottomRight())
        return frame.contains(top_left) and frame.contains(bottom_right)

    assert on_screen(window.estop)
    for name, button in window.run_control.buttons.items():
        assert on_screen(button), name
    for sid, tile in window.overview.tiles.items():
        assert on_screen(tile), sid


def unlock_from_manual(window, qtbot, sid: str) -> None:  # type: ignore[no-untyped-def]
    """What an operator does for a machine that lost its position: Manual mode, Unlock, leave."""
    manual = window.manual
    manual.mode_button.click()
    qtbot.waitUntil(lambda: "manual" in window.mode.text().lower(), timeout=20_000)
    manual.grbl.setCurrentText(sid)
    unlock = next(b for b in manual.findChildren(type(window.estop)) if b.text().startswith("Unlock"))
    qtbot.waitUntil(unlock.isEnabled, timeout=5_000)
    unlock.click()
    qtbot.waitUntil(lambda: manual.message.text().startswith(f"{sid}: unlock") and
                    "…" not in manual.message.text(), timeout=30_000)
    assert manual.message.text() == f"{sid}: unlock: done", manual.message.text()
    manual.mode_button.click()
    qtbot.waitUntil(lambda: "production" in window.mode.text().lower(), timeout=20_000)


def test_after_an_estop_the_app_alone_recovers_and_runs_again(window, qtbot) -> None:  # type: ignore[no-untyped-def]
    from PyQt6.QtCore import Qt

    from microfactory.station import StationState

    window.simulated_operator = True
    window.start_lot(RECIPE, 1)
    qtbot.waitUntil(lambda: window.cell_state.text() == "EXECUTE", timeout=20_000)
    # E-stop while no axis moves (the part in the wash): a reset during motion is ALARM:3, which rightly
    # needs a re-home by a person (tests/stations/grbl covers that), not the app alone
    stations = window.controller._runtime.stations
    qtbot.waitUntil(lambda: stations["wash"].state == StationState.BUSY
                    and all(stations[s].state != StationState.BUSY for s in ("cut", "mill")), timeout=60_000)
    qtbot.mouseClick(window.estop, Qt.MouseButton.LeftButton)
    controls = window.run_control
    qtbot.waitUntil(lambda: window.cell_state.text() == "ABORTED", timeout=30_000)
    qtbot.waitUntil(lambda: controls.shown_commands() == {"clear"}, timeout=5_000)
    qtbot.mouseClick(controls.buttons["clear"], Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.cell_state.text() == "STOPPED", timeout=30_000)
    for sid in ("cut", "mill"):  # a machine the E-stop caught moving is locked: position lost
        if window.overview.tiles[sid].state.text() == "ALARM":
            tile = window.overview.tiles[sid]
            qtbot.waitUntil(lambda t=tile, s=sid: "locked after the E-stop" in t.alarm.toolTip()
                            and "Manual mode" in t.alarm.toolTip(), timeout=10_000)
            unlock_from_manual(window, qtbot, sid)
    qtbot.waitUntil(lambda: "reset" in controls.shown_commands(), timeout=5_000)
    qtbot.mouseClick(controls.buttons["reset"], Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.cell_state.text() == "IDLE", timeout=30_000)
    qtbot.waitUntil(lambda: "start" in controls.shown_commands(), timeout=5_000)
    controls.parts.setValue(1)
    first_lot = window.lot_future
    qtbot.mouseClick(controls.buttons["start"], Qt.MouseButton.LeftButton)  # opens the run dialog
    dialog = window.run_dialog
    assert dialog is not None and dialog.isVisible() and dialog.parts.value() == 1
    qtbot.waitUntil(dialog.start_button.isEnabled, timeout=30_000)
    qtbot.mouseClick(dialog.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.lot_future is not first_lot, timeout=20_000)
    qtbot.waitUntil(lambda: window.lot_future is not None and window.lot_future.done(), timeout=120_000)
    summary = window.lot_future.result()
    assert summary.state == "complete" and summary.passed + summary.scrapped == 1


def test_the_run_dialog_refuses_an_out_of_bounds_value_and_runs_with_the_operators_value(  # type: ignore[no-untyped-def]
        window, qtbot) -> None:
    window.simulated_operator = True
    sign_in(window, qtbot, *add_user(window, "eve", "engineer"))  # the rework recipe is a draft:
    dialog = window.open_run_dialog(RECIPE, 1)                    # an engineer's trial run
    qtbot.waitUntil(lambda: bool(dialog.form.fields), timeout=20_000)
    labels = [dialog.form.form.itemAt(i, dialog.form.form.ItemRole.LabelRole).widget().text()
              for i in range(dialog.form.form.rowCount())]
    assert any(text.startswith("Laser power (S) [200…1000]") for text in labels), labels
    assert not any("laser_power" in text for text in labels)  # the operator reads labels, not names
    power = dialog.form.fields["laser_power"]
    power.setValue(5000)
    assert "above its maximum" in dialog.form.errors["laser_power"].text()
    assert not dialog.start_button.isEnabled()
    dialog.start()  # refused: nothing starts
    assert window.lot_future is None
    power.setValue(640)
    qtbot.waitUntil(dialog.start_button.isEnabled, timeout=30_000)
    assert dialog.form.errors["laser_power"].text() == ""
    dialog.start_button.click()
    qtbot.waitUntil(lambda: window.lot_future is not None, timeout=20_000)
    qtbot.waitUntil(window.lot_future.done, timeout=120_000)  # the GUI thread answers the prompts
    summary = window.lot_future.result()
    assert summary.passed + summary.scrapped == 1
    run = window.controller.journal.runs()[-1]
    assert run["parameters"]["laser_power"] == 640 and run["parts"] == 1  # journaled with the lot
    assert run["user"] == "eve"  # and who ran it


def test_a_refused_recipe_shows_its_problem_next_to_the_parameter(qtbot, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import shutil

    from microfactory.cell import load_cell
    from ui.recipe_editor import RecipeEditor, problem_target

    assert problem_target("laser_power", ["laser_power"]) == ("parameter", "laser_power")
    assert problem_target("parameters[1].default", ["a", "b"]) == ("parameter", "b")
    assert problem_target("procedure[2].machine.program", ["a"]) == ("step", 2)
    assert problem_target("lot.size", ["a"]) == ("recipe", None)
    shutil.copytree(REPO / "recipes" / "programs", tmp_path / "programs")
    shutil.copytree(REPO / "recipes" / "drawings", tmp_path / "drawings")
    text = (REPO / "recipes" / "watch-plate-rework.yaml").read_text()
    (tmp_path / "broken.yaml").write_text(text.replace("programs/watch-plate-mill.nc", "programs/nope.nc"))
    editor = RecipeEditor(tmp_path, load_cell(REPO / "recipes" / "cells" / "sim.yaml"))
    qtbot.addWidget(editor)
    qtbot.waitUntil(lambda: bool(editor.fields), timeout=10_000)
    qtbot.waitUntil(lambda: "nope.nc" in editor.problems.text(), timeout=20_000)
    assert "broken.yaml:" in editor.problems.text()  # file:line, what is wrong
    marked = [editor.steps.item(r, 0).toolTip() for r in range(editor.steps.rowCount())]
    assert any("nope.nc" in tip for tip in marked), marked  # and on the step's own row


def add_user(window, user_id: str, role: str) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """An admin (first run) adds ``user_id`` with ``role``; returns (id, the one-time password)."""
    book = window.access.book
    admin_pw = book.first_admin() if book.empty else None
    admin = book.sign_in("admin", admin_pw)
    admin = book.change_password(admin, admin_pw, "admin-password-1")
    password = f"{user_id}-first-password"
    book.add(admin, user_id, user_id.capitalize(), role, password)
    return user_id, password


def sign_in(window, qtbot, user_id: str, password: str) -> None:  # type: ignore[no-untyped-def]
    """As an operator does at the panel: Sign in…, id and password, then a new password once."""
    bar = window.session_bar
    qtbot.waitUntil(lambda: not window.access.open or bar.button.text() == "Sign in…", timeout=10_000)
    bar.button.click()
    dialog = bar.dialog
    dialog.user.setText(user_id)
    dialog.password.setText(password)
    dialog.ok.click()
    qtbot.waitUntil(lambda: dialog.new_password.isVisible(), timeout=20_000)  # an admin set it
    dialog.new_password.setText(f"{user_id}-own-password")
    dialog.repeat.setText(f"{user_id}-own-password")
    dialog.ok.click()
    qtbot.waitUntil(lambda: window.access.session is not None, timeout=20_000)
    assert bar.who.text().startswith(f"{user_id.capitalize()}\n")
    assert bar.who.toolTip().startswith(f"Signed in: {user_id.capitalize()} ({user_id}, ")


def test_sign_in_replaces_the_open_role_dropdown(window, qtbot, tmp_path) -> None:  # type: ignore[no-untyped-def]
    editor = window.recipes
    assert not hasattr(editor, "role")  # nobody picks a role from a list any more
    qtbot.waitUntil(lambda: "No users" in window.session_bar.who.text(), timeout=10_000)
    assert not editor.release_button.isEnabled()  # open journal: nothing can be signed
    user_id, password = add_user(window, "otto", "operator")
    window.access.refresh_open()
    bar = window.session_bar
    bar.button.click()
    bar.dialog.user.setText(user_id)
    bar.dialog.password.setText("wrong password!")
    bar.dialog.ok.click()
    qtbot.waitUntil(lambda: "wrong password" in bar.dialog.message.text(), timeout=20_000)
    assert "attempt(s) left" in bar.dialog.message.text() and window.access.session is None
    bar.dialog.close()
    sign_in(window, qtbot, user_id, password)
    assert window.access.session.user.role.value == "operator"
    assert not editor.release_button.isEnabled()  # an operator cannot release
    bar.button.click()  # sign out
    assert window.access.session is None and bar.who.text() == "Not signed in"
    eng, eng_pw = "erin", "erin-first-password"
    book = window.access.book
    admin = book.sign_in("admin", "admin-password-1")
    book.add(admin, eng, "Erin", "engineer", eng_pw)
    sign_in(window, qtbot, eng, eng_pw)
    qtbot.waitUntil(lambda: bool(editor.fields) and editor.release_button.isEnabled(), timeout=20_000)


def test_an_engineer_releases_with_an_e_signature(window, qtbot, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import shutil

    import ui.recipe_editor as recipe_editor
    from microfactory.access.signatures import recipe_subject, signatures
    from ui.recipe_editor import RecipeEditor

    shutil.copy(REPO / "recipes" / "shim.yaml", tmp_path / "shim.yaml")
    shutil.copytree(REPO / "recipes" / "programs", tmp_path / "programs")
    sign_in(window, qtbot, *add_user(window, "erin", "engineer"))
    editor = RecipeEditor(tmp_path, window.cell)
    qtbot.addWidget(editor)
    editor.set_access(window.access)
    qtbot.waitUntil(lambda: bool(editor.fields) and editor.release_button.isEnabled(), timeout=20_000)
    typed = iter(["not my password", "erin-own-password"])  # what the engineer types when asked
    monkeypatch.setattr(recipe_editor.QInputDialog, "getText", lambda *a, **k: (next(typed), True))
    editor.save(release=True)
    qtbot.waitUntil(lambda: "Not saved" in editor.problems.text(), timeout=20_000)
    # a refused signature leaves no released file behind
    assert sorted(p.name for p in tmp_path.glob("*.yaml")) == ["shim.yaml"]
    editor.save(release=True)
    qtbot.waitUntil(lambda: "(released)" in editor.status.text(), timeout=20_000)
    released = next(tmp_path.glob("shim-ring-v*.yaml"))
    assert "status: released" in released.read_text()
    version = released.stem.split("-v")[-1]
    (sig,) = signatures(window.controller.journal, recipe_subject("shim-ring", version))
    assert sig.meaning.value == "released" and sig.user == "erin" and sig.name == "Erin"


def test_an_operator_edits_the_steps_and_the_saved_recipe_keeps_its_comments(qtbot, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import shutil

    from microfactory.cell import load_cell
    from microfactory.recipe import load_recipe
    from ui.recipe_editor import RecipeEditor

    shutil.copy(RECIPE, tmp_path / RECIPE.name)
    shutil.copytree(REPO / "recipes" / "programs", tmp_path / "programs")
    shutil.copytree(REPO / "recipes" / "drawings", tmp_path / "drawings")
    editor = RecipeEditor(tmp_path, load_cell(REPO / "recipes" / "cells" / "sim.yaml"))
    qtbot.addWidget(editor)
    steps = editor.step_editor
    qtbot.waitUntil(lambda: steps.table.rowCount() == 9 and editor.save_button.isEnabled(), timeout=20_000)
    # a rinse step after the wash, with a program the washer does not have: refused on its row
    wash_row = [steps.table.item(r, 0).text() for r in range(9)].index("wash")
    steps.table.selectRow(wash_row)
    steps.add_step("transfer")
    assert steps.table.item(wash_row + 1, 0).text() == "step-1"
    steps.table.cellWidget(wash_row + 1, 1).setCurrentText("wash")  # kind: transfer → wash
    steps.settings.setPlainText("program: NOPE\n")
    steps.apply_settings()
    qtbot.waitUntil(lambda: "NOPE" in steps.table.item(wash_row + 1, 0).toolTip(), timeout=20_000)
    assert not editor.save_button.isEnabled()
    steps.settings.setPlainText("program: RINSE\n")
    steps.apply_settings()
    qtbot.waitUntil(editor.save_button.isEnabled, timeout=20_000)
    steps.move_step(-1)  # now before the wash
    assert steps.table.item(wash_row, 0).text() == "step-1"
    steps.table.cellWidget(wash_row, 3).setCurrentText("inspect")  # on pass: past the wash ...
    qtbot.waitUntil(lambda: "never reached" in steps.table.item(wash_row + 1, 0).toolTip(), timeout=20_000)
    assert not editor.save_button.isEnabled()  # ... which no route reaches any more: refused on its row
    steps.table.cellWidget(wash_row, 3).setCurrentText("wash")
    steps.settings.setPlainText("program: [unclosed\n")
    steps.apply_settings()
    assert steps.settings_error.text().startswith("not valid YAML")  # said, nothing applied
    qtbot.waitUntil(editor.save_button.isEnabled, timeout=20_000)
    editor.save(release=False)
    qtbot.waitUntil(lambda: "saved" in editor.status.text(), timeout=20_000)
    saved = next(tmp_path.glob("*-v*.yaml"))
    text = saved.read_text()
    assert "# rework loop, reached only from inspect's on_fail" in text  # comments kept
    recipe = load_recipe(saved)
    ids = [s.id for s in recipe.steps]
    assert ids[wash_row] == "step-1" and ids[wash_row + 1] == "wash"
    added = recipe.steps[wash_row]
    assert added.wash is not None and added.wash.program == "RINSE" and added.on_pass == "wash"
    qtbot.waitUntil(lambda: not list(tmp_path.glob(".*editing*")), timeout=20_000)  # probes removed


def test_the_live_camera_view_shows_frames_without_taking_one_from_the_inspection(window, qtbot) -> None:  # type: ignore[no-untyped-def]
    from microfactory.events import Event, EventKind

    window.tabs.setCurrentWidget(window.vision)
    view = window.vision
    camera = window.controller.stations["inspect"]
    before = camera.camera.source.frames  # frames taken by inspections so far
    view.apply(Event(EventKind.STEP, "inspect", {  # the last inspection, drawn over the live frames
        "phase": "done", "part": "P-1", "verdict": "fail", "data": {"measurements": {
            "verdict": "fail", "holes": [{"id": "H1", "x_px": 400.0, "y_px": 300.0, "r_px": 50.0}],
            "features": [{"feature": "H1.position", "verdict": "fail"}],
            "defects": [{"class": "chip", "bbox": [10, 10, 20, 20]}]}}}))
    view.live_button.click()
    qtbot.waitUntil(lambda: view.live_frames >= 3, timeout=20_000)
    pixmap = view.picture.pixmap()
    assert pixmap is not None and not pixmap.isNull()
    assert camera.camera.source.frames == before  # the live view took no frame
    shown = pixmap.toImage()
    assert any(shown.pixelColor(x, y).red() > 150 and shown.pixelColor(x, y).green() < 100
               for x in range(shown.width()) for y in range(0, shown.height(), 4))  # the red overlay
    view.live_button.click()
    assert not view._live_timer.isActive()  # off: no frame is asked for any more


def test_hold_and_unhold_from_the_buttons(window, qtbot) -> None:  # type: ignore[no-untyped-def]
    from PyQt6.QtCore import Qt

    window.simulated_operator = True
    window.start_lot(RECIPE, 2)  # two parts: enough to hold mid-lot and carry on
    controls = window.run_control
    qtbot.waitUntil(lambda: window.cell_state.text() == "EXECUTE", timeout=30_000)
    qtbot.waitUntil(lambda: "hold" in controls.shown_commands(), timeout=5_000)
    qtbot.mouseClick(controls.buttons["hold"], Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.cell_state.text() == "HELD", timeout=60_000)
    assert controls.shown_commands() == {"unhold", "stop", "abort"}
    qtbot.mouseClick(controls.buttons["unhold"], Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.cell_state.text() in ("EXECUTE", "COMPLETE"), timeout=60_000)
    qtbot.waitUntil(lambda: window.lot_future is not None and window.lot_future.done(), timeout=180_000)
    summary = window.lot_future.result()
    assert summary.state == "complete" and summary.passed + summary.scrapped == 2


def test_a_fault_prompt_is_answered_from_the_banner_and_journaled(window, qtbot) -> None:  # type: ignore[no-untyped-def]
    window.simulated_operator = True  # answers the manual (load) prompts; the fault prompt is ours
    window.start_lot(RECIPE, 3)
    banner = window.run_control.banner
    qtbot.waitUntil(lambda: window.overview.tiles["mill"].state.text() == "BUSY", timeout=60_000)
    window.controller.simulators["mill"].inject("alarm", code=1)  # a hard limit mid-step
    qtbot.waitUntil(lambda: banner.active and "retry" in banner.text.text().lower(), timeout=60_000)
    qtbot.waitUntil(lambda: window.cell_state.text() == "HELD", timeout=30_000)  # the cell waits for us
    assert banner.recommended == "scrap"  # the mill is locked: a retry would fail
    choices = [b.text() for b in banner.choice_buttons()]
    assert choices == ["Retry", "Scrap (recommended)", "Abort"]
    part = banner.text.text().split(" for part ")[1].split(" ")[0]
    banner.choice_buttons()[1].click()  # Scrap
    qtbot.waitUntil(lambda: not banner.active or "retry" not in banner.text.text().lower(), timeout=30_000)
    journal = window.controller.journal

    def scrapped() -> bool:
        lot = journal.runs()[-1]["lot"]
        return any(p["part"] == part and p["state"] == "scrapped" for p in journal.parts(lot))

    qtbot.waitUntil(scrapped, timeout=60_000)  # the operator's decision is on record
    window.emergency_stop()  # the rest of the lot does not matter here
