"""Fuzz every loader and parser: only the project's own errors (or a device's error answers) come out.

A few dozen examples per target here (CI); ``benchmarks/safety.py`` feeds 10,000 and more to each
(through the same targets, ``fuzz_targets.py``). ``MICROFACTORY_FUZZ_EXAMPLES=N`` runs this suite with N
examples per target instead, so a count the benchmark found a problem at can be re-run as a test, with
hypothesis shrinking the failing input. A foreign exception fails the test with hypothesis's smallest
input that raises it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from fuzz_targets import Target, Workspace, build_targets, quiet_logging
from hypothesis import HealthCheck, given, settings

NAMES = ["cell", "recipe", "drawing", "dxf", "gcode_lexer", "gcode_precheck", "grbl_codec", "wash_codec",
         "grbl_simulator", "wash_simulator", "cli"]
EXAMPLES = {"recipe": 15, "cli": 15, "cell": 25, "drawing": 25, "dxf": 25}
DEFAULT_EXAMPLES = 40
#: examples per target from the environment (the benchmark's count, to reproduce what it found)
FROM_ENV = int(os.environ.get("MICROFACTORY_FUZZ_EXAMPLES", "0") or 0)


@pytest.fixture(scope="module")
def targets() -> Iterator[dict[str, Target]]:
    ws = Workspace()
    try:
        yield {t.name: t for t in build_targets(ws)}
    finally:
        ws.close()


def test_every_target_is_fuzzed(targets: dict[str, Target]) -> None:
    assert sorted(targets) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_only_our_errors_come_out(name: str, targets: dict[str, Target]) -> None:
    target = targets[name]

    @settings(max_examples=FROM_ENV or EXAMPLES.get(name, DEFAULT_EXAMPLES), deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.function_scoped_fixture])
    @given(target.inputs)
    def feed(value: object) -> None:
        target.feed(value)

    with quiet_logging():
        feed()
