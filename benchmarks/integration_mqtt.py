"""The MQTT part of the integration benchmark: Sparkplug B events of 16 stations at 20 Hz status.

A real mosquitto (Debian's, on a free localhost port, temporary config) and a real subscriber that
decodes every payload. Sixteen publisher threads — one per station, as the drivers' reader threads
are — publish a ``station.status`` event at 20 Hz each on the cell's EventBus, every one a change (a
moving position, a counter), stamped with ``time.perf_counter()`` when it is published. The edge node
turns each into a DDATA; the subscriber notes when it arrives, so

- ``mqtt_event_latency_ms_p99``: bus publish → decoded at the subscriber, 99th percentile (goal ≤ 50);
  its baseline in the same run, ``mqtt_raw_latency_ms_p99``: the same payloads at the same rate published
  straight through paho (no bus, no edge node), i.e. what the broker, the subscriber and the machine's
  load cost by themselves;
- ``events_per_s``: status changes delivered per second over the run (16 × 20 = 320 offered), with
  ``mqtt_status_offered`` / ``mqtt_status_delivered`` / ``mqtt_dropped`` (goal: all delivered, 0 dropped);
- ``mqtt_flood_events_per_s``: 20 000 status events published as fast as one thread can, divided by the
  time until the subscriber has decoded them all (headroom above the 320/s load);
- ``bus_publish_us_p99_mqtt_off`` / ``_on``: what publishing one event costs the publishing thread
  (the engine's or a driver's), without and with the edge node subscribed, in the same run: the edge
  node must not make the engine wait.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from microfactory.events import EventBus, EventKind
from microfactory.mqtt import EdgeNode, MqttOptions
from microfactory.mqtt.sparkplug import MessageType
from microfactory.mqtt.watch import Message, Watcher

STATIONS = 16
HZ = 20.0
FLOOD = 20_000
RAW_NODE = "raw-node"  # the baseline: the same payloads published straight to paho, no bus, no edge node


def p99(values: list[float]) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


@contextlib.contextmanager
def mosquitto() -> Any:
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(exe).is_file():
        raise SystemExit("benchmark: mosquitto is not installed (apt-get install mosquitto)")
    with tempfile.TemporaryDirectory() as folder, socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
        probe.close()
        conf = Path(folder) / "mosquitto.conf"
        import getpass

        conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                        f"user {getpass.getuser()}\n"
                        "max_queued_messages 0\n")  # a subscriber behind in the flood: queue, never drop
        proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 15
            while True:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                    break
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("benchmark: mosquitto did not start")
                time.sleep(0.05)
            yield port
        finally:
            proc.terminate()
            proc.wait(10)


@contextlib.contextmanager
def mqtt_on(bus: EventBus, *, cell_id: str, stations: list[str]) -> Any:
    """For the other measurements (the engine's stall with both servers on): a broker, the cell's edge
    node on ``bus`` and a subscriber process decoding everything, for the ``with`` block."""
    with mosquitto() as port:
        options = MqttOptions(host="127.0.0.1", port=port, group="bench")
        sub = Subscriber(port)
        try:
            with EdgeNode(options, bus, edge_node=cell_id, stations=stations) as edge:
                yield edge
        finally:
            sub.report(last=True)


def mqtt_on_bench(controller: Any, published_states: Callable[[], list[tuple[int, float]]]
                  ) -> tuple[Callable[[], None], Callable[[], dict[str, Any]]]:
    """``integration.py``'s servers-on phase with MQTT: a broker, the cell's edge node on the engine's
    bus (the real 16-station cell: its drivers' 20 Hz status, the cycled cell states) and a subscriber
    process. ``published_states()`` is the bench's record of (StateCurrent, time.monotonic()) at each
    ``cell.state`` publish. Returns (stop, results) with ``mqtt_cell_state_latency_ms`` (a list: bus
    publish → decoded at the subscriber), the edge node's counters and the subscriber's seq gaps."""
    from microfactory.engine.packml import PackMLState
    from microfactory.opcua.model import state_number

    stack = contextlib.ExitStack()
    port = stack.enter_context(mosquitto())
    sub = Subscriber(port)
    stations = [st.id for st in controller.cell.stations]
    options = MqttOptions(host="127.0.0.1", port=port, group="bench")
    edge = EdgeNode(options, controller.bus, edge_node=controller.cell.cell.id, stations=stations).start()
    if not edge.connected.wait(15):
        raise SystemExit("benchmark: the edge node did not connect")
    first = len(published_states())
    started = time.monotonic()
    report: dict[str, Any] = {}
    seconds = [0.0]

    def stop() -> None:
        seconds[0] = time.monotonic() - started
        edge.stop()
        report.update(sub.report(last=True))
        stack.close()

    def results() -> dict[str, Any]:
        published = [(n, t) for n, t in published_states()[first:] if t >= started]
        arrived = [(state_number(PackMLState(name)), t) for name, t in report["cell_states"]]
        arrived = [(n, t) for n, t in arrived if t >= published[0][1]] if published else []
        return {"mqtt_cell_state_latency_ms": [(a - p) * 1000 for (_, a), (_, p) in
                                               zip(arrived, published, strict=False)],
                "mqtt_cell_state_changes_published": len(published),
                "mqtt_cell_state_changes_seen": len(arrived),
                "mqtt_cell_state_every_change_in_order": [n for n, _ in arrived] == [n for n, _ in published],
                "mqtt_bus_events": edge.stats.events, "mqtt_bus_events_per_s": edge.stats.events / seconds[0],
                "mqtt_messages_published": sum(edge.stats.published.values()),
                "mqtt_messages_seen": report["messages"], "mqtt_seq_gaps": report["seq_gaps"],
                "mqtt_dropped_in_bench": edge.stats.dropped}

    return stop, results


def subscriber(port: int) -> None:
    """The subscriber process (a SCADA is another machine): decode, note arrival (``time.monotonic``,
    system-wide, so comparable with the publisher's stamps), report as JSON when stdin says so."""
    import json
    import sys

    latency_ms: list[float] = []
    raw_ms: list[float] = []
    keys: set[tuple[str, int]] = set()
    flood = {"seen": 0, "last": 0.0}
    lock = threading.Lock()

    cell_states: list[tuple[str, float]] = []  # NDATA Cell/State as it arrives
    seqs: dict[str, list[int]] = {}  # per edge node: every seq since its last NBIRTH
    gaps = [0]
    total = [0]

    def on_message(message: Message) -> None:
        now = time.monotonic()
        with lock:
            total[0] += 1
            node = message.topic.edge_node
            if message.kind == MessageType.NBIRTH:
                seqs[node] = []
            if message.seq is not None and node in seqs:
                if seqs[node] and message.seq != (seqs[node][-1] + 1) % 256:
                    gaps[0] += 1
                seqs[node].append(message.seq)
            if message.kind == MessageType.NDATA and "Cell/State" in message.metrics:
                cell_states.append((str(message.metrics["Cell/State"]), now))
        if message.kind != MessageType.DDATA or "Status/n" not in message.metrics:
            return
        with lock:
            if message.topic.device == "flood":
                flood["seen"] += 1
                flood["last"] = now
                return
            sent = message.metrics.get("Status/sent_s")
            if message.topic.edge_node == RAW_NODE:
                raw_ms.append((now - float(sent)) * 1000.0)
                return
            keys.add((str(message.topic.device), int(message.metrics["Status/n"])))
            if sent:
                latency_ms.append((now - float(sent)) * 1000.0)

    options = MqttOptions(host="127.0.0.1", port=port, group="bench")
    with Watcher(options, rebirth_on_connect=False, on_message=on_message):
        print("ready", flush=True)
        for line in sys.stdin:
            with lock:
                report = {"latency_ms": latency_ms, "raw_ms": raw_ms, "cell_states": cell_states,
                          "messages": total[0], "seq_gaps": gaps[0],
                          "delivered": len({k for k in keys if k[1] >= 0}),
                          "flood_seen": flood["seen"], "flood_last": flood["last"]}
            print(json.dumps(report), flush=True)
            if line.strip() == "quit":
                return


class Subscriber:
    """The parent's handle on the subscriber process."""

    def __init__(self, port: int) -> None:
        import sys

        self.proc = subprocess.Popen([sys.executable, __file__, "--subscribe", str(port)], text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"

    def report(self, last: bool = False) -> dict[str, Any]:
        import json

        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("quit\n" if last else "report\n")
        self.proc.stdin.flush()
        result: dict[str, Any] = json.loads(self.proc.stdout.readline())
        if last:
            self.proc.wait(30)
        return result


def _publisher(bus: EventBus, station: str, seconds: float, costs: list[float], start: float) -> int:
    """Publish a changing status at HZ until ``seconds`` pass; return how many were published."""
    n = 0
    period = 1.0 / HZ
    while True:
        due = start + n * period  # each station has its own phase (start): devices are not in step
        if due - start >= seconds:
            return n
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        t0 = time.perf_counter()
        bus.publish(EventKind.STATION_STATUS, station, n=n, sent_s=time.monotonic(), state="Run",
                    mpos=(-0.01 * n, -0.02 * n, -1.0), feed=600.0 + n % 7)
        costs.append((time.perf_counter() - t0) * 1e6)
        n += 1


def _raw_load(port: int, stations: list[str], seconds: float) -> None:
    """Baseline in the same run: 16 threads publish the same kind of payload at the same rate straight
    through one paho client (what the broker, the subscriber and this machine's load cost by themselves)."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    from microfactory.mqtt.sparkplug import DataType, payload, topic

    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
    client.connect("127.0.0.1", port)
    client.loop_start()
    start = time.perf_counter() + 0.05

    def run(i: int) -> None:
        where = topic("bench", MessageType.DDATA, RAW_NODE, stations[i])
        phase = start + i / HZ / len(stations)
        for n in range(int(seconds * HZ)):
            delay = phase + n / HZ - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            body = payload([("Status/n", DataType.INT64, n),
                            ("Status/sent_s", DataType.DOUBLE, time.monotonic()),
                            ("Status/mpos/x", DataType.DOUBLE, -0.01 * n)], seq=n % 256)
            client.publish(where, body, qos=0)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(stations))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    client.disconnect()
    client.loop_stop()


def _load(bus: EventBus, stations: list[str], seconds: float) -> tuple[int, list[float]]:
    costs: list[list[float]] = [[] for _ in stations]
    counts = [0] * len(stations)
    start = time.perf_counter() + 0.05

    def run(i: int) -> None:
        counts[i] = _publisher(bus, stations[i], seconds, costs[i], start + i / HZ / len(stations))

    threads = [threading.Thread(target=run, args=(i,), name=f"status-{s}") for i, s in enumerate(stations)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts), [c for per in costs for c in per]


def mqtt_figures(seconds: float = 10.0) -> dict[str, Any]:
    """Run the MQTT measurements (baseline first, in the same run) and return the figures."""
    stations = [f"st{i:02d}" for i in range(STATIONS)]
    _, baseline_costs = _load(EventBus(), stations, min(seconds, 3.0))  # MQTT off: nobody subscribed
    with mosquitto() as port:
        options = MqttOptions(host="127.0.0.1", port=port, group="bench")
        bus = EventBus()
        sub = Subscriber(port)
        _raw_load(port, stations, min(seconds, 5.0))
        with Watcher(options, rebirth_on_connect=False) as watcher, \
                EdgeNode(options, bus, edge_node="bench-cell", stations=[*stations, "flood"]) as edge:
            watcher.wait_for(lambda m: m.kind == MessageType.DBIRTH and m.topic.device == "flood", 15)
            # first status of each station: a new metric set, so a DBIRTH (not counted as load)
            for s in [*stations, "flood"]:
                bus.publish(EventKind.STATION_STATUS, s, n=-1, sent_s=0.0, state="Idle", mpos=(0.0, 0.0, 0.0),
                            feed=0.0)
            watcher.wait_for(lambda m: m.kind == MessageType.DBIRTH and m.topic.device == "flood"
                             and m.metrics.get("Status/n") == -1, 15)
            watcher.stop()  # from here only the subscriber process listens
            offered, costs = _load(bus, stations, seconds)
            time.sleep(1.0)  # the last events' way to the subscriber (a benchmark may wait; tests may not)
            load = sub.report()
            t0 = time.monotonic()
            for n in range(FLOOD):
                bus.publish(EventKind.STATION_STATUS, "flood", n=n, sent_s=0.0, state="Run",
                            mpos=(0.0, 0.0, float(n)), feed=1.0)
            deadline = time.monotonic() + 60
            while (flood := sub.report())["flood_seen"] < FLOOD and time.monotonic() < deadline:
                time.sleep(0.5)
            sub.report(last=True)
            dropped = edge.stats.dropped
    latency = load["latency_ms"]
    delivered = load["delivered"]
    flooded = flood["flood_seen"] >= FLOOD
    flood_s = flood["flood_last"] - t0
    return {
        "mqtt_event_latency_ms_p99": round(p99(latency), 2),
        "mqtt_event_latency_ms_p50": round(statistics.median(latency), 2) if latency else None,
        "mqtt_raw_latency_ms_p99": round(p99(load["raw_ms"]), 2),  # baseline: paho straight, no edge node
        "events_per_s": round(delivered / seconds, 1),
        "mqtt_status_offered": offered,
        "mqtt_status_delivered": delivered,
        "mqtt_dropped": dropped,
        "mqtt_flood_events_per_s": round(FLOOD / flood_s, 0) if flooded else None,
        "bus_publish_us_p99_mqtt_off": round(p99(baseline_costs), 1),
        "bus_publish_us_p99_mqtt_on": round(p99(costs), 1),
        "mqtt_stations": STATIONS,
        "mqtt_status_hz": HZ,
    }


if __name__ == "__main__":
    import json
    import sys

    if sys.argv[1:2] == ["--subscribe"]:
        subscriber(int(sys.argv[2]))
    else:
        print(json.dumps(mqtt_figures(float(sys.argv[1]) if len(sys.argv) > 1 else 10.0)))
