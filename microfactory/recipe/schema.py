"""The recipe file, as pydantic models (see ``docs/recipes.md`` for the format with a full example).

A recipe is ISA-88 shaped: a header, typed parameters, the stations it requires, the procedure one part
follows (steps with outcome routing and fault policies) and the lot. Each step names its kind by the key
that holds its settings, so a field path in an error message is the path in the file::

    - id: blank
      cut: {program: programs/blank.nc, power: ${laser_power}, feed: 600}
      on_pass: mill

Numbers in step settings may be written as ``${parameter}``; they are checked after substitution, when
the recipe is compiled for a run (:mod:`microfactory.recipe.compile`).
"""

from __future__ import annotations

import contextlib
import math
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from microfactory.procedure import DONE, OPERATOR_RETRIES, SCRAP, FaultAction, StepKind
from microfactory.recipe.parameters import NAME, ParameterSpec, ParameterValueError, _as_type

STEP_ID = re.compile(r"^[a-z][a-z0-9_-]{0,47}$")
ROUTE_ENDS = (DONE, SCRAP)


def _number_or_reference(value: Any) -> Any:
    if isinstance(value, str) and "${" not in value:
        raise ValueError(f"needs a number or a ${{parameter}} reference, not {value!r}")
    return value


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"needs a finite number, not {value!r}")
    return value


#: A finite number, or a string holding a ``${parameter}`` reference resolved at compile time.
Number = Annotated[float | str, BeforeValidator(_finite), AfterValidator(_number_or_reference)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)  # NaN passes no bounds


class Header(_Strict):
    """Who made the recipe and whether it may run in production (``released``) or only be tried."""

    id: str
    name: str
    version: str
    status: Literal["draft", "released"] = "draft"
    author: str = ""
    description: str = ""

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, (int, float)) else value

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if not STEP_ID.match(value):
            raise ValueError(f"recipe id {value!r} must be lower-case letters, digits, - or _ "
                             "(start with a letter)")
        return value


class Parameter(_Strict):
    """One typed parameter; ``min``/``max`` apply to ``int`` and ``float`` only."""

    name: str
    type: Literal["int", "float", "str", "bool"]
    default: Any
    unit: str = ""
    min: float | None = None
    max: float | None = None
    description: str = ""
    label: str = Field(default="", max_length=60)
    adjustable: bool = True

    @field_validator("name")
    @classmethod
    def _name_shape(cls, value: str) -> str:
        if not NAME.match(value):
            raise ValueError(f"parameter name {value!r} must be letters, digits and _ (not starting with a "
                             "digit), so it can be written ${name}")
        return value

    @model_validator(mode="after")
    def _default_fits(self) -> Parameter:
        if self.type not in ("int", "float") and (self.min is not None or self.max is not None):
            raise ValueError(f"min/max apply to int and float parameters only, not {self.type}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min:g} is above max {self.max:g}")
        try:
            self.spec.convert(self.default)
        except ParameterValueError as exc:
            raise ValueError(f"default: {exc}") from None
        return self

    @property
    def spec(self) -> ParameterSpec:
        default = self.default
        with contextlib.suppress(ParameterValueError):  # reported by _default_fits; keep the raw default
            default = _as_type(self.type, self.default, self.name)
        return ParameterSpec(self.name, self.type, default, self.unit, self.min, self.max, self.description,
                             self.label, self.adjustable)


class Requirement(_Strict):
    """A station the cell must have: of a ``kind`` (e.g. ``grbl``) and/or offering ``capabilities``."""

    kind: str | None = None
    capabilities: tuple[str, ...] = ()
    description: str = ""

    @model_validator(mode="after")
    def _something(self) -> Requirement:
        if self.kind is None and not self.capabilities:
            raise ValueError("give a station kind, capabilities, or both")
        return self


class FaultRule(_Strict):
    """What the engine does when a step fails: ``retry`` up to ``retries`` times then ``then``, or
    ``scrap`` the part, ``hold`` the cell for the operator, ``abort`` the cell."""

    action: FaultAction = FaultAction.HOLD
    retries: int = Field(default=0, ge=0, le=10)
    then: FaultAction = FaultAction.HOLD
    #: how often the operator may answer Retry (per step and part) when the cell holds on a fault
    operator_retries: int = Field(default=OPERATOR_RETRIES, ge=0, le=10)

    @model_validator(mode="after")
    def _retry_count(self) -> FaultRule:
        if self.action == FaultAction.RETRY and self.retries == 0:
            raise ValueError("action retry needs retries: 1 or more")
        if self.then == FaultAction.RETRY:
            raise ValueError("then: must be scrap, hold or abort (what to do once the retries are spent)")
        return self


class FaultDefaults(_Strict):
    """Recipe-level fault policies: ``default`` for every step, then one per step kind."""

    default: FaultRule = FaultRule()
    cut: FaultRule | None = None
    machine: FaultRule | None = None
    wash: FaultRule | None = None
    inspect: FaultRule | None = None
    manual: FaultRule | None = None
    transfer: FaultRule | None = None

    def for_kind(self, kind: StepKind) -> FaultRule:
        rule: FaultRule | None = getattr(self, kind.value)
        return rule or self.default


class Lot(_Strict):
    """How many parts one run makes and how many may be in the line at once."""

    size: int = Field(default=1, ge=1, le=100_000)
    parts_in_flight: int = Field(default=1, ge=1, le=64)


