"""What every station can do, whatever protocol it speaks.

A :class:`Station` is the frontend the engine talks to: it tracks state (a ``transitions`` machine),
which part it holds, and refuses what its limits forbid; its subclass (the driver, in ``stations/``)
speaks the bytes. The engine only ever calls the async methods below; :meth:`Station.emergency_stop` is
the one synchronous, thread-safe call, because E-stop must work while the loop is busy.

The frontend owns the E-stop latch (:mod:`microfactory.estop`): :meth:`Station.emergency_stop` latches
and calls the driver's :meth:`Station.send_stop_bytes`; the driver hands ``self.estop_latch`` to its
transport so nothing but stop bytes and read-only queries leaves until :meth:`Station.clear_estop`.

Station kinds are registered as entry points (group ``microfactory.stations``) that point at a
:class:`StationKind`; see :mod:`microfactory.registry`.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar

from transitions import Machine

from microfactory.clock import Clock
from microfactory.estop import EStopLatch
from microfactory.events import EventBus, EventKind

if TYPE_CHECKING:
    from microfactory.cell import StationConfig
    from microfactory.simulation import SimulatorHandle
    from microfactory.transport.trace import ByteTrace


log = logging.getLogger("microfactory.station")


class StationState(StrEnum):
    """Station life cycle as the operator sees it on a tile."""

    OFFLINE = "offline"        # not connected (or link lost)
    CONNECTING = "connecting"  # handshake in progress
    IDLE = "idle"              # ready for a step
    BUSY = "busy"              # running a step
    HOLDING = "holding"        # hold requested, decelerating / pausing
    HELD = "held"              # paused; resume continues the step
    FAULTED = "faulted"        # a fault the station reported (lid open, level low, ...); needs reset
    ALARM = "alarm"            # Grbl-style alarm lock-out; needs unlock or homing
    STANDBY = "standby"        # energy-saving; wakes before the next step


#: The station state table: (trigger, sources, destination). Anything not listed is refused.
STATION_TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "link_up", "source": [StationState.OFFLINE], "dest": StationState.CONNECTING},
    {"trigger": "ready", "source": [StationState.CONNECTING, StationState.STANDBY, StationState.BUSY,
                                    StationState.HELD, StationState.HOLDING],
     "dest": StationState.IDLE},
    {"trigger": "start", "source": [StationState.IDLE], "dest": StationState.BUSY},
    {"trigger": "finish", "source": [StationState.BUSY], "dest": StationState.IDLE},
    {"trigger": "request_hold", "source": [StationState.BUSY], "dest": StationState.HOLDING},
    {"trigger": "hold_complete", "source": [StationState.HOLDING, StationState.BUSY],
     "dest": StationState.HELD},
    {"trigger": "resume", "source": [StationState.HELD, StationState.HOLDING], "dest": StationState.BUSY},
    {"trigger": "fault", "source": "*", "dest": StationState.FAULTED},
    {"trigger": "alarm", "source": "*", "dest": StationState.ALARM},
    {"trigger": "clear", "source": [StationState.FAULTED, StationState.ALARM], "dest": StationState.IDLE},
    {"trigger": "sleep", "source": [StationState.IDLE], "dest": StationState.STANDBY},
    {"trigger": "wake", "source": [StationState.STANDBY], "dest": StationState.IDLE},
    {"trigger": "link_down", "source": "*", "dest": StationState.OFFLINE},
]


class StationMachine:
    """The per-station state machine, built with ``transitions`` from :data:`STATION_TRANSITIONS`.

    ``queued=True`` so triggers fired from callbacks run in order; every change is published as a
    ``station.state`` event. Drivers fire through :meth:`trigger_safely`, which reports a refused
    trigger (log and event) instead of raising ``transitions.MachineError`` mid-driver.
    """

    state: StationState

    def __init__(self, station_id: str, bus: EventBus) -> None:
        self.station_id = station_id
        self._bus = bus
        #: every refused transition (trigger, state it was refused in), oldest first
        self.refused: list[tuple[str, StationState]] = []
        self.machine = Machine(
            model=self,
            states=list(StationState),
            transitions=STATION_TRANSITIONS,
            initial=StationState.OFFLINE,
            queued=True,
            auto_transitions=False,
            after_state_change=self._published,
            ignore_invalid_triggers=False,
        )

    def _published(self, *args: Any, **kwargs: Any) -> None:
        self._bus.publish(EventKind.STATION_STATE, self.station_id, state=str(self.state),
                          previous=str(self._previous))

    def trigger_safely(self, name: str, *, cause: str = "") -> bool:
        """Fire ``name`` if it is allowed from the current state; return whether it fired.

        A refusal is never silent: it is logged as a warning and published as a ``log`` event (level
        ``warning``, ``code`` ``TRANSITION_REFUSED``, with ``trigger``, ``state`` and ``cause``), so every
        front end shows that the station did not go where its driver meant it to. ``cause`` says what the
        driver was doing (default: the trigger's name). A caller whose target state may already hold uses
        :meth:`ensure` or :meth:`to_idle`, which fire nothing (and report nothing) when it does.
        """
        if not self.may(name):
            state = self.state
            why = cause or f"{name!r} requested"
            text = (f"station {self.station_id!r}: state change {name!r} refused in state {state} "
                    f"({why}): the station stays {state}")
            log.warning("%s", text)
            self.refused.append((name, state))
            self._bus.publish(EventKind.LOG, self.station_id, level="warning", code="TRANSITION_REFUSED",
                              trigger=name, state=str(state), cause=why, text=text)
            return False
        self._previous = self.state
        self.trigger(name)  # type: ignore[attr-defined]
        return True

    def ensure(self, name: str, dest: StationState, *, cause: str = "") -> bool:
        """Fire ``name`` unless the station is already in ``dest`` (then nothing to do: True)."""
        if self.state is dest:
            return True
        return self.trigger_safely(name, cause=cause)

    def to_idle(self, *, cause: str = "reset") -> bool:
        """Back to idle from wherever a reset leaves it: ``clear`` from faulted/alarm, ``ready`` from the
        others; True when idle. Refused (and reported) from a state no reset leaves to idle (offline)."""
        if self.state in (StationState.FAULTED, StationState.ALARM):
            return self.trigger_safely("clear", cause=cause)
        return self.ensure("ready", StationState.IDLE, cause=cause)

    def may(self, name: str) -> bool:
        return bool(getattr(self, f"may_{name}")())

    _previous: StationState = StationState.OFFLINE


@dataclass(frozen=True)
class StepRequest:
    """One step for one station, as the engine hands it over.

    ``action`` names what to do in the station's words (``gcode``, ``wash``, ``inspect``, ``home`` ...);
    ``params`` are already expanded (no ``${...}`` left) and validated by the recipe loader; ``key`` is
    the idempotency key the journal uses.
    """

    action: str
    params: Mapping[str, Any] = field(default_factory=dict)
    part: str | None = None
    key: str = ""


@dataclass
class StepResult:
    """What a step produced: ``ok`` false means the step failed (the engine applies the fault policy).

    ``verdict`` is set by inspection steps (``pass``/``fail``); ``data`` carries measurements, firmware
    answers, energy (J) and whatever else the journal should keep.
    """

    ok: bool
    data: dict[str, Any] = field(default_factory=dict)
    verdict: str | None = None
    reasons: list[str] = field(default_factory=list)
    duration_s: float = 0.0


@dataclass
class StationStatus:
    """A snapshot of a station: its state plus whatever the protocol reports (position, temperature...)."""

    state: StationState
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass
class PortHandle:
    """How a driver reaches its device: it is handed this, it never opens a port by itself.

    ``resolve()`` returns the device path (or camera source) to open *now*: a fixed path, the device that
    carries a USB identity, or a simulator's current pty (which changes after an unplug/replug).
    ``trace`` records every byte when the user asked for a trace; ``simulator`` is set for ``port: sim``
    so tests and the app can inject faults.
    """

    resolve: Callable[[], str]
    trace: ByteTrace | None = None
    simulator: SimulatorHandle | None = None

    @classmethod
    def fixed(cls, path: str, trace: ByteTrace | None = None) -> PortHandle:
        return cls(lambda: path, trace)


class Station(abc.ABC):
    """Frontend of one station; drivers subclass it and implement the abstract methods.

    Subclasses must publish ``station.progress`` while a step runs and raise
    :class:`~microfactory.errors.StationFault` / :class:`~microfactory.errors.CommunicationError`
    subclasses on failure — never return silently.
    """

    kind: ClassVar[str] = ""

    def __init__(self, config: StationConfig, *, bus: EventBus, clock: Clock, port: PortHandle) -> None:
        self.config = config
        self.port = port
        self.id = config.id
        self.bus = bus
        self.clock = clock
        self.state_machine = StationMachine(config.id, bus)
        self.part: str | None = None
        self.firmware: str = ""
        self.estop_latch = EStopLatch(config.id, self.passes_when_latched)
        #: how a running step asks the operator a question with fixed answers (a Grbl program's ``M0``
        #: pause: resume / stop); the engine sets it to its prompts, the CLI to the terminal. None: the
        #: station only publishes the question (an ``alarm`` event) and waits to be resumed.
        self.ask_operator: Callable[[str, tuple[str, ...]], Awaitable[str]] | None = None

    # -- the frontend's own obligations (every driver inherits them) -----------------------------
    def passes_when_latched(self, data: bytes, realtime: bool) -> bool:
        """What the port may still carry while E-stop is latched: the driver names its stop bytes and
        read-only queries; the default is nothing at all."""
        return False

    @property
    def estopped(self) -> bool:
        """True from E-stop until Clear (thread-safe)."""
        return self.estop_latch.engaged

    def emergency_stop(self) -> None:
        """E-stop: latch, then the device's stop bytes at once; synchronous and safe from any thread.

        Until :meth:`clear_estop` the port carries only what :meth:`passes_when_latched` allows, and
        :meth:`execute` refuses every step. Touches no other state: the loop learns of it by reading
        :attr:`estopped`.
        """
        self.estop_latch.engage(self.send_stop_bytes)

    def clear_estop(self) -> None:
        """Lift the latch (the cell's Clear); the station still needs :meth:`reset` before work."""
        self.estop_latch.release()

    async def execute(self, step: StepRequest) -> StepResult:
        """The one way the engine runs a step: refused while E-stop is latched, then :meth:`run_step`."""
        self.estop_latch.refuse(f"step {step.action!r}")
        return await self.run_step(step)

    @property
    def state(self) -> StationState:
        return self.state_machine.state

    # -- life cycle -------------------------------------------------------------------------------
    @abc.abstractmethod
    async def connect(self) -> None:
        """Open the port, do the handshake, check the device's own limits against the cell file."""

    @abc.abstractmethod
    async def identify(self) -> str:
        """Return the firmware id (recorded in every part's genealogy)."""

    @abc.abstractmethod
    async def status(self) -> StationStatus:
        """Ask the device for its state now."""

    @abc.abstractmethod
    def check_step(self, step: StepRequest) -> list[str]:
        """Pre-check ``step`` against this station's limits without any I/O; return the problems."""

    @abc.abstractmethod
    async def run_step(self, step: StepRequest) -> StepResult:
        """Run one step to completion (it must already pass :meth:`check_step`)."""

    @abc.abstractmethod
    async def hold(self) -> None:
        """Pause the running step (feed hold, wash pause); :meth:`resume` continues it."""

    @abc.abstractmethod
    async def resume(self) -> None:
        """Continue after :meth:`hold`."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Stop the running step safely and flush what was queued."""

    @abc.abstractmethod
    async def reset(self) -> None:
        """Clear a fault or alarm and bring the station back to idle (if the device allows)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Leave the device safe (motion stopped, heater off) and close the port."""

    @abc.abstractmethod
    def send_stop_bytes(self) -> None:
        """Write the device's stop bytes at once; synchronous, safe from any thread, never raises.

        Called by :meth:`emergency_stop` after the latch is set (and again if a line raced it); it must
        write and touch nothing else (no state machine, no asyncio object: it runs off the loop).
        """

    async def standby(self, on: bool) -> None:
        """Enter (or leave) the device's energy-saving mode; the default only tracks state."""
        self.state_machine.trigger_safely("sleep" if on else "wake")


@dataclass(frozen=True)
class StationKind:
    """A registered station kind: the entry point ``microfactory.stations`` points at one of these.

    ``capabilities(config)`` says what a configured station offers (``cut``, ``machine``, ``laser``,
    ``spindle``, ``wash``, ``inspect`` ...), which recipes require; ``check(step, config)`` runs the same
    pre-check as :meth:`Station.check_step` without a station; ``estimate_s(step, config)`` is the timing
    model used by the dry run (process seconds); ``options`` validates the kind's own ``options:`` block
    of the cell file (a pydantic model class or None). ``timing(config)``, when given, makes the dry run's
    timing model of one station that remembers what the steps before left behind (where a machine
    stands, how warm a bath is): an object whose ``step_s(request)`` answers process seconds for the
    station's steps in the order they run; without it the dry run calls ``estimate_s`` per step.
    """

    name: str
    station_class: type[Station]
    capabilities: Any  # Callable[[StationConfig], frozenset[str]]
    check: Any  # Callable[[StepRequest, StationConfig], list[str]]
    estimate_s: Any  # Callable[[StepRequest, StationConfig], float]
    options: Any = None
    description: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)
    timing: Any = None  # Callable[[StationConfig], object with step_s(StepRequest) -> float] | None
