"""The washer's command interpreter: one SCPI-style line in, at most one answer line out.

Headers match case-insensitively in their short form (the upper-case letters of each mnemonic:
``WASH:TEMP``) or their full long form (``WASHER:TEMPERATURE``), with an optional leading ``:``. Only
queries answer; every problem goes to the error queue with the protocol's numbers: ``-113`` undefined
header, ``-102`` syntax (missing or non-numeric parameter), ``-100`` a command used as a query or the
reverse, ``-222`` data out of range, ``-221`` settings conflict.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from simulators.wash.model import STORED_PROGRAMS, Washer

_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


class CommandError(Exception):
    """A line the washer refuses: its code and text go to the error queue."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"{code},{text}")
        self.code = code
        self.text = text


@dataclass(frozen=True)
class Entry:
    """One header: what its query answers and what its command does (either may be absent)."""

    header: str  # long form, e.g. "WASHer:TEMPerature"
    query: Callable[[Washer], str] | None = None
    command: Callable[[Washer, str], None] | None = None


def _mnemonic_matches(token: str, long_form: str) -> bool:
    short = "".join(c for c in long_form if c.isupper() or c.isdigit() or c == "*")
    return token.upper() in (short.upper(), long_form.upper())


def _number(arg: str, lo: float, hi: float) -> float:
    if not arg:
        raise CommandError(-102, "Syntax error;missing parameter")
    if not _NUMBER.match(arg):
        raise CommandError(-102, f"Syntax error;number expected, got {arg[:20]}")
    value = float(arg)
    if not lo <= value <= hi:
        raise CommandError(-222, "Data out of range")
    return value


def _on_off(arg: str) -> bool:
    word = arg.upper()
    if word in ("ON", "1"):
        return True
    if word in ("OFF", "0"):
        return False
    raise CommandError(-102, "Syntax error;ON or OFF expected")


def _program(w: Washer, arg: str) -> None:
    name = arg.upper()
    if not name:
        raise CommandError(-102, "Syntax error;missing parameter")
    if name not in STORED_PROGRAMS:
        raise CommandError(-222, "Data out of range;unknown program")
    w.select_program(name)


def _set(field: str, lo: float, hi: float) -> Callable[[Washer, str], None]:
    def apply(w: Washer, arg: str) -> None:
        setattr(w.set, field, _number(arg, lo, hi))
        w.set.program = ""

    return apply


def _num(value: float) -> str:
    return f"{value:.1f}"


class Interpreter:
    """Runs lines against a :class:`Washer`; ``identity`` is the ``*IDN?`` answer."""

    def __init__(self, washer: Washer, identity: str) -> None:
        self.washer = washer
        self.identity = identity
        self.table = [
            Entry("*IDN", query=lambda w: self.identity),
            Entry("*RST", command=lambda w, a: w.reset()),
            Entry("*CLS", command=lambda w, a: w.errors.clear()),
            Entry("*OPC", query=lambda w: "1", command=lambda w, a: None),
            Entry("SYSTem:ERRor", query=lambda w: '{},"{}"'.format(*w.pop_error())),
            Entry("WASHer:TEMPerature", query=lambda w: _num(w.set.temperature_c),
                  command=_set("temperature_c", 20, 80)),
            Entry("MEASure:TEMPerature", query=lambda w: _num(w.bath_c)),
            Entry("WASHer:TIME", query=lambda w: f"{w.set.time_s:g}", command=_set("time_s", 1, 3600)),
            Entry("WASHer:POWer", query=lambda w: f"{w.set.power_pct:g}", command=_set("power_pct", 10, 100)),
            Entry("WASHer:PROGram", query=lambda w: w.set.program or "NONE", command=_program),
            Entry("WASHer:STARt", command=lambda w, a: w.start()),
            Entry("WASHer:ABORt", command=lambda w, a: w.abort()),
            Entry("WASHer:STATe", query=lambda w: w.phase),
            Entry("WASHer:REMaining", query=lambda w: f"{w.remaining_s():.0f}"),
            Entry("SYSTem:LID", query=lambda w: "OPEN" if w.lid_open else "CLOSED"),
            Entry("SYSTem:LEVel", query=lambda w: "LOW" if w.level_low else "OK"),
            Entry("SYSTem:STBY", query=lambda w: "ON" if w.standby else "OFF",
                  command=lambda w, a: w.set_standby(_on_off(a))),
            Entry("SYSTem:POWer", query=lambda w: _num(w.power_w())),
        ]

    def lookup(self, header: str) -> Entry:
        tokens = header.lstrip(":").split(":")
        for entry in self.table:
            parts = entry.header.split(":")
            if len(parts) == len(tokens) and all(map(_mnemonic_matches, tokens, parts)):
                return entry
        raise CommandError(-113, "Undefined header")

    def execute(self, line: str) -> str | None:
        """Run one line (without its line ending); return the answer of a query, else None."""
        text = line.strip()
        if not text:
            return None
        header, _, arg = text.partition(" ")
        arg = arg.strip()
        is_query = header.endswith("?")
        try:
            entry = self.lookup(header.rstrip("?"))
            if is_query:
                if entry.query is None:
                    raise CommandError(-100, "Command error;not a query")
                return entry.query(self.washer)
            if entry.command is None:
                raise CommandError(-100, "Command error;query only")
            entry.command(self.washer, arg)
        except CommandError as exc:
            self.washer.error(exc.code, exc.text)
        return None
