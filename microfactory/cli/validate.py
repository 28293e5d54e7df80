"""``microfactory validate RECIPE --cell CELL``: check a recipe against a cell, run nothing.

Exit 0 when the recipe is valid, 2 when not (every problem listed, each with file:line:column, the field
and what to change). ``--json`` prints one JSON object (``valid``, ``problems`` with ``file``, ``line``,
``column``, ``field``, ``message``; plus ``recipe``, ``cell`` and the compiled ``steps``).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from microfactory.errors import SourceLocation
from microfactory.recipe.validate import Problem, ValidationReport, validate_recipe

EXIT_VALID, EXIT_INVALID = 0, 2


def register(subparsers: Any) -> None:
    """Add the ``validate`` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "validate", help="check a recipe against a cell file (runs nothing)",
        description="Check a recipe against a cell: parameters, stations, G-code files (every line against "
                    "its station's envelope and limits), drawings. Exit 0 valid, 2 not.")
    parser.add_argument("recipe", metavar="RECIPE", help="recipe file (YAML, see docs/recipes.md)")
    parser.add_argument("--cell", required=True, metavar="CELL", help="cell file (YAML, see docs/cells.md)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument("--set", dest="values", action="append", default=[], metavar="NAME=VALUE",
                        help="a parameter value for this check (repeatable)")
    parser.add_argument("--check-ports", action="store_true",
                        help="also open each real (non-sim) port the recipe uses")
    parser.set_defaults(func=handle)


def parse_values(items: list[str]) -> tuple[dict[str, str], list[Problem]]:
    """``["feed=600", "passes=2"]`` → ``{"feed": "600", "passes": "2"}`` plus problems for bad items."""
    values: dict[str, str] = {}
    problems: list[Problem] = []
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            problems.append(Problem.at(SourceLocation("--set", None, None, item),
                                       f"--set {item!r} is not NAME=VALUE; write e.g. --set feed=600"))
            continue
        values[name.strip()] = value.strip()
    return values, problems


def handle(args: argparse.Namespace) -> int:
    """Validate and print the report; return 0 when valid, 2 when not."""
    values, bad = parse_values(list(args.values))
    report = validate_recipe(args.recipe, args.cell, values=values, check_ports=args.check_ports)
    report.problems[:0] = bad
    if args.json:
        json.dump(report.to_dict(), sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render(report))
    return EXIT_VALID if report.valid else EXIT_INVALID


def render(report: ValidationReport) -> str:
    """The human report: one block per problem, then a one-line verdict."""
    lines = [str(p) for p in report.problems]
    if report.valid and report.procedure is not None:
        proc = report.procedure
        route = " → ".join(f"{s.id}" + (f"@{s.station}" if s.station else "") for s in proc.steps)
        lines.append(f"{report.recipe}: valid — {proc.recipe_id} v{proc.version}, {len(proc.steps)} steps "
                     f"({route}), lot of {proc.lot_size}")
    else:
        lines.append(f"{report.recipe}: NOT valid — {len(report.problems)} problem(s); nothing was run")
    return "\n".join(lines) + "\n"
