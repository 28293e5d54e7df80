"""From a cell file's options and a step's params to inspection :class:`Settings` — shared by the
station, its pre-check and the ``inspect`` command, so all three accept and refuse the same things."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from microfactory.drawing import DefectLimits, Drawing, load_drawing
from microfactory.errors import ConfigError, SourceLocation
from stations.vision.calibration import Calibration
from stations.vision.inspect import Settings

STEP_PARAMS = ("drawing", "defects", "annotate", "tolerances")


class CalibrateParams(BaseModel):
    """Params of a ``calibrate`` step: the target under the camera (grid size, pitch in mm)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    cols: int = Field(ge=3, description="dots (or inner corners) per row")
    rows: int = Field(ge=3, description="dots (or inner corners) per column")
    pitch_mm: float = Field(gt=0)
    pattern: Literal["dots", "checkerboard"] = "dots"
    focal_px: float = Field(default=8000.0, gt=0, description="nominal focal length (px)")


def calibrate_params(params: Mapping[str, Any]) -> CalibrateParams:
    try:
        return CalibrateParams.model_validate(dict(params))
    except ValidationError as exc:
        problems = [(SourceLocation("<step>", field=".".join(str(p) for p in e["loc"])), str(e["msg"]))
                    for e in exc.errors()]
        raise ConfigError(problems, hint="calibrate needs cols, rows and pitch_mm of the target") from None


class CameraOptions(BaseModel):
    """The ``options:`` block of a ``kind: camera`` station.

    ``mm_per_px`` is used when no ``calibration`` file is given; ``exposure_s`` + ``processing_s`` is
    the step time the dry run assumes; annotated images go to ``images_dir``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    mm_per_px: float = Field(default=0.010, gt=0, description="mm per pixel in the part plane")
    calibration: str | None = None
    width: int | None = Field(default=None, gt=0)
    height: int | None = Field(default=None, gt=0)
    exposure: float | None = None
    exposure_s: float = Field(default=0.02, ge=0)
    processing_s: float = Field(default=0.15, ge=0)
    images_dir: str | None = None
    drawings_dir: str | None = None
    loop_video: bool = False
    lighting: Literal["backlight", "front"] = Field(
        default="backlight", description="backlight: dark parts on a bright field; front: bright parts on a "
        "dark field; a drawing's own `lighting:` wins")


def camera_options(options: Mapping[str, Any]) -> CameraOptions:
    try:
        return CameraOptions.model_validate(dict(options))
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise ConfigError.single("<cell>", f"camera options: {first['msg']}", field=f"options.{field}",
                                 hint="see docs/drawings.md (camera station options)") from None


def resolve_drawing(name: str, options: CameraOptions) -> Path:
    p = Path(name)
    if not p.is_absolute() and options.drawings_dir and not p.exists():
        p = Path(options.drawings_dir) / p
    return p


def defect_limits(base: DefectLimits, overrides: Mapping[str, Any] | None) -> DefectLimits:
    """The drawing's limits with a recipe's ``defects:`` overrides applied (validated)."""
    if not overrides:
        return base
    if not isinstance(overrides, Mapping):
        raise ConfigError.single("<step>", "defects must be a mapping of limit → value", field="defects")
    try:
        return DefectLimits.model_validate({**base.model_dump(), **dict(overrides)})
    except ValidationError as exc:
        problems = [(SourceLocation("<step>", field="defects." + ".".join(str(p) for p in e["loc"])),
                     str(e["msg"])) for e in exc.errors()]
        raise ConfigError(problems, hint="limits are in mm / mm² and must be > 0; contrast is 0..1") from None


_TOL_KEYS = {"position": "position_tol", "diameter": "diameter_tol"}


def with_tolerances(drawing: Drawing, overrides: Any) -> Drawing:
    """The drawing with a recipe's ``tolerances:`` applied: ``{position: mm, diameter: ± mm}`` for every
    hole, and/or per hole id ``{H1: {diameter: 0.005}}`` (mm). Unknown keys or hole ids are refused."""
    if not isinstance(overrides, Mapping):
        raise ConfigError.single("<step>", "tolerances must be a mapping", field="tolerances",
                                 hint="e.g. {position: 0.03, H1: {diameter: 0.005}}")
    glob = {k: float(v) for k, v in overrides.items() if k in _TOL_KEYS}
    per_hole = {k: v for k, v in overrides.items() if k not in _TOL_KEYS}
    ids = {h.id for h in drawing.holes}
    problems = []
    for hole_id, values in per_hole.items():
        if hole_id not in ids:
            problems.append(f"no hole {hole_id!r} in the drawing (holes: {', '.join(sorted(ids))})")
        elif not isinstance(values, Mapping) or set(values) - set(_TOL_KEYS):
            problems.append(f"{hole_id}: only position and diameter can be overridden")
    bad = [k for k, v in {**glob, **{f"{h}.{k}": x for h, m in per_hole.items() if isinstance(m, Mapping)
                                     for k, x in m.items()}}.items() if float(v) <= 0]
    problems += [f"{k} must be > 0 mm" for k in bad]
    if problems:
        raise ConfigError([(SourceLocation("<step>", field="tolerances"), p) for p in problems],
                          hint="see docs/recipes.md (inspect tolerances)")
    tolerances = drawing.tolerances.model_copy(update=glob)
    holes = []
    for hole in drawing.holes:
        update = {_TOL_KEYS[k]: float(v) for k, v in per_hole.get(hole.id, {}).items()}
        if glob:  # a step-wide override beats the drawing's per-hole values, not the step's own
            update = {**{_TOL_KEYS[k]: v for k, v in glob.items()}, **update}
        holes.append(hole.model_copy(update=update))
    return drawing.model_copy(update={"tolerances": tolerances, "holes": holes})


def settings(params: Mapping[str, Any], options: CameraOptions) -> Settings:
    """Settings for one inspection step (loads the drawing and the calibration)."""
    unknown = set(params) - set(STEP_PARAMS)
    if unknown:
        raise ConfigError.single("<step>", f"unknown inspect parameters {sorted(unknown)}",
                                 hint=f"known: {', '.join(STEP_PARAMS)}")
    drawing: Drawing | None = None
    if params.get("drawing"):
        drawing = load_drawing(resolve_drawing(str(params["drawing"]), options))
        if params.get("tolerances"):
            drawing = with_tolerances(drawing, params["tolerances"])
    elif params.get("tolerances"):
        raise ConfigError.single("<step>", "tolerances are given but no drawing", field="tolerances",
                                 hint="tolerance overrides apply to a drawing's holes: add drawing:")
    base = drawing.defects if drawing is not None else DefectLimits()
    limits = defect_limits(base, params.get("defects"))
    if options.calibration:
        cal = Calibration.load(options.calibration)
        return Settings(cal.mm_per_px, drawing, limits, cal.undistort if cal.distorted else None,
                        lighting=options.lighting)
    return Settings(options.mm_per_px, drawing, limits, lighting=options.lighting)
