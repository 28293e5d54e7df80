"""How the cell reaches its MQTT broker: address, Sparkplug ids, TLS and credentials.

Read from the command line (``--mqtt HOST:PORT`` and its companions, added by :func:`add_arguments` to
``run`` and ``gui``). Bad values exit 2 before anything starts. The password is never an argument (it
would show in ``ps`` and in shell history): it comes from ``MICROFACTORY_MQTT_PASSWORD``.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

from microfactory.errors import ConfigError
from microfactory.mqtt.sparkplug import check_id

PASSWORD_ENV = "MICROFACTORY_MQTT_PASSWORD"
DEFAULT_GROUP = "microfactory"
DEFAULT_PORT = 1883
DEFAULT_TLS_PORT = 8883


@dataclass(frozen=True)
class MqttOptions:
    """Everything the edge node needs to connect; ``edge_node`` None means the cell's id.

    ``tls`` turns TLS on with the system's trusted CAs, or with ``ca_file`` when given; ``cert_file`` and
    ``key_file`` give a client certificate (brokers that authenticate clients by certificate).
    ``keepalive_s`` is the MQTT keep-alive (s): the broker publishes the NDEATH will about 1.5 times
    this long after the cell vanished. ``reconnect_min_s``/``reconnect_max_s`` bound the reconnect
    backoff (it doubles after each failed attempt).
    """

    host: str
    port: int = DEFAULT_PORT
    group: str = DEFAULT_GROUP
    edge_node: str | None = None
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    keepalive_s: int = 10
    reconnect_min_s: int = 1
    reconnect_max_s: int = 30
    queue_size: int = 100_000


def broker_address(text: str) -> tuple[str, int | None]:
    """``HOST:PORT`` (or ``HOST``, or ``[v6addr]:PORT``) → (host, port or None)."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, ""
    if not host:
        raise argparse.ArgumentTypeError(f"{text!r}: no broker host (write HOST:PORT, e.g. localhost:1883)")
    if not port_text:
        return host, None
    try:
        port = int(port_text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: the port {port_text!r} is not a number") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: the port must be 1 to 65535")
    return host, port


def sparkplug_id(text: str) -> str:
    try:
        return check_id(text, "--mqtt-group/--mqtt-node")
    except ConfigError as exc:  # → argparse's exit 2 with its message
        raise argparse.ArgumentTypeError(str(exc)) from None


def _readable_file(text: str) -> str:
    if not Path(text).is_file():
        raise argparse.ArgumentTypeError(f"{text}: no such file")
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``--mqtt`` options of ``run`` and ``gui`` (off unless ``--mqtt`` is given)."""
    group = parser.add_argument_group("MQTT Sparkplug B events (off unless --mqtt is given)")
    group.add_argument("--mqtt", type=broker_address, metavar="HOST:PORT",
                       help="publish the cell's events to this broker as Sparkplug B (port 1883, 8883 "
                            "with --mqtt-tls)")
    group.add_argument("--mqtt-group", type=sparkplug_id, default=DEFAULT_GROUP, metavar="ID",
                       help="Sparkplug group id (default: %(default)s)")
    group.add_argument("--mqtt-node", type=sparkplug_id, default=None, metavar="ID",
                       help="Sparkplug edge node id (default: the cell's id)")
    group.add_argument("--mqtt-user", metavar="NAME",
                       help=f"broker user name; the password is read from {PASSWORD_ENV}")
    group.add_argument("--mqtt-tls", action="store_true", help="connect with TLS (the system's CAs "
                                                                "unless --mqtt-ca)")
    group.add_argument("--mqtt-ca", type=_readable_file, metavar="PEM", help="CA certificate(s) for TLS")
    group.add_argument("--mqtt-cert", type=_readable_file, metavar="PEM", help="client certificate (TLS)")
    group.add_argument("--mqtt-key", type=_readable_file, metavar="PEM", help="client key (TLS)")


def from_arguments(args: argparse.Namespace) -> MqttOptions | None:
    """The options ``add_arguments`` read, or None when ``--mqtt`` was not given (``ConfigError``: exit 2)."""
    if getattr(args, "mqtt", None) is None:
        return None
    host, port = args.mqtt
    tls = bool(args.mqtt_tls or args.mqtt_ca or args.mqtt_cert)
    if bool(args.mqtt_key) != bool(args.mqtt_cert):
        raise ConfigError.single("--mqtt-cert/--mqtt-key", "a client certificate needs its key and a key "
                                 "its certificate", hint="give both --mqtt-cert PEM and --mqtt-key PEM")
    password = os.environ.get(PASSWORD_ENV) if args.mqtt_user else None
    if args.mqtt_user and password is None:
        raise ConfigError.single("--mqtt-user", f"{args.mqtt_user} has no password: {PASSWORD_ENV} is "
                                                "not set",
                                 hint=f"export {PASSWORD_ENV}=... (it is never given as an argument)")
    return MqttOptions(host=host, port=port or (DEFAULT_TLS_PORT if tls else DEFAULT_PORT),
                       group=args.mqtt_group, edge_node=args.mqtt_node, username=args.mqtt_user,
                       password=password, tls=tls, ca_file=args.mqtt_ca, cert_file=args.mqtt_cert,
                       key_file=args.mqtt_key)
