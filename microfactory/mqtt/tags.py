"""What the edge node publishes: the engine's events as Sparkplug metrics of the cell and its stations.

The cell is the Sparkplug edge node (its metrics: ``Cell/State``, ``Lot/Passed``, ``Part/Id`` ...); each
station of the cell file is a device (``State``, ``Link/Connected``, ``Status/mpos/x``, ``Alarm/Code``,
``Measurement/<feature>`` ...). :func:`translate` maps one event to ``(device or None, {metric: value})``;
:class:`Tags` keeps the last value and the born data type of every metric of one node or device, so a
birth certificate always carries the whole current state and a DATA message carries only what changed
(Sparkplug's report by exception). A metric seen for the first time, or a value that no longer fits
its born type, asks for a new birth certificate: Sparkplug hosts only accept metrics that were born.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Any

from microfactory.events import Event, EventKind
from microfactory.mqtt.sparkplug import BDSEQ, REBIRTH, DataType, data_type, fits, flatten

#: Metrics born with the node even before they have a value (null), so the first lot needs no rebirth.
NODE_METRICS: dict[str, DataType] = {
    BDSEQ: DataType.INT64, REBIRTH: DataType.BOOLEAN,
    "Cell/State": DataType.STRING, "Cell/Mode": DataType.STRING,
    "Lot/Id": DataType.STRING, "Lot/Phase": DataType.STRING, "Lot/Total": DataType.INT64,
    "Lot/Passed": DataType.INT64, "Lot/Scrapped": DataType.INT64, "Lot/Reworked": DataType.INT64,
    "Lot/InFlight": DataType.INT64, "Lot/Elapsed_s": DataType.DOUBLE, "Lot/ETA_s": DataType.DOUBLE,
    "Part/Id": DataType.STRING, "Part/State": DataType.STRING, "Part/Station": DataType.STRING,
    "Part/Step": DataType.STRING, "Part/Reworks": DataType.INT64,
    "Alarm/Active": DataType.BOOLEAN, "Alarm/Code": DataType.STRING, "Alarm/Text": DataType.STRING,
    "Prompt/Open": DataType.BOOLEAN, "Prompt/Id": DataType.STRING, "Prompt/Text": DataType.STRING,
    "MQTT/Dropped": DataType.UINT64,
}
#: Metrics born with every station.
DEVICE_METRICS: dict[str, DataType] = {
    "State": DataType.STRING, "Link/Connected": DataType.BOOLEAN, "Link/Port": DataType.STRING,
    "Alarm/Active": DataType.BOOLEAN, "Alarm/Code": DataType.STRING, "Alarm/Text": DataType.STRING,
    "Alarm/Severity": DataType.STRING, "Alarm/Recovery": DataType.STRING,
    "Step/Part": DataType.STRING, "Step/Name": DataType.STRING, "Step/Phase": DataType.STRING,
    "Step/Verdict": DataType.STRING, "Energy/State": DataType.STRING, "Energy/Watts": DataType.DOUBLE,
    "Energy/Joules": DataType.DOUBLE, "Progress/done": DataType.INT64, "Progress/total": DataType.INT64,
    "Progress/remaining_s": DataType.DOUBLE,
}
_LOT_FIELDS = {"lot": "Lot/Id", "phase": "Lot/Phase", "total": "Lot/Total", "passed": "Lot/Passed",
               "scrapped": "Lot/Scrapped", "reworked": "Lot/Reworked", "in_flight": "Lot/InFlight",
               "elapsed_s": "Lot/Elapsed_s", "eta_s": "Lot/ETA_s"}


@dataclass(frozen=True)
class Change:
    """One event as metrics: ``device`` None is the node (the cell); ``online`` is a station's link."""

    device: str | None
    values: dict[str, object]
    online: bool | None = None


