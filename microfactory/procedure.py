"""A recipe compiled to typed steps: the one thing the engine, the dry run and validation all walk.

The recipe loader (``microfactory.recipe``) turns a YAML recipe plus parameter values plus a cell into a
:class:`Procedure`; the engine (``microfactory.engine``) executes it; the dry-run estimator plays it
against the stations' timing models. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from microfactory.station import StepRequest


class InterruptPolicy(StrEnum):
    """What resuming a lot does with a step that was in flight when the process died (ISA-88 restart).

    ``rerun``: run it again from its start (a wash, an inspection, a transfer, a manual prompt: doing
    them twice harms nothing); ``ask``: the operator decides — rework (run it again), scrap the part, or
    continue from the interrupted line (machining: a second pass over cut metal may crash the tool);
    ``scrap``: scrap the part, the step's result cannot be trusted."""

    RERUN = "rerun"
    ASK = "ask"
    SCRAP = "scrap"


class StepKind(StrEnum):
    """What a step does, in the shop's words (ISA-88 phase types of our line)."""

    CUT = "cut"
    MACHINE = "machine"
    WASH = "wash"
    INSPECT = "inspect"
    MANUAL = "manual"      # an operator prompt: load stock, change tool, move the part
    TRANSFER = "transfer"  # move the part between stations (timed; a robot later)


class FaultAction(StrEnum):
    """What the engine does when a step fails (station fault, timeout, error)."""

    RETRY = "retry"    # run the step again, up to ``retries`` times, then fall back to ``then``
    SCRAP = "scrap"    # scrap the part, carry on with the lot
    HOLD = "hold"      # hold the cell and ask the operator (retry / scrap / abort)
    ABORT = "abort"    # abort the cell


#: How often an operator may answer Retry for one step of one part before only Scrap and Abort are
#: offered: a retry that keeps failing (a locked machine) must not flood the cell with alarms.
OPERATOR_RETRIES = 3


@dataclass(frozen=True)
class FaultPolicy:
    """``retries`` automatic retries, then ``then``; under ``hold`` the operator may retry
    ``operator_retries`` times per step and part."""

    action: FaultAction = FaultAction.HOLD
    retries: int = 0
    then: FaultAction = FaultAction.HOLD
    operator_retries: int = OPERATOR_RETRIES


@dataclass(frozen=True)
class Step:
    """One step of the per-part procedure.

    ``station`` is the id of the cell station that serves it (resolved by the loader against the
    cell's kinds and capabilities), None for manual/transfer steps that need no station.
    ``on_pass``/``on_fail`` route the part: a step id, ``"done"`` (part passed) or ``"scrap"``.
    A step reached by a fail route counts as a rework of the failed step; ``max_rework`` bounds how
    often one part may take that route before it is scrapped.
    """

    id: str
    kind: StepKind
    station: str | None
    request: StepRequest
    on_pass: str = "done"
    on_fail: str = "scrap"
    max_rework: int = 0
    fault_policy: FaultPolicy = FaultPolicy()
    prompt: str = ""
    duration_s: float = 0.0  # for manual/transfer steps: expected process seconds
    timeout_s: float | None = None
    on_interrupt: InterruptPolicy | None = None  # None: the kind's default (``engine.resume.DEFAULTS``)


DONE = "done"
SCRAP = "scrap"


@dataclass(frozen=True)
class Procedure:
    """A validated, parameter-expanded recipe, ready to run on one cell."""

    recipe_id: str
    version: str
    name: str
    steps: tuple[Step, ...]
    first: str
    lot_size: int = 1
    parts_in_flight: int = 1
    parameters: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""

    def step(self, step_id: str) -> Step:
        for st in self.steps:
            if st.id == step_id:
                return st
        raise KeyError(f"recipe {self.recipe_id!r} has no step {step_id!r}")

    @property
    def stations(self) -> list[str]:
        """Station ids used, in procedure order, without repeats."""
        seen: list[str] = []
        for st in self.steps:
            if st.station and st.station not in seen:
                seen.append(st.station)
        return seen
