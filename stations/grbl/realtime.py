"""Grbl 1.1's realtime extras in the shop's words: overrides as bytes, the safety door as an interlock.

Overrides are single bytes Grbl acts on at once, between or inside lines: ``0x90`` feed 100 %, ``0x91``/
``0x92`` feed ±10 %, ``0x93``/``0x94`` feed ±1 %; ``0x95``/``0x96``/``0x97`` rapids 100/50/25 %; ``0x99``
spindle 100 %, ``0x9A``/``0x9B`` spindle ±10 %, ``0x9C``/``0x9D`` spindle ±1 %. Grbl clamps feed and
spindle to 10–200 %; we refuse anything outside that range rather than let Grbl clamp it silently.
To reach a target the bytes reset to 100 % first, so the result does not depend on what was set before.
"""

from __future__ import annotations

from dataclasses import dataclass

FEED_RESET, FEED_UP_10, FEED_DOWN_10, FEED_UP_1, FEED_DOWN_1 = 0x90, 0x91, 0x92, 0x93, 0x94
RAPID_BYTES = {100: 0x95, 50: 0x96, 25: 0x97}
SPINDLE_RESET, SPINDLE_UP_10, SPINDLE_DOWN_10, SPINDLE_UP_1, SPINDLE_DOWN_1 = 0x99, 0x9A, 0x9B, 0x9C, 0x9D
OVERRIDE_MIN_PCT, OVERRIDE_MAX_PCT = 10, 200
SAFETY_DOOR = b"\x84"


@dataclass(frozen=True)
class Override:
    """Target overrides in %: ``feed_pct`` and ``spindle_pct`` 10–200, ``rapid_pct`` 25, 50 or 100;
    ``None`` leaves that one as it is."""

    feed_pct: int | None = None
    spindle_pct: int | None = None
    rapid_pct: int | None = None

    @classmethod
    def from_params(cls, params: object) -> Override:
        """From a step's params (``{"feed_pct": 80}``); raise ValueError naming a bad value."""
        if not isinstance(params, dict):
            raise ValueError("override params must be a map like {feed_pct: 80, spindle_pct: 120}")
        unknown = set(params) - {"feed_pct", "spindle_pct", "rapid_pct"}
        if unknown:
            raise ValueError(f"unknown override parameter(s) {sorted(unknown)}: use feed_pct, spindle_pct, "
                             "rapid_pct")
        values: dict[str, int | None] = {}
        for name in ("feed_pct", "spindle_pct", "rapid_pct"):
            value = params.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or value != int(value)):
                raise ValueError(f"{name}={value!r} must be a whole number of percent")
            values[name] = None if value is None else int(value)
        override = cls(**values)
        problems = override.problems()
        if problems:
            raise ValueError("; ".join(problems))
        return override

    def problems(self) -> list[str]:
        """What is out of range (empty when Grbl can apply it exactly)."""
        out = []
        for name, value in (("feed_pct", self.feed_pct), ("spindle_pct", self.spindle_pct)):
            if value is not None and not OVERRIDE_MIN_PCT <= value <= OVERRIDE_MAX_PCT:
                out.append(f"{name}={value} is outside Grbl's {OVERRIDE_MIN_PCT}–{OVERRIDE_MAX_PCT} %")
        if self.rapid_pct is not None and self.rapid_pct not in RAPID_BYTES:
            out.append(f"rapid_pct={self.rapid_pct}: Grbl offers only 25, 50 or 100 %")
        if self.feed_pct is None and self.spindle_pct is None and self.rapid_pct is None:
            out.append("no override given: set feed_pct, spindle_pct or rapid_pct")
        return out

    def to_bytes(self) -> bytes:
        """The realtime bytes that set these overrides from any starting value."""
        out = bytearray()
        if self.feed_pct is not None:
            out += _steps(self.feed_pct, FEED_RESET, FEED_UP_10, FEED_DOWN_10, FEED_UP_1, FEED_DOWN_1)
        if self.rapid_pct is not None:
            out.append(RAPID_BYTES[self.rapid_pct])
        if self.spindle_pct is not None:
            out += _steps(self.spindle_pct, SPINDLE_RESET, SPINDLE_UP_10, SPINDLE_DOWN_10, SPINDLE_UP_1,
                          SPINDLE_DOWN_1)
        return bytes(out)

    def matches(self, reported: tuple[int, int, int] | None) -> bool:
        """True when a status report's ``Ov:feed,rapid,spindle`` shows these targets."""
        if reported is None:
            return False
        wanted = (self.feed_pct, self.rapid_pct, self.spindle_pct)
        return all(want is None or want == got for want, got in zip(wanted, reported, strict=True))


def _steps(target: int, reset: int, up10: int, down10: int, up1: int, down1: int) -> bytes:
    delta = target - 100
    tens, ones = divmod(abs(delta), 10)
    coarse, fine = (up10, up1) if delta >= 0 else (down10, down1)
    return bytes([reset] + [coarse] * tens + [fine] * ones)


DOOR_TEXT = {
    0: "safety door closed: press resume (cycle start) to continue",
    1: "safety door open: motion held (interlock); close the door, then resume",
    2: "safety door opened while moving: stopping (interlock); close the door, then resume",
    3: "safety door closed: restoring spindle and coolant before motion continues",
}


def door_text(substate: int | None) -> str:
    """The operator's words for ``Door:N``."""
    return DOOR_TEXT.get(substate if substate is not None else 1, DOOR_TEXT[1])
