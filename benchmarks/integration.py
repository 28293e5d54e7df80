"""Plant integration under load (issue 15): what serving the cell to plant systems costs and how fast
they see it. Last line: one JSON object.

MQTT Sparkplug B (:mod:`benchmarks.integration_mqtt`, a real mosquitto and a subscriber process):
16 stations publishing a changed status at 20 Hz each on the cell's event bus →
``mqtt_event_latency_ms_p99`` (bus publish → decoded at the subscriber; goal ≤ 50; baseline in the same
run: ``mqtt_raw_latency_ms_p99``, the same payloads straight through paho), ``events_per_s`` with
``mqtt_status_offered`` / ``mqtt_status_delivered`` / ``mqtt_dropped`` (goal: every change delivered, 0
dropped), ``mqtt_flood_events_per_s`` (headroom) and ``bus_publish_us_p99_mqtt_off`` / ``_on`` (what
one publish costs the publishing thread without and with the edge node).

The OPC UA figures and ``engine_max_stall_ms`` with both servers on come from the OPC UA side of the
issue; ``integration_mqtt.mqtt_on_bench`` is the MQTT server for its servers-on phase.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from integration_mqtt import mqtt_figures


def mqtt_part(seconds: float) -> dict[str, Any]:
    """The MQTT figures (the status load runs alone: its 16 publisher threads would load other phases)."""
    return mqtt_figures(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured time of the status load (s)")
    args = parser.parse_args()
    print(json.dumps({**mqtt_part(args.seconds)}))


if __name__ == "__main__":
    main()
