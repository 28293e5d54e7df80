"""The ``microfactory`` command line.

Core commands live in this package; packages above the core (``stations``, ``simulators``, ``ui``)
contribute theirs through the ``microfactory.cli`` entry point group, so the core never imports them by
name. Every handler returns its exit code: 0 success, 1 the job failed (alarm, fault, timeout, a part
failed), 2 bad input (a malformed file, a refused program, a wrong argument).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import re
import sys
from collections.abc import Sequence

from microfactory import __version__
from microfactory.errors import ConfigError, MicrofactoryError, SafetyRefusal

#: Core command modules, each with ``register(subparsers)``.
CORE_COMMANDS = ("microfactory.cli.bench", "microfactory.cli.validate", "microfactory.cli.run",
                 "microfactory.cli.journal", "microfactory.cli.users", "microfactory.cli.report",
                 "microfactory.cli.resume", "microfactory.cli.drawing", "microfactory.cli.serve",
                 "microfactory.cli.mqtt_watch",
                 "microfactory.cli.shop")

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="microfactory",
        description="Cell controller for table-top micro-factories: cut, machine, wash, inspect.",
        epilog="Start with `microfactory demo` (a lot on the simulated cell). "
               "`microfactory COMMAND --help` explains each command.")
    parser.add_argument("--version", action="version", version=f"microfactory {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in CORE_COMMANDS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue  # a core command still being written; not an installed plugin failure
        module.register(sub)
    from microfactory.registry import command_entry_points

    for ep in command_entry_points():
        try:
            register = ep.load()
        except ImportError as exc:
            print(f"warning: commands from {ep.value} are unavailable: {exc}", file=sys.stderr)
            continue
        register(sub)
    _plain_help(parser)
    return parser


_ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|exc|obj):`(~?)([^`]+)`")


def plain_text(text: str) -> str:
    """Docstring markup as a terminal shows it: ````x```` → ``x``, ``:class:`~a.B``` → ``B``."""
    text = _ROLE.sub(lambda m: m.group(2).rsplit(".", 1)[-1] if m.group(1) else m.group(2), text)
    return text.replace("``", "")


def _plain_help(parser: argparse.ArgumentParser) -> None:
    """Clean the description, epilog and option help of ``parser`` and every subcommand under it.

    Plugins often pass a module docstring as the description; ``--help`` must not show its markup.
    """
    for attr in ("description", "epilog"):
        value = getattr(parser, attr)
        if isinstance(value, str):
            setattr(parser, attr, plain_text(value))
    for action in parser._actions:
        if isinstance(action.help, str):
            action.help = plain_text(action.help)
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                if isinstance(choice.help, str):
                    choice.help = plain_text(choice.help)
            for sub in set(action.choices.values()):
                _plain_help(sub)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (the console script exits with it)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        code = args.func(args)
    except (ConfigError, SafetyRefusal) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except MicrofactoryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


def entry() -> None:
    sys.exit(main())