def _alarm(data: Any) -> dict[str, object]:
    return {"Alarm/Active": True, "Alarm/Code": _text(data.get("code")),
            "Alarm/Text": _text(data.get("text")), "Alarm/Severity": _text(data.get("severity")),
            "Alarm/Recovery": _text(data.get("recovery"))}


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def translate(event: Event, stations: Collection[str]) -> Change | None:
    """The metrics ``event`` changes, or None for events that are not published (log lines)."""
    data, kind = event.data, event.kind
    device = event.source if event.source in stations else None
    if device is not None:
        if kind == EventKind.STATION_STATE:
            return Change(device, {"State": _text(data.get("state"))})
        if kind == EventKind.STATION_STATUS:
            return Change(device, flatten("Status", data))
        if kind == EventKind.STATION_PROGRESS:
            return Change(device, flatten("Progress", data))
        if kind == EventKind.STATION_LINK:
            up = bool(data.get("connected"))
            return Change(device, {"Link/Connected": up, "Link/Port": _text(data.get("port"))}, online=up)
        if kind == EventKind.ALARM:
            return Change(device, _alarm(data))
        if kind == EventKind.ALARM_CLEARED:
            return Change(device, {"Alarm/Active": False, "Alarm/Code": _text(data.get("code"))})
        if kind == EventKind.MEASUREMENT:
            feature = f"Measurement/{data.get('feature')}"
            return Change(device, {feature: data.get("value"),
                                   f"{feature}/Verdict": _text(data.get("verdict")),
                                   f"{feature}/Unit": _text(data.get("unit")),
                                   "Measurement/Part": _text(data.get("part"))})
        if kind == EventKind.STEP:
            return Change(device, {"Step/Part": _text(data.get("part")), "Step/Name": _text(data.get("step")),
                                   "Step/Phase": _text(data.get("phase")),
                                   "Step/Verdict": _text(data.get("verdict"))})
        if kind == EventKind.ENERGY:
            return Change(device, {"Energy/State": _text(data.get("state")),
                                   "Energy/Watts": data.get("watts"), "Energy/Joules": data.get("joules")})
    if kind == EventKind.CELL_STATE:
        return Change(None, {"Cell/State": _text(data.get("state")), "Cell/Mode": _text(data.get("mode"))})
    if kind == EventKind.LOT:
        return Change(None, {name: data.get(key) for key, name in _LOT_FIELDS.items() if key in data})
    if kind == EventKind.PART:
        return Change(None, {"Part/Id": _text(data.get("part")), "Part/State": _text(data.get("state")),
                             "Part/Station": _text(data.get("station")), "Part/Step": _text(data.get("step")),
                             "Part/Reworks": data.get("reworks")})
    if kind == EventKind.ALARM:
        return Change(None, {k: v for k, v in _alarm(data).items() if k in NODE_METRICS})
    if kind == EventKind.ALARM_CLEARED:
        return Change(None, {"Alarm/Active": False, "Alarm/Code": _text(data.get("code"))})
    if kind == EventKind.PROMPT:
        return Change(None, {"Prompt/Open": True, "Prompt/Id": _text(data.get("id")),
                             "Prompt/Text": _text(data.get("text"))})
    if kind == EventKind.PROMPT_ANSWERED:
        return Change(None, {"Prompt/Open": False, "Prompt/Id": _text(data.get("id"))})
    return None


class Tags:
    """The last value and born type of every metric of one node or device (edge-node thread only)."""

    def __init__(self, born: dict[str, DataType]) -> None:
        self.types: dict[str, DataType] = dict(born)
        self.values: dict[str, object] = dict.fromkeys(born)

    def update(self, values: dict[str, object]) -> tuple[dict[str, object], bool]:
        """Apply ``values``; return the metrics whose value changed and whether a new birth is needed."""
        changed: dict[str, object] = {}
        rebirth = False
        for name, value in values.items():
            declared = self.types.get(name)
            if declared is not None and name in self.values and self.values[name] == value \
                    and type(self.values[name]) is type(value):
                continue
            if declared is None or not fits(declared, value):
                self.types[name] = DataType.STRING if value is None else data_type(value)
                rebirth = True
            self.values[name] = value
            changed[name] = value
        return changed, rebirth

    def metrics(self, names: Collection[str] | None = None) -> Iterator[tuple[str, DataType, object]]:
        """``(name, type, value)`` of ``names`` (all, for a birth certificate)."""
        for name in self.values if names is None else names:
            yield name, self.types[name], self.values[name]
