"""Statistical process control for one measured feature: mean, σ, Cp, Cpk and an X̄/R chart.

Specification limits come from the drawing: nominal ± tolerance (mm), so USL = nominal + tol and
LSL = nominal − tol. σ is the sample standard deviation of every measurement (overall, as Ppk uses; with
the lot's parts in order it is what a quality engineer compares across lots). The X̄/R chart groups the
measurements in part order into subgroups of :data:`SUBGROUP` (a last, short subgroup is left out) with
the Shewhart constants for n = 5: X̄ limits = X̿ ± A2·R̄, R limits D3·R̄ .. D4·R̄.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

SUBGROUP = 5
A2, D3, D4 = 0.577, 0.0, 2.114


@dataclass
class FeatureSpc:
    """SPC of one feature over a lot (all values in mm)."""

    feature: str
    nominal: float
    tol: float
    values: list[float] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values) if self.values else math.nan

    @property
    def sigma(self) -> float:
        return statistics.stdev(self.values) if self.n > 1 else math.nan

    @property
    def usl(self) -> float:
        return self.nominal + self.tol

    @property
    def lsl(self) -> float:
        return self.nominal - self.tol

    @property
    def cp(self) -> float:
        s = self.sigma
        return (self.usl - self.lsl) / (6 * s) if s and not math.isnan(s) else math.nan

    @property
    def cpk(self) -> float:
        s = self.sigma
        if not s or math.isnan(s):
            return math.nan
        return min(self.usl - self.mean, self.mean - self.lsl) / (3 * s)

    @property
    def out_of_tolerance(self) -> int:
        return sum(1 for v in self.values if not self.lsl - 1e-12 <= v <= self.usl + 1e-12)

    def subgroups(self) -> tuple[list[float], list[float]]:
        """X̄ and R of each full subgroup of :data:`SUBGROUP`, in part order."""
        xbar, ranges = [], []
        for i in range(0, self.n - SUBGROUP + 1, SUBGROUP):
            group = self.values[i : i + SUBGROUP]
            xbar.append(statistics.fmean(group))
            ranges.append(max(group) - min(group))
        return xbar, ranges

    def limits(self) -> dict[str, float]:
        """Centre lines and control limits of the X̄ and R charts (NaN without a full subgroup)."""
        xbar, ranges = self.subgroups()
        if not xbar:
            return {k: math.nan for k in ("xbarbar", "ucl_x", "lcl_x", "rbar", "ucl_r", "lcl_r")}
        xx, rbar = statistics.fmean(xbar), statistics.fmean(ranges)
        return {
            "xbarbar": xx,
            "ucl_x": xx + A2 * rbar,
            "lcl_x": xx - A2 * rbar,
            "rbar": rbar,
            "ucl_r": D4 * rbar,
            "lcl_r": D3 * rbar,
        }

    def as_dict(self) -> dict[str, Any]:
        xbar, ranges = self.subgroups()
        return {
            "feature": self.feature,
            "nominal": self.nominal,
            "tol": self.tol,
            "n": self.n,
            "mean": _r(self.mean),
            "sigma": _r(self.sigma),
            "cp": _r(self.cp, 3),
            "cpk": _r(self.cpk, 3),
            "out_of_tolerance": self.out_of_tolerance,
            "subgroup": SUBGROUP,
            "xbar": [_r(v) for v in xbar],
            "range": [_r(v) for v in ranges],
            "limits": {k: _r(v) for k, v in self.limits().items()},
        }


def _r(value: float, digits: int = 6) -> float | None:
    return None if math.isnan(value) else round(value, digits)


def features_of(measured: list[dict[str, Any]]) -> dict[str, FeatureSpc]:
    """Collect ``{"feature", "nominal", "tol", "measured"}`` records, in the order given, per feature."""
    out: dict[str, FeatureSpc] = {}
    for m in measured:
        spc = out.setdefault(m["feature"], FeatureSpc(m["feature"], float(m["nominal"]), float(m["tol"])))
        spc.values.append(float(m["measured"]))
    return out
