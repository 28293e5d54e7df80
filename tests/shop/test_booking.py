"""Pooled machine time: bookings claimed with FOR UPDATE SKIP LOCKED and a per-station hold, leases that
free a crashed holder's station, never two partners on one station at once."""

from __future__ import annotations

import itertools
import threading

import psycopg
import pytest

from microfactory.errors import ConfigError, StateError
from microfactory.shop import booking
from microfactory.shop.booking import BookingState
from tests.shop.conftest import Shop


@pytest.fixture
def pooled(shop: Shop) -> Shop:
    for name in ("acme", "bolt"):
        shop.partner(name)
    shop.cell("c1", "acme", stations={"mill": "acme", "cut": "acme"}, pooled=("mill",))
    return shop


def test_a_partner_books_a_pooled_station_but_not_a_private_one(pooled: Shop) -> None:
    bolt = pooled.connect("bolt")
    assert booking.book(bolt, cell="c1", station="mill", lot="B1", hours=2.0) > 0
    with pytest.raises(ConfigError, match="belongs to acme and is not pooled"):
        booking.book(bolt, cell="c1", station="cut", lot="B1")
    with pytest.raises(ConfigError, match="no station 'lathe'"):
        booking.book(bolt, cell="c1", station="lathe")
    bolt.close()


def test_a_held_station_is_refused_to_another_partner_until_released(pooled: Shop) -> None:
    acme, bolt = pooled.connect("acme"), pooled.connect("bolt")
    booking.book(bolt, cell="c1", station="mill", lot="B1")
    booking.book(acme, cell="c1", station="mill", lot="A1")
    held = booking.claim(bolt, cell="c1", station="mill")
    assert held is not None and (held.partner, held.lot) == ("bolt", "B1")
    assert booking.claim(acme, cell="c1", station="mill") is None  # held by bolt (its lease runs)
    assert acme.execute("SELECT partner FROM station_holds").fetchall() == [("bolt",)]  # who holds it: shown
    booking.release(bolt, held)
    mine = booking.claim(acme, cell="c1", station="mill")
    assert mine is not None and mine.lot == "A1"
    booking.release(acme, mine)
    assert bolt.execute("SELECT state FROM bookings").fetchall() == [("done",)]
    acme.close()
    bolt.close()


def test_a_crashed_holder_frees_the_station_when_its_lease_expires(pooled: Shop) -> None:
    acme, bolt = pooled.connect("acme"), pooled.connect("bolt")
    booking.book(bolt, cell="c1", station="mill", lot="B1")
    booking.book(acme, cell="c1", station="mill", lot="A1")
    crashed = booking.claim(bolt, cell="c1", station="mill", lease_s=0.0)  # expires at once: never renewed
    assert crashed is not None
    mine = booking.claim(acme, cell="c1", station="mill")
    assert mine is not None and mine.lot == "A1"  # the expired hold was cleared by the next claim
    with pytest.raises(StateError, match="was lost: its lease expired"):
        booking.renew(bolt, crashed)
    assert booking.recover(bolt) == [crashed.booking]
    assert bolt.execute("SELECT state FROM bookings").fetchall() == [(BookingState.INTERRUPTED.value,)]
    assert booking.claim(bolt, cell="c1", station="mill") is None  # nothing queued, and acme holds it
    acme.close()
    bolt.close()


def test_racing_partners_never_hold_one_station_at_once(pooled: Shop) -> None:
    per_worker, workers = 6, 3
    for partner in ("acme", "bolt"):
        db = pooled.connect(partner)
        for n in range(per_worker * workers):
            booking.book(db, cell="c1", station="mill", lot=f"{partner}-{n}")
        db.close()
    errors: list[str] = []

    def work(partner: str) -> None:
        db = pooled.connect(partner)
        done = 0
        for _ in range(50000):  # a bound, not a timing: each try is one round trip
            if done == per_worker:
                break
            hold = booking.claim(db, cell="c1", station="mill")
            if hold is None:
                continue
            holders = db.execute("SELECT partner, booking FROM station_holds "
                                 "WHERE station = 'mill'").fetchall()
            if holders != [(partner, hold.booking)]:
                errors.append(f"{partner} claimed {hold.booking} but the holds are {holders}")
            booking.release(db, hold)
            done += 1
        if done < per_worker:
            errors.append(f"a {partner} worker finished only {done} bookings")
        db.close()

    threads = [threading.Thread(target=work, args=(p,)) for p in ("acme", "bolt") for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert errors == []
    with psycopg.connect(pooled.admin) as admin:
        log = admin.execute("SELECT claimed_at, released_at, partner FROM hold_log "
                            "ORDER BY claimed_at").fetchall()
        states = admin.execute("SELECT state, count(*) FROM bookings GROUP BY state").fetchall()
    assert states == [("done", 2 * per_worker * workers)]
    assert len(log) == 2 * per_worker * workers and {r[2] for r in log} == {"acme", "bolt"}
    overlaps = [(a, b) for a, b in itertools.pairwise(log) if b[0] < a[1]]
    assert overlaps == []
