"""Resume a lot whose process died, or close it without resuming — from the journal alone.

What the journal knows (written before and after every step, ``synchronous=FULL``): each part's last
recorded state, where it goes next and its reworks per step; every step intent and completion. Resume:

1. finds the open lot (a run record without an end) and checks the recipe is the one that lot ran
   (id, version and the file's sha256);
2. rebuilds each part where the journal left it. A completion written just before the crash whose
   routing (the part record after it) was not, is routed now as the engine would have;
3. decides every **step in flight** (an intent without a completion) by the step's interrupt policy
   (:class:`~microfactory.procedure.InterruptPolicy`, default by kind in :data:`DEFAULTS`): ``rerun``
   runs it again from its start (a new attempt of the same visit), ``scrap`` scraps the part, ``ask``
   asks a person — ``rework`` (run it again) or ``scrap``. A step in flight is never re-run silently:
   each decision closes the intent as ``interrupted`` with the decision, who took it and why, in the
   audit trail. Where the station journaled how far its program got (a Grbl station's checkpoints,
   :mod:`stations.grbl.checkpoint`: the first line that may not have run, the last that may have), a
   person may also choose ``continue``: the step runs again from that line, after a preamble that
   restores the modal state the lines before it leave (as ``stream --from-line`` does). No line is
   skipped; the lines the checkpoint says may have run run again, and the question says which;
4. asks each station where it is (its state and status) and records it with the resume;
5. runs the rest of the lot (:meth:`Engine.continue_lot`); its end closes the lot's run record.

:func:`close_lot` ends an open lot without resuming, with a reason: each unfinished part keeps its state
with the reason, each step in flight is closed as interrupted, the lot ends ``closed``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from microfactory.engine.journal import Journal, StepRecord
from microfactory.engine.lot import LotSummary
from microfactory.engine.parts import PartState
from microfactory.engine.scheduler import Outcome, Scheduler
from microfactory.errors import ConfigError, MicrofactoryError, StateError
from microfactory.procedure import InterruptPolicy, Procedure, StepKind

if TYPE_CHECKING:
    from microfactory.engine.runner import Engine

IP = InterruptPolicy
DEFAULTS: dict[StepKind, InterruptPolicy] = {
    StepKind.CUT: IP.ASK,
    StepKind.MACHINE: IP.ASK,
    StepKind.WASH: IP.RERUN,
    StepKind.INSPECT: IP.RERUN,
    StepKind.MANUAL: IP.RERUN,
    StepKind.TRANSFER: IP.RERUN,
}


class Decision(StrEnum):
    RERUN = "rerun"  # the policy said: run it again
    REWORK = "rework"  # a person said: run it again
    CONTINUE = "continue"  # a person said: run the program on from the first line that may not have run
    SCRAP = "scrap"  # the policy or a person said: scrap the part
    CLOSED = "closed"  # the lot was closed without resuming


@dataclass(frozen=True)
class Interrupted:
    """A step that was in flight when the process died, and what its policy says."""

    record: StepRecord
    kind: StepKind
    policy: InterruptPolicy
    #: the station's last journaled checkpoint of its program (None: it journaled none)
    checkpoint: dict[str, Any] | None = None

    @property
    def visit(self) -> int:
        return int(self.record.key.split("/")[-2])

    @property
    def choices(self) -> tuple[str, ...]:
        """What a person may answer."""
        base = (Decision.REWORK.value, Decision.SCRAP.value)
        return (*base, Decision.CONTINUE.value) if self.continue_line is not None else base

    @property
    def continue_line(self) -> int | None:
        """The program line ``continue`` starts at: the first one that may not have run."""
        point = self.checkpoint
        return int(point["resume_line"]) if point and point.get("resume_line") else None

    def continue_text(self) -> str:
        """What ``continue`` does, in the shop's words (also journaled with the decision)."""
        point = self.checkpoint or {}
        first, last = self.continue_line, int(point.get("may_have_run_to") or 0)
        where = f"{point.get('program') or 'the program'}"
        if first is None:
            return ""
        text = (f"continue {where} from line {first} (every line before it ran"
                f"{', the machine reported the stop there' if point.get('stopped') else ''}")
        if last >= first:
            text += (f"; lines {first} to {last} may already have run and will run again: "
                     "check the part first")
        return text + "; the modal state the earlier lines leave is restored first)"

    def question(self) -> str:
        r = self.record
        text = (
            f"Part {r.part} was in step {r.step!r} on {r.station or 'the bench'} (attempt {r.attempt + 1}) "
            "when the process stopped; the step may be half done. Rework (run the step again from its "
            "start) or scrap the part?"
        )
        if self.continue_line is not None:
            text = text[: -len(" or scrap the part?")] + f", scrap the part, or {self.continue_text()}?"
        return text


