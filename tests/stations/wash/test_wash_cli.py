"""``microfactory wash`` against the simulator: a cycle runs, a refused set point exits 2."""

from __future__ import annotations

import pytest

from microfactory.cli import main


def test_wash_run_on_the_simulator(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["wash", "--port", "sim", "--speed", "400", "run", "--temp", "20", "--time", "5",
                 "--power", "50"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.startswith("Microfactory Sim,USW-1,")
    assert "DONE" in out and "Wh" in out


def test_wash_refuses_an_out_of_range_set_point(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["wash", "--port", "sim", "run", "--temp", "95", "--time", "5", "--power", "50"])
    assert code == 2
    assert "temperature_c 95 °C is outside" in capsys.readouterr().err
