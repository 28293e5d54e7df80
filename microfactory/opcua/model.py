"""The PackML numbers a plant system reads: states, unit modes and commands as OMAC PackTags v3 count them.

OPC 30050 (OPC UA for PackML) and PackTags v3 number the cell's 17 states 1–17 (0 is *Undefined*), the
unit modes 1–3 (0 is *Invalid*) and the control commands 1–10 (0 is *Undefined*). The engine keeps them
as enums (:mod:`microfactory.engine.packml`); this module is the one place that turns them into the
numbers on the wire, so a SCADA screen that shows ``StateCurrent = 11`` shows *Held*.

A station is not a PackML unit of its own (the engine owns every step it runs), but a plant screen still
wants one state number per station: :data:`STATION_STATES` maps the station's own machine onto the
nearest PackML state.
"""

from __future__ import annotations

from microfactory.engine.packml import Command, PackMLState, UnitMode
from microfactory.station import StationState

#: The OPC 30050 namespace: every PackML browse name lives in it.
PACKML_NAMESPACE = "http://opcfoundation.org/UA/PackML/"
#: The namespace of this controller's own instances (the cell and its stations).
CELL_NAMESPACE = "urn:microfactory:cell"

S = PackMLState

#: PackTags v3 ``StateCurrent`` numbers (0 = Undefined).
STATE_NUMBERS: dict[PackMLState, int] = {
    S.CLEARING: 1, S.STOPPED: 2, S.STARTING: 3, S.IDLE: 4, S.SUSPENDED: 5, S.EXECUTE: 6, S.STOPPING: 7,
    S.ABORTING: 8, S.ABORTED: 9, S.HOLDING: 10, S.HELD: 11, S.UNHOLDING: 12, S.SUSPENDING: 13,
    S.UNSUSPENDING: 14, S.RESETTING: 15, S.COMPLETING: 16, S.COMPLETE: 17,
}
UNDEFINED_STATE = 0

#: PackTags v3 ``UnitModeCurrent`` numbers (0 = Invalid).
MODE_NUMBERS: dict[UnitMode, int] = {UnitMode.PRODUCTION: 1, UnitMode.MAINTENANCE: 2, UnitMode.MANUAL: 3}
MODES_BY_NUMBER: dict[int, UnitMode] = {n: m for m, n in MODE_NUMBERS.items()}

#: PackTags v3 ``CntrlCmd`` numbers, in the order OPC 30050 lists the methods.
COMMAND_NUMBERS: dict[Command, int] = {
    Command.RESET: 1, Command.START: 2, Command.STOP: 3, Command.HOLD: 4, Command.UNHOLD: 5,
    Command.SUSPEND: 6, Command.UNSUSPEND: 7, Command.ABORT: 8, Command.CLEAR: 9, Command.COMPLETE: 10,
}

#: A station's own state shown as the nearest PackML state (a station is commanded through the cell).
STATION_STATES: dict[StationState, PackMLState] = {
    StationState.OFFLINE: S.STOPPED,
    StationState.CONNECTING: S.RESETTING,
    StationState.IDLE: S.IDLE,
    StationState.STANDBY: S.IDLE,  # ready: woken before its next step
    StationState.BUSY: S.EXECUTE,
    StationState.HOLDING: S.HOLDING,
    StationState.HELD: S.HELD,
    StationState.FAULTED: S.ABORTED,  # needs a reset before it serves again
    StationState.ALARM: S.ABORTED,
}


def state_number(state: PackMLState | None) -> int:
    """``StateCurrent`` for ``state`` (0 when unknown)."""
    return STATE_NUMBERS.get(state, UNDEFINED_STATE) if state is not None else UNDEFINED_STATE


def display_name(state: PackMLState) -> str:
    """The state as OPC 30050 spells its browse name (``Held``, ``Unsuspending``)."""
    return state.value.capitalize()


def method_name(command: Command) -> str:
    """The method's browse name (``Hold``, ``Unsuspend``)."""
    return command.value.capitalize()


def station_state_number(state: StationState) -> int:
    """``StateCurrent`` of a station's PackML object."""
    return state_number(STATION_STATES.get(state))
