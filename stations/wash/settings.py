"""What a wash step asks for, the limits it must respect, and how long it takes — all without any I/O.

A wash step is ``StepRequest(action="wash", params=...)`` with either a stored ``program`` (``PRE``,
``MAIN``, ``RINSE``, ``DRY``) or explicit ``temperature_c`` (°C), ``time_s`` (s of ultrasound) and
``power_pct`` (% ultrasonic power) — or a program with some of those overridden. Every value is checked
against the protocol's ranges before a byte is sent; the same check serves the recipe validator
(:data:`stations.wash.KIND`) and the driver, and the same model gives the dry-run estimate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from microfactory.cell import StationConfig
from microfactory.station import StepRequest

TEMPERATURE_RANGE_C = (20.0, 80.0)
TIME_RANGE_S = (1.0, 3600.0)
POWER_RANGE_PCT = (10.0, 100.0)
HEAT_S_PER_C = 20.0  # the bath heats ~1 °C per 20 s (process time)
AMBIENT_C = 22.0
ACTIONS = ("wash",)
PARAMS = ("program", "temperature_c", "time_s", "power_pct")


@dataclass(frozen=True)
class Program:
    """A program stored in the washer: set point (°C), ultrasound (s, %), then rinse and dry (s).

    These are the nominal values of the stock firmware, used for estimates before the station is
    asked; the driver reads the real set points back after selecting a program.
    """

    temperature_c: float
    time_s: float
    power_pct: float
    rinse_s: float
    dry_s: float


PROGRAMS: Mapping[str, Program] = {
    "PRE": Program(40, 120, 60, 0, 0),
    "MAIN": Program(55, 300, 80, 30, 60),
    "RINSE": Program(30, 60, 30, 60, 0),
    "DRY": Program(50, 0, 10, 0, 120),
}


class WashOptions(BaseModel):
    """The ``options:`` block of a wash station in the cell file."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    poll_s: float = Field(default=2.0, gt=0, description="process s between status polls during a cycle")
    end_poll_s: float = Field(default=0.1, gt=0, description="process s between polls once the washer "
                              "says less than half a second is left (it answers whole seconds)")
    min_poll_wall_s: float = Field(default=0.02, gt=0, description="floor of the poll period in wall s")
    long_form: bool = Field(default=False, description="send long-form headers (WASHER:TEMPERATURE)")
    hold_aborts: bool = Field(default=False, description="hold aborts the cycle instead of letting it end")
    rinse_s: float = Field(default=30.0, ge=0, description="rinse phase of a manual cycle (s)")
    dry_s: float = Field(default=60.0, ge=0, description="dry phase of a manual cycle (s)")
    ambient_c: float = Field(default=AMBIENT_C, description="bath temperature assumed when cold (°C)")
    poll_retries: int = Field(default=2, ge=0, description="failed reads asked again before a safe stop")
    late_s: float | None = Field(default=None, ge=0, description="link s a timed-out exchange's answers are "
                                 "waited for before the next exchange (later ones count as lost); "
                                 "default: timeouts.answer_s")
    tolerance_c: float = Field(default=3.0, gt=0, description="°C the bath may stray from the set point")
    heat_stall_s: float = Field(default=180.0, gt=0, description="process s a heating bath may not warm")
    reconnect_attempts: int = Field(default=8, ge=0, description="tries to find the washer after an unplug")
    reconnect_backoff_s: float = Field(default=0.1, gt=0, description="first wait between tries (link s)")

    @classmethod
    def of(cls, config: StationConfig) -> WashOptions:
        """Options from the cell file; the simulator's ``ambient_c`` is used when options omit it."""
        values = dict(config.options)
        if "ambient_c" not in values and "ambient_c" in config.sim:
            values["ambient_c"] = config.sim["ambient_c"]
        return cls.model_validate(values)


@dataclass(frozen=True)
class Refusal:
    """One value a wash step may not send: which limit, the value, and the sentence for the operator."""

    limit: str
    value: object
    message: str