@dataclass
class ResumePlan:
    """Everything :func:`resume` needs, read from the journal."""

    lot: str
    run: dict[str, Any]
    parts: int
    positions: dict[str, dict[str, Any]]
    visits: dict[tuple[str, str], int]
    attempts: dict[tuple[str, str, int], int]
    interrupted: list[Interrupted]
    unrouted: dict[str, StepRecord] = field(default_factory=dict)


def open_lots(journal: Journal) -> list[dict[str, Any]]:
    """Lots whose run record has no end (their process died)."""
    return [r for r in journal.runs() if r["state"] is None]


def open_lot(journal: Journal, lot: str | None = None) -> dict[str, Any]:
    """The open lot (the given one, or the only/latest open one); ConfigError when there is none."""
    if lot is not None:
        run = journal.run(lot)
        if run["state"] is not None:
            raise ConfigError.single(
                journal.path,
                f"lot {lot!r} already ended ({run['state']})",
                hint="only a lot whose process died can be resumed or closed",
            )
        return run
    lots = open_lots(journal)
    if not lots:
        raise ConfigError.single(
            journal.path,
            "no open lot: every lot in this journal ended",
            hint="`microfactory journal PATH` lists the lots",
        )
    return lots[-1]


def plan(journal: Journal, procedure: Procedure, lot: str | None = None) -> ResumePlan:
    """Read the open lot back and decide nothing yet; ConfigError when ``procedure`` is not its recipe."""
    run = open_lot(journal, lot)
    if (procedure.recipe_id, procedure.version) != (run["recipe"], run["version"]):
        raise ConfigError.single(
            procedure.source or "<recipe>",
            f"lot {run['lot']} ran {run['recipe']} "
            f"version {run['version']}, not {procedure.recipe_id} {procedure.version}",
            hint="resume with the recipe the lot started with",
        )
    from microfactory.engine.runner import file_sha256

    if run["recipe_sha256"] and procedure.source and file_sha256(procedure.source) != run["recipe_sha256"]:
        raise ConfigError.single(
            procedure.source,
            f"the recipe file changed since lot {run['lot']} started (its sha256 differs)",
            hint="resume with the file the lot started with",
        )
    steps = journal.steps(lot=run["lot"])
    visits: dict[tuple[str, str], int] = {}
    attempts: dict[tuple[str, str, int], int] = {}
    for s in steps:
        visit = int(s.key.split("/")[-2])
        visits[(s.part, s.step)] = max(visits.get((s.part, s.step), 0), visit)
        attempts[(s.part, s.step, visit)] = max(attempts.get((s.part, s.step, visit), -1), s.attempt)
    kinds = {st.id: st for st in procedure.steps}
    points = checkpoints(journal, [s.key for s in steps if s.done_s is None])
    interrupted = [
        Interrupted(s, kinds[s.step].kind, kinds[s.step].on_interrupt or DEFAULTS[kinds[s.step].kind],
                    points.get(s.key))
        for s in steps
        if s.done_s is None
    ]
    return ResumePlan(
        run["lot"],
        run,
        int(run["parts"]),
        journal.part_positions(run["lot"]),
        visits,
        attempts,
        interrupted,
        _unrouted(journal, run["lot"], steps),
    )


def checkpoints(journal: Journal, keys: list[str]) -> dict[str, dict[str, Any]]:
    """The last journaled program checkpoint (audit record ``progress``) of each step key given."""
    wanted = set(keys)
    out: dict[str, dict[str, Any]] = {}
    if not wanted:
        return out
    for (body,) in journal.execute("SELECT body FROM audit WHERE what = 'progress' ORDER BY seq"):
        record = json.loads(body)
        if record.get("key") in wanted:
            out[record["key"]] = record
    return out


