"""The operator's main window: E-stop bar on top, then Overview, Recipes, Vision, Charts, Manual, Alarms,
Faults.

The engine runs in its own thread (:class:`~microfactory.engine.api.EngineThread`); this window only
receives its events through :class:`~ui.bridge.EngineBridge` and sends it commands that return futures.
Nothing here does I/O or waits: connecting, fault injection and shutdown run on worker threads.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import sys
import threading
from pathlib import Path
from typing import Any

from PyQt6 import sip
from PyQt6.QtCore import QSettings, Qt, pyqtSignal
from PyQt6.QtGui import QCloseEvent, QKeySequence, QShortcut
from PyQt6.QtWidgets import (
    QApplication,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from microfactory.access.users import Permission, UserBook
from microfactory.cell import Cell
from microfactory.engine.api import Controller, EngineThread, load_recipe
from microfactory.errors import MicrofactoryError
from microfactory.events import Event, EventKind
from ui.alarms import AlarmLog
from ui.bridge import EngineBridge
from ui.charts import ChartsView
from ui.faults import FaultPanel
from ui.manual import ManualControl
from ui.recipe_editor import RecipeEditor
from ui.run_control import RunControl
from ui.run_dialog import RunDialog
from ui.sign_in import Access, SessionBar
from ui.slots import guarded
from ui.theme import CELL_COLOURS, STYLE, badge_style, restyle
from ui.tiles import CellOverview
from ui.vision_view import VisionView

log = logging.getLogger("ui.app")
ESTOP_KEYS = ("Esc", "F12")


GIL_SWITCH_S = 0.001


def prefer_gui_thread() -> None:
    """Shorten the interpreter's thread switch interval (5 ms → 1 ms) for the app process.

    The GUI thread waits in Qt's poll without the GIL; each time it wakes (a timer, a queued event) it
    must take the GIL back from whichever driver or engine thread runs Python, and may lose it to the
    next runnable one several times in a row. At 1 ms those waits stay short; the drivers, which mostly
    wait on their ports, lose nothing measurable.
    """
    sys.setswitchinterval(GIL_SWITCH_S)


class MainWindow(QMainWindow):
    """The operator panel for one cell."""

    engine_ready = pyqtSignal(str)  # "" when connected, else the error text (from the connect thread)
    recipe_loaded = pyqtSignal(object, object, int)  # (future of the procedure, path, parts), from a worker
    closed = pyqtSignal()

    def __init__(self, cell: Cell, *, speed: float = 1.0, db: str | None = None,
                 recipes_dir: Path | None = None, simulated_operator: bool = False) -> None:
        super().__init__()
        self.cell = cell
        self.recipes_dir = recipes_dir or Path(cell.source).resolve().parent.parent
        self.simulated_operator = simulated_operator
        self.workers = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="ui-worker")
        self.controller = Controller(cell, speed=speed, db=db)
        self.engine = EngineThread(self.controller)
        self.bridge = EngineBridge(parent=self)
        self._subscription = self.engine.subscribe(self.bridge.on_event)
        self._closing = False
        self.lot_future: concurrent.futures.Future[Any] | None = None

        self.setWindowTitle(f"microfactory — {cell.cell.name or cell.cell.id}")
        self.setStyleSheet(STYLE)
        self.cell_state = QLabel("CONNECTING")
        self.cell_state.setObjectName("cellState")
        self.mode = QLabel("mode: Production")
        self.estop = QPushButton("E-STOP\n(" + " / ".join(ESTOP_KEYS) + ")")
        self.estop.setObjectName("estop")
        self.estop.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.estop.clicked.connect(self.emergency_stop)
        for key in ESTOP_KEYS:
            shortcut = QShortcut(QKeySequence(key), self)
            shortcut.setContext(Qt.ShortcutContext.ApplicationShortcut)
            shortcut.activated.connect(self.emergency_stop)
        title = QLabel(cell.cell.name or cell.cell.id)
        title.setStyleSheet("font-size: 22px; font-weight: 800;")
        title.setToolTip(cell.cell.name or cell.cell.id)
        title.setMinimumWidth(120)  # a long cell name gives way on a small panel: the E-stop never does
        title.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        top = QHBoxLayout()
        top.addWidget(title, 2)
        top.addWidget(self.cell_state)
        top.addWidget(self.mode)
        #: who is signed in: the core's users in this run journal (never an open dropdown)
        self.access = Access(UserBook(self.controller.journal))
        self.session_bar = SessionBar(self.access)
        top.addWidget(self.session_bar, 1)
        top.addStretch(1)
        top.addWidget(self.estop)

        self.overview = CellOverview(cell, speed=speed)
        self.run_control = RunControl(self.recipes_dir, self.command)
        self.run_control.start_lot.connect(self.open_run_dialog)
        self.run_dialog: RunDialog | None = None
        self.run_control.banner.answered.connect(self.answer)
        overview_page = QWidget()
        page = QVBoxLayout(overview_page)
        page.addWidget(self.run_control)
        page.addWidget(self.overview, 1)
        # A layout firewall: a label's new text re-lays out the page, and a layout request reaching the
        # QTabWidget makes it repaint the whole tab area (every button, every tile) — 30-50 ms a pass with
        # 16 stations. A resizable scroll area absorbs its page's layout requests.
        overview_scroll = QScrollArea()
        overview_scroll.setWidgetResizable(True)
        overview_scroll.setFrameShape(QFrame.Shape.NoFrame)
        overview_scroll.setWidget(overview_page)
        self.alarms = AlarmLog()
        self.vision = VisionView(preview=self._camera_preview)
        self.charts = ChartsView()
        self.recipes = RecipeEditor(self.recipes_dir, cell)
        self.recipes.set_access(self.access)
        self.session_bar.changed.connect(lambda: self.recipes.set_access(self.access))
        self.manual = ManualControl(cell, self.engine, self.controller)
        self.faults = FaultPanel(self.controller.simulators, {s.id: s.kind for s in cell.stations},
                                 self.workers, self._status)
        self.tabs = QTabWidget()
        for widget, name in ((overview_scroll, "Overview"), (self.recipes, "Recipes"),
                             (self.vision, "Vision"), (self.charts, "Charts"), (self.manual, "Manual"),
                             (self.alarms, "Alarms"), (self.faults, "Faults")):
            self.tabs.addTab(widget, name)
        central = QWidget()
        box = QVBoxLayout(central)
        box.addLayout(top)
        box.addWidget(self.tabs, 1)
        self.setCentralWidget(central)
        self.status_state = QLabel("cell: connecting")
        self.status_state.setObjectName("statusCellState")
        self.statusBar().addPermanentWidget(self.status_state)  # type: ignore[union-attr]
        self.statusBar().showMessage("connecting to the stations…")  # type: ignore[union-attr]
        self.bridge.engine_event.connect(self.on_event)
        self.engine_ready.connect(self._on_engine_ready)
        self.recipe_loaded.connect(self._recipe_loaded)
        self._restore_layout()
        self.fit_to_screen()

    #: The size the panel opens at where the screen has room; a smaller screen gets the whole screen.
    PREFERRED_SIZE = (1400, 900)

    def fit_to_screen(self) -> None:
        """Open at the preferred size, never larger than the screen's available area (a 1024×768
        panel PC gets every control on screen; a remembered geometry larger than the screen is cut)."""
        screen = self.screen()
        if screen is None:
            return
        room = screen.availableGeometry()
        want_w, want_h = self.PREFERRED_SIZE
        width = min(max(self.width(), want_w), room.width())
        height = min(max(self.height(), want_h), room.height())
        self.resize(width, height)
        if self.x() < room.x() or self.y() < room.y() or self.x() + width > room.right() + 1 \
                or self.y() + height > room.bottom() + 1:
            self.move(room.topLeft())

    def _status(self, text: str) -> None:
        self.statusBar().showMessage(text, 8000)  # type: ignore[union-attr]

    def show_error(self, text: str) -> None:
        """What a guarded slot shows when a command is refused or fails (it never aborts the app)."""
        self.statusBar().showMessage(text)  # type: ignore[union-attr]
        self.run_control.message.setText(text)

    # -- engine life cycle ---------------------------------------------------------------------------
    def start_engine(self) -> None:
        """Connect the stations on a worker thread; the window stays live meanwhile."""
        def connect() -> None:
            try:
                self.engine.start()
                self.engine_ready.emit("")
            except (MicrofactoryError, OSError) as exc:
                self.engine_ready.emit(str(exc))

        threading.Thread(target=connect, name="ui-connect", daemon=True).start()

    @guarded
    def _camera_preview(self) -> concurrent.futures.Future[Any] | None:
        """What the first camera station sees now (for the live view); None before it is connected."""
        camera = next((s for s in self.cell.stations if s.kind == "camera"), None)
        station = self.controller.stations.get(camera.id) if camera is not None and self.connected else None
        preview = getattr(station, "preview", None)
        return self.engine.call(preview()) if preview is not None else None

    connected = False

    def _on_engine_ready(self, error: str) -> None:
        if error:
            self.statusBar().showMessage(f"stations did not connect: {error}")  # type: ignore[union-attr]
            self.alarms.add("cell", "critical", "CONNECT", error, "fix the station links and restart")
            return
        self.statusBar().showMessage("all stations connected")  # type: ignore[union-attr]
        self.connected = True
        self.manual.set_ready(True)
        self.faults.set_simulators(dict(self.controller.simulators))

    # -- commands (never wait) -----------------------------------------------------------------------
    def emergency_stop(self) -> None:
        """E-stop in every state of the app (before the engine exists, while connecting, after a failed
        connect): latch every station and write its stop bytes from this thread, then Abort. Never
        raises into Qt."""
        try:
            self.engine.emergency_stop()
        except Exception as exc:  # the stop bytes of the stations reached before this are out
            log.exception("E-stop failed")
            self.show_error(f"E-STOP FAILED ({exc!r}): cut the power of the machines")
            return
        self.statusBar().showMessage("E-STOP: every station latched and stopped; Clear then Reset to "  # type: ignore[union-attr]
                                     "recover")

    @guarded
    def command(self, name: str) -> None:
        try:
            future = self.engine.submit(name)
        except MicrofactoryError as exc:
            self.statusBar().showMessage(str(exc))  # type: ignore[union-attr]
            return
        future.add_done_callback(lambda f: self._report(f, name))

    def _report(self, future: concurrent.futures.Future[Any], what: str) -> None:
        exc = future.exception()
        if exc is not None:  # called on the engine thread: hand over like any engine event
            self.bridge.on_event(Event(EventKind.LOG, "cell", {"level": "warning", "text": f"{what}: {exc}"}))

    @guarded
    def open_run_dialog(self, path: Path | None = None, parts: int = 10) -> RunDialog:
        """The run dialog, pre-set to ``path`` and ``parts``: this lot's values, checked by the core."""
        if self.run_dialog is not None and not sip.isdeleted(self.run_dialog):
            self.run_dialog.close()
        dialog = RunDialog(self.recipes_dir, self.cell, emergency_stop=self.emergency_stop,
                           drafts=self.access.may(Permission.RELEASE_RECIPE),
                           may_run=self.access.may(Permission.RUN_LOT), select=path, parts=parts,
                           parent=self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.run_requested.connect(self.start_lot)
        self.run_dialog = dialog
        dialog.show()
        return dialog

    @guarded
    def start_lot(self, path: Path, parts: int, values: dict[str, Any] | None = None) -> None:
        """Start a lot of ``path`` with ``values`` (defaults for the rest); the recipe is read and
        compiled on a worker thread, the lot handed to the engine from there, with the signed-in user
        recorded in the journal."""
        who = self.access.who
        session = self.access.session
        controller = self.controller

        def load() -> Any:
            controller.session = session  # the core refuses a lot without a live session once users exist
            controller.user = who
            if controller.engine is not None:
                controller.engine.user = who  # read by the engine when the lot begins, on its loop
            return load_recipe(path, cell=self.cell, values=values or {})

        future = self.workers.submit(load)
        future.add_done_callback(lambda f: self.recipe_loaded.emit(f, path, parts))

    @guarded
    def _recipe_loaded(self, future: concurrent.futures.Future[Any], path: Path, parts: int) -> None:
        try:
            procedure = future.result()
        except MicrofactoryError as exc:
            self.alarms.add("cell", "error", "RECIPE", str(exc), "fix the recipe in the Recipes tab")
            self.statusBar().showMessage(f"recipe refused: {exc}")  # type: ignore[union-attr]
            return
        try:
            self.lot_future = self.engine.run_lot(procedure, parts=parts)
        except MicrofactoryError as exc:
            self.statusBar().showMessage(str(exc))  # type: ignore[union-attr]
            return
        self.lot_future.add_done_callback(lambda f: self._report(f, "lot"))
        self.run_control.select(path, f"{procedure.name} (v{procedure.version})")
        self.statusBar().showMessage(f"lot of {parts} × {procedure.name} started")  # type: ignore[union-attr]

    @guarded
    def answer(self, prompt_id: str, choice: str) -> None:
        self.engine.answer(prompt_id, choice).add_done_callback(lambda f: self._report(f, "answer"))

    # -- events (GUI thread) -------------------------------------------------------------------------
    @guarded
    def on_event(self, event: Event, _stamp: float) -> None:
        kind = event.kind
        if kind == EventKind.CELL_STATE:
            state = str(event.get("state"))
            self.cell_state.setText(state.upper())
            colour = next((c for name, c in CELL_COLOURS.items() if name.lower() == state.lower()), "#4a4a4a")
            restyle(self.cell_state, badge_style(colour))
            self.mode.setText(f"mode: {event.get('mode')}")
            self.status_state.setText(f"cell: {state} · mode: {event.get('mode')}")
            restyle(self.status_state, badge_style(colour) + " color: white; padding: 2px 10px;")
            self.manual.set_cell_state(state, str(event.get("mode")))
        if kind == EventKind.PROMPT and self.simulated_operator and event.get("reason") == "manual":
            self.answer(str(event.get("id")), str((event.get("choices") or ["done"])[0]))
        self.overview.apply(event)
        self.run_control.apply(event)
        self.alarms.apply(event)
        self.vision.apply(event)
        self.charts.apply(event)

    # -- layout and closing --------------------------------------------------------------------------
    def _restore_layout(self) -> None:
        settings = QSettings("microfactory", "operator-app")
        geometry = settings.value("geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        tab = settings.value("tab")
        if tab is not None:
            self.tabs.setCurrentIndex(int(tab))

    def closeEvent(self, event: QCloseEvent | None) -> None:
        """Remember the layout, then leave the stations safe on a worker thread before quitting."""
        settings = QSettings("microfactory", "operator-app")
        settings.setValue("geometry", self.saveGeometry())
        settings.setValue("tab", self.tabs.currentIndex())
        if self._closing:
            if event is not None:
                event.accept()
            return
        self._closing = True
        if event is not None:
            event.ignore()
        self.hide()
        self.bridge.close()

        def shutdown() -> None:
            try:
                self.stop_lot()
                self.engine.stop(timeout_s=30)
            except (MicrofactoryError, concurrent.futures.TimeoutError, RuntimeError) as exc:
                log.error("shutdown: %s", exc)
            finally:
                self._subscription.cancel()
                self.workers.shutdown(wait=False)
                self.closed.emit()

        self.closed.connect(self._finish_close)
        threading.Thread(target=shutdown, name="ui-shutdown", daemon=True).start()

    def stop_lot(self, timeout_s: float = 20.0) -> None:
        """Stop a running lot safely (finish current steps); E-stop if it does not stop in time.

        Blocking: call it from a worker thread only (closing, tests), never from the GUI thread.
        """
        future = self.lot_future
        if future is None or future.done():
            return
        try:
            self.engine.submit("stop").result(timeout_s)
            future.result(timeout_s)
        except Exception as exc:  # whatever went wrong, the stations must end up stopped
            log.warning("lot did not stop cleanly (%s): E-stop", exc)
            self.engine.emergency_stop()
            with contextlib.suppress(Exception):
                future.result(timeout_s)

    def _finish_close(self) -> None:
        self.close()
        app = QApplication.instance()
        if app is not None:
            app.quit()
