"""The ``$G`` parser state report: a number Grbl never prints (``inf``, ``nan``) is noise, said as such."""

from __future__ import annotations

import pytest

from microfactory.errors import ProtocolError
from stations.grbl.machine_state import parse_gc


def test_a_stock_parser_state_reads() -> None:
    state = parse_gc("G1 G54 G17 G21 G90 G94 M3 M8 T2 F300 S1000", {}, 0.0)
    assert (state.modal["motion"], state.feed, state.speed, state.tool) == ("G1", 300.0, 1000.0, 2)
    assert state.spindle == "M3" and state.flood and not state.mist


@pytest.mark.parametrize("payload", ["G0 G54 G17 G21 G90 G94 M5 M9 Tinf F0 S0",  # found by the fuzz suite
                                     "G0 G54 G17 G21 G90 G94 M5 M9 T0 Fnan S0",
                                     "G0 G54 G17 G21 G90 G94 M5 M9 T0 F0 S-inf"])
def test_a_number_grbl_never_prints_is_an_unreadable_report(payload: str) -> None:
    with pytest.raises(ProtocolError, match="unreadable parser state"):
        parse_gc(payload, {}, 0.0, port="/dev/ttyUSB0")
