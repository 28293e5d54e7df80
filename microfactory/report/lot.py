"""A lot report from the journal: what a customer files with the parts (certificate of conformance).

Contents (one JSON-ready dict; :mod:`~.pdf` and :mod:`~.tables` render it):

- ``summary``: counts (good, rework, scrap, unfinished), yield, cycle time and lead times (process s),
  throughput (good parts per h), energy per good part (Wh), OEE with its three factors
  (:mod:`microfactory.engine.oee`), the PackML state durations and the stop reasons;
- ``parts``: per-part genealogy — recipe id, version and sha256, parameter values (lot-wide), every step
  with station, firmware, operator, start and end, attempt, result, verdict; the measurements against
  nominal and tolerance; the scrap reason; the annotated image's sha256;
- ``spc``: per measured feature mean, σ, Cp, Cpk and the X̄/R chart (:mod:`~.spc`);
- ``audit``: the journal's verification result and its last hash;
- ``signatures``: each signature of the lot with its validity against the lot's records now.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from microfactory import __version__
from microfactory.access import signatures as esig
from microfactory.engine import oee
from microfactory.engine.journal import Journal, StepRecord
from microfactory.report.spc import features_of


def build(journal: Journal, lot: str) -> dict[str, Any]:
    """The whole report of ``lot`` (ConfigError when the journal has no such lot)."""
    run = journal.run(lot)
    parts = journal.parts(lot)
    steps = journal.steps(lot=lot)
    by_part: dict[str, list[StepRecord]] = defaultdict(list)
    for s in steps:
        by_part[s.part].append(s)
    measured: list[dict[str, Any]] = []
    part_rows = []
    for p in parts:
        row = _part(p, by_part.get(p["part"], []), run)
        measured += [m for m in row["measurements"] if m.get("measured") is not None]
        part_rows.append(row)
    verification = journal.verify()
    digest = esig.lot_digest(journal, lot)
    return {
        "report": {
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "microfactory": __version__,
            "journal": journal.path,
            "lot_sha256": digest,
        },
        "lot": {
            k: run[k]
            for k in (
                "lot",
                "recipe",
                "version",
                "recipe_sha256",
                "cell",
                "parts",
                "parameters",
                "started_at",
                "ended_at",
                "state",
                "user",
                "closed_reason",
            )
        },
        "summary": _summary(journal, run, parts, steps),
        "spc": [f.as_dict() for f in features_of(measured).values()],
        "parts": part_rows,
        "audit": {
            "intact": verification.intact,
            "records": verification.records,
            "last_hash": verification.last_hash,
            "problems": verification.problems[:50],
        },
        "signatures": [c.as_dict() for c in esig.check(journal, esig.lot_subject(lot), digest)],
    }


def _part(p: dict[str, Any], steps: list[StepRecord], run: dict[str, Any]) -> dict[str, Any]:
    measurements: list[dict[str, Any]] = []
    image = ""
    for s in steps:
        found = (s.data.get("measurements") or {}).get("features") if s.ok else None
        if found:
            measurements = [{"step": s.step, **m} for m in found]  # the last inspection decides
            image = str(s.data.get("sha256") or image)
    return {
        "part": p["part"],
        "state": p["state"],
        "reworks": p["reworks"],
        "reason": p["reason"],
        "energy_wh": round(p["energy_j"] / 3600.0, 4),
        "recipe": run["recipe"],
        "version": run["version"],
        "recipe_sha256": run["recipe_sha256"],
        "image_sha256": image,
        "measurements": measurements,
        "steps": [
            {
                "step": s.step,
                "station": s.station or "",
                "firmware": s.firmware or "",
                "operator": run["user"],
                "attempt": s.attempt,
                "start_s": s.intent_s,
                "end_s": s.done_s,
                "ok": s.ok,
                "verdict": s.verdict or "",
                "reasons": list(s.data.get("reasons") or []),
            }
            for s in steps
        ],
    }


def _summary(
    journal: Journal, run: dict[str, Any], parts: list[dict[str, Any]], steps: list[StepRecord]
) -> dict[str, Any]:
    saved = run["summary"] or {}
    good = sum(1 for p in parts if p["state"] == "passed")
    scrap = sum(1 for p in parts if p["state"] == "scrapped")
    processed = good + scrap
    start = min((s.intent_s for s in steps), default=run["started_s"] or 0.0)
    end = (
        run["ended_s"]
        if run["ended_s"] is not None
        else max((s.done_s or s.intent_s for s in steps), default=start)
    )
    changes, stops = _cell_history(journal, run["lot"])
    durations = oee.durations_from(changes or [(start, "execute")], end)
    factors = oee.compute(durations, ideal_cycle_s=_ideal_cycle_s(steps), processed=processed, good=good)
    lead = _lead_times(steps)
    return {
        "parts": run["parts"],
        "good": good,
        "rework": sum(1 for p in parts if p["reworks"]),
        "scrap": scrap,
        "unfinished": run["parts"] - processed,
        "yield": round(good / run["parts"], 4) if run["parts"] else 0.0,
        "cycle_time_s": saved.get("cycle_time_s"),
        "throughput_per_h": saved.get("throughput_per_h"),
        "energy_per_part_wh": saved.get("energy_per_part_wh"),
        "energy_wh": saved.get("energy_wh"),
        "lead_time_s": {
            "mean": round(sum(lead) / len(lead), 3) if lead else None,
            "max": round(max(lead), 3) if lead else None,
        },
        "elapsed_s": round(end - start, 3),
        "oee": factors.as_dict(),
        "states_s": durations.as_dict(),
        "stop_reasons": stops,
    }


def _ideal_cycle_s(steps: list[StepRecord]) -> float:
    """The bottleneck station's shortest time per part in this lot (s): no design speed is in the
    journal, so the best the line showed it can do stands for it."""
    per: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for s in steps:
        if s.station and s.done_s is not None and s.ok:
            per[s.station][s.part] += s.done_s - s.intent_s
    if not per:
        return 0.0
    bottleneck = max(per, key=lambda sid: sum(per[sid].values()))
    return min(per[bottleneck].values())


def _lead_times(steps: list[StepRecord]) -> list[float]:
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    for s in steps:
        first.setdefault(s.part, s.intent_s)
        if s.done_s is not None:
            last[s.part] = max(last.get(s.part, 0.0), s.done_s)
    return [last[p] - first[p] for p in last]


def _cell_history(journal: Journal, lot: str) -> tuple[list[tuple[float, str]], list[dict[str, Any]]]:
    """The lot's cell-state changes and its stop reasons (first-out: the first alarm of each stop)."""
    rows = journal.execute(
        "SELECT rowid, t, kind, source, data FROM events WHERE kind IN "
        "('lot', 'cell.state', 'alarm') ORDER BY rowid"
    )
    inside, changes, stops = False, [], []
    first_out: dict[str, Any] | None = None
    for _rowid, t, kind, source, text in rows:
        data = json.loads(text)
        if kind == "lot" and data.get("lot") == lot:
            inside = data.get("phase") != "done"
            if not inside:
                break
            continue
        if not inside:
            continue
        if kind == "cell.state":
            changes.append((float(t), str(data["state"])))
            if data["state"] == "execute":
                first_out = None
        elif kind == "alarm" and first_out is None:
            first_out = {
                "t": t,
                "source": source,
                "code": data.get("code"),
                "text": data.get("text"),
                "first_out": True,
            }
            stops.append(first_out)
    return changes, stops
