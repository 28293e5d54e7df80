"""Plant integration under load: does serving the cell to plant systems stall the engine, and how fast
does a subscribed client see a state change?

A 16-station cell (8 laser cutters, 8 mills: Grbl simulators behind ptys in a child process, polled at
20 Hz by the real drivers — ``gui_responsiveness.py``'s cell) runs in an EngineThread on scaled time.
The cell is cycled Stop → Stopped → Reset → Idle by commands (every 0.1 s) while a 5 ms heartbeat on
the engine's own loop measures its longest stall (how late the heartbeat wakes). Two phases, repeated
``--rounds`` times interleaved in one run (the load of a shared machine drifts):

1. **servers off** — the baseline;
2. **servers on** — the OPC UA server (:mod:`microfactory.opcua`, SignAndEncrypt, a signed-in user) with
   an asyncua client in a child process subscribed to ``Status.StateCurrent`` (10 ms publishing
   interval, queue 1000), and the MQTT Sparkplug B edge node on a real mosquitto with a decoding
   subscriber process (:func:`mqtt_on`; skipped, and its figures null, without mosquitto).

The MQTT figures (``mqtt_event_latency_ms_p99``, ``events_per_s`` with 16 stations at 20 Hz status)
are ``integration_mqtt.py``'s, run after the rounds in the same process.

``opcua_state_latency_ms_p99``: from the engine publishing ``cell.state`` (in the engine thread) to the
client's data-change notification (``time.monotonic`` is system-wide; goal ≤ 100); every change must
arrive, in order. ``engine_max_stall_ms`` with the servers on, next to ``engine_max_stall_ms_servers_off``
(goal: at most 10 ms more).

Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gui_responsiveness import cell_yaml, simulators_in_a_process

from microfactory.access.users import UserBook
from microfactory.engine.api import Controller, EngineThread, load_cell
from microfactory.engine.journal import Journal
from microfactory.engine.packml import PackMLState
from microfactory.events import Event, EventKind
from microfactory.opcua import model

USER, PASSWORD = "bench", "bench-password-1"
HEARTBEAT_S = 0.005
#: Wall seconds between Stop/Reset cycles (4 state changes each): tens of changes per second, the load
#: of a busy line; the 16 stations' 20 Hz status reports are the bulk of the bus traffic.
CYCLE_PAUSE_S = 0.1


def p99(values: list[float]) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


@dataclass
class Phase:
    """What one phase measured."""

    stalls_ms: list[float] = field(default_factory=list)
    changes: int = 0
    events: int = 0
    seconds: float = 0.0

    def add(self, other: Phase) -> None:
        self.stalls_ms += other.stalls_ms
        self.changes += other.changes
        self.events += other.events
        self.seconds += other.seconds

    def summary(self) -> dict[str, float]:
        return {"max_stall_ms": round(max(self.stalls_ms, default=0.0), 2),
                "p99_stall_ms": round(p99(self.stalls_ms), 2),
                "stalls_over_50ms": sum(1 for v in self.stalls_ms if v > 50),
                "heartbeats": len(self.stalls_ms), "state_changes": self.changes,
                "bus_events_per_s": round(self.events / self.seconds, 1) if self.seconds else 0.0}


class Bench:
    """The cell, its engine thread, the heartbeat and the bus stamps."""

    def __init__(self, controller: Controller, thread: EngineThread) -> None:
        self.controller = controller
        self.thread = thread
        self.states: list[tuple[int, float]] = []  # (StateCurrent, time.monotonic()) at publish
        self.events = 0
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        controller.bus.subscribe(self._on_event)
        self.phase = Phase()
        self._beating = False

    def _on_event(self, event: Event) -> None:
        with self._cond:
            self.events += 1
            if event.kind == EventKind.CELL_STATE:
                number = model.state_number(PackMLState(event.data["state"]))
                self.states.append((number, time.monotonic()))
                self._cond.notify_all()

    def wait_state(self, number: int, timeout_s: float = 30.0) -> None:
        end = time.monotonic() + timeout_s
        with self._cond:
            while not self.states or self.states[-1][0] != number:
                if not self._cond.wait(max(0.0, end - time.monotonic())):
                    raise SystemExit(f"the cell never reached state {number} within {timeout_s} s")

    async def heartbeat(self) -> None:
        """On the engine loop: how late each 5 ms sleep wakes (ms)."""
        while self._beating:
            t = time.perf_counter()
            await asyncio.sleep(HEARTBEAT_S)
            self.phase.stalls_ms.append(max(0.0, (time.perf_counter() - t - HEARTBEAT_S) * 1000))

    def run_phase(self, seconds: float) -> Phase:
        """Cycle the cell Stop/Reset for ``seconds`` with the heartbeat on the engine loop."""
        self.phase = Phase()
        self._beating = True
        beat = self.thread.call(self.heartbeat())
        start_states, start_events, t0 = len(self.states), self.events, time.monotonic()
        while time.monotonic() - t0 < seconds:
            for command, number in (("stop", 2), ("reset", 4)):
                self.thread.submit(command).result(10)
                self.wait_state(number)
            time.sleep(CYCLE_PAUSE_S)
        self._beating = False
        beat.result(10)
        self.phase.seconds = time.monotonic() - t0
        self.phase.changes = len(self.states) - start_states
        self.phase.events = self.events - start_events
        return self.phase


# -- the plant servers: one function per server, each returns (stop, results) ----------------------------
ServerRun = tuple[Callable[[], None], Callable[[], dict[str, Any]]]


def opcua_on(bench: Bench, folder: Path) -> ServerRun:
    """The OPC UA server in this process; its subscribed asyncua client in a child process (a plant
    client runs on another machine: its decryption must not be charged to the engine's process)."""
    import socket

    from microfactory.opcua.server import CellServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"opc.tcp://127.0.0.1:{port}"
    server = CellServer(bench.controller, bench.thread, endpoint=url, certificates=folder / "pki")
    server.start()
    client = subprocess.Popen([sys.executable, __file__, "--client", url, "--pki", str(folder),
                               "--cell-id", server.cell_id], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    assert client.stdout is not None and client.stdin is not None
    first_index = len(bench.states)  # the client subscribes after this: every later change must arrive
    if client.stdout.readline().strip() != "ready":
        raise SystemExit("the OPC UA client did not subscribe")
    seen: list[list[float]] = []

    def stop() -> None:
        assert client.stdin is not None and client.stdout is not None
        client.stdin.close()
        seen.extend(json.loads(client.stdout.readline()))
        client.wait(30)
        server.stop()

    def results() -> dict[str, Any]:
        published = bench.states[first_index:]
        arrived = [(int(n), t) for n, t in seen[1:]]  # the first is the value at subscription
        return {"opcua_state_latency_ms": [(a - p) * 1000 for (_, a), (_, p) in
                                           zip(arrived, published, strict=False)],
                "opcua_changes_published": len(published), "opcua_changes_seen": len(arrived),
                "opcua_every_change_in_order": [n for n, _ in arrived] == [n for n, _ in published]}

    return stop, results


def opcua_client(url: str, folder: Path, cell_id: str) -> None:
    """Child process: subscribe to the cell's StateCurrent, print ``ready``, and when stdin closes print
    every notification as JSON ``[[value, time.monotonic()], ...]``."""
    from asyncua import Client, ua
    from asyncua.crypto import cert_gen
    from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
    from cryptography.x509.oid import ExtendedKeyUsageOID

    seen: list[tuple[int, float]] = []

    class Handler:
        def datachange_notification(self, node: Any, val: int, data: Any) -> None:
            seen.append((int(val), time.monotonic()))

    async def run() -> None:
        key, cert = folder / "client-key.pem", folder / "client-cert.der"
        await cert_gen.setup_self_signed_certificate(key, cert, "urn:bench", "localhost",
                                                     [ExtendedKeyUsageOID.CLIENT_AUTH], {"commonName": "b"})
        client = Client(url)
        client.application_uri = "urn:bench"
        client.set_user(USER)
        client.set_password(PASSWORD)
        await client.set_security(SecurityPolicyBasic256Sha256, str(cert), str(key),
                                  mode=ua.MessageSecurityMode.SignAndEncrypt)
        async with client:
            pk = await client.get_namespace_index(model.PACKML_NAMESPACE)
            mf = await client.get_namespace_index(model.CELL_NAMESPACE)
            node = await client.nodes.objects.get_child([f"{pk}:PackMLObjects", f"{mf}:{cell_id}",
                                                         f"{pk}:Status", f"{pk}:StateCurrent"])
            sub = await client.create_subscription(10, Handler())
            await sub.subscribe_data_change(node, queuesize=1000)
            while not seen:
                await asyncio.sleep(0.01)
            sys.stdout.write("ready\n")
            sys.stdout.flush()
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the parent closes
            await asyncio.sleep(0.5)  # the last notifications
            await sub.delete()

    asyncio.run(run())
    sys.stdout.write(json.dumps(seen) + "\n")
    sys.stdout.flush()


def mqtt_on(bench: Bench, folder: Path) -> ServerRun | None:
    """The MQTT Sparkplug B edge node of the cell on a real mosquitto, with a subscriber process decoding
    everything (``integration_mqtt.mqtt_on``), for the engine's stall with both servers on. Its own
    figures (``mqtt_event_latency_ms_p99``, ``events_per_s``) come from ``integration_mqtt.mqtt_figures``
    after the rounds. None when mosquitto is not installed (the figures are then null)."""
    import shutil

    import integration_mqtt

    if not (shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").is_file()):
        return None
    context = integration_mqtt.mqtt_on(bench.controller.bus, cell_id=bench.controller.cell.cell.id,
                                       stations=list(bench.controller.stations))
    context.__enter__()
    return (lambda: context.__exit__(None, None, None)), dict


def make_journal(path: Path) -> None:
    journal = Journal(path)
    try:
        book = UserBook(journal)
        first = book.first_admin()
        admin = book.change_password(book.sign_in("admin", first), first, "bench-admin-pass")
        book.add(admin, USER, "Benchmark client", "operator", "bench-initial-1")
        book.change_password(book.sign_in(USER, "bench-initial-1"), "bench-initial-1", PASSWORD)
    finally:
        journal.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured time per phase (s)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of (servers off, servers on)")
    parser.add_argument("--stations", type=int, default=16)
    parser.add_argument("--speed", type=float, default=20.0)
    parser.add_argument("--client", metavar="URL", help=argparse.SUPPRESS)  # the OPC UA client process
    parser.add_argument("--pki", help=argparse.SUPPRESS)
    parser.add_argument("--cell-id", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        opcua_client(args.client, Path(args.pki), args.cell_id)
        return
    folder = Path(tempfile.mkdtemp(prefix="integration-bench-"))
    (folder / "cell.yaml").write_text(cell_yaml(args.stations))
    child, cell_file = simulators_in_a_process(folder, args.speed)
    make_journal(folder / "journal.sqlite")
    controller = Controller(load_cell(cell_file), speed=args.speed, db=folder / "journal.sqlite")
    thread = EngineThread(controller)
    off, on = Phase(), Phase()
    raw: list[dict[str, Any]] = []
    mqtt_ran = False
    try:
        thread.start(timeout_s=120)
        bench = Bench(controller, thread)
        for _ in range(args.rounds):  # off and on interleaved: the machine's load drifts
            off.add(bench.run_phase(args.seconds))
            opcua, mqtt = opcua_on(bench, folder), mqtt_on(bench, folder)
            mqtt_ran = mqtt is not None
            servers = [run for run in (opcua, mqtt) if run is not None]
            on.add(bench.run_phase(args.seconds))
            for stop, _ in servers:
                stop()
            raw += [results() for _, results in servers]
    finally:
        thread.stop(30)
        if child.stdin is not None:
            child.stdin.close()
        child.wait(30)
    servers_named = ["opcua", "mqtt"] if mqtt_ran else ["opcua"]
    figures = merge(raw)
    if mqtt_ran:
        import integration_mqtt

        figures.update(integration_mqtt.mqtt_figures(args.seconds))
    print(json.dumps({"stations": args.stations, "status_hz": 20, "speed": args.speed, "rounds": args.rounds,
                      "seconds_per_phase": args.seconds, "servers": servers_named, **figures,
                      "engine_max_stall_ms": on.summary()["max_stall_ms"],
                      "engine_max_stall_ms_servers_off": off.summary()["max_stall_ms"],
                      "engine_stall_increase_ms": round(on.summary()["max_stall_ms"]
                                                        - off.summary()["max_stall_ms"], 2),
                      "servers_off": off.summary(), "servers_on": on.summary()}))


def merge(raw: list[dict[str, Any]]) -> dict[str, Any]:
    """The rounds' raw figures as the benchmark's keys (lists of ms become p99/p50)."""
    out: dict[str, Any] = {"mqtt_event_latency_ms_p99": None, "events_per_s": None}
    latencies = [v for r in raw for v in r.get("opcua_state_latency_ms", [])]
    if any("opcua_state_latency_ms" in r for r in raw):
        out["opcua_state_latency_ms_p99"] = round(p99(latencies), 2)
        out["opcua_state_latency_ms_p50"] = round(statistics.median(latencies), 2) if latencies else None
        for key in ("opcua_changes_published", "opcua_changes_seen"):
            out[key] = sum(r.get(key, 0) for r in raw)
        out["opcua_every_change_in_order"] = all(r.get("opcua_every_change_in_order", True) for r in raw)
    for r in raw:  # other servers' figures (mqtt_on's) as they are
        out.update({k: v for k, v in r.items() if not k.startswith("opcua_")})
    return out


if __name__ == "__main__":
    main()
