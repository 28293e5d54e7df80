"""What a Grbl 1.1 line means: answers, pushed messages and status reports, parsed into typed values.

Every line Grbl sends is one of: a final answer to a line the host sent (``ok``, ``error:N``), or a
pushed message that is *not* an answer (``<...>`` status, ``ALARM:N``, ``[MSG:]``, ``[GC:]``, ``[VER:]``,
``[OPT:]``, ``[PRB:]``, ``[echo:]``, ``[HLP:]``, ``$#`` offsets, ``$$`` settings, ``>...:ok`` startup
line, the reset banner). :func:`classify` tells them apart; :func:`parse_status` turns a status report
into a :class:`StatusReport`. Anything else — noise from a wrong baud rate, a cut line — raises
:class:`~microfactory.errors.ProtocolError` with the bytes received, never another exception.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from enum import StrEnum

from microfactory.errors import ProtocolError

Vec = tuple[float, ...]

# Grbl prints uint32 counters and codes (at most 10 digits) and floats with a few decimals; longer digit
# runs are noise, and bounding them keeps int() within Python's 4,300-digit conversion limit.
_NUMBER = re.compile(r"^-?\d{1,12}(?:\.\d{1,12})?$")
_INT = re.compile(r"^\d{1,10}$")
_BANNER = re.compile(r"^Grbl (\d+\.\d+[a-z]?) \['\$' for help\]$")
_SETTING = re.compile(r"^\$(\d{1,10})=(-?\d{1,12}(?:\.\d{1,12})?)$")
_STARTUP_STORED = re.compile(r"^\$N(\d)=(.*)$")
_OFFSET_TAGS = frozenset({"G54", "G55", "G56", "G57", "G58", "G59", "G28", "G30", "G92", "TLO"})
_PINS = frozenset("XYZABCPDHRS")
_ACCESSORIES = frozenset("SCFM")

#: Machine states a status report may carry, with the substates each allows.
STATES: dict[str, frozenset[int]] = {
    "Idle": frozenset(), "Run": frozenset(), "Hold": frozenset({0, 1}), "Jog": frozenset(),
    "Alarm": frozenset(), "Door": frozenset({0, 1, 2, 3}), "Check": frozenset(), "Home": frozenset(),
    "Sleep": frozenset(),
}


class LineKind(StrEnum):
    """What kind of line Grbl sent."""

    OK = "ok"                # final answer: line accepted
    ERROR = "error"          # final answer: line refused, ``code`` = N
    ALARM = "alarm"          # pushed: lock-out, ``code`` = N
    STATUS = "status"        # pushed: ``<...>`` answer to ``?``
    MSG = "msg"              # pushed: ``[MSG:...]``
    GC = "gc"                # pushed: ``[GC:...]`` parser state (``$G``)
    VER = "ver"              # pushed: ``[VER:...]`` (``$I``)
    OPT = "opt"              # pushed: ``[OPT:...]`` (``$I``)
    PRB = "prb"              # pushed: ``[PRB:...]`` probe result
    ECHO = "echo"            # pushed: ``[echo:...]``
    HELP = "help"            # pushed: ``[HLP:...]`` (``$``)
    OFFSET = "offset"        # pushed: ``[G54:...]`` ... ``[TLO:...]`` (``$#``)
    SETTING = "setting"      # pushed: ``$N=V`` (``$$``)
    STARTUP_STORED = "startup_stored"  # pushed: ``$N0=...`` (``$N``)
    STARTUP = "startup"      # pushed: ``>line:ok`` / ``>line:error:N`` startup line executed
    BANNER = "banner"        # pushed: ``Grbl 1.1h ['$' for help]`` after power-up or soft reset
    EMPTY = "empty"          # a blank line (harmless)

    @property
    def is_answer(self) -> bool:
        """True for the final answers that pop the oldest line sent (``ok``, ``error:N``)."""
        return self in (LineKind.OK, LineKind.ERROR)


@dataclass(frozen=True)
class GrblLine:
    """One classified line: ``payload`` is the text inside the brackets/after the tag; ``code`` the N of
    ``error:N``/``ALARM:N`` (or the setting number of ``$N=V``)."""

    kind: LineKind
    text: str
    payload: str = ""
    code: int | None = None


def _garbled(text: str, port: str, why: str) -> ProtocolError:
    return ProtocolError(f"unreadable line from Grbl: {why}", port=port,
                         received=text.encode("latin-1", errors="replace"),
                         hint="wrong baud rate? (Grbl 1.1 talks 115200 8N1) or electrical noise on the cable")


def classify(text: str, *, port: str = "") -> GrblLine:
    """Classify one line (without its line ending); raise :class:`ProtocolError` when it is not Grbl's."""
    line = text.strip()
    if not line:
        return GrblLine(LineKind.EMPTY, text)
    if any(ord(c) < 0x20 or ord(c) > 0x7E for c in line):
        raise _garbled(text, port, "bytes that are not printable ASCII")
    if line == "ok":
        return GrblLine(LineKind.OK, line)
    if line.startswith("error:"):
        return GrblLine(LineKind.ERROR, line, line[6:], _code(line[6:], text, port))
    if line.startswith("ALARM:"):
        return GrblLine(LineKind.ALARM, line, line[6:], _code(line[6:], text, port))
    if line.startswith("<"):
        if not line.endswith(">"):
            raise _garbled(text, port, "a status report without its closing '>'")
        return GrblLine(LineKind.STATUS, line, line[1:-1])
    if line.startswith("["):
        return _bracketed(line, text, port)
    if line.startswith(">"):
        if not (line.endswith(":ok") or re.search(r":error:\d+$", line)):
            raise _garbled(text, port, "a startup-line echo without ':ok' or ':error:N'")
        return GrblLine(LineKind.STARTUP, line, line[1:])
    if _BANNER.match(line):
        return GrblLine(LineKind.BANNER, line, _BANNER.match(line).group(1))  # type: ignore[union-attr]
    m = _SETTING.match(line)
    if m:
        return GrblLine(LineKind.SETTING, line, m.group(2), int(m.group(1)))
    m = _STARTUP_STORED.match(line)
    if m:
        return GrblLine(LineKind.STARTUP_STORED, line, m.group(2), int(m.group(1)))
    raise _garbled(text, port, "not a Grbl 1.1 message")


