"""The cell as a Sparkplug B edge node: engine events out to an MQTT broker, never in the engine's way.

:class:`EdgeNode` subscribes to the cell's :class:`~microfactory.events.EventBus`. Its subscriber only
appends the event to a bounded queue (a few microseconds in whichever thread published); one thread of
its own (``mqtt-edge-<node>``) turns queued events into Sparkplug payloads and hands them to paho-mqtt,
whose network thread writes them and reconnects. So a slow, absent or vanished broker never stalls the
engine: the queue absorbs bursts, and when it is full (``queue_size`` events) an event is folded into
the latest one of the same kind and source (the newest value always arrives; the intermediate ones are
counted in ``dropped`` and published as the node metric ``MQTT/Dropped``).

Sparkplug B session rules kept here:

- The MQTT last will is an NDEATH carrying ``bdSeq``; the NBIRTH of the same session carries the same
  ``bdSeq``; each new session (a reconnect) increments it (0–255, wrapping).
- NBIRTH (``seq`` 0) then one DBIRTH per station, each with every metric and its current value, after
  each connect and on a host's ``Node Control/Rebirth`` NCMD; then NDATA/DDATA with the changed metrics
  only; ``seq`` counts every message of the session modulo 256.
- A station whose link drops gets DDEATH; a DBIRTH when it is back.
- A graceful stop publishes the NDEATH itself (QoS 1) before disconnecting.
- While the broker is away nothing is published; the next births carry the state as it is then.

Commands over MQTT (NCMD/DCMD other than Rebirth) are refused and logged: the cell is commanded
through the engine's own front ends (operator app, CLI, OPC UA with users and roles).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import ssl
import threading
import time
from collections.abc import AsyncIterator, Collection, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from microfactory.events import Event, EventBus, EventKind, Subscription
from microfactory.mqtt.options import MqttOptions
from microfactory.mqtt.sparkplug import (
    BDSEQ,
    REBIRTH,
    SEQ_MODULUS,
    DataType,
    MessageType,
    check_id,
    decode,
    now_ms,
    payload,
    topic,
)
from microfactory.mqtt.tags import DEVICE_METRICS, NODE_METRICS, Tags, translate

log = logging.getLogger("microfactory.mqtt")

_IGNORED = frozenset({EventKind.LOG.value})
STOP_TIMEOUT_S = 5.0  # wall s a graceful stop waits for the queue to drain and the NDEATH to be acked


@dataclass
class EdgeStats:
    """Counters of one edge node (read them from any thread; they only grow)."""

    events: int = 0          # events taken from the bus
    dropped: int = 0         # events folded into a later one because the queue was full
    published: collections.Counter[str] = field(default_factory=collections.Counter)  # by message type
    sessions: int = 0        # MQTT sessions that were accepted (1 + reconnects)
    refused: int = 0         # connects the broker refused (credentials, ACL)
    commands_refused: int = 0


@dataclass(frozen=True)
class _Birth:
    session: int
    bdseq: int


@dataclass(frozen=True)
class _Rebirth:
    pass


class EdgeNode:
    """One cell published as a Sparkplug B edge node; ``start()`` it, ``stop()`` it (or ``with``).

    ``stations`` are the device ids (the cell file's station ids, in order); ``edge_node`` defaults to
    ``options.edge_node``. Nothing here raises because a broker is absent: connecting happens in the
    background with backoff, and :attr:`connected` tells whether a session is up now.
    """

    def __init__(self, options: MqttOptions, bus: EventBus, *, edge_node: str,
                 stations: Iterable[str]) -> None:
        self.options = options
        self.group = check_id(options.group, "MQTT group")
        self.edge_node = check_id(options.edge_node or edge_node, "MQTT edge node")
        self.stations: tuple[str, ...] = tuple(check_id(s, "station id (Sparkplug device)") for s in stations)
        self.bus = bus
        self.stats = EdgeStats()
        self.connected = threading.Event()
        self._node = Tags(NODE_METRICS)
        self._devices = {sid: Tags(DEVICE_METRICS) for sid in self.stations}
        self._offline: set[str] = set()
        self._cond = threading.Condition()
        self._queue: collections.deque[tuple[Event, int]] = collections.deque()
        self._overflow: dict[tuple[str, str], tuple[Event, int]] = {}
        self._controls: collections.deque[_Birth | _Rebirth] = collections.deque()
        self._stopping = False
        self._session = 0      # paho thread writes, edge thread compares
        self._bdseq = 0        # the bdSeq of the will now set (paho thread)
        self._born_bdseq: int | None = None  # edge thread: bdSeq of the births sent in this session
        self._seq = 0
        self._subscription: Subscription | None = None
        self._thread = threading.Thread(target=self._main, name=f"mqtt-edge-{self.edge_node}", daemon=True)
        self._client = self._make_client()

    # -- life cycle ---------------------------------------------------------------------------------
    def start(self) -> EdgeNode:
        """Subscribe to the bus and start connecting (returns at once)."""
        if self._subscription is None:
            self._subscription = self.bus.subscribe(self._on_event)
        self._thread.start()
        self._client.connect_async(self.options.host, self.options.port, keepalive=self.options.keepalive_s)
        self._client.loop_start()
        log.info("MQTT: publishing %s/%s to %s:%d", self.group, self.edge_node, self.options.host,
                 self.options.port)
        return self

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Publish what is queued and the NDEATH, disconnect, end the threads. Idempotent."""
        if self._subscription is not None:
            self._subscription.cancel()
        with self._cond:
            if self._stopping:
                return
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        self._client.disconnect()
        self._client.loop_stop()

    def __enter__(self) -> EdgeNode:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- the bus side (any thread: must return at once) ---------------------------------------------
    def _on_event(self, event: Event) -> None:
        if event.kind in _IGNORED:
            return
        item = (event, now_ms())
        with self._cond:
            self.stats.events += 1
            if len(self._queue) < self.options.queue_size:
                self._queue.append(item)
            else:
                key = (event.kind, event.source)
                if key in self._overflow:
                    self.stats.dropped += 1
                self._overflow[key] = item
            self._cond.notify()

    # -- the edge thread ----------------------------------------------------------------------------
    def _main(self) -> None:
        while True:
            with self._cond:
                while not (self._queue or self._overflow or self._controls or self._stopping):
                    self._cond.wait()
                controls = list(self._controls)
                self._controls.clear()
                batch = list(self._queue)
                self._queue.clear()
                if self._overflow:
                    batch.extend(self._overflow.values())
                    self._overflow.clear()
                stopping = self._stopping
            for control in controls:
                self._control(control)
            for event, stamp in batch:
                self._handle(event, stamp)
                time.sleep(0)  # hand the GIL back after each message: the engine's thread never waits long
            if stopping:
                self._goodbye()
                return

    def _control(self, control: _Birth | _Rebirth) -> None:
        if isinstance(control, _Birth):
            if control.session != self._session:
                return  # that session already ended; the next one brings its own births
            self._born_bdseq = control.bdseq
        if self._born_bdseq is not None and self.connected.is_set():
            self._births()

    def _handle(self, event: Event, stamp_ms: int) -> None:
        change = translate(event, self._devices)
        if change is None:
            return
        device = change.device
        tags = self._node if device is None else self._devices[device]
        changed, rebirth = tags.update(change.values)
        if device is not None and change.online is not None:
            if not change.online and device not in self._offline:
                self._offline.add(device)
                self._send(MessageType.DDEATH, [], device, stamp_ms)
                return
            if change.online and device in self._offline:
                self._offline.discard(device)
                self._dbirth(device)
                return
        if not changed or (device is not None and device in self._offline):
            return
        if rebirth:
            if device is None:
                self._births()
            else:
                self._dbirth(device)
            return
        kind = MessageType.NDATA if device is None else MessageType.DDATA
        self._send(kind, tags.metrics(changed), device, stamp_ms)

    def _births(self) -> None:
        """NBIRTH (seq 0, bdSeq of this session) and a DBIRTH for every station that is online."""
        if self._born_bdseq is None:
            return
        self._seq = 0
        self._node.update({BDSEQ: self._born_bdseq, REBIRTH: False, "MQTT/Dropped": self.stats.dropped})
        self._send(MessageType.NBIRTH, self._node.metrics(), None, None, restart=True)
        for sid in self.stations:
            if sid not in self._offline:
                self._dbirth(sid)

    def _dbirth(self, device: str) -> None:
        self._send(MessageType.DBIRTH, self._devices[device].metrics(), device, None)

    def _send(self, kind: MessageType, metrics: Iterable[tuple[str, DataType, object]], device: str | None,
              stamp_ms: int | None, *, restart: bool = False) -> None:
        if self._born_bdseq is None or not self.connected.is_set():
            return  # no session: the next births carry the state
        if not restart:
            self._seq = (self._seq + 1) % SEQ_MODULUS
        body = payload(metrics, seq=self._seq, timestamp_ms=stamp_ms)
        info = self._client.publish(topic(self.group, kind, self.edge_node, device), body, qos=0)
        if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
            self.stats.published[kind.value] += 1

    def _goodbye(self) -> None:
        """Graceful end: the NDEATH of this session, acknowledged (QoS 1) before the disconnect."""
        if self._born_bdseq is None or not self.connected.is_set():
            return
        info = self._client.publish(topic(self.group, MessageType.NDEATH, self.edge_node),
                                    self._ndeath(self._born_bdseq), qos=1)
        try:
            info.wait_for_publish(STOP_TIMEOUT_S)
        except RuntimeError as exc:  # the connection went meanwhile: the broker sends the will instead
            log.warning("MQTT: NDEATH not delivered (%s); the broker publishes the will", exc)
            return
        self.stats.published[MessageType.NDEATH.value] += 1

    # -- the paho side (its network thread) -----------------------------------------------------------
    def _make_client(self) -> paho.Client:
        client = paho.Client(CallbackAPIVersion.VERSION2, clean_session=True, protocol=paho.MQTTv311,
                             client_id=f"microfactory-{self.group}-{self.edge_node}")
        opts = self.options
        if opts.username:
            client.username_pw_set(opts.username, opts.password)
        if opts.tls:
            client.tls_set(ca_certs=opts.ca_file, certfile=opts.cert_file, keyfile=opts.key_file,
                           cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
        client.reconnect_delay_set(opts.reconnect_min_s, opts.reconnect_max_s)
        client.max_queued_messages_set(0)
        self._set_will(client)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        client.on_message = self._on_message
        return client

    @staticmethod
    def _ndeath(bdseq: int) -> bytes:
        return payload([(BDSEQ, DataType.INT64, bdseq)], seq=None)

    def _set_will(self, client: paho.Client) -> None:
        client.will_set(topic(self.group, MessageType.NDEATH, self.edge_node), self._ndeath(self._bdseq),
                        qos=1, retain=False)

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            self.stats.refused += 1
            log.error("MQTT: %s:%d refused the connection: %s (check --mqtt-user and %s)",
                      self.options.host, self.options.port, reason, "MICROFACTORY_MQTT_PASSWORD")
            return
        self.stats.sessions += 1
        self._session += 1
        level = logging.WARNING if self.stats.sessions > 1 else logging.INFO  # a reconnect is news
        log.log(level, "MQTT: connected to %s:%d (session %d, bdSeq %d)", self.options.host,
                self.options.port, self.stats.sessions, self._bdseq)
        client.subscribe([(topic(self.group, MessageType.NCMD, self.edge_node), 1),
                          (topic(self.group, MessageType.DCMD, self.edge_node, "+"), 1)])
        self.connected.set()
        with self._cond:
            self._controls.append(_Birth(self._session, self._bdseq))
            self._cond.notify()

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        was_up = self.connected.is_set()
        self.connected.clear()
        self._session += 1
        if was_up:
            self._bdseq = (self._bdseq + 1) % SEQ_MODULUS
            self._set_will(client)
            if not self._stopping:
                log.warning("MQTT: lost %s:%d (%s): reconnecting with backoff; the cell keeps running",
                            self.options.host, self.options.port, reason)

    def _on_connect_fail(self, client: paho.Client, userdata: Any) -> None:
        log.info("MQTT: %s:%d unreachable; retrying", self.options.host, self.options.port)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        try:
            _, _, metrics = decode(bytes(message.payload))
        except Exception as exc:  # a malformed payload from the network is logged, never raised in paho
            log.warning("MQTT: undecodable command on %s: %s", message.topic, exc)
            return
        if message.topic.endswith(f"/NCMD/{self.edge_node}") and metrics.get(REBIRTH) is True:
            with self._cond:
                self._controls.append(_Rebirth())
                self._cond.notify()
            return
        self.stats.commands_refused += 1
        log.warning("MQTT: command on %s refused (%s): the cell takes commands from its operator app, "
                    "CLI or OPC UA only", message.topic, ", ".join(sorted(metrics)) or "no metrics")


def start_edge_node(options: MqttOptions | None, bus: EventBus, *, cell_id: str,
                    stations: Collection[str]) -> EdgeNode | None:
    """An :class:`EdgeNode` started on ``bus``, or None when MQTT is off (``options`` None)."""
    if options is None:
        return None
    return EdgeNode(options, bus, edge_node=cell_id, stations=stations).start()


@contextlib.asynccontextmanager
async def publishing(options: MqttOptions | None, bus: EventBus, *, cell_id: str,
                     stations: Collection[str]) -> AsyncIterator[EdgeNode | None]:
    """``async with publishing(...)``: the edge node for the block (nothing when ``options`` is None).

    Enter it before the controller connects, so the births carry the stations' first states; on exit
    the queue is flushed and the NDEATH sent off the loop (the engine loop never waits on the broker).
    """
    edge = start_edge_node(options, bus, cell_id=cell_id, stations=stations)
    try:
        yield edge
    finally:
        if edge is not None:
            await asyncio.to_thread(edge.stop)
