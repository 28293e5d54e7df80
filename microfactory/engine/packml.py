"""The cell's PackML state model (ISA-TR88.00.02): states, commands, unit modes and the one table.

The machine is a *synchronous* ``transitions.Machine`` driven from the engine's asyncio loop, not the
``AsyncMachine``: every trigger is fired by the one loop that owns run state, callbacks only publish an
event, and the slow work of an acting state (holding stations, waiting for steps to finish) is done by
the engine *around* the trigger, which then fires ``state_complete`` (PackML's "SC"). That keeps the
table testable without a loop, keeps transitions atomic (no awaits inside a half-made transition) and
leaves task cancellation to the engine alone.

A refused command raises :class:`~microfactory.errors.StateError` naming the state and the commands the
state allows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from transitions import Machine

from microfactory.errors import StateError

log = logging.getLogger("microfactory.engine.packml")


class PackMLState(StrEnum):
    """The 17 PackML states. Wait states need a command; acting states end with ``state_complete``."""

    IDLE = "idle"
    STARTING = "starting"
    EXECUTE = "execute"
    HOLDING = "holding"
    HELD = "held"
    UNHOLDING = "unholding"
    SUSPENDING = "suspending"
    SUSPENDED = "suspended"
    UNSUSPENDING = "unsuspending"
    COMPLETING = "completing"
    COMPLETE = "complete"
    STOPPING = "stopping"
    STOPPED = "stopped"
    ABORTING = "aborting"
    ABORTED = "aborted"
    CLEARING = "clearing"
    RESETTING = "resetting"


class Command(StrEnum):
    """Operator (or API) commands. ``state_complete`` is internal and not a command."""

    RESET = "reset"
    START = "start"
    STOP = "stop"
    HOLD = "hold"
    UNHOLD = "unhold"
    SUSPEND = "suspend"
    UNSUSPEND = "unsuspend"
    ABORT = "abort"
    CLEAR = "clear"
    COMPLETE = "complete"


class UnitMode(StrEnum):
    """PackML unit modes. Production runs lots; Maintenance and Manual let an engineer jog stations."""

    PRODUCTION = "production"
    MAINTENANCE = "maintenance"
    MANUAL = "manual"


S = PackMLState
STATE_COMPLETE = "sc"  # PackML "state complete"; not a method name, to keep the model's own

#: States a Stop command may come from (everything but Stopping/Stopped and the abort branch).
_STOPPABLE = [S.IDLE, S.STARTING, S.EXECUTE, S.HOLDING, S.HELD, S.UNHOLDING, S.SUSPENDING, S.SUSPENDED,
              S.UNSUSPENDING, S.COMPLETING, S.COMPLETE, S.RESETTING]
#: States an Abort command may come from (all but Aborting/Aborted).
_ABORTABLE = [*_STOPPABLE, S.STOPPING, S.STOPPED, S.CLEARING]

#: The PackML table: (trigger, sources, destination). Anything not listed is refused.
TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": Command.START, "source": [S.IDLE], "dest": S.STARTING},
    {"trigger": STATE_COMPLETE, "source": [S.STARTING], "dest": S.EXECUTE},
    {"trigger": Command.COMPLETE, "source": [S.EXECUTE], "dest": S.COMPLETING},
    {"trigger": STATE_COMPLETE, "source": [S.COMPLETING], "dest": S.COMPLETE},
    {"trigger": Command.HOLD, "source": [S.EXECUTE, S.SUSPENDED, S.SUSPENDING, S.UNSUSPENDING],
     "dest": S.HOLDING},
    {"trigger": STATE_COMPLETE, "source": [S.HOLDING], "dest": S.HELD},
    {"trigger": Command.UNHOLD, "source": [S.HELD], "dest": S.UNHOLDING},
    {"trigger": STATE_COMPLETE, "source": [S.UNHOLDING], "dest": S.EXECUTE},
    {"trigger": Command.SUSPEND, "source": [S.EXECUTE], "dest": S.SUSPENDING},
    {"trigger": STATE_COMPLETE, "source": [S.SUSPENDING], "dest": S.SUSPENDED},
    {"trigger": Command.UNSUSPEND, "source": [S.SUSPENDED], "dest": S.UNSUSPENDING},
    {"trigger": STATE_COMPLETE, "source": [S.UNSUSPENDING], "dest": S.EXECUTE},
    {"trigger": Command.RESET, "source": [S.COMPLETE, S.STOPPED], "dest": S.RESETTING},
    {"trigger": STATE_COMPLETE, "source": [S.RESETTING], "dest": S.IDLE},
    {"trigger": Command.STOP, "source": _STOPPABLE, "dest": S.STOPPING},
    {"trigger": STATE_COMPLETE, "source": [S.STOPPING], "dest": S.STOPPED},
    {"trigger": Command.ABORT, "source": _ABORTABLE, "dest": S.ABORTING},
    {"trigger": STATE_COMPLETE, "source": [S.ABORTING], "dest": S.ABORTED},
    {"trigger": Command.CLEAR, "source": [S.ABORTED], "dest": S.CLEARING},
    {"trigger": STATE_COMPLETE, "source": [S.CLEARING], "dest": S.STOPPED},
]

#: Acting states: they end by themselves with ``state_complete`` once their work is done.
ACTING: frozenset[PackMLState] = frozenset({
    S.STARTING, S.HOLDING, S.UNHOLDING, S.SUSPENDING, S.UNSUSPENDING, S.COMPLETING, S.STOPPING,
    S.ABORTING, S.CLEARING, S.RESETTING})

#: Unit mode changes are only accepted in these wait states (PackML: no mode change mid-production).
MODE_CHANGE_STATES: frozenset[PackMLState] = frozenset({S.IDLE, S.STOPPED, S.ABORTED, S.COMPLETE})


def allowed_commands(state: PackMLState) -> list[Command]:
    """Commands the table accepts in ``state``, in table order."""
    out: list[Command] = []
    for row in TRANSITIONS:
        trig = row["trigger"]
        if trig != STATE_COMPLETE and state in row["source"] and trig not in out:
            out.append(Command(trig))
    return out


Listener = Callable[[PackMLState, PackMLState, UnitMode], None]


class CellMachine:
    """The cell's PackML machine: ``command()`` for operators, ``state_complete()`` for the engine.

    ``on_change(state, previous, mode)`` is called after every transition (the engine publishes a
    ``cell.state`` event from it). ``queued=True`` so a trigger fired from that callback runs after the
    current transition has finished.
    """

    state: PackMLState

    def __init__(self, on_change: Listener | None = None, *,
                 initial: PackMLState = PackMLState.IDLE, mode: UnitMode = UnitMode.PRODUCTION) -> None:
        self.mode = mode
        self._on_change = on_change
        self._previous = initial
        self.machine = Machine(
            model=self, states=list(PackMLState), transitions=TRANSITIONS, initial=initial,
            queued=True, auto_transitions=False, ignore_invalid_triggers=False, send_event=True,
            before_state_change=self._remember, after_state_change=self._changed,
            on_exception=self._failed_callback,
        )

    def _remember(self, *args: Any, **kwargs: Any) -> None:
        self._previous = self.state

    def _changed(self, *args: Any, **kwargs: Any) -> None:
        if self._on_change is not None:
            self._on_change(self.state, self._previous, self.mode)

    def _failed_callback(self, event_data: Any) -> None:
        # A failing listener must never leave a half-made transition: the state has already changed,
        # so log and carry on (the listener's bug is reported, not swallowed).
        log.error("cell state listener failed after %s: %s", event_data.event.name, event_data.error,
                  exc_info=event_data.error)

    def allowed(self) -> list[Command]:
        """Commands accepted in the current state."""
        return allowed_commands(self.state)

    def command(self, name: str | Command) -> PackMLState:
        """Apply an operator command; return the new state or raise :class:`StateError`."""
        try:
            cmd = Command(str(name).lower())
        except ValueError:
            raise StateError(f"unknown command {name!r}",
                             hint=f"use one of: {', '.join(c.value for c in Command)}") from None
        if cmd not in self.allowed():
            allowed = ", ".join(c.value for c in self.allowed()) or "none (wait for it to finish)"
            raise StateError(f"command {cmd.value!r} is not allowed while the cell is {self.state.value!r}",
                             hint=f"commands allowed now: {allowed}")
        self.trigger(cmd.value)  # type: ignore[attr-defined]
        return self.state

    def state_complete(self) -> PackMLState:
        """End the current acting state (PackML SC); refused in wait states."""
        if self.state not in ACTING:
            raise StateError(f"the cell is {self.state.value!r}, which is not an acting state",
                             hint="state_complete only ends Starting, Holding, Stopping, ... states")
        self.trigger(STATE_COMPLETE)  # type: ignore[attr-defined]
        return self.state

    def set_mode(self, mode: str | UnitMode) -> None:
        """Change the unit mode; only in Idle, Stopped, Aborted or Complete."""
        new = UnitMode(str(mode).lower())
        if self.state not in MODE_CHANGE_STATES:
            raise StateError(f"cannot change mode to {new.value!r} while the cell is {self.state.value!r}",
                             hint="stop the cell first (mode changes only in idle, stopped, aborted, "
                                  "complete)")
        if new != self.mode:
            self.mode = new
            if self._on_change is not None:
                self._on_change(self.state, self.state, self.mode)