def _code(value: str, text: str, port: str) -> int:
    if not _INT.match(value):
        raise _garbled(text, port, f"code {value!r} is not a number")
    return int(value)


def _bracketed(line: str, text: str, port: str) -> GrblLine:
    if not line.endswith("]") or ":" not in line:
        raise _garbled(text, port, "a bracketed message without ']' or a tag")
    tag, _, payload = line[1:-1].partition(":")
    kinds = {"MSG": LineKind.MSG, "GC": LineKind.GC, "VER": LineKind.VER, "OPT": LineKind.OPT,
             "PRB": LineKind.PRB, "echo": LineKind.ECHO, "HLP": LineKind.HELP}
    if tag in kinds:
        return GrblLine(kinds[tag], line, payload)
    if tag in _OFFSET_TAGS:
        return GrblLine(LineKind.OFFSET, line, payload)
    raise _garbled(text, port, f"unknown bracketed message tag {tag!r}")


@dataclass(frozen=True)
class StatusReport:
    """One ``<...>`` status report; positions in mm, feed in mm/min, spindle in rpm or laser power units.

    Fields Grbl did not include are None (they depend on ``$10`` and on what changed). ``mpos`` and
    ``wpos`` are both filled by :class:`StatusTracker` from the cached work coordinate offset ``wco``
    (machine = work + wco). ``overrides`` are feed/rapid/spindle in %. ``pins`` lists the input pins
    that are active (``XYZPDHRS``), ``accessories`` the ``A:`` flags (``S``/``C`` spindle CW/CCW,
    ``F`` flood, ``M`` mist).
    """

    state: str
    substate: int | None = None
    mpos: Vec | None = None
    wpos: Vec | None = None
    wco: Vec | None = None
    planner_free: int | None = None
    rx_free: int | None = None
    line: int | None = None
    feed: float | None = None
    spindle: float | None = None
    overrides: tuple[int, int, int] | None = None
    pins: str = ""
    accessories: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """The state as Grbl writes it (``Hold:1``, ``Idle``)."""
        return self.state if self.substate is None else f"{self.state}:{self.substate}"

    def as_fields(self) -> dict[str, object]:
        """Plain values for a ``station.status`` event."""
        return {"state": self.label, "mpos": self.mpos, "wpos": self.wpos, "wco": self.wco,
                "feed": self.feed, "spindle": self.spindle, "planner_free": self.planner_free,
                "rx_free": self.rx_free, "line": self.line, "overrides": self.overrides,
                "pins": self.pins, "accessories": self.accessories}


