"""``microfactory gui``: the operator app (entry point ``microfactory.cli`` → ``ui``)."""

from __future__ import annotations

import argparse
import os
import sys
import threading
from pathlib import Path
from typing import Any

from microfactory.cli import arguments
from microfactory.cli.serve import add_opcua_arguments, pki_folder
from microfactory.errors import MicrofactoryError
from microfactory.mqtt import options as mqtt_options

REPO_RECIPES = Path(__file__).resolve().parents[1] / "recipes"
DEMO_CELL = REPO_RECIPES / "cells" / "sim.yaml"
DEMO_RECIPE = REPO_RECIPES / "watch-plate-rework.yaml"
#: Two SPC subgroups of 5 measured parts give control limits; 30 parts leave room for scrap and rework.
DEMO_PARTS = 30
TAB_NAMES = ("overview", "recipes", "vision", "charts", "manual", "alarms", "faults")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gui", help="the operator app (PyQt6)",
                       description="Open the operator app on a cell. With --demo it runs a demo lot on the "
                                   "simulated bench; with --screenshot it saves a PNG of the window after "
                                   "--after seconds and exits (works under Xvfb or offscreen).")
    p.add_argument("--cell", default=str(DEMO_CELL), help="cell file (default: the simulated demo bench)")
    p.add_argument("--demo", action="store_true", help="start a demo lot with a simulated operator")
    p.add_argument("--recipe", default=str(DEMO_RECIPE), help="recipe for --demo")
    p.add_argument("--parts", type=arguments.part_count, default=DEMO_PARTS,
                   help=f"parts in the demo lot (default {DEMO_PARTS}: enough measured parts for the SPC "
                        "chart's control limits)")
    p.add_argument("--speed", type=arguments.speed_factor, default=None, metavar="K|max",
                   help="simulation speed ×K or max (default 1; 300 with --demo)")
    p.add_argument("--db", type=arguments.journal_path, default=None, help="SQLite run journal")
    p.add_argument("--screenshot", metavar="OUT.png", help="save a PNG of the main window and exit")
    p.add_argument("--after", type=arguments.non_negative_float, default=8.0, metavar="S",
                   help="seconds before the screenshot")
    p.add_argument("--tab", choices=TAB_NAMES, default="overview", help="tab shown (for screenshots)")
    p.add_argument("--size", type=_size, default=None, metavar="WxH",
                   help="window size in pixels, e.g. 1024x768 (default: fit the screen)")
    add_opcua_arguments(p)
    mqtt_options.add_arguments(p)
    p.set_defaults(func=cmd_gui)


def _size(text: str) -> tuple[int, int]:
    """``WxH`` in pixels, each at least 320 (argparse turns the ValueError into a usage error)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not WIDTHxHEIGHT, e.g. 1024x768") from None
    if width < 320 or height < 240:
        raise argparse.ArgumentTypeError(f"{text!r} is too small: at least 320x240")
    return width, height


def cmd_gui(args: argparse.Namespace) -> int:
    mqtt = mqtt_options.from_arguments(args)  # a bad --mqtt option is refused before a window opens
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY") \
            and not os.environ.get("QT_QPA_PLATFORM"):
        if not args.screenshot:
            print("error: no display. Run it on a desktop, under Xvfb (xvfb-run -a microfactory gui), or "
                  "use `microfactory demo` for the headless lot.", file=sys.stderr)
            return 2
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from PyQt6.QtCore import QMetaObject, Qt, QTimer
    from PyQt6.QtGui import QImage
    from PyQt6.QtWidgets import QApplication

    from microfactory.cell import load_cell
    from ui.app import MainWindow, prefer_gui_thread

    prefer_gui_thread()
    cell = load_cell(args.cell)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    speed = args.speed if args.speed is not None else (300.0 if args.demo else 1.0)
    window = MainWindow(cell, speed=speed, db=args.db, recipes_dir=Path(args.recipe).resolve().parent,
                        simulated_operator=args.demo)
    if args.size is not None:
        window.resize(*args.size)
    window.tabs.setCurrentIndex(TAB_NAMES.index(args.tab))
    window.recipes.refresh_list(select=Path(args.recipe))
    window.show()
    plant = _opcua(window, args) if args.opcua else None
    from microfactory.mqtt import start_edge_node  # before the engine connects: births carry first states

    edge = start_edge_node(mqtt, window.controller.bus, cell_id=cell.cell.id,
                           stations=[s.id for s in cell.stations])
    window.start_engine()
    if args.demo:
        window.engine_ready.connect(lambda error: None if error else
                                    window.start_lot(Path(args.recipe), args.parts))
    exit_code = [0]
    if args.screenshot:
        def shoot() -> None:
            image: QImage = window.grab().toImage()
            out = Path(args.screenshot)

            def save() -> None:
                out.parent.mkdir(parents=True, exist_ok=True)
                if not image.save(str(out)):
                    exit_code[0] = 1
                QMetaObject.invokeMethod(window, "close", Qt.ConnectionType.QueuedConnection)

            threading.Thread(target=save, daemon=True).start()

        QTimer.singleShot(int(args.after * 1000), shoot)
    app.exec()
    if plant is not None:
        plant.stop()
    if edge is not None:
        edge.stop()  # after the window closed the engine: the NDEATH is the last message
    if args.screenshot:
        print(args.screenshot)
    return exit_code[0]


def _opcua(window: Any, args: argparse.Namespace) -> Any:
    """The OPC UA server of the app's cell, started off the GUI thread once the stations are connected;
    a server that cannot start says why on stderr, and the app goes on."""
    from microfactory.opcua.server import CellServer

    server = CellServer(window.controller, window.engine, endpoint=args.opcua,
                        certificates=pki_folder(args.opcua_pki, args.db or "."), trusted=args.opcua_trust)

    def start() -> None:
        try:
            server.start()
        except MicrofactoryError as exc:
            print(f"error: OPC UA: {exc}", file=sys.stderr)
            return
        print(f"OPC UA: serving cell {server.cell_id} on {args.opcua} (certificate {server.certificate})",
              file=sys.stderr)

    window.engine_ready.connect(lambda error: None if error else
                                threading.Thread(target=start, name="ui-opcua", daemon=True).start())
    return server
