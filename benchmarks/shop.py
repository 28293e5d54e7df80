"""Shop figures: eight simulated cells of two partners syncing to one PostgreSQL store while a cell is
killed, the server is killed and the network is cut; then privacy and pooled-station checks.

    python benchmarks/shop.py [--cells 8] [--lots 4] [--parts 10] [--speed 300] [--steady-s 6]

1. A PostgreSQL server of its own (:mod:`microfactory.shop.localserver`), partners ``acme`` and
   ``bolt``; cells ``c1``..``cN`` owned in turn by each, each cell's pooled mill open to the other.
2. One process per cell runs ``--lots`` lots of ``--parts`` watch plates on the fake-station line
   (:func:`microfactory.engine.fakes.plate_line`: the engine, the journal and the scheduler are the real
   ones; stations are fakes on a scaled clock, ``--speed`` times real time), alternating the
   partner the lot is for, and syncs its journal every 0.2 s through a TCP cable to the store.
3. Faults while they run: cell 3 is SIGKILLed (its journal is synced afterwards, as a restarted cell
   would), the server is SIGKILLed and restarted, the cable is unplugged for 2 s.
4. Afterwards: every cell's records in the store against its journal (``records_lost``,
   ``records_duplicated``), the chain verified on both sides; as each partner, rows of the other
   partner read in every table and by crafted queries (``rls_leaks``); partners racing for the pooled
   mills (``claim_conflicts``: overlapping holds or a claim that saw another holder); one journal
   shipped from scratch (``sync_rows_per_s``) against writing as many records to a local journal
   (``sqlite_rows_per_s``); ``sync_lag_s_p99``: a record's local write (its ``at``) to its arrival in
   the store (``synced_at``), over records written in the steady phase before the faults (all records:
   ``sync_lag_s_p99_with_faults``).

The last line is one JSON object. The machine may be shared: wall times are what it printed.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

PARTNERS = ("acme", "bolt")


def child(cell: str, journal: str, dsn: str, owner: str, lots: int, parts: int, seed: int,
          speed: float) -> int:
    """One cell: run the lots (alternating partners), syncing as it goes; say ``started`` and ``done``."""
    from microfactory.engine.fakes import connect_line, plate_line
    from microfactory.engine.journal import Journal
    from microfactory.shop.sync import CellSync, follow

    other = PARTNERS[1 - PARTNERS.index(owner)]
    j = Journal(journal)
    sync = CellSync(journal, dsn, cell=cell, owner=owner)
    stop = threading.Event()
    worker = threading.Thread(target=follow, args=([sync], stop),
                              kwargs={"every_s": 0.2, "final_retry_s": 120.0}, daemon=True)

    async def go() -> None:
        for n in range(lots):
            engine, procedure = plate_line(j, seed=seed + n, fail_every=7, speed=speed)
            await connect_line(engine)
            engine.partner = owner if n % 2 == 0 else other
            if n == 0:
                print("started", flush=True)
            await engine.run_lot(procedure, parts=parts, lot_id=f"{cell}-L{n + 1}")

    worker.start()
    try:
        asyncio.run(go())
    finally:
        j.close()  # its last record (the buffered events) first, then the follower's last pass
        stop.set()
        worker.join(timeout=180)
        sync.close()
    print("done", flush=True)
    return 0


def setup_shop(admin: str, cells: int) -> dict[str, str]:
    from microfactory.shop import schema, store

    schema.migrate(admin)
    logins = {p: store.add_partner(admin, p, f"pw-{p}-bench").dsn for p in PARTNERS}
    for n in range(1, cells + 1):
        cell, owner = f"c{n}", PARTNERS[(n - 1) % 2]
        logins[cell] = store.add_cell(admin, cell, owner, f"pw-cell-{cell}").dsn
        store.serve(admin, cell, PARTNERS[n % 2])
        for station in ("cut", "mill", "wash", "inspect"):
            store.add_station(admin, cell, station, owner, pooled=station == "mill")
    return logins


def lag_s(admin_db: Any, steady: tuple[float, float]) -> tuple[float, float, int]:
    """p99 of (synced_at − at) over records that carry their write time (runs and step intents): those
    written in the steady phase (every cell running, no fault yet), and all of them."""
    calm, every = [], []
    stamps: list[tuple[float, float]] = []
    for body, synced in admin_db.execute("SELECT body, synced_at FROM journal_records WHERE what IN "
                                         "('run', 'intent')"):
        at = json.loads(body).get("at")
        if not at:
            continue
        written = datetime.fromisoformat(at).timestamp()
        lag = synced.timestamp() - written
        every.append(lag)
        stamps.append((written, lag))
        if steady[0] <= written < steady[1]:
            calm.append(lag)

    buckets: dict[int, list[float]] = {}
    for written, lag in stamps:
        buckets.setdefault(int((written - steady[0]) // 3) * 3, []).append(lag)
    for start, lags in sorted(buckets.items()):
        print(f"lag: records written {start:+d}..{start + 3:+d} s from the steady phase's start: "
              f"{len(lags)}, median {statistics.median(lags):.2f} s, max {max(lags):.2f} s", file=sys.stderr)

    def p99(xs: list[float]) -> float:
        return round(statistics.quantiles(xs, n=100)[98], 3) if len(xs) >= 2 else (xs[0] if xs else 0.0)

    return p99(calm), p99(every), len(calm)


def records_check(admin: str, logins: dict[str, str], journals: dict[str, Path]) -> dict[str, Any]:
    import psycopg

    from microfactory.engine.journal import Journal
    from microfactory.shop.store import connect
    from microfactory.shop.verify import verify_cell

    lost = duplicated = chains_ok = steps_missing = 0
    with psycopg.connect(admin) as db:
        for cell, path in journals.items():
            local = Journal.open_existing(path)
            mine = local.verify()
            local_steps = len(local.steps())
            local.close()
            seqs = [r[0] for r in db.execute("SELECT seq FROM journal_records WHERE cell = %s", (cell,))]
            lost += len(set(range(1, mine.records + 1)) - set(seqs))
            duplicated += len(seqs) - len(set(seqs))
            row = db.execute("SELECT count(*) FROM steps WHERE cell = %s", (cell,)).fetchone()
            steps_missing += local_steps - int(row[0] if row else 0)
            owner = PARTNERS[(int(cell[1:]) - 1) % 2]
            with connect(logins[cell], owner, autocommit=True) as cdb:
                theirs = verify_cell(cdb, cell)
            ok = mine.intact and theirs.intact and theirs.last_hash == mine.last_hash
            chains_ok += ok
            if not ok:
                print(f"{cell}: journal {mine.problems[:2]} store {theirs.problems[:2]} "
                      f"({mine.records} local, {theirs.records} in the store)", file=sys.stderr)
    return {"records_lost": lost, "records_duplicated": duplicated, "steps_missing": steps_missing,
            "chains_verified": f"{chains_ok}/{len(journals)}"}


CRAFTED = [
    "SELECT count(*) FROM steps s JOIN machine_time m USING (cell, key) WHERE m.partner = '{o}' "
    "AND s.partner = '{o}'",
    "SELECT count(*) FROM (SELECT (SELECT body FROM programs WHERE partner = '{o}' LIMIT 1) AS b) x "
    "WHERE b IS NOT NULL",
    "SELECT count(*) FROM parameter_values WHERE lot IN (SELECT lot FROM machine_energy WHERE partner = "
    "'{o}')",
    "WITH RECURSIVE r AS (SELECT key FROM steps WHERE partner = '{o}' UNION SELECT key FROM r) "
    "SELECT count(*) FROM r",
]


def rls_leaks(admin: str, logins: dict[str, str]) -> int:
    import psycopg

    from microfactory.shop import schema
    from microfactory.shop.store import connect

    with psycopg.connect(admin) as db:
        tables = [r[0] for r in db.execute("SELECT table_name FROM information_schema.columns WHERE "
                                           "table_schema = 'public' AND column_name = 'partner'")]
    leaks = 0
    listed = ("stations", "station_holds", "partners", "cells")
    for me in PARTNERS:
        other = PARTNERS[1 - PARTNERS.index(me)]
        with connect(logins[me], me, autocommit=True) as db:
            for table in tables:
                if table in listed:
                    continue
                extra = f" AND owner <> '{me}'" if table in schema.MACHINE else ""
                row = db.execute(f"SELECT count(*) FROM {table} WHERE partner = '{other}'{extra}").fetchone()
                leaks += int(row[0]) if row else 0
            for query in CRAFTED:
                row = db.execute(query.format(o=other)).fetchone()
                leaks += int(row[0]) if row else 0
            db.execute("SELECT set_config('microfactory.partner', %s, false)", (other,))
            for table in ("steps", "programs", "measurements", "parameter_values"):
                row = db.execute(f"SELECT count(*) FROM {table}").fetchone()
                leaks += int(row[0]) if row else 0
    return leaks


def claim_race(logins: dict[str, str], cells: int, per_worker: int = 8, workers: int = 3) -> dict[str, int]:
    import psycopg

    from microfactory.shop import booking
    from microfactory.shop.store import connect

    for partner in PARTNERS:
        with connect(logins[partner], partner, autocommit=True) as db:
            for n in range(per_worker * workers):
                booking.book(db, cell=f"c{n % cells + 1}", station="mill", lot=f"{partner}-race-{n}")
    seen_other = [0]

    def work(partner: str, offset: int) -> None:
        with connect(logins[partner], partner, autocommit=True) as db:
            done = 0
            for attempt in range(20000):
                if done == per_worker:
                    return
                cell = f"c{(attempt + offset) % cells + 1}"
                hold = booking.claim(db, cell=cell, station="mill")
                if hold is None:
                    continue
                holders = db.execute("SELECT partner FROM station_holds WHERE cell = %s AND station = 'mill'",
                                     (cell,)).fetchall()
                seen_other[0] += holders != [(partner,)]
                booking.release(db, hold)
                done += 1

    threads = [threading.Thread(target=work, args=(p, k)) for p in PARTNERS for k in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    overlaps = claims = 0
    admin = logins["admin"]
    with psycopg.connect(admin) as db:
        for cell in range(1, cells + 1):
            log = db.execute("SELECT claimed_at, released_at FROM hold_log WHERE cell = %s AND station = "
                             "'mill' "
                             "ORDER BY claimed_at", (f"c{cell}",)).fetchall()
            claims += len(log)
            overlaps += sum(b[0] < a[1] for a, b in itertools.pairwise(log))
    return {"claims": claims, "claim_conflicts": overlaps + seen_other[0]}


def throughput(admin: str, folder: Path, records: int = 4000) -> dict[str, float]:
    """Write ``records`` records to a new local journal (the SQLite rate), then ship them all to the store
    from scratch as a new cell (the sync rate)."""
    from microfactory.engine.journal import Journal
    from microfactory.shop import store
    from microfactory.shop.sync import CellSync

    path = folder / "bulk.sqlite"
    j = Journal(path)
    j.begin_run("X", recipe="r", version="1", cell="bulk", parts=1, parameters={}, t=0.0, partner="acme")
    t0 = time.perf_counter()
    for n in range(records // 2):
        key = f"X/p/s/{n}/0"
        j.intent(key, lot="X", part="p", step="s", station="mill", firmware="f", attempt=0,
                 request={"action": "gcode", "n": n}, t=float(n))
        j.done(key, ok=True, verdict=None, data={"duration_s": 1.0}, t=n + 0.5)
    local_s = time.perf_counter() - t0
    j.close()
    bulk = store.add_cell(admin, "bulk", "acme", "pw-cell-bulk")
    sync = CellSync(path, bulk.dsn, cell="bulk", owner="acme")
    t0 = time.perf_counter()
    shipped = sync.sync().records
    sync_s = time.perf_counter() - t0
    sync.close()
    return {"sync_rows_per_s": round(shipped / sync_s, 1),
            "sqlite_rows_per_s": round(2 * (records // 2) / local_s, 1), "sync_rows_shipped": shipped}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", type=int, default=8)
    parser.add_argument("--lots", type=int, default=4)
    parser.add_argument("--parts", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-faults", action="store_true", help="no kill, no server crash, no cut")
    parser.add_argument("--steady-s", type=float, default=6.0, help="wall s of running before the faults")
    parser.add_argument("--speed", type=float, default=300.0,
                        help="the cells' clock factor: at 300 a cell waits on its stations most of the "
                             "time, as a real one does; far higher and eight CPU-bound cells starve a shared "
                             "machine")
    parser.add_argument("--child", nargs=8, metavar="ARG", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        cell, journal, dsn, owner, lots, parts, seed, speed = args.child
        return child(cell, journal, dsn, owner, int(lots), int(parts), int(seed), float(speed))

    import psycopg

    from microfactory.shop.cable import Cable
    from microfactory.shop.localserver import LocalServer
    from microfactory.shop.sync import CellSync

    server = LocalServer().start()
    folder = Path(tempfile.mkdtemp(prefix="microfactory-shop-bench-"))
    try:
        with psycopg.connect(server.admin_dsn, autocommit=True) as db:
            db.execute("CREATE DATABASE shop")
        admin = server.dsn(dbname="shop")
        logins = setup_shop(admin, args.cells)
        logins["admin"] = admin
        cable = Cable(server.port)
        journals = {f"c{n}": folder / f"c{n}.sqlite" for n in range(1, args.cells + 1)}
        procs: dict[str, subprocess.Popen[str]] = {}
        t_start = time.monotonic()
        for n in range(1, args.cells + 1):
            cell = f"c{n}"
            dsn = logins[cell].replace(f":{server.port}/", f":{cable.port}/")
            procs[cell] = subprocess.Popen(
                [sys.executable, __file__, "--child", cell, str(journals[cell]), dsn, PARTNERS[(n - 1) % 2],
                 str(args.lots), str(args.parts), str(args.seed + n), str(args.speed)],
                stdout=subprocess.PIPE, text=True)
        for cell, proc in procs.items():
            assert proc.stdout is not None
            first = proc.stdout.readline().strip()
            if first != "started":
                raise SystemExit(f"cell {cell} said {first!r}")
        t_steady = time.time() + 1.0  # every cell is running: one second to settle
        time.sleep(args.steady_s)  # the steady phase (wall s; the lots run on their own clocks)
        steady = (t_steady, time.time())
        killed = "c3" if args.cells >= 3 else "c1"
        if not args.no_faults:
            os.kill(procs[killed].pid, signal.SIGKILL)
            procs[killed].wait(timeout=60)
            time.sleep(1.0)
            server.kill()
            time.sleep(1.0)
            server.start()
            time.sleep(1.0)
            cable.unplug()
            time.sleep(2.0)
            cable.plug()
        for cell, proc in procs.items():
            if cell != killed or args.no_faults:
                proc.wait(timeout=1800)
        run_s = time.monotonic() - t_start
        restarted = CellSync(journals[killed], logins[killed], cell=killed,
                             owner=PARTNERS[(int(killed[1:]) - 1) % 2])
        restarted.sync()  # the killed cell, back up, catches up
        restarted.close()
        cable.unplug()
        figures: dict[str, Any] = {"cells": args.cells}
        with psycopg.connect(admin) as db:
            row = db.execute("SELECT count(*) FROM parts").fetchone()
            figures["parts"] = int(row[0]) if row else 0
            row = db.execute("SELECT count(*) FROM journal_records").fetchone()
            figures["records"] = int(row[0]) if row else 0
            calm, every, n_steady = lag_s(db, steady)
        figures.update(throughput(admin, folder))
        figures["sync_lag_s_p99"] = calm
        figures["sync_lag_s_p99_with_faults"] = every
        figures["lag_samples"] = n_steady
        figures.update(records_check(admin, logins, journals))
        figures["rls_leaks"] = rls_leaks(admin, logins)
        figures.update(claim_race(logins, args.cells))
        figures["run_s"] = round(run_s, 1)
        figures["faults"] = "none" if args.no_faults else \
            f"cell {killed} SIGKILLed, server SIGKILLed and restarted, network cut 2 s"
    finally:
        server.remove()
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