def _floats(value: str, text: str, port: str, count: int | None = None) -> tuple[float, ...]:
    parts = value.split(",")
    if (count is not None and len(parts) != count) or any(not _NUMBER.match(p) for p in parts):
        raise _garbled(text, port, f"bad numbers {value!r}")
    return tuple(float(p) for p in parts)


def _ints(value: str, text: str, port: str, count: int) -> tuple[int, ...]:
    parts = value.split(",")
    if len(parts) != count or any(not _INT.match(p) for p in parts):
        raise _garbled(text, port, f"bad counts {value!r}")
    return tuple(int(p) for p in parts)


def parse_status(text: str, *, port: str = "") -> StatusReport:
    """Parse ``<State|Field:value|...>`` into a :class:`StatusReport`; raise :class:`ProtocolError`."""
    line = text.strip()
    if not (line.startswith("<") and line.endswith(">")) or len(line) < 3:
        raise _garbled(text, port, "a status report must be '<...>'")
    head, *fields = line[1:-1].split("|")
    name, sep, sub = head.partition(":")
    if name not in STATES:
        raise _garbled(text, port, f"unknown machine state {head!r}")
    substate: int | None = None
    if sep:
        if not _INT.match(sub) or int(sub) not in STATES[name]:
            raise _garbled(text, port, f"bad substate in {head!r}")
        substate = int(sub)
    values: dict[str, object] = {"state": name, "substate": substate}
    extra: dict[str, str] = {}
    seen: set[str] = set()
    for item in fields:
        key, colon, value = item.partition(":")
        if not colon or not key.isalpha() or key in seen:
            raise _garbled(text, port, f"bad or repeated field {item!r}")
        seen.add(key)
        _field(key, value, values, extra, text, port)
    return StatusReport(extra=extra, **values)  # type: ignore[arg-type]


def _field(key: str, value: str, values: dict[str, object], extra: dict[str, str], text: str,
           port: str) -> None:
    if key in ("MPos", "WPos", "WCO"):
        vec = _floats(value, text, port)
        if len(vec) < 3:
            raise _garbled(text, port, f"{key} needs at least 3 axes")
        values[{"MPos": "mpos", "WPos": "wpos", "WCO": "wco"}[key]] = vec
    elif key == "Bf":
        values["planner_free"], values["rx_free"] = _ints(value, text, port, 2)
    elif key == "Ln":
        values["line"] = _ints(value, text, port, 1)[0]
    elif key == "FS":
        values["feed"], values["spindle"] = _floats(value, text, port, 2)
    elif key == "F":
        values["feed"] = _floats(value, text, port, 1)[0]
    elif key == "Ov":
        values["overrides"] = _ints(value, text, port, 3)
    elif key == "Pn":
        if not value or not set(value) <= _PINS:
            raise _garbled(text, port, f"bad pin flags {value!r}")
        values["pins"] = value
    elif key == "A":
        if not value or not set(value) <= _ACCESSORIES:
            raise _garbled(text, port, f"bad accessory flags {value!r}")
        values["accessories"] = value
    else:
        extra[key] = value


