"""``microfactory serve opcua``: the cell on OPC UA (PackML, OPC 30050) until Ctrl-C.

``serve opcua --cell CELL --db JOURNAL [--endpoint opc.tcp://127.0.0.1:4840]`` connects the cell's
stations (simulators for ``port: sim``), and serves its PackML objects: state, unit mode, counters, stop
reason, state durations, and the PackML commands as methods that go through the engine's own checks.
With ``--recipe`` (and ``--user``, who runs the lots) a client's Start starts a lot of that recipe.

Off unless asked for; when on there is no anonymous access: the journal's users sign in with their
password over a Basic256Sha256 SignAndEncrypt channel. The server's certificate is made on first use in
``--pki`` (default: ``opcua-pki`` beside the journal) and reused after. See ``docs/opcua.md``.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from microfactory.cli.arguments import journal_path, part_count, speed_factor
from microfactory.errors import ConfigError

EXIT_OK = 0


def opcua_endpoint(text: str) -> str:
    """``opc.tcp://HOST:PORT`` (argparse turns the error into exit 2 with this message)."""
    url = urlparse(text)
    try:
        port = url.port
    except ValueError:
        port = None
    if url.scheme != "opc.tcp" or not url.hostname or port is None or not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not an OPC UA endpoint: write opc.tcp://HOST:PORT, "
                                         "e.g. opc.tcp://127.0.0.1:4840 (0.0.0.0 to serve every interface)")
    return text


def add_opcua_arguments(parser: argparse.ArgumentParser) -> None:
    """``--opcua``, ``--opcua-pki`` and ``--opcua-trust``: the same OPC UA options on ``run`` and ``gui``."""
    parser.add_argument("--opcua", type=opcua_endpoint, metavar="URL",
                        help="also serve the cell on OPC UA at URL, e.g. opc.tcp://127.0.0.1:4840 (PackML; "
                             "the journal's users sign in; see docs/opcua.md)")
    parser.add_argument("--opcua-pki", metavar="DIR",
                        help="the OPC UA server's key and certificate "
                             "(default: opcua-pki beside the journal)")
    parser.add_argument("--opcua-trust", metavar="DIR",
                        help="accept only the OPC UA client certificates in DIR")


def pki_folder(pki: str | None, db: str) -> Path:
    """Where the server's key and certificate live: ``--pki``, else ``opcua-pki`` beside the journal."""
    return Path(pki) if pki else Path(db).resolve().parent / "opcua-pki"


def register(subparsers: Any) -> None:
    serve = subparsers.add_parser("serve", help="serve the cell to plant systems (OPC UA)",
                                  description="Serve the cell to plant systems until Ctrl-C.")
    kinds = serve.add_subparsers(dest="protocol", metavar="PROTOCOL", required=True)
    opcua = kinds.add_parser("opcua", help="OPC UA server with the PackML model (OPC 30050)",
                             description=__doc__.split("\n\n")[1] if __doc__ else None)
    opcua.add_argument("--cell", required=True, metavar="CELL", help="cell file (see docs/cells.md)")
    opcua.add_argument("--db", type=journal_path, required=True, metavar="PATH",
                       help="SQLite run journal whose users may sign in (microfactory users init/add)")
    opcua.add_argument("--endpoint", type=opcua_endpoint, default="opc.tcp://127.0.0.1:4840",
                       metavar="URL", help="where to listen (default: %(default)s)")
    opcua.add_argument("--pki", metavar="DIR", help="the server's key and certificate (made on first use; "
                                                    "default: opcua-pki beside the journal)")
    opcua.add_argument("--trust", metavar="DIR", help="accept only the client certificates in DIR (DER or "
                                                      "PEM files; default: any client that completes the "
                                                      "SignAndEncrypt handshake may try a password)")
    opcua.add_argument("--recipe", metavar="RECIPE", help="the recipe a client's Start runs a lot of")
    opcua.add_argument("--parts", type=part_count, default=None, metavar="N",
                       help="parts per lot started by a client (default: the recipe's lot size)")
    opcua.add_argument("--set", dest="values", action="append", default=[], metavar="NAME=VALUE",
                       help="a recipe parameter value (repeatable)")
    opcua.add_argument("--user", metavar="ID", help="who runs the lots a client starts (password asked)")
    opcua.add_argument("--speed", type=speed_factor, default=1.0, metavar="K",
                       help="simulated cells only: play K times faster than real time")
    opcua.set_defaults(func=handle_serve_opcua)


def handle_serve_opcua(args: argparse.Namespace) -> int:
    from microfactory.access.users import UserBook
    from microfactory.cli.run import _values, authorise_run
    from microfactory.engine.api import Controller, EngineThread, load_cell, load_recipe
    from microfactory.opcua.server import CellServer

    cell = load_cell(args.cell)
    if args.trust and not Path(args.trust).is_dir():
        raise ConfigError.single(args.trust, "--trust names no folder",
                                 hint="give a folder holding the client certificates to accept")
    if not Path(args.db).exists():
        raise ConfigError.single(args.db, "no such journal: the OPC UA server's users live in it",
                                 hint=f"make it with a first admin: microfactory users init --db {args.db}")
    procedure = load_recipe(args.recipe, cell=cell, values=_values(args.values)) if args.recipe else None
    controller = Controller(cell, speed=args.speed, db=args.db)
    if UserBook(controller.journal).empty:
        controller.journal.close()
        raise ConfigError.single(args.db, "this journal has no users, and the OPC UA server allows no "
                                 "anonymous access", hint=f"microfactory users init --db {args.db}, then "
                                 "users add ... --role operator")
    if procedure is not None:
        session = authorise_run(controller.journal, procedure, args.user)
        if session is not None:
            controller.session, controller.user = session, session.user.id
    thread = EngineThread(controller)
    thread.start()
    start_lot = (lambda: thread.run_lot(procedure, parts=args.parts)) if procedure is not None else None
    server = CellServer(controller, thread, endpoint=args.endpoint,
                        certificates=pki_folder(args.pki, args.db), start_lot=start_lot,
                        trusted=args.trust)
    done = threading.Event()
    try:
        server.start()
        print(f"serving cell {server.cell_id} on {args.endpoint} (OPC UA, PackML; Basic256Sha256 "
              f"SignAndEncrypt; the users of {args.db}); certificate {server.certificate}; Ctrl-C stops",
              file=sys.stderr)
        signal.signal(signal.SIGINT, lambda *_: done.set())
        signal.signal(signal.SIGTERM, lambda *_: done.set())
        done.wait()
    finally:
        server.stop()
        thread.stop()
    print("stopped serving", file=sys.stderr)
    return EXIT_OK
