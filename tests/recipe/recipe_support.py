"""Fake station kinds and helpers for the recipe tests, so they do not depend on the real drivers.

The ``fake_kinds`` fixture (conftest.py) puts three small kinds in the registry: ``grbl`` (capabilities
cut+laser or machine+spindle from ``limits.laser``; its check refuses any X/Y/Z word outside the
envelope as ``<name>:<line>: text``, like the real G-code pre-check, but in work coordinates: a ``G10``
line only sets an offset), ``wash``, and ``camera`` (whose
check refuses a drawing that does not exist).
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

from microfactory.cell import StationConfig
from microfactory.station import StationKind, StepRequest

REPO = Path(__file__).resolve().parents[2]
RECIPES = REPO / "recipes"
_AXIS = re.compile(r"([XYZ])(-?\d+(?:\.\d*)?)")


def _grbl_caps(config: StationConfig) -> frozenset[str]:
    return frozenset({"cut", "laser"} if config.limits.laser else {"machine", "spindle"})


def _grbl_check(step: StepRequest, config: StationConfig) -> list[str]:
    envelope = config.limits.envelope
    problems: list[str] = []
    if step.action != "gcode" or envelope is None:
        return problems
    name = str(step.params["source"])
    for n, line in enumerate(step.params["program"], start=1):
        code = re.sub(r"\(.*?\)", "", line)
        if re.search(r"G10\b", code):
            continue  # sets a work offset (G10 L2 P1 ...), moves nothing: the fake checks work coordinates
        for axis, value in _AXIS.findall(code):
            lo, hi = getattr(envelope, axis.lower())
            if not lo <= float(value) <= hi:
                problems.append(f"{name}:{n}: {axis} {float(value):.3f} mm is outside the envelope "
                                f"{axis} {lo:g}..{hi:g} mm")
    return problems


def _camera_check(step: StepRequest, config: StationConfig) -> list[str]:
    if not Path(step.params["drawing"]).is_file():
        return [f"drawing {step.params['drawing']} does not load"]
    return []


def _nothing(step: StepRequest, config: StationConfig) -> list[str]:
    return []


FAKE_KINDS = {
    "grbl": StationKind("grbl", object, _grbl_caps, _grbl_check, lambda s, c: 1.0),  # type: ignore[arg-type]
    "wash": StationKind("wash", object, lambda c: frozenset({"wash"}), _nothing,  # type: ignore[arg-type]
                        lambda s, c: 1.0),
    "camera": StationKind("camera", object, lambda c: frozenset({"inspect"}),  # type: ignore[arg-type]
                          _camera_check, lambda s, c: 1.0),
}



SIM_CELL = """\
version: 1
cell: {id: test-bench}
stations:
  - id: cut
    kind: grbl
    limits: {laser: true, envelope: {x: [0, 120], y: [0, 120], z: [-5, 0]}, max_feed_mm_min: 3000,
             max_spindle: 1000}
  - id: mill
    kind: grbl
    limits: {envelope: {x: [0, 80], y: [0, 60], z: [-30, 0]}, max_feed_mm_min: 1200, max_spindle: 24000}
  - id: wash
    kind: wash
  - id: inspect
    kind: camera
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path




