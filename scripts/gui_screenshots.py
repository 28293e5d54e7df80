"""Screenshots of the operator app in the states an operator meets off the happy path.

Drives the real app on the simulated bench (real drivers over ptys) the way an operator would — start a
lot, a mill alarm mid-step that brings up the fault prompt, E-stop, the ABORTED state with its recovery
buttons — and saves the window at each stage. Run it under Xvfb at the panel size to check::

    xvfb-run -a -s "-screen 0 1024x768x24" .venv/bin/python scripts/gui_screenshots.py --size 1024x768
    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/gui_screenshots.py --size 1600x1000

Files: ``docs/img/<stage>-<W>x<H>.png`` for the stages ``overview``, ``fault-prompt``, ``aborted`` and
``run-dialog`` (an out-of-bounds value refused), ``step-editor`` (a step added, its problem on its row)
and ``live-camera`` (the live view with the last inspection's overlay).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def sign_in_engineer(window: Any) -> None:
    """A first admin, an engineer, and the engineer signed in at the panel (in the run's own journal)."""
    book = window.access.book
    admin = book.sign_in("admin", (first := book.first_admin()))
    admin = book.change_password(admin, first, "admin-password-1")
    book.add(admin, "erin", "Erin Engineer", "engineer", "erin-first-password")
    session = book.sign_in("erin", "erin-first-password")
    window.session_bar._signed_in(book.change_password(session, "erin-first-password", "erin-password-1"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="1024x768", help="window size WxH")
    parser.add_argument("--out", default=str(REPO / "docs" / "img"), help="folder for the PNGs")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    os.environ.setdefault("QT_QPA_PLATFORM", "xcb" if os.environ.get("DISPLAY") else "offscreen")

    from PyQt6.QtCore import QSettings
    from PyQt6.QtWidgets import QApplication

    from microfactory.cell import load_cell
    from ui.app import MainWindow, prefer_gui_thread

    prefer_gui_thread()
    app = QApplication(sys.argv[:1])
    QSettings.setPath(QSettings.Format.NativeFormat, QSettings.Scope.UserScope, tempfile.mkdtemp())
    cell = load_cell(REPO / "recipes" / "cells" / "sim.yaml")
    window = MainWindow(cell, speed=60.0, recipes_dir=REPO / "recipes", simulated_operator=True)
    window.resize(width, height)
    window.show()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def wait_for(predicate: Callable[[], bool], what: str, timeout_s: float = 120.0) -> None:
        end = time.monotonic() + timeout_s
        while not predicate():
            if time.monotonic() > end:
                raise SystemExit(f"screenshots: timed out waiting for {what}")
            app.processEvents()
            time.sleep(0.01)

    def shoot(stage: str) -> None:
        for _ in range(20):
            app.processEvents()
        path = out / f"{stage}-{width}x{height}.png"
        window.grab().save(str(path))
        print(path)

    ready: list[str] = []
    window.engine_ready.connect(ready.append)
    window.start_engine()
    wait_for(lambda: bool(ready), "the stations to connect")
    if ready[0]:
        raise SystemExit(f"screenshots: stations did not connect: {ready[0]}")
    window.start_lot(REPO / "recipes" / "watch-plate-rework.yaml", 10)
    wait_for(lambda: window.overview.lot.value() >= 2, "two finished parts")
    shoot("overview")

    mill = window.controller.simulators["mill"]
    wait_for(lambda: window.overview.tiles["mill"].state.text() == "BUSY", "the mill to be busy")
    mill.inject("alarm", code=1)
    wait_for(lambda: window.run_control.banner.active and
             "retry" in window.run_control.banner.text.text().lower(), "the fault prompt")
    shoot("fault-prompt")

    window.emergency_stop()
    wait_for(lambda: window.cell_state.text() == "ABORTED", "ABORTED")
    wait_for(lambda: window.run_control.shown_commands() == {"clear"}, "the Clear button")
    shoot("aborted")

    sign_in_engineer(window)  # the rework recipe is a draft: an engineer's trial run
    dialog = window.open_run_dialog(REPO / "recipes" / "watch-plate-rework.yaml", 10)
    dialog.move(window.x() + 40, window.y() + 60)
    wait_for(lambda: bool(dialog.form.fields), "the run dialog's form")
    dialog.form.fields["laser_power"].setValue(5000)  # type: ignore[attr-defined]
    wait_for(lambda: "above its maximum" in dialog.form.errors["laser_power"].text(), "the refusal")
    for _ in range(20):
        app.processEvents()
    path = out / f"run-dialog-{width}x{height}.png"
    dialog.grab().save(str(path))
    print(path)
    dialog.close()

    editor = window.recipes
    editor.refresh_list(select=REPO / "recipes" / "watch-plate-rework.yaml")
    window.tabs.setCurrentWidget(editor)
    wait_for(lambda: editor.step_editor.table.rowCount() == 9, "the recipe's steps")
    steps = editor.step_editor
    steps.table.selectRow(5)  # after the wash: a rinse with a program the washer lacks (in memory only)
    steps.add_step("wash")
    steps.settings.setPlainText("program: NOPE\n")
    steps.apply_settings()
    wait_for(lambda: "NOPE" in (steps.table.item(6, 0).toolTip() or ""), "the step's problem")
    shoot("step-editor")

    window.tabs.setCurrentWidget(window.vision)
    window.vision.live_button.click()
    wait_for(lambda: window.vision.live_frames >= 2, "live frames")
    shoot("live-camera")
    closed: list[bool] = []
    window.closed.connect(lambda: closed.append(True))
    window.close()  # stops the stations on a worker thread, then says so
    wait_for(lambda: bool(closed), "the window to close", 60)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
