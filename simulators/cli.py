"""``microfactory sim KIND``: run one simulator on a pty until Ctrl-C or SIGTERM.

The first line on stdout is the pty path (flushed at once, so a script can read it and open the port);
everything after is logging on stderr. KIND is any simulator registered under the entry point group
``microfactory.simulators``, so the wash and camera simulators appear here without editing this file.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from importlib.metadata import entry_points
from types import FrameType
from typing import Any

from microfactory.cli import arguments
from microfactory.clock import ScaledClock

log = logging.getLogger("simulators.cli")
GROUP = "microfactory.simulators"


def _kinds() -> list[str]:
    return sorted(ep.name for ep in entry_points(group=GROUP))


def _value(text: str) -> Any:
    """``--set`` values: true/false, integers, floats, else the string."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def options_from(args: argparse.Namespace) -> dict[str, Any]:
    """The simulator options from ``--baud``, ``--latency-ms`` and ``--set key=value`` (``settings.130=200``
    or ``$130=200`` write a device setting)."""
    options: dict[str, Any] = {}
    settings: dict[int, Any] = {}
    for item in args.set or []:
        key, eq, value = item.partition("=")
        if not eq:
            raise SystemExit(f"--set {item!r}: expected key=value, e.g. --set motion=false")
        if key.startswith(("settings.", "$")):
            settings[int(key.split(".", 1)[-1].lstrip("$"))] = _value(value)
        else:
            options[key] = _value(value)
    if settings:
        options["settings"] = settings
    if args.baud is not None:
        options["baud"] = args.baud
    if args.latency_ms is not None:
        options["latency_ms"] = args.latency_ms
    return options


def handler(args: argparse.Namespace) -> int:
    """Start the simulator, print its port, serve until a signal; the exit code."""
    if not logging.getLogger().handlers:  # the core CLI may not have configured logging
        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    eps = {ep.name: ep for ep in entry_points(group=GROUP)}
    simulator = eps[args.kind].load()
    handle = simulator.start(options_from(args), ScaledClock(args.speed))
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_signal)
    print(handle.port, flush=True)
    log.info("%s simulator %s on %s (Ctrl-C to stop)", args.kind, handle.identity, handle.port)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        log.info("interrupted")
    finally:
        signal.signal(signal.SIGTERM, previous)
        handle.close()
        log.info("%s simulator closed", args.kind)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``sim KIND [--baud B] [--latency-ms L] [--speed K] [--set key=value ...]``."""
    parser = subparsers.add_parser("sim", help="run a station simulator on a pty (prints the port first)",
                                   description=__doc__)
    parser.add_argument("kind", choices=_kinds(), help="station kind to simulate")
    parser.add_argument("--baud", type=arguments.positive_int, default=None,
                        help="link rate in bit/s (default 115200)")
    parser.add_argument("--latency-ms", type=arguments.non_negative_float, default=None,
                        help="one-way link latency, ms")
    parser.add_argument("--speed", type=arguments.speed_factor, default=1.0,
                        help="process-time speed factor (×)")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help="simulator option, e.g. motion=false, identity=CUT-1, settings.130=200")
    parser.set_defaults(func=handler)


def main(argv: list[str] | None = None) -> int:
    """Standalone entry (``python -m simulators.cli sim grbl``) for when the core CLI is not at hand."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="simulators")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
