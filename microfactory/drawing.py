"""The drawing file: what a part should look like, with tolerances, for inspection.

A drawing is YAML (documented in ``docs/drawings.md``)::

    drawing: watch-plate
    outline: {width: 20.0, height: 16.0, tol: 0.02}          # mm, ± mm (or a circle, flats, a profile)
    datum: {origin: outline}                                 # or {origin: H1} or {origin: H1, toward: H2}
    tolerances: {position: 0.02, diameter: 0.01}             # defaults for every hole
    holes:
      - {id: H1, x: 3.0, y: 3.0, d: 1.20}
      - {id: H2, x: 17.0, y: 3.0, d: 0.80, diameter_tol: 0.005}
    defects: {chip_mm: 0.003, burr_mm: 0.003, crack_area_mm2: 0.0003, debris_area_mm2: 0.0006}

Coordinates are in mm in the *part frame*, the drawing's own: for a rectangle the origin is at the
lower-left corner of the outline, x along the bottom edge, y up; a circle is centred where ``centre``
says (default the origin); a profile's vertices are given in that frame. The datum says in which frame
hole positions are toleranced: the outline as fitted (the part frame itself), a datum hole (origin
moved there, axes from the outline), or a datum hole with x pointing toward a second hole. Both the
camera simulator and the vision station read drawings through :func:`load_drawing`, so they agree on
every number.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from microfactory import yamlfile
from microfactory.errors import ConfigError
from microfactory.profile import Profile, circle_with_flats, rectangle


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)  # NaN passes no bounds


class Flat(_Strict):
    """A flat cut on a round outline: at ``distance`` mm from the centre, its outward normal pointing at
    ``angle`` degrees (counter-clockwise from the part's +x)."""

    distance: float = Field(ge=0, description="mm from the circle's centre")
    angle: float = Field(default=270.0, description="degrees, direction of the flat's outward normal")


class Vertex(_Strict):
    """A profile vertex (mm); ``bulge`` makes the segment to the next vertex an arc (DXF meaning:
    tan(θ/4) of the included angle θ, positive counter-clockwise; 1 is a half circle)."""

    x: float
    y: float
    bulge: float = 0.0


_OutlineKey = tuple[str, float, float, float, float, tuple[float, float], tuple[tuple[float, float], ...],
                    tuple[tuple[float, float, float], ...]]


class Outline(_Strict):
    """The part's outline (mm).

    ``shape``: ``rectangle`` (``width``, ``height``, optional ``corner_r``; lower-left corner at the
    origin), ``circle`` (``d``, ``centre``, optional ``flats``) or ``profile`` (closed ``points`` of lines
    and arcs). ``tol`` is ± mm on width and height (rectangle) or on the diameter (circle);
    ``profile_tol`` is a profile band: every edge point within ± that many mm of the nominal outline,
    after a best fit (for a ``profile`` it defaults to ``tol``).
    """

    shape: Literal["rectangle", "circle", "profile"] = "rectangle"
    width: float | None = Field(default=None, gt=0, description="mm, along the part's x axis")
    height: float | None = Field(default=None, gt=0, description="mm, along the part's y axis")
    corner_r: float = Field(default=0.0, ge=0, description="mm, radius of every corner")
    d: float | None = Field(default=None, gt=0, description="mm, circle diameter")
    centre: tuple[float, float] = (0.0, 0.0)
    flats: list[Flat] = Field(default_factory=list)
    points: list[Vertex] = Field(default_factory=list)
    tol: float = Field(default=0.02, gt=0, description="± mm on width and height, or the diameter")
    profile_tol: float | None = Field(default=None, gt=0, description="± mm band around the outline")

    @model_validator(mode="after")
    def _complete(self) -> Outline:
        need = {"rectangle": ("width", "height"), "circle": ("d",), "profile": ("points",)}[self.shape]
        for name in need:
            if not getattr(self, name):
                raise ValueError(f"a {self.shape} outline needs {name!r}")
        if self.shape == "rectangle" and self.corner_r * 2 > min(self.width or 0, self.height or 0):
            raise ValueError(f"corner_r {self.corner_r} mm is more than half the rectangle's side")
        try:
            self.build_profile()
        except ValueError as exc:
            raise ValueError(f"outline: {exc}") from None
        return self

    @property
    def plain_rectangle(self) -> bool:
        """Four sharp corners: measured as four straight sides (width and height)."""
        return self.shape == "rectangle" and self.corner_r == 0

    @property
    def band(self) -> float | None:
        """The profile band (± mm) that applies, if any."""
        return self.profile_tol if self.profile_tol is not None else (
            self.tol if self.shape == "profile" else None)

    def profile(self) -> Profile:
        """The nominal outline as lines and arcs in the part frame (mm); one shared object per outline."""
        return _profile(self._key())

    def build_profile(self) -> Profile:
        """A new :class:`Profile` of this outline (see :meth:`profile`)."""
        return _build(self._key())

    def _key(self) -> _OutlineKey:
        return (self.shape, self.width or 0.0, self.height or 0.0, self.corner_r, self.d or 0.0,
                self.centre, tuple((f.distance, f.angle) for f in self.flats),
                tuple((p.x, p.y, p.bulge) for p in self.points))


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
    """Where positions are measured from: ``outline`` (the part frame as the outline is fitted) or a
    hole id (origin at that hole, axes from the outline), optionally with ``toward`` naming the hole that
    sets the x direction."""

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


Lighting = Literal["backlight", "front"]


class Drawing(_Strict):
    """A part drawing: outline, holes, datum, tolerances and defect limits."""

    drawing: str = Field(min_length=1)
    outline: Outline
    holes: list[Hole] = Field(default_factory=list)
    datum: Datum = Datum()
    tolerances: Tolerances = Tolerances()
    defects: DefectLimits = DefectLimits()
    lighting: Lighting | None = Field(default=None, description="backlight: dark part on a bright field; "
                                      "front: bright part on a dark field; default: the station's")
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
            if self.datum.toward is not None and (self.datum.toward not in ids or
                                                  self.datum.toward == self.datum.origin):
                others = ", ".join(i for i in ids if i != self.datum.origin) or "no other hole"
                raise ValueError(f"datum toward {self.datum.toward!r} must be the id of another hole "
                                 f"({others})")
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
        centre *in the same set of points* and x points toward the ``toward`` hole (without one, the
        axes stay the outline's), so measured and nominal positions are each referred to their own
        datum, as a CMM would.
        """
        if self.datum.origin == "outline":
            return dict(points)
        ox, oy = points[self.datum.origin]
        if self.datum.toward is None:
            return {k: (x - ox, y - oy) for k, (x, y) in points.items()}
        tx, ty = points[self.datum.toward]
        a = math.atan2(ty - oy, tx - ox)
        c, s = math.cos(a), math.sin(a)
        return {k: ((x - ox) * c + (y - oy) * s, -(x - ox) * s + (y - oy) * c)
                for k, (x, y) in points.items()}


def _build(key: _OutlineKey) -> Profile:
    shape, width, height, corner_r, d, centre, flats, points = key
    if shape == "rectangle":
        return rectangle(width, height, corner_r)
    if shape == "circle":
        return circle_with_flats(d, *centre, list(flats))
    return Profile(list(points))


@functools.lru_cache(maxsize=256)
def _profile(key: _OutlineKey) -> Profile:
    """One profile per outline, so its look-up tables are made once per process."""
    return _build(key)


HINT = "see docs/drawings.md for the drawing format"


def _checked(doc: yamlfile.Located) -> Drawing:
    drawing = yamlfile.validate(Drawing, doc, hint=HINT)
    problems = []
    profile = drawing.outline.profile()
    if drawing.holes:
        xs = np.array([h.x for h in drawing.holes])
        ys = np.array([h.y for h in drawing.holes])
        inside, _ = profile.distance(xs, ys)
        for i, hole in enumerate(drawing.holes):
            if not inside[i] < -hole.d / 2:
                problems.append((doc.locate(("holes", i, "x")), f"hole {hole.id} (x={hole.x}, y={hole.y}, "
                                 f"d={hole.d}) does not fit inside the {_describe(drawing.outline)} outline"))
    if problems:
        raise ConfigError(problems, hint="hole positions are mm in the drawing's frame (a rectangle's "
                          "lower-left corner, a circle's centre is `centre`)")
    return drawing


def _describe(outline: Outline) -> str:
    if outline.shape == "rectangle":
        return f"{outline.width} x {outline.height} mm"
    if outline.shape == "circle":
        return f"Ø{outline.d} mm" + (f" with {len(outline.flats)} flat(s)" if outline.flats else "")
    return f"{len(outline.points)}-vertex profile"


def load_drawing(path: str | Path) -> Drawing:
    """Load and validate a drawing; any problem is a :class:`~microfactory.errors.ConfigError` with
    ``file:line`` and the field path."""
    return _checked(yamlfile.load(path)).model_copy(update={"source": str(path)})


def parse_drawing(text: str, file: str = "<drawing>") -> Drawing:
    """Validate a drawing given as YAML text (tests, drawings embedded in recipes)."""
    return _checked(yamlfile.load_text(text, file))
