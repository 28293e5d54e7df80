"""The optional parts of Grbl's status report and the ``$#`` offsets report.

Real Grbl adds ``WCO:`` to one report in 10 while idle (1 in 30 while busy) and ``Ov:`` (with ``A:``
accessory flags) to one in 10 idle (1 in 20 busy), and always to the first report after WCO was shown
or an override changed; the simulator keeps the same counters so a driver meets the same mix.
"""

from __future__ import annotations

from dataclasses import dataclass

Vec = tuple[float, float, float]


@dataclass
class StatusCounters:
    """Reports left until ``WCO`` and ``Ov`` are shown again (0 = show on the next report)."""

    wco: int = 0
    ovr: int = 0

    def extras(self, busy: bool, wco: Vec, overrides: list[int], spindle: int,
               coolant: frozenset[int]) -> list[str]:
        """The ``WCO:``/``Ov:``/``A:`` fields for this report, advancing the counters."""
        fields: list[str] = []
        if self.wco > 0:
            self.wco -= 1
        else:
            self.wco = 29 if busy else 9
            if self.ovr == 0:
                self.ovr = 1
            fields.append("WCO:" + ",".join(f"{w:.3f}" for w in wco))
        if self.ovr > 0:
            self.ovr -= 1
        else:
            self.ovr = 19 if busy else 9
            fields.append("Ov:" + ",".join(str(o) for o in overrides))
            accessories = {3: "S", 4: "C"}.get(spindle, "") + ("F" if 8 in coolant else "") + \
                ("M" if 7 in coolant else "")
            if accessories:
                fields.append("A:" + accessories)
        return fields


def offsets_report(offsets: dict[str, Vec], tool_length: float = 0.0) -> list[str]:
    """The lines of ``$#`` (before its ``ok``), offsets in mm."""
    def fmt(v: Vec) -> str:
        return ",".join(f"{x:.3f}" for x in v)

    lines = [f"[{name}:{fmt(offsets[name])}]" for name in ("G54", "G55", "G56", "G57", "G58", "G59",
                                                            "G28", "G30", "G92")]
    return [*lines, f"[TLO:{tool_length:.3f}]", "[PRB:0.000,0.000,0.000:0]"]