@dataclass(frozen=True)
class WashSettings:
    """The set points of one wash: ``None`` leaves the program's (or the station's current) value."""

    program: str | None = None
    temperature_c: float | None = None
    time_s: float | None = None
    power_pct: float | None = None

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> tuple[WashSettings, list[Refusal]]:
        """Read a step's params; return the settings and every refusal (unknown keys, types, ranges)."""
        refusals = [Refusal("params", key, f"unknown wash parameter {key!r} (known: {', '.join(PARAMS)})")
                    for key in params if key not in PARAMS]
        program = params.get("program")
        if program is not None:
            program = str(program).upper()
            if program not in PROGRAMS:
                refusals.append(Refusal("program", program, f"unknown wash program {program!r}; "
                                        f"the washer stores {', '.join(PROGRAMS)}"))
        values: dict[str, float | None] = {}
        for key, (lo, hi), unit in (("temperature_c", TEMPERATURE_RANGE_C, "°C"),
                                    ("time_s", TIME_RANGE_S, "s"), ("power_pct", POWER_RANGE_PCT, "%")):
            raw = params.get(key)
            values[key] = None
            if raw is None:
                continue
            if isinstance(raw, bool) or not isinstance(raw, int | float):
                refusals.append(Refusal(key, raw, f"{key} must be a number of {unit}, got {raw!r}"))
                continue
            if not lo <= raw <= hi:
                refusals.append(Refusal(key, raw, f"{key} {raw:g} {unit} is outside the washer's range "
                                        f"{lo:g}–{hi:g} {unit}"))
                continue
            values[key] = float(raw)
        settings = cls(program, values["temperature_c"], values["time_s"], values["power_pct"])
        if program is None and None in values.values() and not refusals:
            missing = [k for k, v in values.items() if v is None]
            refusals.append(Refusal("params", missing, "a wash needs a program or all of temperature_c, "
                                    f"time_s and power_pct (missing: {', '.join(missing)})"))
        return settings, refusals

    def resolved(self, options: WashOptions) -> Program:
        """The program the washer will run: the stored one with overrides, or the manual cycle."""
        base = PROGRAMS[self.program] if self.program else Program(40, 300, 80, options.rinse_s,
                                                                     options.dry_s)
        return Program(self.temperature_c if self.temperature_c is not None else base.temperature_c,
                       self.time_s if self.time_s is not None else base.time_s,
                       self.power_pct if self.power_pct is not None else base.power_pct,
                       base.rinse_s, base.dry_s)


def refusals(step: StepRequest) -> list[Refusal]:
    """Everything wrong with ``step`` for a wash station (no I/O)."""
    if step.action not in ACTIONS:
        return [Refusal("action", step.action, f"a wash station cannot {step.action!r}; "
                        f"it does {', '.join(ACTIONS)}")]
    return WashSettings.from_params(step.params)[1]


def check(step: StepRequest, config: StationConfig | None = None) -> list[str]:
    """The recipe validator's pre-check: one sentence per problem, empty when the step may run."""
    return [r.message for r in refusals(step)]


def cycle_s(program: Program, *, bath_c: float) -> float:
    """Process seconds of one cycle: heat-up at ~20 s/°C from ``bath_c`` (°C), ultrasound, rinse, dry.

    A bath already at or above the set point (a warm washer) skips the heat-up.
    """
    heat = max(0.0, program.temperature_c - bath_c) * HEAT_S_PER_C
    return heat + program.time_s + program.rinse_s + program.dry_s


def next_poll_s(remaining_s: float, options: WashOptions) -> float:
    """Process s until the next status poll of a running cycle: ``poll_s``, or as long as the washer says
    is left (``WASH:REM?``, whole seconds) when that is sooner, so the end is seen when it comes rather
    than up to ``poll_s`` later; ``end_poll_s`` once it says 0."""
    return min(options.poll_s, max(remaining_s, options.end_poll_s))


def estimate_s(step: StepRequest, config: StationConfig) -> float:
    """Dry-run timing model (process s): a cold bath heats from ambient to the set point, then the phases."""
    options = WashOptions.of(config)
    settings, problems = WashSettings.from_params(step.params)
    if problems:
        return 0.0
    program = settings.resolved(options)
    return cycle_s(program, bath_c=options.ambient_c)
