"""A short lot on the simulated cell watched over MQTT Sparkplug B, with the broker killed mid-lot.

The throughput benchmark's short lot (benchmarks/short-lot-cell.yaml: four simulated stations behind
ptys) runs through the Controller; the edge node publishes to a real mosquitto and a real subscriber
decodes every message. The broker is then killed (SIGKILL) while a lot runs and started again: the
cell carries on, the edge node reconnects with a new bdSeq and re-sends its births, the lot completes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from mqtt_broker import Broker

from microfactory import simclock
from microfactory.engine.api import Controller, EngineThread, load_cell, load_recipe
from microfactory.events import Event, EventKind
from microfactory.mqtt import EdgeNode, MqttOptions, publishing
from microfactory.mqtt.sparkplug import MessageType
from microfactory.mqtt.watch import Message, Watcher

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "benchmarks"
CELL = BENCH / "short-lot-cell.yaml"
RECIPE = BENCH / "throughput-plate.yaml"
VALUES = json.loads((BENCH / "short-lot-values.json").read_text())
STATIONS = ["cut", "mill", "wash", "inspect"]
WAIT_S = 30.0


def of(kind: MessageType, device: str | None = None, **metrics: object) -> Callable[[Message], bool]:
    def match(m: Message) -> bool:
        return m.kind == kind and (device is None or m.topic.device == device) and all(
            m.metrics.get(k) == v for k, v in metrics.items())
    return match


def short_lot():  # type: ignore[no-untyped-def]
    cell = load_cell(CELL)
    return cell, dataclasses.replace(load_recipe(RECIPE, cell=cell, values=VALUES), parts_in_flight=2)


def compressed(values: list[object]) -> list[object]:
    out: list[object] = []
    for v in values:
        if not out or out[-1] != v:
            out.append(v)
    return out


def seen_states(messages: list[Message], station: str) -> list[object]:
    """A station's State as a subscriber follows it: each DBIRTH's value, then each DDATA change."""
    return compressed([m.metrics["State"] for m in messages if m.topic.device == station
                       and m.kind in (MessageType.DBIRTH, MessageType.DDATA)
                       and m.metrics.get("State") is not None])  # null: born before its first state


@pytest.mark.timeout(180)
def test_a_short_lot_is_watched_from_birth_to_death(broker: Broker) -> None:
    cell, procedure = short_lot()
    states: dict[str, list[object]] = {s: [] for s in STATIONS}

    def record(event: Event) -> None:
        if event.source in states:
            states[event.source].append(event.data.get("state"))

    async def main(clock: simclock.VirtualClock) -> tuple[str, int]:
        controller = Controller(cell, db=None)  # type: ignore[arg-type]
        controller.bus.subscribe(record, [EventKind.STATION_STATE])
        async with publishing(broker.options, controller.bus, cell_id=cell.cell.id, stations=STATIONS), \
                controller:
            summary = await controller.run_lot(procedure, parts=2, lot_id="mqtt")
        return summary.state, summary.passed + summary.scrapped

    with Watcher(broker.options, rebirth_on_connect=False) as watcher:
        state, finished = simclock.run(main)
        death = watcher.wait_for(of(MessageType.NDEATH), WAIT_S)
        messages = watcher.snapshot()
    assert (state, finished) == ("complete", 2)
    assert messages[0].kind == MessageType.NBIRTH and messages[0].seq == 0
    assert messages[0].metrics["bdSeq"] == 0 and death.metrics == {"bdSeq": 0}
    assert messages[-1] is death  # the NDEATH is the last word, sent on stop
    assert [m.topic.device for m in messages[1:5]] == STATIONS  # a DBIRTH per station right after
    assert all(m.kind == MessageType.DBIRTH for m in messages[1:5])
    seqs = [m.seq for m in messages[:-1]]
    assert seqs == [n % 256 for n in range(len(seqs))]  # no message lost between node and subscriber
    node: dict[str, object] = {}  # the cell as a host sees it: the birth, then each change
    for m in messages:
        if m.kind in (MessageType.NBIRTH, MessageType.NDATA):
            node.update(m.metrics)
    assert node["Lot/Id"] == "mqtt" and node["Lot/Phase"] == "done" and node["Lot/Total"] == 2
    assert node["Lot/Passed"] + node["Lot/Scrapped"] == 2  # type: ignore[operator]
    assert sum(of(MessageType.NDATA, **{"Lot/Phase": "done"})(m) for m in messages) == 1
    assert any(of(MessageType.NDATA, **{"Cell/State": "execute"})(m) for m in messages)
    for station in STATIONS:
        followed = seen_states(messages, station)
        assert len(followed) >= 3, (station, followed)  # it worked: busy and idle again at least
        expected = compressed(states[station])
        assert followed == expected[-len(followed):], (station, followed, expected)  # every change, in order
    steps = [m for m in messages if m.kind == MessageType.DDATA and m.metrics.get("Step/Phase") == "done"]
    assert {m.topic.device for m in steps} == set(STATIONS)


@pytest.mark.timeout(240)
def test_the_broker_killed_mid_lot_is_reconnected_and_the_lot_completes(broker: Broker) -> None:
    cell, procedure = short_lot()
    controller = Controller(cell, speed=2, db=None)
    engine = EngineThread(controller)
    watcher = Watcher(broker.options).start()  # subscribed before the births; asks for them on reconnect
    edge = EdgeNode(broker.options, controller.bus, edge_node=cell.cell.id, stations=STATIONS).start()
    working = threading.Event()
    controller.bus.subscribe(lambda e: working.set(), [EventKind.STEP])
    try:
        engine.start()
        watcher.wait_for(of(MessageType.DBIRTH, "inspect"), WAIT_S)
        lot = engine.run_lot(procedure, parts=2, lot_id="outage")
        assert working.wait(WAIT_S)
        broker.kill()
        gone = len(watcher.snapshot())
        assert not lot.done()  # mid-lot: the first step has only begun
        broker.start()
        reborn = watcher.wait_for(of(MessageType.NBIRTH, bdSeq=1), WAIT_S, after=gone)
        after = watcher.snapshot().index(reborn)
        births = [watcher.wait_for(of(MessageType.DBIRTH, s), WAIT_S, after=after) for s in STATIONS]
        summary = lot.result(WAIT_S * 3)
    finally:
        engine.stop()
        edge.stop()
    watcher.wait_for(of(MessageType.NDEATH, bdSeq=1), WAIT_S)
    watcher.stop()
    assert summary.state == "complete" and summary.passed + summary.scrapped == 2
    assert edge.stats.sessions == 2 and edge.stats.dropped == 0
    assert reborn.seq == 0
    assert all(b.metrics["Link/Connected"] is True for b in births)


@pytest.mark.timeout(180)
def test_microfactory_run_with_mqtt_publishes_the_lot(broker: Broker, tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "microfactory"
    values = [f"--set={k}={v}" for k, v in VALUES.items()]
    with Watcher(broker.options, rebirth_on_connect=False) as watcher:
        done = subprocess.run([str(exe), "run", str(RECIPE), "--cell", str(CELL), "--parts", "1",
                               "--speed", "max", "--json", "--db", str(tmp_path / "j.sqlite"), *values,
                               "--mqtt", f"127.0.0.1:{broker.port}", "--mqtt-group", "test"],
                              capture_output=True, text=True, timeout=150, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, done.stderr[-2000:]
        watcher.wait_for(of(MessageType.NDEATH), WAIT_S)
        messages = watcher.snapshot()
    assert json.loads(done.stdout.strip().splitlines()[-1])["state"] == "complete"
    assert messages[0].kind == MessageType.NBIRTH and messages[0].topic.edge_node == "sim-bench-short"
    assert any(of(MessageType.NDATA, **{"Lot/Phase": "done"})(m) for m in messages)
    assert messages[-1].kind == MessageType.NDEATH


def test_bad_mqtt_arguments_exit_2_before_anything_runs(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "microfactory"
    for args, says in ((["--mqtt", "localhost:http"], "is not a number"),
                       (["--mqtt", "localhost:99999"], "the port must be 1 to 65535"),
                       (["--mqtt", "localhost", "--mqtt-node", "a/b"], "not a Sparkplug id"),
                       (["--mqtt", "localhost", "--mqtt-user", "cell"], "MICROFACTORY_MQTT_PASSWORD")):
        done = subprocess.run([str(exe), "run", str(RECIPE), "--cell", str(CELL), "--db",
                               str(tmp_path / "j.sqlite"), *args], capture_output=True, text=True,
                              timeout=60, stdin=subprocess.DEVNULL,
                              env={k: v for k, v in os.environ.items() if k != "MICROFACTORY_MQTT_PASSWORD"})
        assert done.returncode == 2, (args, done.stderr)
        assert says in done.stderr, (args, done.stderr)
        assert not (tmp_path / "j.sqlite").exists()  # nothing ran, nothing written
    for args, says in ((["--mqtt", "localhost", "--mqtt-user", "cell"], "MICROFACTORY_MQTT_PASSWORD"),):
        done = subprocess.run([str(exe), "gui", "--cell", str(CELL), *args], capture_output=True, text=True,
                              timeout=60, stdin=subprocess.DEVNULL,
                              env={k: v for k, v in os.environ.items() if k != "MICROFACTORY_MQTT_PASSWORD"})
        assert done.returncode == 2 and says in done.stderr, (args, done.stderr)  # before any window



@pytest.mark.timeout(180)
def test_a_lot_runs_to_its_end_with_no_broker_at_all() -> None:
    from mqtt_broker import free_port

    cell, procedure = short_lot()
    nobody = MqttOptions(host="127.0.0.1", port=free_port(), group="test")  # nothing listens there
    edges: list[EdgeNode | None] = []

    async def main(clock: simclock.VirtualClock) -> str:
        controller = Controller(cell, db=None)  # type: ignore[arg-type]
        async with publishing(nobody, controller.bus, cell_id=cell.cell.id, stations=STATIONS) as edge, \
                controller:
            edges.append(edge)
            summary = await controller.run_lot(procedure, parts=1, lot_id="alone")
        return summary.state

    assert simclock.run(main) == "complete"
    edge = edges[0]
    assert edge is not None and edge.stats.sessions == 0 and not edge.connected.is_set()
    assert edge.stats.events > 0 and edge.stats.dropped == 0 and sum(edge.stats.published.values()) == 0


@pytest.mark.timeout(240)
def test_a_held_lot_is_seen_held_and_resumed_by_the_subscriber(broker: Broker) -> None:
    cell, procedure = short_lot()
    controller = Controller(cell, speed=2, db=None)
    engine = EngineThread(controller)
    watcher = Watcher(broker.options, rebirth_on_connect=False).start()  # subscribed before the births
    edge = EdgeNode(broker.options, controller.bus, edge_node=cell.cell.id, stations=STATIONS).start()
    working = threading.Event()
    controller.bus.subscribe(lambda e: working.set(), [EventKind.STEP])
    try:
        engine.start()
        watcher.wait_for(of(MessageType.DBIRTH, "inspect"), WAIT_S)
        lot = engine.run_lot(procedure, parts=1, lot_id="held")
        assert working.wait(WAIT_S)
        engine.submit("hold").result(WAIT_S)  # what an operator or an OPC UA client's Hold does
        held = watcher.wait_for(of(MessageType.NDATA, **{"Cell/State": "held"}), WAIT_S)
        assert not lot.done()
        engine.submit("unhold").result(WAIT_S)
        mark = watcher.snapshot().index(held)
        watcher.wait_for(of(MessageType.NDATA, **{"Cell/State": "execute"}), WAIT_S, after=mark)
        summary = lot.result(WAIT_S * 3)
    finally:
        engine.stop()
        edge.stop()
        watcher.stop()
    assert summary.state == "complete"
    cell_states = [m.metrics["Cell/State"] for m in watcher.snapshot()
                   if m.kind == MessageType.NDATA and "Cell/State" in m.metrics]
    assert cell_states[cell_states.index("execute"):][:4] == ["execute", "holding", "held", "unholding"]
