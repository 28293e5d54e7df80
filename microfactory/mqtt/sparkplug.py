"""Sparkplug B on the wire: topic names, metric data types, payloads built from plain Python values.

Sparkplug B (Eclipse Sparkplug 3.0) puts every message of an edge node under
``spBv1.0/<group>/<type>/<edge node>[/<device>]`` and encodes its payload with the specification's
protobuf schema (``sparkplug_b.proto`` beside this module, compiled to ``sparkplug_b_pb2``). A cell is
one edge node; each station is one device. This module knows nothing of MQTT connections or of the
event bus: it turns values into bytes and back, so a host, a test or a benchmark decodes exactly what
the edge node sends.

Timestamps are milliseconds since the epoch (UTC), as the specification wants.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any, TypeVar

from microfactory.errors import ConfigError
from microfactory.mqtt.sparkplug_b_pb2 import Payload

NAMESPACE = "spBv1.0"
SEQ_MODULUS = 256  # seq and bdSeq run 0..255 and wrap
REBIRTH = "Node Control/Rebirth"
BDSEQ = "bdSeq"
_BAD_ID = re.compile(r"[/+#]")
T = TypeVar("T", int, float)


class MessageType(StrEnum):
    """The Sparkplug message types an edge node sends (N: node, D: device) or receives (CMD)."""

    NBIRTH = "NBIRTH"
    NDATA = "NDATA"
    NDEATH = "NDEATH"
    DBIRTH = "DBIRTH"
    DDATA = "DDATA"
    DDEATH = "DDEATH"
    NCMD = "NCMD"
    DCMD = "DCMD"


class DataType(IntEnum):
    """Sparkplug B metric data types used here (the specification's numbers)."""

    INT64 = 4
    UINT64 = 8
    DOUBLE = 10
    BOOLEAN = 11
    STRING = 12


def check_id(value: str, what: str) -> str:
    """A Sparkplug group, edge node or device id: not empty, no ``/``, ``+`` or ``#``."""
    if not value or _BAD_ID.search(value):
        raise ConfigError.single(what, f"{value!r} is not a Sparkplug id (it may not be empty nor hold "
                                       "'/', '+' or '#')", hint="give a name of letters, digits, - and _")
    return value


def topic(group: str, message: MessageType, edge_node: str, device: str | None = None) -> str:
    """``spBv1.0/<group>/<message>/<edge node>[/<device>]``."""
    base = f"{NAMESPACE}/{group}/{message.value}/{edge_node}"
    return f"{base}/{device}" if device else base


@dataclass(frozen=True)
class Topic:
    """A parsed Sparkplug topic."""

    group: str
    message: MessageType
    edge_node: str
    device: str | None = None


def parse_topic(text: str) -> Topic:
    """Split a Sparkplug topic; ``ValueError`` when it is not one."""
    parts = text.split("/")
    if len(parts) not in (4, 5) or parts[0] != NAMESPACE:
        raise ValueError(f"{text!r} is not a Sparkplug B topic ({NAMESPACE}/group/type/node[/device])")
    return Topic(parts[1], MessageType(parts[2]), parts[3], parts[4] if len(parts) == 5 else None)


def now_ms() -> int:
    """Wall time in ms since the epoch: Sparkplug timestamps are calendar time, not process time."""
    return int(time.time() * 1000)


def data_type(value: object) -> DataType:
    """The metric type a Python value is published as (bool before int: bool is an int)."""
    if isinstance(value, bool):
        return DataType.BOOLEAN
    if isinstance(value, int):
        return DataType.INT64
    if isinstance(value, float):
        return DataType.DOUBLE
    return DataType.STRING


def fits(declared: DataType, value: object) -> bool:
    """Whether ``value`` can be sent under a metric born as ``declared`` (an int fits a Double)."""
    if value is None:
        return True
    actual = data_type(value)
    return actual == declared or (declared == DataType.DOUBLE and actual == DataType.INT64)


def add_metric(payload: Payload, name: str, declared: DataType, value: object, timestamp_ms: int) -> None:
    """Append one metric; ``None`` (and NaN) is sent as an explicit null, as the specification asks."""
    metric = payload.metrics.add()
    metric.name = name
    metric.datatype = int(declared)
    metric.timestamp = timestamp_ms
    if value is None or (isinstance(value, float) and math.isnan(value)):
        metric.is_null = True
    elif declared == DataType.BOOLEAN:
        metric.boolean_value = bool(value)
    elif declared == DataType.INT64:
        metric.long_value = _number(value, int) & 0xFFFF_FFFF_FFFF_FFFF  # two's complement, as Int64
    elif declared == DataType.UINT64:
        metric.long_value = _number(value, int)
    elif declared == DataType.DOUBLE:
        metric.double_value = _number(value, float)
    else:
        metric.string_value = str(value)


def _number(value: object, kind: type[T]) -> T:
    if not isinstance(value, int | float):
        raise TypeError(f"a number was expected, not {value!r}")
    return kind(value)


def payload(metrics: Iterable[tuple[str, DataType, object]], *, seq: int | None,
            timestamp_ms: int | None = None) -> bytes:
    """Serialised Payload of ``(name, type, value)`` metrics; ``seq`` None leaves it out (NDEATH)."""
    stamp = now_ms() if timestamp_ms is None else timestamp_ms
    message = Payload()
    message.timestamp = stamp
    if seq is not None:
        message.seq = seq
    for name, declared, value in metrics:
        add_metric(message, name, declared, value, stamp)
    return message.SerializeToString()


def metric_value(metric: Payload.Metric) -> Any:
    """The Python value of a decoded metric (None when null)."""
    if metric.is_null:
        return None
    kind = metric.WhichOneof("value")
    if kind is None:
        return None
    value = getattr(metric, kind)
    if kind == "long_value" and metric.datatype == DataType.INT64 and value >= 1 << 63:
        value -= 1 << 64
    return value


def decode(data: bytes) -> tuple[int | None, int, dict[str, Any]]:
    """``(seq, timestamp_ms, {name: value})`` of a payload (seq None when absent, as on NDEATH)."""
    message = Payload()
    message.ParseFromString(data)
    seq = message.seq if message.HasField("seq") else None
    return seq, message.timestamp, {m.name: metric_value(m) for m in message.metrics}


def flatten(prefix: str, data: Mapping[str, Any]) -> dict[str, object]:
    """Event data as metric names and scalar values: ``Status/mpos/x``, ``Lot/Passed`` ...

    Tuples of three numbers are x/y/z (machine positions, mm); other sequences are indexed; nested
    mappings are joined with ``/``. Values that are not scalars are sent as their text.
    """
    out: dict[str, object] = {}
    for key, value in data.items():
        name = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.update(flatten(name, value))
        elif isinstance(value, list | tuple):
            labels = ("x", "y", "z") if len(value) == 3 else tuple(str(i) for i in range(len(value)))
            out.update(flatten(name, dict(zip(labels, value, strict=True))))
        elif value is None or isinstance(value, bool | int | float | str):
            out[name] = value
        else:
            out[name] = str(value)
    return out
