"""The dry run's timing model of one Grbl station: motion as Grbl plans it, plus the driver's own exchanges.

A ``gcode`` step on a Grbl station takes, in process seconds:

- the **motion** of the program, timed by the pre-check's :class:`~microfactory.gcode.MotionTimer` with
  the machine's per-axis maximum rates and accelerations (``$110``-``$112`` mm/min, ``$120``-``$122``
  mm/s²) and from **where the previous program left the machine** (the home position, ``-$27`` on each
  axis of a stock build, for the first program after a homing connect). Without the machine's settings
  the cell's ``limits`` (one rapid rate, one acceleration) are used, as the live pre-check does;
- the **link time of the driver's own exchanges** around it (what the simulators charge, and what a real
  UART costs): ``$#`` and ``$G`` with a fresh status report before the program (the pre-check reads the
  machine's real state), ``$#`` and ``$G`` after it (what the program left behind), and the status report
  that sees the machine Idle. Each costs its bytes at 10 bits per byte at the station's ``baud`` plus the
  link's latency there and back.

The machine's settings come from the station's ``sim: settings`` for a simulated station, overridden by
``options: machine_settings`` (the ``$$`` values of the real machine, for a bench); see
``docs/simulation.md`` for calibrating them from a real run's journal.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from microfactory.cell import StationConfig
from microfactory.errors import SafetyRefusal
from microfactory.gcode import MachineLimits
from microfactory.gcode.modal import ModalState
from microfactory.gcode.precheck import precheck
from microfactory.station import StepRequest

#: bytes of the state read Grbl 1.1 answers before and after each program: ``$#\n`` (10 lines
#: ``[G54:-120.000,-120.000,0.000]`` … ``[PRB:0.000,0.000,0.000:0]`` and ``ok``) and ``$G\n``
#: (``[GC:G0 G54 G17 G21 G90 G94 M5 M9 T0 F0 S0]`` and ``ok``), both ways
STATE_READ_BYTES = 334
#: bytes of one status exchange: ``?`` and a report such as ``<Idle|MPos:-110.000,-110.000,-1.000|FS:0,0>``
STATUS_BYTES = 42
#: round trips per program: ``$#``, ``$G``, ``?`` before; ``$#``, ``$G`` after; the ``?`` that sees Idle
ROUND_TRIPS = 6
BITS_PER_BYTE = 10  # 8N1
STOCK_PULL_OFF_MM = 1.0  # Grbl's default $27


def machine_settings(config: StationConfig) -> dict[int, float]:
    """The machine's ``$$`` values the dry run knows: ``sim: settings`` then ``options: machine_settings``."""
    out: dict[int, float] = {}
    sources: list[Mapping[Any, Any]] = []
    if config.simulated:
        sources.append(config.sim.get("settings") or {})
    sources.append(config.options.get("machine_settings") or {})
    for source in sources:
        for key, value in source.items():
            out[int(key)] = float(value)
    return out


def _axes(settings: Mapping[int, float], base: int) -> tuple[float, float, float] | None:
    values = [settings.get(base + i) for i in range(3)]
    if any(v is None or v <= 0 for v in values):
        return None
    return (float(values[0]), float(values[1]), float(values[2]))  # type: ignore[arg-type]


class GrblTiming:
    """Process seconds of one Grbl station's steps, asked in the order the station runs them."""

    def __init__(self, config: StationConfig) -> None:
        self.config = config
        settings = machine_settings(config)
        try:
            limits: MachineLimits | None = MachineLimits.from_config(config.limits, station=config.id)
        except SafetyRefusal:
            limits = None  # no envelope or max feed: no program may run, the dry run says 0 s
        if limits is not None:
            limits = dataclasses.replace(limits, axis_rates_mm_min=_axes(settings, 110),
                                         axis_accels_mm_s2=_axes(settings, 120))
        self.limits = limits
        self.state: ModalState | None = None
        if limits is not None and bool(config.options.get("home_on_connect", False)):
            pull = settings.get(27, STOCK_PULL_OFF_MM)
            self.state = ModalState.initial(limits, (-pull, -pull, -pull))
        latency_s = float(config.sim.get("latency_ms", 0.0)) / 1000.0 if config.simulated else 0.0
        byte_s = BITS_PER_BYTE / config.baud
        #: link time of the driver's exchanges around one program (s)
        self.exchange_s = (2 * STATE_READ_BYTES + 2 * STATUS_BYTES) * byte_s + ROUND_TRIPS * 2 * latency_s

    def step_s(self, step: StepRequest) -> float:
        """Process seconds of ``step``; a ``gcode`` step moves the machine for the next one."""
        if self.limits is None or step.action != "gcode":
            from stations.grbl import estimate_s  # jog, check, home: the per-step model

            return float(estimate_s(step, self.config))
        program = step.params.get("program", [])
        lines = program if isinstance(program, str) else [str(line) for line in program]
        source = str(step.params.get("source", "program"))
        report = precheck(lines, self.limits, name=source, start=self.state)
        if report.problems:
            return 0.0  # refused before a byte is sent
        self.state = report.final_state
        return report.estimate_s + self.exchange_s
