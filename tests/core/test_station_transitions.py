"""An illegal station transition is a logged refusal, never a silent no-op (issue 10 point 8)."""

from __future__ import annotations

import logging

import pytest

from microfactory.clock import ScaledClock
from microfactory.events import EventBus
from microfactory.station import StationMachine, StationState


def test_a_refused_transition_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    machine = StationMachine("mill", EventBus(ScaledClock(1.0)))
    with caplog.at_level(logging.INFO, logger="microfactory.station"):
        assert machine.trigger_safely("finish") is False  # offline: nothing to finish
    assert machine.state is StationState.OFFLINE
    assert "station mill: transition 'finish' refused in state offline" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="microfactory.station"):
        assert machine.trigger_safely("link_up") is True
    assert machine.state is StationState.CONNECTING and "refused" not in caplog.text
