"""``microfactory resume --db PATH``: continue a lot whose process died, or close it with a reason.

The journal names the lot's recipe and cell files; ``--recipe``/``--cell`` override them (the recipe must
still be the file the lot started with: same id, version and sha256). Steps that were in flight are
decided by their interrupt policy; machining asks the operator (rework, scrap, or continue from the
first line that may not have run, where the station journaled how far its program got) on the terminal,
or takes ``--decide rework|scrap|continue`` in scripts. ``--close --reason R`` ends the lot without
resuming. Once the
journal has users, a decision or a close needs ``--user`` with the role (engineer or quality decide
interrupted steps; quality closes lots). Exit 0 when the lot completed (or was closed), 1 when it stopped
or aborted, 2 for bad input (no open lot, another recipe).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from microfactory.access.users import Permission, UserBook
from microfactory.cli import arguments
from microfactory.cli.signin import signed_in
from microfactory.engine import resume
from microfactory.engine.journal import Journal
from microfactory.errors import ConfigError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "resume",
        help="resume a lot whose process died, or close it (--close --reason)",
        description="Find the open lot in the journal, reconnect its cell, ask each station where it is, "
        "decide each step that was in flight by its policy (never re-run silently) and run the rest. "
        "Everything is journaled and audited.",
    )
    parser.add_argument("--db", required=True, metavar="PATH", help="the SQLite journal")
    parser.add_argument("--lot", help="the open lot (default: the latest one)")
    parser.add_argument("--recipe", help="the recipe file (default: the one the lot recorded)")
    parser.add_argument("--cell", help="the cell file (default: the one the lot recorded)")
    parser.add_argument("--speed", type=arguments.speed_factor, default=1.0, metavar="K",
                        help="simulated stations only")
    parser.add_argument(
        "--decide",
        choices=("rework", "scrap", "continue"),
        help="the answer for interrupted machining when nobody is at the terminal (continue: from the "
        "first line that may not have run, where the station journaled how far it got; else refused)",
    )
    parser.add_argument("--close", action="store_true", help="end the lot without resuming (needs --reason)")
    parser.add_argument("--reason", default="", help="why the lot is closed")
    parser.add_argument("--user", metavar="ID", help="who decides (the password is asked)")
    parser.add_argument(
        "--simulated-operator",
        action="store_true",
        help="answer manual steps as the demo's simulated operator does (simulated cells)",
    )
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    journal = Journal(args.db) if _exists(args.db) else Journal.open_existing(args.db)
    try:
        run = resume.open_lot(journal, args.lot)
        book = UserBook(journal)
        need = Permission.CLOSE_LOT if args.close else Permission.DECIDE_RESUME
        user = "" if book.empty and not args.user else signed_in(book, args.user, need).user.id
        if args.close:
            if not args.reason.strip():
                raise ConfigError.single(args.db, "closing a lot needs a reason", hint="--reason TEXT")
            closed = resume.close_lot(journal, run["lot"], reason=args.reason, by=user)
            print(f"lot {closed['lot']} closed without resuming: {args.reason}")
            return 0
        recipe, cell_path = args.recipe or run["recipe_path"], args.cell or run["cell_path"]
        if not recipe or not cell_path:
            raise ConfigError.single(
                args.db,
                f"lot {run['lot']} did not record its recipe and cell files",
                hint="give --recipe FILE --cell FILE",
            )
    finally:
        journal.close()
    return _resume(args, run, recipe, cell_path, user)


def _exists(path: str) -> bool:
    from pathlib import Path

    return Path(path).is_file()


def _resume(args: argparse.Namespace, run: dict[str, Any], recipe: str, cell_path: str, user: str) -> int:
    from microfactory.engine.api import Controller, load_cell, load_recipe

    cell = load_cell(cell_path)
    procedure = load_recipe(recipe, cell=cell, values={k: str(v) for k, v in run["parameters"].items()})

    def ask(item: resume.Interrupted) -> str:
        if args.decide:
            if args.decide not in item.choices:
                raise ConfigError.single(
                    args.db,
                    f"--decide {args.decide} for part {item.record.part}: step {item.record.step!r} "
                    "journaled no line to continue from",
                    hint=f"give --decide {' or '.join(item.choices)}",
                )
            if args.decide == resume.Decision.CONTINUE:
                print(f"part {item.record.part}: {item.continue_text()}", file=sys.stderr)
            return str(args.decide)
        print(item.question(), file=sys.stderr)
        answer = input(" / ".join(item.choices) + ": ").strip().lower() if sys.stdin.isatty() else ""
        if answer not in item.choices:
            raise ConfigError.single(
                args.db,
                f"no decision for part {item.record.part} (got {answer!r})",
                hint=f"answer {' or '.join(item.choices)}, or give --decide",
            )
        return answer

    async def go() -> Any:
        from rich.console import Console
        from rich.live import Live
        from rich.text import Text

        from microfactory.cli.run import _operator  # the same terminal operator as `run`
        from microfactory.events import Event, EventKind

        console = Console()
        prompts: asyncio.Queue[Event] = asyncio.Queue()
        async with Controller(cell, speed=args.speed, db=args.db, user=user) as ctl:
            ctl.bus.subscribe(prompts.put_nowait, [EventKind.PROMPT])
            with Live(Text(f"resuming lot {run['lot']}"), console=console, transient=True) as live:
                operator = asyncio.ensure_future(
                    _operator(ctl, prompts, console, live, procedure, args.simulated_operator)
                )
                try:
                    return await resume.resume(ctl._engine(), procedure, lot=run["lot"], ask=ask, by=user)
                finally:
                    operator.cancel()

    summary = asyncio.run(go())
    print(
        f"lot {summary.lot} resumed and ended {summary.state}: {summary.passed} passed, {summary.scrapped} "
        f"scrapped, {summary.unfinished} unfinished"
    )
    return 0 if summary.state == "complete" else 1
