"""``microfactory mqtt-watch HOST:PORT``: print a cell's Sparkplug B messages, decoded, as they arrive.

What a plant engineer runs to see what the cell publishes (``--mqtt`` on ``run`` or ``gui``) without a
SCADA: one line per message (type, edge node/device, seq, metrics). It only subscribes; ``--rebirth``
also asks the edge nodes it hears for their births (a Sparkplug NCMD, as a host application does).
Ends after ``--count`` messages, after ``--seconds``, or on Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
import threading
from typing import Any

from microfactory.cli.arguments import positive_float, positive_int
from microfactory.mqtt import options as mqtt_options
from microfactory.mqtt.watch import Message, Watcher

EXIT_OK, EXIT_FAILED = 0, 1


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("mqtt-watch", help="print a cell's Sparkplug B messages, decoded",
                              description=__doc__.split("\n\n", 1)[1] if __doc__ else None)
    p.add_argument("broker", type=mqtt_options.broker_address, metavar="HOST:PORT", help="the MQTT broker")
    p.add_argument("--mqtt-group", type=mqtt_options.sparkplug_id, default=mqtt_options.DEFAULT_GROUP,
                   metavar="ID",
                   help="Sparkplug group id (default: %(default)s)")
    p.add_argument("--count", type=positive_int, default=None, metavar="N", help="stop after N messages")
    p.add_argument("--seconds", type=positive_float, default=None, metavar="S", help="stop after S seconds")
    p.add_argument("--rebirth", action="store_true", help="ask the edge nodes heard for their births")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    host, port = args.broker
    options = mqtt_options.MqttOptions(host=host, port=port or mqtt_options.DEFAULT_PORT,
                                       group=args.mqtt_group)
    enough = threading.Event()
    seen = [0]
    asked: set[str] = set()

    def show(message: Message) -> None:
        print(message.line(), flush=True)
        seen[0] += 1
        if args.rebirth and message.topic.edge_node not in asked:
            asked.add(message.topic.edge_node)
            watcher.request_rebirth(message.topic.edge_node)
        if args.count is not None and seen[0] >= args.count:
            enough.set()

    watcher = Watcher(options, rebirth_on_connect=args.rebirth, on_message=show)
    try:
        watcher.start()
    except TimeoutError as exc:
        print(f"error: {exc}; is the broker running (mosquitto) and the address right?", file=sys.stderr)
        return EXIT_FAILED
    print(f"watching spBv1.0/{options.group}/# on {host}:{options.port}", file=sys.stderr)
    try:
        enough.wait(args.seconds)
    except KeyboardInterrupt:
        pass
    finally:
        watcher.stop()
    return EXIT_OK
