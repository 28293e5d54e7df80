"""Charts: cycle time per part, SPC X̄/R per measured feature with control limits, yield, energy.

pyqtgraph, not Qt Charts: it is numpy-native and fast enough to redraw at event rate, it needs no extra
Qt module (Qt Charts is a separate PyQt6 wheel), and its plots stay responsive with thousands of points.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import numpy as np
import pyqtgraph as pg
from PyQt6.QtCore import QTimer
from PyQt6.QtGui import QShowEvent
from PyQt6.QtWidgets import QComboBox, QGridLayout, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from microfactory.events import Event, EventKind

SUBGROUP = 5
A2, D3, D4 = 0.577, 0.0, 2.114  # Shewhart constants for subgroups of 5


def xbar_r_limits(values: list[float], n: int = SUBGROUP) -> dict[str, np.ndarray | float] | None:
    """X̄ and R per subgroup of ``n`` consecutive values, with control limits; None below 2 subgroups."""
    groups = len(values) // n
    if groups < 2:
        return None
    data = np.asarray(values[: groups * n], dtype=float).reshape(groups, n)
    xbar, rng = data.mean(axis=1), np.ptp(data, axis=1)
    xbarbar, rbar = float(xbar.mean()), float(rng.mean())
    return {"xbar": xbar, "r": rng, "center": xbarbar, "ucl": xbarbar + A2 * rbar,
            "lcl": xbarbar - A2 * rbar, "rbar": rbar, "r_ucl": D4 * rbar, "r_lcl": D3 * rbar}


class ChartsView(QWidget):
    """Four plots, fed by engine events."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        pg.setConfigOptions(antialias=True, background="w", foreground="k")
        self.cycle = pg.PlotWidget(title="Cycle time per part (s)")
        self.yield_plot = pg.PlotWidget(title="Yield (%)")
        self.energy = pg.PlotWidget(title="Energy per finished part, by station (Wh)")
        self.xbar = pg.PlotWidget(title=f"X̄ (mm), subgroups of {SUBGROUP}")
        self.range = pg.PlotWidget(title="R (mm)")
        for plot, label in ((self.cycle, "part"), (self.yield_plot, "part"), (self.xbar, "subgroup"),
                            (self.range, "subgroup")):
            plot.setLabel("bottom", label)
        self.feature = QComboBox()
        self.feature.currentTextChanged.connect(lambda _t: self._draw_spc())
        self.cycle_curve = self.cycle.plot(pen=pg.mkPen("#1565c0", width=2), symbol="o", symbolSize=6)
        self.yield_curve = self.yield_plot.plot(pen=pg.mkPen("#2e7d32", width=2))
        # yield is read against the whole scale: auto-zoom turned 83-100 % into a cliff
        self.yield_plot.setYRange(0, 100, padding=0.02)
        self.yield_plot.enableAutoRange(axis="y", enable=False)
        self.yield_plot.setLimits(yMin=0, yMax=100)
        self.energy_bars = pg.BarGraphItem(x=[], height=[], width=0.6, brush="#6a4c93")
        self.energy.addItem(self.energy_bars)
        self.part_start: dict[str, float] = {}
        self.cycle_times: list[float] = []
        self.finished: list[bool] = []
        self.joules: dict[str, float] = {}
        self.samples: dict[str, list[float]] = defaultdict(list)
        grid = QGridLayout()
        grid.addWidget(self.cycle, 0, 0)
        grid.addWidget(self.yield_plot, 0, 1)
        grid.addWidget(self.energy, 0, 2)
        spc = QVBoxLayout()
        row = QHBoxLayout()
        row.addWidget(QLabel("SPC feature"))
        row.addWidget(self.feature, 1)
        spc.addLayout(row)
        spc.addWidget(self.xbar)
        spc.addWidget(self.range)
        box = QVBoxLayout(self)
        box.addLayout(grid, 1)
        box.addLayout(spc, 1)
        # plots are redrawn about twice a second and only while the tab is shown: the data is kept
        # as events come, so a hidden Charts tab costs the GUI thread nothing at event rate
        self._dirty = False
        self._parts = [self._draw_cycle_and_yield, self._draw_energy, self._draw_spc]
        self._todo: list[Callable[[], None]] = []
        self._timer = QTimer(self)
        self._timer.setInterval(150)
        self._timer.timeout.connect(self._redraw_if_shown)
        self._timer.start()

    def apply(self, event: Event) -> None:
        if event.kind == EventKind.PART:
            part, state = str(event.get("part")), str(event.get("state"))
            self.part_start.setdefault(part, event.t)
            if state in ("passed", "scrapped"):
                self.cycle_times.append(event.t - self.part_start.pop(part, event.t))
                self.finished.append(state == "passed")
                self._dirty = True
        elif event.kind == EventKind.ENERGY:
            self.joules[event.source] = float(event.get("joules") or 0.0)  # the station's total so far
            self._dirty = True
        elif event.kind == EventKind.STEP and event.get("phase") in ("done", "failed"):
            measurements = (event.get("data") or {}).get("measurements")
            if isinstance(measurements, dict):
                for feature in measurements.get("features") or []:
                    name = str(feature.get("feature"))
                    if isinstance(feature.get("measured"), (int, float)):
                        if name not in self.samples:
                            self.feature.addItem(name)
                        self.samples[name].append(float(feature["measured"]))
                self._dirty = True

    def redraw(self) -> None:
        """Redraw every plot from the data collected so far."""
        self._dirty = False
        for draw in self._parts:
            draw()

    def _draw_cycle_and_yield(self) -> None:
        x = np.arange(1, len(self.cycle_times) + 1)
        self.cycle_curve.setData(x, self.cycle_times)
        if self.finished:
            self.yield_curve.setData(x, np.cumsum(self.finished) / x * 100)

    def _redraw_if_shown(self) -> None:
        """Timer: one chart group per tick (a pyqtgraph scene update costs a few ms; doing all of them
        in one tick would hold the GUI thread for tens of ms)."""
        if not self.isVisible():
            return
        if self._dirty:
            self._dirty = False
            self._todo = list(self._parts)
        if self._todo:
            self._todo.pop(0)()

    def showEvent(self, event: QShowEvent | None) -> None:
        super().showEvent(event)
        self.redraw()

    def _draw_energy(self) -> None:
        """Each station's energy so far divided by the parts finished so far (the lot's total before
        the first part finishes)."""
        names = sorted(self.joules)
        parts = max(len(self.cycle_times), 1)
        self.energy_bars.setOpts(x=np.arange(len(names)),
                                 height=[self.joules[n] / 3600 / parts for n in names])
        self.energy.getAxis("bottom").setTicks([list(enumerate(names))])

    def _draw_spc(self) -> None:
        values = self.samples.get(self.feature.currentText(), [])
        limits = xbar_r_limits(values)
        self.xbar.clear()
        self.range.clear()
        title = f"X̄ (mm), subgroups of {SUBGROUP}"
        if limits is None:  # say why the chart is empty instead of showing bare axes
            need = 2 * SUBGROUP
            title += f" — control limits after {need} measured parts ({len(values)} so far)"
        self.xbar.setTitle(title)
        if limits is None:
            return
        xbar, rng = np.asarray(limits["xbar"]), np.asarray(limits["r"])
        x = np.arange(1, len(xbar) + 1)
        out_x = (xbar > float(limits["ucl"])) | (xbar < float(limits["lcl"]))
        out_r = (rng > float(limits["r_ucl"])) | (rng < float(limits["r_lcl"]))
        for plot, y, out in ((self.xbar, xbar, out_x), (self.range, rng, out_r)):
            brushes = [pg.mkBrush("#c62828" if o else "#1565c0") for o in out]  # red: out of control
            plot.plot(x, y, pen=pg.mkPen("#1565c0", width=2), symbol="o", symbolBrush=brushes)
            plot.getAxis("bottom").setTickSpacing(max(1, len(x) // 10), 1)
        for plot, keys in ((self.xbar, ("center", "ucl", "lcl")), (self.range, ("rbar", "r_ucl", "r_lcl"))):
            for key in keys:
                style = pg.mkPen("#c62828", width=1, style=pg.QtCore.Qt.PenStyle.DashLine) \
                    if key != keys[0] else pg.mkPen("#2e7d32", width=1)
                plot.addItem(pg.InfiniteLine(pos=float(limits[key]), angle=0, pen=style))
