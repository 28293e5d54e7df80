"""A Sparkplug B subscriber that decodes what an edge node publishes: for tests, benchmarks and people.

:class:`Watcher` subscribes to ``spBv1.0/<group>/#`` with paho-mqtt and keeps every message decoded as a
:class:`Message`. Like a Sparkplug host application, when it (re)connects it asks the edge nodes it
knows for a rebirth (``Node Control/Rebirth`` NCMD), so it never holds data whose birth it missed.
``microfactory mqtt-watch HOST:PORT`` prints the messages as they arrive.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from microfactory.mqtt.options import MqttOptions
from microfactory.mqtt.sparkplug import (
    REBIRTH,
    DataType,
    MessageType,
    Topic,
    decode,
    parse_topic,
    payload,
    topic,
)


@dataclass(frozen=True)
class Message:
    """One decoded Sparkplug message; ``received`` is ``time.perf_counter()`` at arrival (wall s)."""

    topic: Topic
    seq: int | None
    timestamp_ms: int
    metrics: dict[str, Any]
    received: float

    @property
    def kind(self) -> MessageType:
        return self.topic.message

    def line(self) -> str:
        """One line for a terminal: type, node/device, seq and the metrics."""
        where = self.topic.edge_node + (f"/{self.topic.device}" if self.topic.device else "")
        seq = "-" if self.seq is None else str(self.seq)
        values = ", ".join(f"{k}={v!r}" for k, v in self.metrics.items())
        return f"{self.kind.value:<6} {where:<24} seq={seq:<3} {values}"


class Watcher:
    """Subscribe to a group's Sparkplug traffic; ``messages`` grows as they arrive (thread-safe reads).

    ``on_message`` (optional) is called in paho's thread with each decoded message.
    """

    def __init__(self, options: MqttOptions, *, rebirth_on_connect: bool = True,
                 on_message: Callable[[Message], None] | None = None) -> None:
        self.options = options
        self.messages: list[Message] = []
        self.sessions = 0
        self._rebirth = rebirth_on_connect
        self._callback = on_message
        self._nodes: set[str] = set()
        self._cond = threading.Condition()
        self._client = paho.Client(CallbackAPIVersion.VERSION2, clean_session=True, protocol=paho.MQTTv311)
        if options.username:
            self._client.username_pw_set(options.username, options.password)
        if options.tls:
            self._client.tls_set(ca_certs=options.ca_file, certfile=options.cert_file,
                                 keyfile=options.key_file)
        self._client.reconnect_delay_set(1, 2)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message

    def start(self, timeout_s: float = 10.0) -> Watcher:
        """Connect and subscribe (returns once subscribed); ``TimeoutError`` when no broker answers."""
        self._client.connect_async(self.options.host, self.options.port, keepalive=10)
        self._client.loop_start()
        with self._cond:
            if not self._cond.wait_for(lambda: self.sessions > 0, timeout_s):
                self.stop()
                raise TimeoutError(f"no MQTT broker answered on {self.options.host}:{self.options.port} "
                                   f"within {timeout_s} s")
        return self

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def __enter__(self) -> Watcher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            return
        client.subscribe(f"spBv1.0/{self.options.group}/#", qos=0)

    def _on_subscribe(self, client: paho.Client, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        """Subscribed (SUBACK): from here on nothing published is missed; ask known nodes to rebirth."""
        if self._rebirth:
            for node in sorted(self._nodes):
                self.request_rebirth(node)
        with self._cond:
            self.sessions += 1
            self._cond.notify_all()

    def request_rebirth(self, edge_node: str) -> None:
        """Ask ``edge_node`` for its NBIRTH and DBIRTHs (what a Sparkplug host does when it lost track)."""
        body = payload([(REBIRTH, DataType.BOOLEAN, True)], seq=None)
        self._client.publish(topic(self.options.group, MessageType.NCMD, edge_node), body, qos=1)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        try:
            where = parse_topic(message.topic)
        except ValueError:
            return
        if where.message in (MessageType.NCMD, MessageType.DCMD):
            return
        seq, stamp, metrics = decode(bytes(message.payload))
        decoded = Message(where, seq, stamp, metrics, time.perf_counter())
        with self._cond:
            self._nodes.add(where.edge_node)
            self.messages.append(decoded)
            self._cond.notify_all()
        if self._callback is not None:
            self._callback(decoded)

    def wait_for(self, predicate: Callable[[Message], bool], timeout_s: float, *, after: int = 0) -> Message:
        """The first message (from index ``after`` on) matching ``predicate``; ``TimeoutError`` if none."""
        with self._cond:
            def found() -> Message | None:
                return next((m for m in self.messages[after:] if predicate(m)), None)

            if not self._cond.wait_for(lambda: found() is not None, timeout_s):
                kinds = [m.kind.value for m in self.messages[after:]]
                raise TimeoutError(f"no matching Sparkplug message within {timeout_s} s; saw {kinds[-20:]}")
            message = found()
            assert message is not None
            return message

    def snapshot(self) -> list[Message]:
        with self._cond:
            return list(self.messages)