def _unrouted(journal: Journal, lot: str, steps: list[StepRecord]) -> dict[str, StepRecord]:
    """Per part, an ok completion journaled after the part's last record (its routing was lost)."""
    by_key = {s.key: s for s in steps}
    last_part: dict[str, int] = {}
    last_done: dict[str, tuple[int, str]] = {}
    for seq, what, body in journal.execute(
        "SELECT seq, what, body FROM audit WHERE what IN ('part', 'done') ORDER BY seq"
    ):
        record = json.loads(body)
        if what == "part" and record.get("lot") == lot:
            last_part[record["part"]] = seq
        elif what == "done" and record["key"] in by_key:
            last_done[by_key[record["key"]].part] = (seq, record["key"])
    out = {}
    for part, (seq, key) in last_done.items():
        record = by_key[key]
        if seq > last_part.get(part, -1) and record.ok and not record.data.get("interrupted"):
            out[part] = record
    return out


def decide(
    journal: Journal, the_plan: ResumePlan, *, ask: Callable[[Interrupted], str], by: str, t: float = 0.0
) -> dict[str, Decision]:
    """Decide every interrupted step (``ask`` answers ``rework`` or ``scrap`` for the ``ask`` policy) and
    close each intent as interrupted with its decision, in the audit trail. Returns key → decision."""
    out: dict[str, Decision] = {}
    for item in the_plan.interrupted:
        if item.policy == IP.RERUN:
            decision = Decision.RERUN
        elif item.policy == IP.SCRAP:
            decision = Decision.SCRAP
        else:
            answer = ask(item)
            if answer not in item.choices:
                raise StateError(
                    f"answer {answer!r} for part {item.record.part}: {' or '.join(item.choices)}",
                    hint=f"answer {', '.join(item.choices)}",
                )
            decision = Decision(answer)
        extra: dict[str, Any] = {}
        if decision == Decision.CONTINUE:
            extra = {"continue_from": item.continue_line, "what": item.continue_text(),
                     "may_have_run_to": (item.checkpoint or {}).get("may_have_run_to")}
        journal.done(
            item.record.key,
            ok=False,
            verdict=None,
            t=t,
            data={
                "interrupted": True,
                "decision": decision.value,
                "by": by,
                "policy": item.policy.value,
                "at": datetime.now(UTC).isoformat(timespec="seconds"),
                **extra,
            },
        )
        out[item.record.key] = decision
    return out


def scheduler_for(
    the_plan: ResumePlan, procedure: Procedure, decisions: Mapping[str, Decision], journal: Journal,
    continue_from: dict[tuple[str, str, int], int] | None = None,
) -> tuple[Scheduler, dict[tuple[str, str, int], int]]:
    """The lot's parts where the journal left them, after the decisions; and the first attempt of each
    visit to re-run. Parts scrapped by a decision are recorded here (with the reason). A visit that
    continues from a line is put in ``continue_from`` (part, step, visit) → line."""
    sched = Scheduler(procedure, the_plan.parts, lot=the_plan.lot)
    for part in sched.parts:
        pos = the_plan.positions.get(part.id)
        if pos is not None:
            part.state = PartState(pos["state"])
            part.step = pos["step"] or procedure.first
            part.reworks = {str(k): int(v) for k, v in pos["reworks"].items()}
        done = the_plan.unrouted.get(part.id)
        if done is not None and not part.finished:
            part.step = done.step
            if part.state != PartState.AT_STATION:  # as dispatch did before the step ran
                part.move(PartState.AT_STATION)
            outcome = {"fail": Outcome.FAIL, "scrap": Outcome.SCRAP}.get(done.verdict or "", Outcome.PASS)
            sched.finish(part.id, outcome)
            _record(
                journal,
                the_plan.lot,
                part,
                f"routed on resume after step {done.step!r}" if part.state == PartState.SCRAPPED else "",
            )
    resumed: dict[tuple[str, str, int], int] = {}
    for item in the_plan.interrupted:
        part = sched.part(item.record.part)
        decision = decisions[item.record.key]
        if decision == Decision.SCRAP:
            if not part.finished:
                part.state = PartState.SCRAPPED
                _record(
                    journal,
                    the_plan.lot,
                    part,
                    f"step {item.record.step!r} was interrupted by a crash; scrapped on resume",
                )
            continue
        visit = item.visit
        if decision == Decision.CONTINUE and continue_from is not None and item.continue_line is not None:
            continue_from[(part.id, item.record.step, visit)] = item.continue_line
        resumed[(part.id, item.record.step, visit)] = (
            the_plan.attempts[(part.id, item.record.step, visit)] + 1
        )
        the_plan.visits[(part.id, item.record.step)] = visit - 1  # serve() counts this visit again
        part.step = item.record.step
        if part.state == PartState.QUEUED:
            part.move(PartState.AT_STATION)
    return sched, resumed


