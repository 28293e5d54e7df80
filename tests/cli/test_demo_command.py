"""``microfactory demo`` without a display says, in one line, that the lot runs in the terminal."""

from __future__ import annotations

import pytest

from microfactory.cli import main


@pytest.mark.timeout(120)
def test_demo_without_a_display_says_it_runs_in_the_terminal(monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert main(["demo", "--parts", "1", "--speed", "500"]) == 0
    err = capsys.readouterr().err
    said = [line for line in err.splitlines() if line.startswith("demo: no display")]
    assert len(said) == 1 and "runs here in the terminal" in said[0], err


@pytest.mark.timeout(120)
def test_demo_headless_asked_for_says_nothing_about_the_display(monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    assert main(["demo", "--headless", "--parts", "1", "--speed", "500"]) == 0
    assert "no display" not in capsys.readouterr().err
