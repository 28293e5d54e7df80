"""The wash station's SCPI-style line codec: headers, command lines, and parsing of query answers.

The protocol (``/work/shared/protocols/wash-scpi.md``) accepts every header in its short form
(``WASH:TEMP``) or its long form (``WASHer:TEMPerature``): the upper-case letters of a long-form mnemonic
are its short form. The driver sends short forms by default; a real unit whose firmware insists on long
forms is served by ``long_form=True``. Only queries answer, one line each; errors wait in the device's
error queue as ``code,"text"``.

Parsing never guesses: an answer that is not what the protocol allows raises :class:`UnreadableAnswer`
(a :class:`~microfactory.errors.ProtocolError`, and a :class:`ValueError` for callers that catch that),
never another exception; the driver adds the bytes and the line sent.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum

from microfactory.errors import ProtocolError

# Long forms; the short form is the upper-case letters of each mnemonic (and the leading ``*``/``:``).
IDN = "*IDN"
RST = "*RST"
CLS = "*CLS"
OPC = "*OPC"
ERROR = "SYSTem:ERRor"
TEMPERATURE = "WASHer:TEMPerature"
MEASURED_TEMPERATURE = "MEASure:TEMPerature"
TIME = "WASHer:TIME"
POWER = "WASHer:POWer"
PROGRAM = "WASHer:PROGram"
START = "WASHer:STARt"
ABORT = "WASHer:ABORt"
STATE = "WASHer:STATe"
REMAINING = "WASHer:REMaining"
LID = "SYSTem:LID"
LEVEL = "SYSTem:LEVel"
STANDBY = "SYSTem:STBY"
ELECTRICAL_POWER = "SYSTem:POWer"

NO_ERROR = 0
_ERROR_LINE = re.compile(r'^\s*([+-]?\d{1,9})\s*,\s*"(.*)"\s*$')  # SCPI error numbers fit in 9 digits
_NUMBER = re.compile(r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$")


class WashPhase(StrEnum):
    """What ``WASH:STAT?`` answers: where the cycle is."""

    IDLE = "IDLE"
    HEAT = "HEAT"
    WASH = "WASH"
    RINSE = "RINSE"
    DRY = "DRY"
    DONE = "DONE"
    FAULT = "FAULT"

    @property
    def running(self) -> bool:
        """True while a cycle is under way (heater or ultrasound or pump may be on)."""
        return self in (WashPhase.HEAT, WashPhase.WASH, WashPhase.RINSE, WashPhase.DRY)


def short_form(header: str) -> str:
    """``WASHer:TEMPerature`` → ``WASH:TEMP``; ``*IDN`` stays ``*IDN``."""
    if header.startswith("*"):
        return header
    return ":".join("".join(c for c in part if c.isupper() or c.isdigit()) for part in header.split(":"))


def spell(header: str, *, long_form: bool = False) -> str:
    """The header as sent: short form, or the long form in upper case when ``long_form``."""
    return header.upper() if long_form else short_form(header)


def command_line(header: str, *args: object, long_form: bool = False) -> str:
    """One command line (without the ``\\n``): ``WASH:TEMP 45``. Floats are written without noise."""
    text = spell(header, long_form=long_form)
    if args:
        text += " " + ",".join(_format_arg(a) for a in args)
    return text


def query_line(header: str, *, long_form: bool = False) -> str:
    """One query line (without the ``\\n``): ``WASH:TEMP?``."""
    return spell(header, long_form=long_form) + "?"


def _format_arg(value: object) -> str:
    if isinstance(value, bool):
        return "ON" if value else "OFF"
    if isinstance(value, float):
        return f"{value:.6g}" if not value.is_integer() else str(int(value))
    return str(value)


@dataclass(frozen=True)
class DeviceError:
    """One entry of the error queue: ``-310,"System error;level low"``."""

    code: int
    text: str

    @property
    def ok(self) -> bool:
        return self.code == NO_ERROR

    def __str__(self) -> str:
        return f'{self.code},"{self.text}"'


@dataclass(frozen=True)
class Identity:
    """The ``*IDN?`` answer: ``maker,model,serial,firmware`` (recorded in every part's genealogy)."""

    maker: str
    model: str
    serial: str
    firmware: str

    def __str__(self) -> str:
        return f"{self.maker},{self.model},{self.serial},{self.firmware}"


class UnreadableAnswer(ProtocolError, ValueError):
    """A query answer that is not what the protocol allows."""


def parse_error(line: str) -> DeviceError:
    """Parse a ``SYST:ERR?`` answer ``code,"text"``; raise UnreadableAnswer if it has another shape."""
    m = _ERROR_LINE.match(line)
    if not m:
        raise UnreadableAnswer(f'not an error queue entry (expected code,"text"): {line!r}')
    return DeviceError(int(m.group(1)), m.group(2))


def parse_identity(line: str) -> Identity:
    """Parse a ``*IDN?`` answer of four comma-separated, non-empty fields."""
    fields = [f.strip() for f in line.split(",")]
    if len(fields) != 4 or not all(fields) or not line.isprintable():
        raise UnreadableAnswer(f"not an identity (expected maker,model,serial,firmware): {line!r}")
    return Identity(*fields)


def parse_number(line: str) -> float:
    """Parse a numeric answer (``45``, ``44.96``, ``1.2E+2``)."""
    if not _NUMBER.match(line):
        raise UnreadableAnswer(f"not a number: {line!r}")
    value = float(line)
    if not math.isfinite(value):
        raise UnreadableAnswer(f"number out of range: {line[:40]!r}")
    return value


def parse_word(line: str, allowed: tuple[str, ...]) -> str:
    """Parse a keyword answer (case-insensitive) that must be one of ``allowed``; returns it upper-case."""
    word = line.strip().upper()
    if word not in allowed:
        raise UnreadableAnswer(f"expected one of {', '.join(allowed)}, got {line!r}")
    return word


def parse_phase(line: str) -> WashPhase:
    """Parse a ``WASH:STAT?`` answer."""
    return WashPhase(parse_word(line, tuple(p.value for p in WashPhase)))