def _record(journal: Journal, lot: str, part: Any, reason: str) -> None:
    journal.part(
        part.id,
        lot,
        part.state.value,
        reworks=part.rework_total,
        energy_j=0.0,
        t=0.0,
        reason=reason,
        step=part.step,
        rework_steps=part.reworks,
    )


def close_lot(journal: Journal, lot: str | None, *, reason: str, by: str) -> dict[str, Any]:
    """End an open lot without resuming, with ``reason``: steps in flight closed as interrupted, every
    unfinished part recorded with the reason, the lot ended ``closed``. Returns the lot's run record."""
    if not reason.strip():
        raise StateError("closing a lot needs a reason", hint="--reason TEXT")
    run = open_lot(journal, lot)
    at = datetime.now(UTC).isoformat(timespec="seconds")
    for s in journal.in_doubt(run["lot"]):
        journal.done(
            s.key,
            ok=False,
            verdict=None,
            t=0.0,
            data={"interrupted": True, "decision": Decision.CLOSED.value, "by": by, "at": at},
        )
    positions = journal.part_positions(run["lot"])
    unfinished = 0
    for n in range(int(run["parts"])):
        pid = f"{run['lot']}-{n + 1:03d}"
        pos = positions.get(
            pid, {"state": PartState.QUEUED.value, "step": "", "reworks": {}, "energy_j": 0.0}
        )
        if pos["state"] in (PartState.PASSED.value, PartState.SCRAPPED.value):
            continue
        unfinished += 1
        journal.part(
            pid,
            run["lot"],
            pos["state"],
            reworks=sum(pos["reworks"].values()),
            energy_j=pos["energy_j"],
            t=0.0,
            reason=f"unfinished: lot closed without resuming by {by or 'the operator'}: {reason}",
            step=pos["step"],
            rework_steps=pos["reworks"],
        )
    journal.end_run(
        run["lot"],
        state="closed",
        summary={"unfinished": unfinished, "closed_by": by},
        t=0.0,
        reason=reason,
        by=by,
    )
    return journal.run(run["lot"])


async def resume(engine: Engine, procedure: Procedure, *, lot: str | None = None,
                 ask: Callable[[Interrupted], str], by: str = "") -> LotSummary:
    """Resume the open lot on ``engine`` (its stations connected): ask each station where it is, decide
    the steps in flight, rebuild the parts, run the rest. Everything is journaled and audited."""
    journal = engine.journal
    the_plan = plan(journal, procedure, lot)
    where: dict[str, Any] = {}
    for sid, station in engine.stations.items():
        try:
            status = await station.status()
            where[sid] = {"state": status.state.value, **{k: str(v) for k, v in dict(status.fields).items()}}
        except MicrofactoryError as exc:
            where[sid] = {"error": str(exc)}
    decisions = decide(journal, the_plan, ask=ask, by=by, t=engine.clock.now())
    journal.audited(lambda db: None, "resume", {"lot": the_plan.lot, "by": by, "stations": where,
                                                "at": datetime.now(UTC).isoformat(timespec="seconds"),
                                                "decisions": {k: d.value for k, d in decisions.items()}})
    lines: dict[tuple[str, str, int], int] = {}
    sched, resumed = scheduler_for(the_plan, procedure, decisions, journal, lines)
    energy = {pid: float(pos["energy_j"]) for pid, pos in the_plan.positions.items()}
    return await engine.continue_lot(procedure, sched, lot=the_plan.lot, part_energy_j=energy,
                                     visits=the_plan.visits, resumed=resumed, continue_from=lines)
