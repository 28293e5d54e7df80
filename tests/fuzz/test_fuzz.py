"""Fuzz every loader and parser: only the project's own errors (or a device's error answers) come out.

A few dozen examples per target here (CI); ``benchmarks/safety.py`` feeds 10,000 and more to each. A
foreign exception fails the test with hypothesis's smallest input that raises it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fuzz_targets import Target, Workspace, build_targets, quiet_logging
from hypothesis import HealthCheck, given, settings

NAMES = ["cell", "recipe", "drawing", "gcode_lexer", "gcode_precheck", "grbl_codec", "wash_codec",
         "grbl_simulator", "wash_simulator", "cli"]
EXAMPLES = {"recipe": 15, "cli": 15, "cell": 25, "drawing": 25}


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

    @settings(max_examples=EXAMPLES.get(name, 40), deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.function_scoped_fixture])
    @given(target.inputs)
    def feed(value: object) -> None:
        target.feed(value)

    with quiet_logging():
        feed()