def format_status(report: StatusReport) -> str:
    """Write ``report`` as Grbl would (the inverse of :func:`parse_status`; tests and traces use it)."""
    def vec(v: Vec) -> str:
        return ",".join(f"{x:.3f}" for x in v)

    parts = [report.label]
    if report.mpos is not None:
        parts.append(f"MPos:{vec(report.mpos)}")
    if report.wpos is not None:
        parts.append(f"WPos:{vec(report.wpos)}")
    if report.planner_free is not None and report.rx_free is not None:
        parts.append(f"Bf:{report.planner_free},{report.rx_free}")
    if report.line is not None:
        parts.append(f"Ln:{report.line}")
    if report.feed is not None:
        parts.append(f"FS:{report.feed:g},{report.spindle:g}" if report.spindle is not None
                     else f"F:{report.feed:g}")
    if report.wco is not None:
        parts.append(f"WCO:{vec(report.wco)}")
    if report.overrides is not None:
        parts.append("Ov:" + ",".join(str(o) for o in report.overrides))
    if report.pins:
        parts.append(f"Pn:{report.pins}")
    if report.accessories:
        parts.append(f"A:{report.accessories}")
    parts.extend(f"{k}:{v}" for k, v in report.extra.items())
    return "<" + "|".join(parts) + ">"


class StatusTracker:
    """Keeps the last work coordinate offset so every report carries both MPos and WPos.

    Grbl sends ``WCO`` only every 10–30 reports (and when it changes); between them a report has either
    MPos or WPos, and the other is derived: MPos = WPos + WCO.
    """

    def __init__(self) -> None:
        self.wco: Vec | None = None
        self.last: StatusReport | None = None

    def update(self, report: StatusReport) -> StatusReport:
        """Return ``report`` with ``mpos``, ``wpos`` and ``wco`` filled from the cache where possible."""
        if report.wco is not None:
            self.wco = report.wco
        wco = self.wco
        mpos, wpos = report.mpos, report.wpos
        if wco is not None:
            if mpos is not None and wpos is None and len(wco) == len(mpos):
                wpos = tuple(round(m - o, 6) for m, o in zip(mpos, wco, strict=True))
            elif wpos is not None and mpos is None and len(wco) == len(wpos):
                mpos = tuple(round(w + o, 6) for w, o in zip(wpos, wco, strict=True))
        self.last = replace(report, mpos=mpos, wpos=wpos, wco=wco)
        return self.last


@dataclass(frozen=True)
class BuildInfo:
    """What ``$I`` tells: firmware version text and the ``[OPT:flags,planner_blocks,rx_bytes]`` build."""

    version: str = ""
    options: str = ""
    planner_blocks: int | None = None
    rx_bytes: int = 128

    @property
    def firmware(self) -> str:
        """``Grbl 1.1h (20190830) [OPT:V,15,128]``-style id for the genealogy."""
        opt = f" [OPT:{self.options},{self.planner_blocks},{self.rx_bytes}]" if self.options or \
            self.planner_blocks else ""
        return f"Grbl {self.version}{opt}".strip()


def parse_build_info(lines: list[GrblLine], *, banner_version: str = "", port: str = "") -> BuildInfo:
    """Read the ``[VER:...]`` and ``[OPT:...]`` lines of a ``$I`` answer."""
    version, options, blocks, rx = banner_version, "", None, 128
    for line in lines:
        if line.kind is LineKind.VER:
            version = line.payload.rstrip(":") or version
        elif line.kind is LineKind.OPT:
            parts = line.payload.split(",")
            options = parts[0]
            if len(parts) >= 3:
                if not (_INT.match(parts[1]) and _INT.match(parts[2])):
                    raise _garbled(line.text, port, "bad [OPT:] numbers")
                blocks, rx = int(parts[1]), int(parts[2])
    return BuildInfo(version, options, blocks, rx)


def parse_tool_length(lines: list[GrblLine], *, port: str = "") -> float:
    """The ``[TLO:z]`` of a ``$#`` answer (mm; 0 when absent)."""
    for line in lines:
        if line.kind is LineKind.OFFSET and line.text.startswith("[TLO:"):
            try:
                return float(line.text[5:-1].split(",")[-1])
            except ValueError:
                raise _garbled(line.text, port, "bad [TLO:] number") from None
    return 0.0


def parse_offsets(lines: list[GrblLine], *, port: str = "") -> dict[str, Vec]:
    """``$#`` answer → ``{"G54": (x, y, z), ...}`` in mm (TLO and PRB are left out)."""
    out: dict[str, Vec] = {}
    for line in lines:
        if line.kind is LineKind.OFFSET:
            tag, _, value = line.text[1:-1].partition(":")
            if tag != "TLO":
                out[tag] = _floats(value, line.text, port)
    return out
