"""Charts: SPC limits are the Shewhart ones; energy is shown per finished part."""

from __future__ import annotations

import numpy as np
import pytest

from microfactory.events import Event, EventKind


def test_xbar_r_limits_use_the_subgroup_of_five_constants() -> None:
    from ui.charts import xbar_r_limits

    values = [10.0, 10.2, 9.8, 10.1, 9.9] * 4
    limits = xbar_r_limits(values)
    assert limits is not None
    assert float(limits["center"]) == pytest.approx(10.0)
    assert float(limits["rbar"]) == pytest.approx(0.4)
    assert float(limits["ucl"]) == pytest.approx(10.0 + 0.577 * 0.4)
    assert float(limits["r_ucl"]) == pytest.approx(2.114 * 0.4)
    assert xbar_r_limits(values[:9]) is None  # one subgroup: no limits yet


def test_energy_bars_are_per_finished_part(qtbot) -> None:  # type: ignore[no-untyped-def]
    from ui.charts import ChartsView

    view = ChartsView()
    qtbot.addWidget(view)
    view.apply(Event(EventKind.ENERGY, "wash", {"joules": 7200.0}))
    for n, t in enumerate((0.0, 10.0)):
        view.apply(Event(EventKind.PART, "cell", {"part": f"p{n}", "state": "queued"}, t=t))
        view.apply(Event(EventKind.PART, "cell", {"part": f"p{n}", "state": "passed"}, t=t + 30.0))
    view.redraw()
    heights = np.asarray(view.energy_bars.opts["height"])
    assert heights.tolist() == pytest.approx([1.0])  # 2 Wh over 2 parts
    assert view.cycle_times == [30.0, 30.0]


def test_spc_says_how_many_parts_it_still_needs(qtbot) -> None:  # type: ignore[no-untyped-def]
    from ui.charts import ChartsView

    view = ChartsView()
    qtbot.addWidget(view)

    def measured(value: float) -> Event:
        return Event(EventKind.STEP, "inspect", {"phase": "done", "data": {"measurements": {
            "features": [{"feature": "outline.width", "measured": value}]}}})

    for value in (20.0, 20.01, 19.99):
        view.apply(measured(value))
    view.redraw()
    assert "(3 so far)" in view.xbar.plotItem.titleLabel.text
    for value in (20.0, 20.01, 19.99, 20.0, 20.02, 19.98, 20.0):
        view.apply(measured(value))
    view.redraw()
    assert "so far" not in view.xbar.plotItem.titleLabel.text
    assert view.xbar.plotItem.listDataItems()  # X̄ points drawn


def test_the_yield_chart_shows_the_whole_scale(qtbot) -> None:  # type: ignore[no-untyped-def]
    from ui.charts import ChartsView

    view = ChartsView()
    qtbot.addWidget(view)
    for n in range(12):  # 11 of 12 good: 91.7 %, which auto-zoom drew as a cliff from 83 to 100 %
        view.apply(Event(EventKind.PART, "cell", {"part": f"p{n}", "state": "queued"}, t=10.0 * n))
        state = "scrapped" if n == 3 else "passed"
        view.apply(Event(EventKind.PART, "cell", {"part": f"p{n}", "state": state}, t=10.0 * n + 5))
    view.redraw()
    low, high = view.yield_plot.getViewBox().viewRange()[1]
    assert low <= 0.0 and high >= 100.0
