"""The pytest plugin as a user meets it: installed with the package, run by plain ``pytest`` in their repo.

``examples/user-repo`` is a shop's repository (cell file, recipe, drawing, tests). Its tests are run in a
subprocess exactly as its CI would (``python -m pytest`` in that folder; the plugin found through its
``pytest11`` entry point, not through a ``-p`` flag): three pass on the simulated cell and the hardware
test is skipped, saying why. Bad plugin input (no cell file, an unknown station in ``--mf-port``, a bad
speed) stops pytest with a usage error that says what to write.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "user-repo"


def pytest_in(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTEST_ADDOPTS", None)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *args],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)


def test_the_plugin_is_registered_as_a_pytest11_entry_point() -> None:
    found = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert found.get("microfactory") == "microfactory.pytest_plugin"


@pytest.mark.timeout(300)
def test_the_example_user_repository_passes_its_three_tests() -> None:
    done = pytest_in(EXAMPLE)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "3 passed, 1 skipped" in done.stdout, done.stdout[-2000:]
    assert "needs real stations: give --mf-port STATION=PORT" in done.stdout


@pytest.fixture
def user_repo(tmp_path: Path) -> Path:
    shutil.copytree(EXAMPLE, tmp_path / "repo", ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    return tmp_path / "repo"


def test_a_repository_without_a_cell_file_is_told_what_to_write(user_repo: Path) -> None:
    (user_repo / "pyproject.toml").write_text("[tool.pytest.ini_options]\ntestpaths = [\"tests\"]\n")
    done = pytest_in(user_repo, "-k", "accounted")
    assert done.returncode != 0
    assert 'set microfactory_cell = "cell.yaml"' in done.stdout + done.stderr


def test_a_hardware_run_naming_a_station_the_cell_lacks_is_a_usage_error(user_repo: Path) -> None:
    done = pytest_in(user_repo, "-m", "mf_hardware", "--mf-port", "lathe=/dev/ttyUSB0")
    assert done.returncode != 0
    out = done.stdout + done.stderr
    assert "the cell has no station 'lathe'" in out and "cut, mill, wash, inspect" in out


def test_a_speed_marker_that_is_not_a_speed_is_a_usage_error(user_repo: Path) -> None:
    test = user_repo / "tests" / "test_bridge_plate.py"
    test.write_text(test.read_text().replace("@pytest.mark.mf_speed(20)", "@pytest.mark.mf_speed('fast')"))
    done = pytest_in(user_repo, "-k", "in_order")
    assert done.returncode != 0
    assert "microfactory speed 'fast': give a number above 0 or 'max'" in done.stdout + done.stderr
