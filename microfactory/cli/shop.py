"""``microfactory shop …``: the shop's PostgreSQL store — set it up, sync cells to it, read it as a partner.

The administrator (the database's owner) runs ``shop init``, ``shop partner add``, ``shop cell add``,
``shop cell serve`` and ``shop station add`` with the owner's URL. A cell ships its journal with
``shop sync`` (or ``run --store``) using the cell's login; a partner reads with its own login and
``--partner``: ``shop status``, ``shop report``, ``shop genealogy``; it books pooled machine time with
``shop book`` and shares a part's record with its customer with ``shop share``. New logins' passwords
come from ``MICROFACTORY_NEW_PASSWORD`` or are asked; connection passwords go in the URL or
``PGPASSWORD``. Exit 0, 1 when the store is unreachable or a check fails, 2 for bad input.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import threading
from typing import Any

from rich.console import Console
from rich.table import Table

from microfactory.errors import ConfigError, StateError

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def store_url(text: str) -> str:
    """``--store``: a ``postgresql://`` URL (exit 2 otherwise)."""
    from urllib.parse import urlsplit

    if urlsplit(text).scheme not in ("postgresql", "postgres"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a PostgreSQL URL (postgresql://USER@HOST/DB)")
    return text


def register(subparsers: Any) -> None:
    """Add ``shop`` and its subcommands."""
    shop = subparsers.add_parser("shop", help="the shop's shared PostgreSQL store: partners, cells, sync, "
                                              "pooled machine time",
                                 description=__doc__.split("\n\n")[1] if __doc__ else None)
    sub = shop.add_subparsers(dest="shop_command", metavar="COMMAND", required=True)

    def command(name: str, help_text: str, func: Any, *, partner: bool = True) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text, description=help_text)
        parser.add_argument("--store", required=True, type=store_url, metavar="URL",
                            help="the shop store, postgresql://USER[:PASSWORD]@HOST[:PORT]/DB")
        if partner:
            parser.add_argument("--partner", required=True, metavar="NAME", help="the partner you act for")
        parser.set_defaults(func=func)
        return parser

    command("init", "create or migrate the store's schema (the database owner's URL)", _init, partner=False)
    p = command("partner", "register a partner company and its login", _partner, partner=False)
    p.add_argument("action", choices=["add"])
    p.add_argument("name", metavar="NAME")
    p.add_argument("--login", default="", help="its PostgreSQL role (default: NAME)")
    p.add_argument("--title", default="", help="the company's name")
    c = command("cell", "register a cell (add) or let it file lots for another partner (serve)", _cell)
    c.add_argument("action", choices=["add", "serve"])
    c.add_argument("name", metavar="CELL")
    c.add_argument("--login", default="", help="the cell's PostgreSQL role (default: cell-CELL)")
    s = command("station", "register a station of a cell, owned by a partner", _station, partner=False)
    s.add_argument("action", choices=["add"])
    s.add_argument("cell", metavar="CELL")
    s.add_argument("station", metavar="STATION")
    s.add_argument("--owner", required=True, metavar="PARTNER")
    s.add_argument("--kind", default="")
    s.add_argument("--pooled", action="store_true", help="other partners may book it")
    y = command("sync", "ship a cell's journal to the store (exactly once; resumes where the store stops)",
                _sync)
    y.add_argument("--db", required=True, metavar="PATH", help="the cell's SQLite journal")
    y.add_argument("--cell", required=True, metavar="CELL")
    y.add_argument("--follow", action="store_true", help="keep syncing (Ctrl-C stops after a last pass)")
    v = command("verify", "check a cell's audit chain in the store (and against its journal)", _verify)
    v.add_argument("--cell", required=True, metavar="CELL")
    v.add_argument("--db", metavar="PATH", help="the cell's journal: its last hash must match the store's")
    st = command("status", "the shop now: stations and who holds them, your lots in progress, utilisation",
                 _status)
    st.add_argument("--json", action="store_true")
    r = command("report", "your month: machine hours, energy, parts", _report)
    r.add_argument("--month", required=True, metavar="YYYY-MM")
    r.add_argument("--json", action="store_true")
    b = command("book", "queue a booking of a (pooled) station", _book)
    b.add_argument("--cell", required=True)
    b.add_argument("--station", required=True)
    b.add_argument("--lot", default="")
    b.add_argument("--hours", type=float, default=0.0)
    cl = command("claim", "take your next booking of a station and hold it (prints the booking and lease)",
                 _claim)
    cl.add_argument("--cell", required=True)
    cl.add_argument("--station", required=True)
    cl.add_argument("--lease-s", type=float, default=120.0, help="the lease (s); renew with claim --renew")
    cl.add_argument("--renew", type=int, metavar="BOOKING", help="extend the lease of this held booking")
    rl = command("release", "free a held station and close its booking", _release)
    rl.add_argument("booking", type=int, metavar="BOOKING")
    rl.add_argument("--interrupted", action="store_true", help="the work stopped before it was done")
    g = command("genealogy", "a part's steps across cells, as far as you may see them", _genealogy)
    g.add_argument("part", metavar="PART", help="the part's shop id, CELL/PART (where it was born)")
    g.add_argument("--json", action="store_true")
    ln = command("link", "say that a part of your cell is a part born elsewhere (the value chain)", _link)
    ln.add_argument("--cell", required=True)
    ln.add_argument("--part", required=True, help="its id in your cell's journal")
    ln.add_argument("--as", dest="uid", required=True, metavar="CELL/PART", help="its shop id")
    sh = command("share", "let a customer read your steps (or measurements) of a part", _share)
    sh.add_argument("part", metavar="PART", help="the part's shop id, CELL/PART")
    sh.add_argument("--customer", required=True)
    sh.add_argument("--scope", choices=["steps", "measurements"], default="steps")


def _new_password(what: str) -> str:
    password = os.environ.get("MICROFACTORY_NEW_PASSWORD", "")
    if not password:
        if not sys.stdin.isatty():
            raise ConfigError.single(what, "no password for the new login",
                                     hint="set MICROFACTORY_NEW_PASSWORD, or run it on a terminal")
        password = getpass.getpass(f"password for {what}: ")
    if len(password) < 8:
        raise ConfigError.single(what, "the password is shorter than 8 characters",
                                 hint="choose a longer one")
    return password


def _init(args: argparse.Namespace) -> int:
    from microfactory.shop import schema

    old = schema.migrate(args.store)
    print(f"shop store at schema {schema.VERSION}" + ("" if old is None else f" (migrated from {old})"))
    return EXIT_OK


def _partner(args: argparse.Namespace) -> int:
    from microfactory.shop import store

    login = store.add_partner(args.store, args.name, _new_password(f"partner {args.name}"), name=args.title,
                              role=args.login)
    print(f"partner {args.name}: login {login.role}")
    return EXIT_OK


def _cell(args: argparse.Namespace) -> int:
    from microfactory.shop import store

    if args.action == "serve":
        store.serve(args.store, args.name, args.partner)
        print(f"cell {args.name} may now file lots for {args.partner}")
        return EXIT_OK
    login = store.add_cell(args.store, args.name, args.partner, _new_password(f"cell {args.name}"),
                           role=args.login)
    print(f"cell {args.name} of {args.partner}: login {login.role}")
    return EXIT_OK


def _station(args: argparse.Namespace) -> int:
    from microfactory.shop import store

    store.add_station(args.store, args.cell, args.station, args.owner, kind=args.kind, pooled=args.pooled)
    print(f"station {args.cell}/{args.station} of {args.owner}" + (", pooled" if args.pooled else ""))
    return EXIT_OK


def _sync(args: argparse.Namespace) -> int:
    from microfactory.shop.sync import CellSync, follow

    sync = CellSync(args.db, args.store, cell=args.cell, owner=args.partner)
    try:
        if args.follow:
            stop = threading.Event()
            try:
                follow([sync], stop)
            except KeyboardInterrupt:
                stop.set()
                follow([sync], stop)
            return EXIT_OK
        done = sync.sync()
        print(f"{args.cell}: {done.records} record(s) shipped; the store holds the chain up to record "
              f"{done.high_water} ({done.last_hash[:12]})")
        return EXIT_OK
    finally:
        sync.close()


def _connect(args: argparse.Namespace) -> Any:
    from microfactory.shop.store import connect

    return connect(args.store, args.partner, autocommit=True)


def _verify(args: argparse.Namespace) -> int:
    from microfactory.engine.journal import Journal
    from microfactory.shop.verify import verify_cell

    with _connect(args) as db:
        result = verify_cell(db, args.cell)
    if args.db:
        local = Journal.open_existing(args.db)
        mine = local.verify()
        local.close()
        result.problems += [f"journal: {p}" for p in mine.problems]
        if mine.records > result.records:
            behind = mine.records - result.records
            print(f"{args.cell}: {behind} record(s) of the journal are not shipped yet")
        elif mine.last_hash != result.last_hash:
            result.problems.append(f"the journal's last hash {mine.last_hash[:12]} is not the store's "
                                   f"{result.last_hash[:12]}")
    for problem in result.problems:
        print(f"PROBLEM: {problem}")
    if result.intact:
        print(f"{args.cell}: audit chain intact in the store: {result.records} records, last hash "
              f"{result.last_hash[:12]}")
    return EXIT_OK if result.intact else EXIT_FAILED


def _status(args: argparse.Namespace) -> int:
    from microfactory.shop.views import status

    with _connect(args) as db:
        now = status(db)
    if args.json:
        print(json.dumps(now.as_dict()))
        return EXIT_OK
    console = Console()
    table = Table(title=f"Shop as {now.partner} sees it — your cells: {', '.join(now.cells) or 'none'}")
    for col in ("cell", "station", "owner", "pooled", "held by", "busy 24 h", "utilisation"):
        table.add_column(col)
    for s in now.stations:
        table.add_row(s.cell, s.station, s.owner, "yes" if s.pooled else "", s.holder or "-",
                      f"{s.busy_h_24h:.2f} h", f"{s.utilisation_24h:.0%}")
    console.print(table)
    lots = ", ".join(f"{lot['lot']} ({lot['cell']})" for lot in now.lots_in_progress) or "none"
    console.print(f"lots in progress: {lots}; bookings queued: {now.queued}")
    return EXIT_OK


def _report(args: argparse.Namespace) -> int:
    from microfactory.shop.views import month_bounds, report

    month_bounds(args.month)  # bad input before connecting
    with _connect(args) as db:
        out = report(db, args.month)
    if args.json:
        print(json.dumps(out))
        return EXIT_OK
    console = Console()
    title = f"{out['partner']} — {out['month']}: {out['lots']} lot(s), parts {out['parts'] or '{}'}"
    table = Table(title=title)
    for col in ("cell", "station", "owner", "machine h", "energy Wh", "steps"):
        table.add_column(col)
    for r in out["by_station"]:
        table.add_row(r["cell"], r["station"], r["owner"], f"{r['machine_h']:.3f}", f"{r['energy_wh']:.1f}",
                      str(r["steps"]))
    console.print(table)
    console.print(f"total {out['machine_h']:.3f} machine h, {out['energy_wh']:.1f} Wh; pooled stations held "
                  f"{out['held_h']:.3f} h")
    for r in out["lent"]:
        console.print(f"your {r['cell']}/{r['station']} worked {r['machine_h']:.3f} h for {r['partner']}")
    return EXIT_OK


def _book(args: argparse.Namespace) -> int:
    from microfactory.shop.booking import book

    with _connect(args) as db:
        number = book(db, cell=args.cell, station=args.station, lot=args.lot, hours=args.hours)
    print(f"booking {number}: {args.cell}/{args.station} queued for {args.partner}")
    return EXIT_OK


def _claim(args: argparse.Namespace) -> int:
    from microfactory.shop import booking

    with _connect(args) as db:
        if args.renew is not None:
            hold = booking.renew(db, booking.held(db, args.renew), lease_s=args.lease_s)
        else:
            got = booking.claim(db, cell=args.cell, station=args.station, lease_s=args.lease_s)
            if got is None:
                print(f"{args.cell}/{args.station}: nothing claimed (no booking of yours queued, or the "
                      "station is held by another until its lease ends)")
                return EXIT_FAILED
            hold = got
    print(f"booking {hold.booking}: {hold.cell}/{hold.station} held by {hold.partner} until "
          f"{hold.lease_until.isoformat(timespec='seconds')}")
    return EXIT_OK


def _release(args: argparse.Namespace) -> int:
    from microfactory.shop import booking

    with _connect(args) as db:
        try:
            hold = booking.held(db, args.booking)
        except StateError as exc:  # a booking that is not held by this partner: bad input
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        state = booking.BookingState.INTERRUPTED if args.interrupted else booking.BookingState.DONE
        booking.release(db, hold, state=state)
    print(f"booking {hold.booking}: {hold.cell}/{hold.station} released ({state.value})")
    return EXIT_OK


def _genealogy(args: argparse.Namespace) -> int:
    from microfactory.shop.chain import genealogy

    with _connect(args) as db:
        steps = genealogy(db, args.part)
    if args.json:
        print(json.dumps({"part": args.part, "steps": steps}, default=str))
        return EXIT_OK
    if not steps:
        print(f"no step of part {args.part} is visible to {args.partner}")
        return EXIT_BAD_INPUT
    table = Table(title=f"part {args.part} as {args.partner} sees it")
    for col in ("cell", "partner", "step", "station", "ok", "verdict"):
        table.add_column(col)
    for s in steps:
        table.add_row(s["cell"], s["partner"], s["step"], s["station"] or "",
                      "" if s["ok"] is None else ("yes" if s["ok"] else "NO"), s["verdict"] or "")
    Console().print(table)
    return EXIT_OK


def _link(args: argparse.Namespace) -> int:
    from microfactory.shop.chain import link_part

    with _connect(args) as db:
        moved = link_part(db, cell=args.cell, part=args.part, uid=args.uid)
    print(f"{args.cell}/{args.part} is part {args.uid} ({moved} step(s) of it already in the store)")
    return EXIT_OK


def _share(args: argparse.Namespace) -> int:
    from microfactory.shop.chain import share

    with _connect(args) as db:
        share(db, args.part, customer=args.customer, scope=args.scope)
    print(f"{args.customer} may read your {args.scope} of part {args.part}")
    return EXIT_OK
