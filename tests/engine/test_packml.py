"""Every PackML command in every state: allowed → the ISA-TR88 next state; refused → a clear StateError."""

from __future__ import annotations

import pytest

from microfactory.engine.packml import ACTING, CellMachine, Command, PackMLState, UnitMode
from microfactory.errors import StateError

S, C = PackMLState, Command

# The standard's table, written out independently of the implementation's.
EXPECTED: dict[PackMLState, dict[Command, PackMLState]] = {
    S.IDLE: {C.START: S.STARTING, C.STOP: S.STOPPING, C.ABORT: S.ABORTING},
    S.STARTING: {C.STOP: S.STOPPING, C.ABORT: S.ABORTING},
    S.EXECUTE: {C.HOLD: S.HOLDING, C.SUSPEND: S.SUSPENDING, C.COMPLETE: S.COMPLETING, C.STOP: S.STOPPING,
                C.ABORT: S.ABORTING},
    S.HOLDING: {C.STOP: S.STOPPING, C.ABORT: S.ABORTING},
    S.HELD: {C.UNHOLD: S.UNHOLDING, C.STOP: S.STOPPING, C.ABORT: S.ABORTING},
    S.UNHOLDING: {C.STOP: S.STOPPING, C.ABORT: S.ABORTING},
    S.SUSPENDING: {C.HOLD: S.HOLDING, C.STOP: S.STOPPING, C.ABORT: S.ABORTING},
    S.SUSPENDED: {C.UNSUSPEND: S.UNSUSPENDING, C.HOLD: S.HOLDING, C.STOP: S.STOPPING, C.ABORT: S.ABORTING},
    S.UNSUSPENDING: {C.HOLD: S.HOLDING, C.STOP: S.STOPPING, C.ABORT: S.ABORTING},
    S.COMPLETING: {C.STOP: S.STOPPING, C.ABORT: S.ABORTING},
    S.COMPLETE: {C.RESET: S.RESETTING, C.STOP: S.STOPPING, C.ABORT: S.ABORTING},
    S.STOPPING: {C.ABORT: S.ABORTING},
    S.STOPPED: {C.RESET: S.RESETTING, C.ABORT: S.ABORTING},
    S.ABORTING: {},
    S.ABORTED: {C.CLEAR: S.CLEARING},
    S.CLEARING: {C.ABORT: S.ABORTING},
    S.RESETTING: {C.STOP: S.STOPPING, C.ABORT: S.ABORTING},
}
SC_NEXT = {S.STARTING: S.EXECUTE, S.HOLDING: S.HELD, S.UNHOLDING: S.EXECUTE, S.SUSPENDING: S.SUSPENDED,
           S.UNSUSPENDING: S.EXECUTE, S.COMPLETING: S.COMPLETE, S.STOPPING: S.STOPPED,
           S.ABORTING: S.ABORTED, S.CLEARING: S.STOPPED, S.RESETTING: S.IDLE}


@pytest.mark.parametrize("state", list(S))
@pytest.mark.parametrize("command", list(C))
def test_every_command_in_every_state(state: PackMLState, command: Command) -> None:
    seen: list[tuple[PackMLState, PackMLState]] = []
    cell = CellMachine(lambda s, p, m: seen.append((p, s)), initial=state)
    expected = EXPECTED[state].get(command)
    if expected is None:
        with pytest.raises(StateError) as err:
            cell.command(command)
        text = str(err.value)
        assert state.value in text and command.value in text
        for allowed in EXPECTED[state]:
            assert allowed.value in text
        assert cell.state == state and not seen
    else:
        assert cell.command(command) == expected
        assert seen == [(state, expected)]


@pytest.mark.parametrize("state", list(S))
def test_state_complete_only_ends_acting_states(state: PackMLState) -> None:
    cell = CellMachine(initial=state)
    if state in ACTING:
        assert cell.state_complete() == SC_NEXT[state]
    else:
        with pytest.raises(StateError, match="not an acting state"):
            cell.state_complete()
    assert set(SC_NEXT) == set(ACTING)


def test_unknown_command_lists_the_known_ones() -> None:
    with pytest.raises(StateError, match="unhold"):
        CellMachine().command("jump")


def test_mode_changes_only_when_not_producing() -> None:
    cell = CellMachine()
    cell.set_mode(UnitMode.MAINTENANCE)
    assert cell.mode == UnitMode.MAINTENANCE
    cell.command("start")
    with pytest.raises(StateError, match="mode"):
        cell.set_mode("manual")
    assert cell.mode == UnitMode.MAINTENANCE


def test_a_failing_listener_does_not_leave_a_half_made_transition() -> None:
    def broken(state: PackMLState, previous: PackMLState, mode: UnitMode) -> None:
        raise RuntimeError("listener bug")

    cell = CellMachine(broken)
    cell.command("start")
    assert cell.state == S.STARTING
    assert cell.state_complete() == S.EXECUTE
