"""The cell's Sparkplug B edge node against a real mosquitto, read back by a real subscriber.

Every message is decoded with the Sparkplug protobuf schema. What is checked: the births (NBIRTH with
bdSeq and seq 0, a DBIRTH per station), DATA by exception, seq counting every message of a session
(no gap: nothing lost between the edge node and the subscriber), the NDEATH last will, reconnects with
a new bdSeq and the births re-sent, rebirth requests, refused commands, and the counted drop policy.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable

import paho.mqtt.client as paho
import pytest
from mqtt_broker import Broker
from paho.mqtt.enums import CallbackAPIVersion

from microfactory.events import EventBus, EventKind
from microfactory.mqtt import EdgeNode
from microfactory.mqtt.sparkplug import (
    REBIRTH,
    DataType,
    MessageType,
    decode,
    parse_topic,
    payload,
    topic,
)
from microfactory.mqtt.watch import Message, Watcher

WAIT_S = 20.0


def of(kind: MessageType, device: str | None = None, **metrics: object) -> Callable[[Message], bool]:
    """A predicate on decoded messages: this type (and device), with these metric values."""
    def match(m: Message) -> bool:
        return m.kind == kind and (device is None or m.topic.device == device) and all(
            m.metrics.get(k) == v for k, v in metrics.items())
    return match


def session_seqs(messages: list[Message]) -> list[list[int]]:
    """The seq numbers of each session (from one NBIRTH to the next), NDEATH left out."""
    sessions: list[list[int]] = []
    for m in messages:
        if m.kind == MessageType.NBIRTH:
            sessions.append([])
        if m.kind != MessageType.NDEATH and sessions:
            assert m.seq is not None, f"{m.kind} without seq"
            sessions[-1].append(m.seq)
    return sessions


def assert_no_gap(messages: list[Message]) -> None:
    for seqs in session_seqs(messages):
        assert seqs[0] == 0
        assert all(b == (a + 1) % 256 for a, b in itertools.pairwise(seqs)), seqs


def test_a_payload_decodes_to_the_values_it_was_built_from() -> None:
    body = payload([("Lot/Passed", DataType.INT64, -3), ("Cell/State", DataType.STRING, "held"),
                    ("Status/feed", DataType.DOUBLE, 600), ("Alarm/Active", DataType.BOOLEAN, True),
                    ("Lot/Id", DataType.STRING, None)], seq=7, timestamp_ms=1_700_000_000_000)
    seq, stamp, metrics = decode(body)
    assert (seq, stamp) == (7, 1_700_000_000_000)
    assert metrics == {"Lot/Passed": -3, "Cell/State": "held", "Status/feed": 600.0, "Alarm/Active": True,
                       "Lot/Id": None}
    assert decode(payload([("bdSeq", DataType.INT64, 4)], seq=None))[0] is None  # NDEATH: no seq
    where = parse_topic(topic("g1", MessageType.DDATA, "cell-1", "mill"))
    assert (where.group, where.message, where.edge_node, where.device) == ("g1", MessageType.DDATA,
                                                                           "cell-1", "mill")
    with pytest.raises(ValueError, match="not a Sparkplug B topic"):
        parse_topic("spBv2.0/g/NDATA/n")


def test_a_takeover_publishes_the_will_and_the_node_comes_back_with_a_new_bdseq(broker: Broker) -> None:
    bus = EventBus()
    with Watcher(broker.options, rebirth_on_connect=False) as watcher:
        edge = EdgeNode(broker.options, bus, edge_node="cell-1", stations=["cut", "mill"]).start()
        try:
            watcher.wait_for(of(MessageType.DBIRTH, "mill"), WAIT_S)
            bus.publish(EventKind.STATION_STATE, "cut", state="busy")
            watcher.wait_for(of(MessageType.DDATA, "cut", State="busy"), WAIT_S)
            # another client with the edge node's id: the broker drops the edge node without a goodbye
            intruder = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311,
                                   client_id=f"microfactory-{broker.options.group}-cell-1",
                                   reconnect_on_failure=False)  # taken over in turn, it stays away
            intruder.connect("127.0.0.1", broker.port)
            intruder.loop_start()
            will = watcher.wait_for(of(MessageType.NDEATH), WAIT_S)
            intruder.disconnect()
            intruder.loop_stop()
            reborn = watcher.wait_for(of(MessageType.NBIRTH, bdSeq=1), WAIT_S)
            mark = watcher.snapshot().index(reborn)
            again = watcher.wait_for(of(MessageType.DBIRTH, "cut"), WAIT_S, after=mark)
            bus.publish(EventKind.STATION_STATE, "cut", state="idle")
            watcher.wait_for(of(MessageType.DDATA, "cut", State="idle"), WAIT_S)
        finally:
            edge.stop()
        watcher.wait_for(of(MessageType.NDEATH, bdSeq=1), WAIT_S)
        messages = watcher.snapshot()
    assert will.metrics == {"bdSeq": 0} and will.seq is None
    first = messages[0]
    assert first.kind == MessageType.NBIRTH and first.seq == 0 and first.metrics["bdSeq"] == 0
    assert first.metrics[REBIRTH] is False
    assert again.metrics["State"] == "busy"  # the births after the reconnect carry the state as it is
    assert [m.kind for m in messages if m.kind in (MessageType.NBIRTH, MessageType.NDEATH)] == [
        MessageType.NBIRTH, MessageType.NDEATH, MessageType.NBIRTH, MessageType.NDEATH]
    assert_no_gap(messages)
    assert edge.stats.sessions == 2


def test_a_rebirth_request_resends_the_births_in_the_same_session(broker: Broker) -> None:
    bus = EventBus()
    with Watcher(broker.options, rebirth_on_connect=False) as watcher, \
            EdgeNode(broker.options, bus, edge_node="cell-1", stations=["wash"]) as edge:
        watcher.wait_for(of(MessageType.DBIRTH, "wash"), WAIT_S)
        bus.publish(EventKind.STATION_STATE, "wash", state="busy")
        watcher.wait_for(of(MessageType.DDATA, "wash"), WAIT_S)
        mark = len(watcher.snapshot())
        watcher.request_rebirth("cell-1")
        reborn = watcher.wait_for(of(MessageType.NBIRTH), WAIT_S, after=mark)
        dbirth = watcher.wait_for(of(MessageType.DBIRTH, "wash"), WAIT_S, after=mark)
    assert reborn.seq == 0 and reborn.metrics["bdSeq"] == 0  # same MQTT session: same bdSeq
    assert dbirth.metrics["State"] == "busy"
    assert edge.stats.sessions == 1


def test_commands_over_mqtt_are_refused_and_counted(broker: Broker) -> None:
    bus = EventBus()
    with Watcher(broker.options, rebirth_on_connect=False) as watcher, \
            EdgeNode(broker.options, bus, edge_node="cell-1", stations=["mill"]) as edge:
        watcher.wait_for(of(MessageType.DBIRTH, "mill"), WAIT_S)
        sender = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
        sender.connect("127.0.0.1", broker.port)
        sender.loop_start()
        body = payload([("Cell/State", DataType.STRING, "abort")], seq=None)
        sender.publish(topic("test", MessageType.DCMD, "cell-1", "mill"), body, qos=1).wait_for_publish(5)
        sender.publish(topic("test", MessageType.NCMD, "cell-1"), b"\xff\xff not protobuf", qos=1) \
            .wait_for_publish(5)
        # a rebirth request after them: once it is answered, the two before were handled (one queue)
        watcher.request_rebirth("cell-1")
        watcher.wait_for(of(MessageType.NBIRTH), WAIT_S, after=1)
        sender.disconnect()
        sender.loop_stop()
    assert edge.stats.commands_refused == 1


def test_a_full_queue_folds_events_into_the_latest_and_counts_what_it_dropped(broker: Broker) -> None:
    bus = EventBus()
    options = dataclasses.replace(broker.options, queue_size=3)
    edge = EdgeNode(options, bus, edge_node="cell-1", stations=["cut"])
    edge._subscription = bus.subscribe(edge._on_event)  # subscribed, its thread not yet draining
    for n in range(10):
        bus.publish(EventKind.STATION_STATUS, "cut", feed=float(n))
    assert edge.stats.events == 10
    assert edge.stats.dropped == 6  # 3 queued, 7 folded into one slot: 6 values never sent
    with Watcher(broker.options, rebirth_on_connect=False) as watcher:
        edge.start()
        try:
            birth = watcher.wait_for(of(MessageType.DBIRTH, "cut"), WAIT_S)
            node = watcher.wait_for(of(MessageType.NBIRTH), WAIT_S)
        finally:
            edge.stop()
    assert birth.metrics["Status/feed"] == 9.0  # the newest value arrived
    assert node.metrics["MQTT/Dropped"] == 6


def test_wrong_credentials_are_refused_and_retried_right_ones_over_tls_publish(secure_broker: Broker) -> None:
    bus = EventBus()
    right = dataclasses.replace(secure_broker.options, username="cell-3", password="s3cret-3")
    wrong = dataclasses.replace(right, password="guess", edge_node="intruder")
    with Watcher(right, rebirth_on_connect=False) as watcher:
        refused = EdgeNode(wrong, bus, edge_node="cell-1", stations=["cut"]).start()
        edge = EdgeNode(right, bus, edge_node="cell-1", stations=["cut"]).start()
        try:
            watcher.wait_for(of(MessageType.DBIRTH, "cut"), WAIT_S)
            bus.publish(EventKind.STATION_STATE, "cut", state="busy")
            data = watcher.wait_for(of(MessageType.DDATA, "cut"), WAIT_S)
        finally:
            edge.stop()
            refused.stop()
    assert data.metrics == {"State": "busy"}
    assert refused.stats.refused >= 1 and refused.stats.sessions == 0
    assert not any(m.topic.edge_node == "intruder" for m in watcher.snapshot())
    assert edge.stats.sessions == 1 and edge.stats.refused == 0


def test_a_client_without_tls_gets_nothing_from_a_tls_broker(secure_broker: Broker) -> None:
    plain = dataclasses.replace(secure_broker.options, tls=False, ca_file=None, username="cell-3",
                                password="s3cret-3")
    with pytest.raises(TimeoutError, match="no MQTT broker answered"):
        Watcher(plain).start(timeout_s=3)


def test_seq_wraps_after_255_without_a_gap(broker: Broker) -> None:
    bus = EventBus()
    with Watcher(broker.options, rebirth_on_connect=False) as watcher, \
            EdgeNode(broker.options, bus, edge_node="cell-1", stations=["cut"]):
        watcher.wait_for(of(MessageType.DBIRTH, "cut"), WAIT_S)
        for n in range(300):
            bus.publish(EventKind.STATION_PROGRESS, "cut", done=n, total=300)
        watcher.wait_for(of(MessageType.DDATA, "cut", **{"Progress/done": 299}), WAIT_S)
        messages = watcher.snapshot()
    seqs = [m.seq for m in messages]
    assert seqs[:2] == [0, 1] and 255 in seqs
    assert seqs[seqs.index(255) + 1] == 0  # 255 is followed by 0
    assert_no_gap(messages)
    assert len(messages) == 2 + 300
