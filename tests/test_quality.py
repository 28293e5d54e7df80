"""The codebase's own rules, executed: ruff, mypy, and the import-linter layer contracts.

The layer contracts in pyproject.toml make docs/design.md's picture executable: Qt only in ``ui``;
``stations`` and ``simulators`` never import each other (a simulator shares no code with the driver it
tests); the core imports neither.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    exe = BIN / tool
    if not exe.exists():
        pytest.skip(f"{tool} is not installed in this environment (pip install -e '.[test]')")
    return subprocess.run([str(exe), *args], cwd=REPO, capture_output=True, text=True, timeout=600)


def test_ruff_clean() -> None:
    res = run("ruff", "check", ".")
    assert res.returncode == 0, res.stdout + res.stderr


def test_mypy_clean() -> None:
    res = run("mypy")
    assert res.returncode == 0, res.stdout + res.stderr


def test_layer_contracts_hold() -> None:
    res = run("lint-imports", "--no-cache")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Contracts: 2 kept, 0 broken" in res.stdout or "kept" in res.stdout, res.stdout
