"""``microfactory serve opcua`` and ``run --opcua``: bad input is exit 2 with a message, before any station
is contacted or any file written."""

from __future__ import annotations

from pathlib import Path

import pytest

from microfactory.cli import main
from microfactory.engine.journal import Journal

REPO = Path(__file__).resolve().parents[2]
CELL = str(REPO / "recipes" / "cells" / "sim.yaml")
RECIPE = str(REPO / "recipes" / "watch-plate.yaml")


@pytest.mark.parametrize("url", ["http://127.0.0.1:4840", "opc.tcp://127.0.0.1", "opc.tcp://:4840",
                                 "opc.tcp://127.0.0.1:99999"])
def test_an_endpoint_that_is_not_opc_tcp_host_port_is_a_usage_error(
        url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["serve", "opcua", "--cell", CELL, "--db", str(tmp_path / "j.sqlite"), "--endpoint", url],
                 ["run", RECIPE, "--cell", CELL, "--db", str(tmp_path / "j.sqlite"), "--opcua", url]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
        assert f"{url!r} is not an OPC UA endpoint: write opc.tcp://HOST:PORT" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_serving_needs_a_journal_with_users(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "j.sqlite"
    assert main(["serve", "opcua", "--cell", CELL, "--db", str(db)]) == 2
    assert "no such journal: the OPC UA server's users live in it" in capsys.readouterr().err
    assert not db.exists()
    journal = Journal(db)
    journal.begin_run("lot-1", recipe="r", version="1", cell="c", parts=1, parameters={}, t=0.0)
    journal.close()
    before = db.read_bytes()
    assert main(["serve", "opcua", "--cell", CELL, "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert "this journal has no users, and the OPC UA server allows no anonymous access" in err
    assert "microfactory users init --db" in err
    assert db.read_bytes() == before