class _Program(_Strict):
    """G-code from a file (``program``, relative to the recipe file) or inline (``gcode``)."""

    program: str | None = None
    gcode: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> _Program:
        if (self.program is None) == (self.gcode is None):
            raise ValueError("give exactly one of program: (a .nc file) or gcode: (inline G-code)")
        return self


class CutSettings(_Program):
    """Laser cutting on a Grbl laser: ``power`` is the S value (0..max_spindle), ``feed`` in mm/min."""

    power: Number | None = None
    feed: Number | None = None


class MachineSettings(_Program):
    """Milling/drilling on a Grbl spindle: ``feed`` mm/min, ``spindle`` rpm (S value), ``tool`` id."""

    feed: Number | None = None
    spindle: Number | None = None
    tool: str | int | None = None


class WashSettings(_Strict):
    """An ultrasonic wash: a stored ``program`` by name, or ``temperature_c`` (°C), ``time_s`` (s),
    ``power_pct`` (% of the generator's power)."""

    program: str | None = None
    temperature_c: Number | None = None
    time_s: Number | None = None
    power_pct: Number | None = None

    @model_validator(mode="after")
    def _program_or_time(self) -> WashSettings:
        if self.program is None and self.time_s is None:
            raise ValueError("give a stored program: name, or time_s: (and optionally temperature_c, "
                             "power_pct)")
        return self


class InspectSettings(_Strict):
    """Vision inspection against a drawing (relative to the recipe file).

    ``tolerances`` override the drawing's: ``position`` (mm, diameter of the true-position zone) and
    ``diameter`` (± mm) for every hole, or per feature id (``J1: {diameter: 0.008}``). ``defects``
    override the drawing's defect limits by name (``chip_mm``, ``burr_mm``, ``crack_area_mm2``,
    ``debris_area_mm2`` ...; mm or mm², anything at or above a limit rejects the part).
    """

    drawing: str
    tolerances: dict[str, Number | dict[str, Number]] = Field(default_factory=dict)
    defects: dict[str, Number] = Field(default_factory=dict)


class ManualSettings(_Strict):
    """An operator prompt (load stock, change tool, move the part); ``duration_s`` is the expected time."""

    prompt: str
    duration_s: Number = 0.0


class TransferSettings(_Strict):
    """Moving the part between stations; ``duration_s`` is the time it takes (a robot later)."""

    duration_s: Number
    prompt: str = ""


_BODIES: dict[str, type[BaseModel]] = {
    "cut": CutSettings, "machine": MachineSettings, "wash": WashSettings,
    "inspect": InspectSettings, "manual": ManualSettings, "transfer": TransferSettings,
}


class RecipeStep(_Strict):
    """One step of the per-part procedure. Exactly one of the kind keys holds its settings.

    ``on_pass`` defaults to the next step in the list (``done`` after the last); ``on_fail`` (for an
    inspection verdict) defaults to ``scrap``; routing to a step on fail is a rework, taken at most
    ``max_rework`` times per part before the part is scrapped.
    """

    id: str
    name: str = ""
    station: str | None = None
    requires: tuple[str, ...] = ()
    on_pass: str | None = None
    on_fail: str | None = None
    max_rework: int = Field(default=0, ge=0, le=10)
    fault: FaultRule | None = None
    timeout_s: Number | None = None
    #: After a crash, what resume does with this step if it was in flight (default by kind: cut and
    #: machine ask the operator; wash, inspect, manual and transfer run again).
    on_interrupt: Literal["rerun", "ask", "scrap"] | None = None
    cut: CutSettings | None = None
    machine: MachineSettings | None = None
    wash: WashSettings | None = None
    inspect: InspectSettings | None = None
    manual: ManualSettings | None = None
    transfer: TransferSettings | None = None

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if value in ROUTE_ENDS:
            raise ValueError(f"{value!r} is a routing word; give the step another id")
        if not STEP_ID.match(value):
            raise ValueError(f"step id {value!r} must be lower-case letters, digits, - or _ "
                             "(start with a letter)")
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> RecipeStep:
        given = [k for k in _BODIES if getattr(self, k) is not None]
        if len(given) != 1:
            what = ", ".join(given) if given else "none"
            raise ValueError(f"a step has exactly one of {', '.join(_BODIES)} (this one has {what})")
        if self.kind in (StepKind.MANUAL, StepKind.TRANSFER) and (self.station or self.requires):
            raise ValueError(f"a {self.kind} step uses no station; remove station:/requires:")
        return self

    @property
    def kind(self) -> StepKind:
        for key in _BODIES:
            if getattr(self, key) is not None:
                return StepKind(key)
        raise AssertionError("validated step without a kind")

    @property
    def settings(self) -> BaseModel:
        """The settings block of this step's kind (``CutSettings``, ``WashSettings`` ...)."""
        body: BaseModel = getattr(self, self.kind.value)
        return body


class RecipeFile(_Strict):
    """A whole recipe file."""

    recipe: Header
    parameters: list[Parameter] = Field(default_factory=list)
    requirements: list[Requirement] = Field(default_factory=list)
    faults: FaultDefaults = FaultDefaults()
    lot: Lot = Lot()
    procedure: list[RecipeStep] = Field(min_length=1)
    format: Literal[1] = 1
