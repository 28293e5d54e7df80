"""Issue 10's figure, small: hypothesis-made sequences of programs (units changes, G91, G10 L2/L20, G92,
G43.1 ...) through the production driver to the stock simulator with soft limits on, whose travel is
the cell's envelope: no block ever reaches outside it. ``benchmarks/safety_envelope.py`` runs more."""

from __future__ import annotations

import asyncio
import importlib.util
import random
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

_PATH = Path(__file__).resolve().parents[3] / "benchmarks" / "safety_envelope.py"
_SPEC = importlib.util.spec_from_file_location("safety_envelope", _PATH)
assert _SPEC is not None and _SPEC.loader is not None
envelope = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(envelope)


@settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_no_sequence_of_programs_moves_outside_the_envelope(seed: int) -> None:
    rng = random.Random(seed)
    sequence = envelope.random_sequence(rng, programs=3, lines=5)
    counts = asyncio.run(envelope.run_sequences([sequence]))
    assert counts["out_of_envelope_reached"] == 0 and counts["soft_limit_alarms"] == 0, (sequence, counts)
    assert counts["programs_tried"] == 3


def test_the_three_carry_over_cases_of_issue_10_point_1_are_refused_or_stay_inside() -> None:
    """A program that leaves G20, one that moves G54 (G10 L2), and one G92 program run once per part."""
    g20 = [["G20", "G0 X-1 Y-1"], ["G0 X-80 Y-60"]]  # the second means -2032 mm under the G20 left
    g10 = [["G10 L2 P1 X-30 Y-30 Z0"], ["G54 G0 X-100 Y-100"]]  # -130: outside
    g92 = [["G0 X-50 Y-50", "G92 X0 Y0", "G0 X-40 Y-40"]] * 4  # each part shifts the origin 40 mm more
    counts = asyncio.run(envelope.run_sequences([g20, g10, g92]))
    assert counts["out_of_envelope_reached"] == 0 and counts["soft_limit_alarms"] == 0, counts
    assert counts["programs_refused"] >= 3, counts  # the second of g20 and g10, a later g92 part
