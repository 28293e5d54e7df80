"""The drawing file: what a part should look like, with tolerances, for inspection.

A drawing is YAML (documented in ``docs/drawings.md``)::

    drawing: watch-plate
    outline: {width: 20.0, height: 16.0, tol: 0.02}          # mm, ± mm
    datum: {origin: outline}                                 # or {origin: H1, toward: H2}
    tolerances: {position: 0.02, diameter: 0.01}             # defaults for every hole
    holes:
      - {id: H1, x: 3.0, y: 3.0, d: 1.20}
      - {id: H2, x: 17.0, y: 3.0, d: 0.80, diameter_tol: 0.005}
    defects: {chip_mm: 0.003, burr_mm: 0.003, crack_area_mm2: 0.0003, debris_area_mm2: 0.0006}

Coordinates are in mm in the *part frame*: origin at the lower-left corner of the outline, x along the
bottom edge, y up. The datum says in which frame hole positions are toleranced: the outline corner (the
part frame itself) or a datum hole, with x pointing toward a second hole. Both the camera simulator and
the vision station read drawings through :func:`load_drawing`, so they agree on every number.
"""

from __future__ import annotations

import math
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from microfactory import yamlfile
from microfactory.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Outline(_Strict):
    """The part's rectangular outline (mm); ``tol`` is the ± tolerance on width and height (mm)."""

    width: float = Field(gt=0, description="mm, along the part's x axis")
    height: float = Field(gt=0, description="mm, along the part's y axis")
    tol: float = Field(default=0.02, gt=0, description="± mm on width and height")


class Hole(_Strict):
    """A through hole: centre ``x``/``y`` and diameter ``d`` in mm in the part frame.

    ``position_tol`` is the diameter (mm) of the true-position zone; ``diameter_tol`` is ± mm. Either
    falls back to the drawing's ``tolerances`` block when left out.
    """

    id: str = Field(min_length=1, max_length=16)
    x: float
    y: float
    d: float = Field(gt=0, description="mm")
    position_tol: float | None = Field(default=None, gt=0, description="mm, diameter of the zone")
    diameter_tol: float | None = Field(default=None, gt=0, description="± mm")


class Tolerances(_Strict):
    """Default tolerances for holes (mm)."""

    position: float = Field(default=0.02, gt=0, description="mm, diameter of the true-position zone")
    diameter: float = Field(default=0.01, gt=0, description="± mm")


class Datum(_Strict):
    """Where positions are measured from: ``outline`` (lower-left corner, x along the bottom edge) or a
    hole id, with ``toward`` naming the hole that sets the x direction."""

    origin: str = "outline"
    toward: str | None = None


class DefectLimits(_Strict):
    """Defect thresholds (mm, mm²): anything at or above a limit rejects the part.

    ``chip_mm`` / ``burr_mm``: deepest deviation of an edge inward (chip) or outward (burr) from the fitted
    ideal edge, as the lens renders it (blur shrinks small notches: at 10 µm/px a chip 20 µm across shows
    about 6 µm, a straight edge scatters by about 1 µm); ``crack_area_mm2``: light area seen through the
    part; ``debris_area_mm2``: dark area on the backlight near the part (in a hole or along the outline).
    Out-of-focus dust is never a defect.
    """

    chip_mm: float = Field(default=0.003, gt=0)
    burr_mm: float = Field(default=0.003, gt=0)
    crack_area_mm2: float = Field(default=0.0003, gt=0)
    debris_area_mm2: float = Field(default=0.0006, gt=0)
    crack_contrast: float = Field(default=0.05, gt=0, lt=1, description="fraction of backlight level")


class Drawing(_Strict):
    """A part drawing: outline, holes, datum, tolerances and defect limits."""

    drawing: str = Field(min_length=1)
    outline: Outline
    holes: list[Hole] = Field(default_factory=list)
    datum: Datum = Datum()
    tolerances: Tolerances = Tolerances()
    defects: DefectLimits = DefectLimits()
    source: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> Drawing:
        ids = [h.id for h in self.holes]
        if len(set(ids)) != len(ids):
            raise ValueError(f"hole ids must be unique, got {ids}")
        if self.datum.origin != "outline":
            if self.datum.origin not in ids:
                raise ValueError(f"datum origin {self.datum.origin!r} is neither 'outline' nor a hole id "
                                 f"({', '.join(ids) or 'no holes'})")
            if self.datum.toward is None or self.datum.toward not in ids or \
                    self.datum.toward == self.datum.origin:
                raise ValueError("a hole datum needs 'toward': the id of another hole that sets x")
        return self

    def hole(self, hole_id: str) -> Hole:
        for h in self.holes:
            if h.id == hole_id:
                return h
        raise KeyError(f"drawing {self.drawing!r} has no hole {hole_id!r}")

    def position_tol(self, hole: Hole) -> float:
        return hole.position_tol if hole.position_tol is not None else self.tolerances.position

    def diameter_tol(self, hole: Hole) -> float:
        return hole.diameter_tol if hole.diameter_tol is not None else self.tolerances.diameter

    def to_datum(self, points: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
        """Express hole centres (mm, part frame) in the datum frame.

        ``points`` maps hole id → (x, y) in the part frame; with a hole datum, the origin is that hole's
        centre *in the same set of points* and x points toward the ``toward`` hole, so measured and
        nominal positions are each referred to their own datum, as a CMM would.
        """
        if self.datum.origin == "outline":
            return dict(points)
        ox, oy = points[self.datum.origin]
        tx, ty = points[self.datum.toward or ""]
        a = math.atan2(ty - oy, tx - ox)
        c, s = math.cos(a), math.sin(a)
        return {k: ((x - ox) * c + (y - oy) * s, -(x - ox) * s + (y - oy) * c)
                for k, (x, y) in points.items()}


HINT = "see docs/drawings.md for the drawing format"


def _checked(doc: yamlfile.Located) -> Drawing:
    drawing = yamlfile.validate(Drawing, doc, hint=HINT)
    problems = []
    w, h = drawing.outline.width, drawing.outline.height
    for i, hole in enumerate(drawing.holes):
        r = hole.d / 2
        if not (r < hole.x < w - r and r < hole.y < h - r):
            problems.append((doc.locate(("holes", i, "x")), f"hole {hole.id} (x={hole.x}, y={hole.y}, "
                             f"d={hole.d}) does not fit inside the {w} x {h} mm outline"))
    if problems:
        raise ConfigError(problems, hint="hole positions are mm from the outline's lower-left corner")
    return drawing


def load_drawing(path: str | Path) -> Drawing:
    """Load and validate a drawing; any problem is a :class:`~microfactory.errors.ConfigError` with
    ``file:line`` and the field path."""
    return _checked(yamlfile.load(path)).model_copy(update={"source": str(path)})


def parse_drawing(text: str, file: str = "<drawing>") -> Drawing:
    """Validate a drawing given as YAML text (tests, drawings embedded in recipes)."""
    return _checked(yamlfile.load_text(text, file))
