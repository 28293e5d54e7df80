"""Pre-run checks of a Procedure against a cell: routes, stations, limits. No I/O."""

from __future__ import annotations

from collections.abc import Mapping

from microfactory.cell import Cell
from microfactory.procedure import DONE, SCRAP, Procedure, StepKind
from microfactory.station import Station


def validate_procedure(procedure: Procedure, cell: Cell | None,
                       stations: Mapping[str, Station] | None = None) -> list[str]:
    """Every problem that would stop ``procedure``; empty when it may run."""
    problems: list[str] = []
    ids = {st.id for st in procedure.steps}
    known = {s.id for s in cell.stations} if cell is not None else set(stations or {})
    if procedure.first not in ids:
        problems.append(f"first step {procedure.first!r} is not a step of recipe {procedure.recipe_id!r}")
    if procedure.lot_size < 1:
        problems.append(f"lot_size must be at least 1, got {procedure.lot_size}")
    if procedure.parts_in_flight < 1:
        problems.append(f"parts_in_flight must be at least 1, got {procedure.parts_in_flight}")
    for st in procedure.steps:
        where = f"step {st.id!r}"
        for label, target in (("on_pass", st.on_pass), ("on_fail", st.on_fail)):
            if target not in ids and target not in (DONE, SCRAP):
                problems.append(f"{where}: {label} goes to {target!r}, which is neither a step, 'done' nor "
                                "'scrap'")
        if st.station is None and st.kind not in (StepKind.MANUAL, StepKind.TRANSFER):
            problems.append(f"{where}: a {st.kind.value} step needs a station")
        if st.station is not None and known and st.station not in known:
            problems.append(f"{where}: station {st.station!r} is not in the cell (stations: "
                            f"{', '.join(sorted(known))})")
        if st.max_rework < 0 or st.fault_policy.retries < 0:
            problems.append(f"{where}: max_rework and retries must be ≥ 0")
        if stations and st.station is not None and st.station in stations:
            problems += [f"{where}: {p}" for p in stations[st.station].check_step(st.request)]
    if not problems:
        problems += _pass_route_loops(procedure)
    return problems


def _pass_route_loops(procedure: Procedure) -> list[str]:
    """A part that always passes must reach 'done' or 'scrap' without visiting a step twice."""
    seen: list[str] = []
    current = procedure.first
    while current not in (DONE, SCRAP):
        if current in seen:
            loop = " → ".join([*seen, current])
            return [f"the pass route loops: {loop}; a passing part would never finish"]
        seen.append(current)
        current = procedure.step(current).on_pass
    return []
