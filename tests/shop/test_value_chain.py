"""The value chain: a part cut by acme in cell c1 and machined by bolt in cell c2 keeps one identity; each
partner sees its own steps of it, the customer sees what each partner agreed to share."""

from __future__ import annotations

from pathlib import Path

import pytest

from microfactory.engine.journal import Journal
from microfactory.errors import ConfigError
from microfactory.shop.chain import genealogy, link_part, share
from tests.shop.conftest import Shop


def cut(path: Path) -> None:
    j = Journal(path)
    j.begin_run("A1", recipe="plate-cut", version="1", cell="c1", parts=1, parameters={"power": 850}, t=0.0,
                partner="acme")
    j.intent("A1/A1-001/cut/1/0", lot="A1", part="A1-001", step="cut", station="cut", firmware="Grbl",
             attempt=0, request={"action": "gcode", "params": {"program": ["M4 S850", "G1 X20 F600"]}}, t=1.0)
    j.done("A1/A1-001/cut/1/0", ok=True, verdict=None, data={"duration_s": 20.0}, t=21.0)
    j.part("A1-001", "A1", "passed", reworks=0, energy_j=900.0, t=21.0)
    j.end_run("A1", state="complete", summary={"passed": 1}, t=22.0)
    j.close()


def machine(path: Path) -> None:
    j = Journal(path)
    j.begin_run("B1", recipe="plate-mill", version="2", cell="c2", parts=1, parameters={"feed": 450}, t=0.0,
                partner="bolt")
    for n, (step, station) in enumerate((("mill", "mill"), ("inspect", "inspect"))):
        key = f"B1/B1-001/{step}/1/0"
        j.intent(key, lot="B1", part="B1-001", step=step, station=station, firmware="x", attempt=0,
                 request={"action": step}, t=10.0 * n)
        j.done(key, ok=True, verdict="pass" if step == "inspect" else None, t=10.0 * n + 5, data={
            "duration_s": 5.0, "measurements": {"features": [{"feature": "J1.diameter", "measured": 2.4,
                                                              "nominal": 2.4, "tol": 0.01, "ok": True}]}}
            if step == "inspect" else {"duration_s": 5.0})
    j.part("B1-001", "B1", "passed", reworks=0, energy_j=1500.0, t=20.0)
    j.end_run("B1", state="complete", summary={"passed": 1}, t=21.0)
    j.close()


@pytest.fixture
def chain(shop: Shop, tmp_path: Path) -> Shop:
    for name in ("acme", "bolt", "cust"):
        shop.partner(name)
    shop.cell("c1", "acme", stations={"cut": "acme"})
    shop.cell("c2", "bolt", stations={"mill": "bolt", "inspect": "bolt"})
    cut(tmp_path / "c1.sqlite")
    s = shop.sync(tmp_path / "c1.sqlite", "c1", "acme")
    s.sync()
    s.close()
    return shop


def test_a_part_keeps_its_identity_across_cells_and_partners(chain: Shop, tmp_path: Path) -> None:
    bolt = chain.connect("bolt")
    # bolt receives acme's part and says so before (or after) its cell's records arrive
    assert link_part(bolt, cell="c2", part="B1-001", uid="c1/A1-001") == 0
    machine(tmp_path / "c2.sqlite")
    s = chain.sync(tmp_path / "c2.sqlite", "c2", "bolt")
    s.sync()
    s.close()
    acme = chain.connect("acme")
    assert [(r["cell"], r["step"]) for r in genealogy(acme, "c1/A1-001")] == [("c1", "cut")]
    assert [(r["cell"], r["step"]) for r in genealogy(bolt, "c1/A1-001")] == [("c2", "mill"), ("c2",
                                                                                               "inspect")]
    with pytest.raises(ConfigError, match="already part c1/A1-001"):
        link_part(bolt, cell="c2", part="B1-001", uid="c1/A1-002")
    cust = chain.connect("cust")
    assert genealogy(cust, "c1/A1-001") == []
    share(acme, "c1/A1-001", customer="cust")
    share(bolt, "c1/A1-001", customer="cust", scope="steps")
    seen = [(r["cell"], r["partner"], r["step"], r["verdict"]) for r in genealogy(cust, "c1/A1-001")]
    assert sorted(seen) == [("c1", "acme", "cut", None), ("c2", "bolt", "inspect", "pass"),
                            ("c2", "bolt", "mill", None)]
    assert cust.execute("SELECT count(*) FROM measurements").fetchone() == (0,)  # not agreed
    share(bolt, "c1/A1-001", customer="cust", scope="measurements")
    assert cust.execute("SELECT name, measured FROM measurements").fetchall() == [("J1.diameter", 2.4)]
    assert cust.execute("SELECT count(*) FROM programs").fetchone() == (0,)  # know-how stays home
    with pytest.raises(ConfigError, match="no partner 'nobody'"):
        share(bolt, "c1/A1-001", customer="nobody")
    for db in (acme, bolt, cust):
        db.close()


def test_a_link_made_after_the_sync_re_points_the_steps_already_in_the_store(chain: Shop,
                                                                             tmp_path: Path) -> None:
    machine(tmp_path / "c2.sqlite")
    s = chain.sync(tmp_path / "c2.sqlite", "c2", "bolt")
    s.sync()
    bolt = chain.connect("bolt")
    assert genealogy(bolt, "c1/A1-001") == []
    assert link_part(bolt, cell="c2", part="B1-001", uid="c1/A1-001") == 2
    assert [r["step"] for r in genealogy(bolt, "c1/A1-001")] == ["mill", "inspect"]
    assert bolt.execute("SELECT part_uid FROM measurements").fetchall() == [("c1/A1-001",)]
    assert s.sync().records == 0
    s.close()
    bolt.close()
