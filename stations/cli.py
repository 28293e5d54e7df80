"""CLI commands contributed by the station drivers (entry point ``microfactory.cli`` → ``stations``).

A plain list of each driver's ``register(subparsers)`` call, one line per driver.
"""

from __future__ import annotations

import argparse

from stations.grbl import cli as grbl_cli
from stations.vision import cli as vision_cli
from stations.wash import cli as wash_cli


def register(sub: argparse._SubParsersAction) -> None:
    """Add every driver's subcommands to the ``microfactory`` parser."""
    grbl_cli.register(sub)
    wash_cli.register(sub)
    vision_cli.register(sub)
