"""Shared helpers of the OPC UA tests: a real cell (the simulators behind ptys, the production
drivers) served over OPC UA on localhost.

``served`` starts the short-lot cell in an EngineThread, a journal with an operator and a quality
reviewer, and the CellServer on a free port; tests connect with asyncua's own client over
Basic256Sha256 SignAndEncrypt with a client certificate made for the test.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from asyncua import Client, ua
from asyncua.crypto import cert_gen
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from cryptography.x509.oid import ExtendedKeyUsageOID

from microfactory.access.users import UserBook
from microfactory.engine.api import Controller, EngineThread, load_cell, load_recipe
from microfactory.engine.journal import Journal
from microfactory.events import EventKind, EventRecorder
from microfactory.opcua.server import CellServer

REPO = Path(__file__).resolve().parents[2]
CELL = REPO / "benchmarks" / "short-lot-cell.yaml"
RECIPE = REPO / "benchmarks" / "throughput-plate.yaml"
VALUES = json.loads((REPO / "benchmarks" / "short-lot-values.json").read_text())
OPERATOR, OPERATOR_PW = "olga", "operator-pass-1"
QUALITY, QUALITY_PW = "quinn", "quality-pass-1"
PARTS = 3
#: Slow enough that a client sees Execute and holds it before the lot ends (about 5 s of wall time).
SPEED = 4.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_users(db: Path) -> None:
    journal = Journal(db)
    try:
        book = UserBook(journal)
        first = book.first_admin()
        admin = book.change_password(book.sign_in("admin", first), first, "admin-pass-12")
        for uid, name, role, pw in ((OPERATOR, "Olga Operator", "operator", OPERATOR_PW),
                                    (QUALITY, "Quinn Quality", "quality", QUALITY_PW)):
            book.add(admin, uid, name, role, "initial-pass-1")
            book.change_password(book.sign_in(uid, "initial-pass-1"), "initial-pass-1", pw)
    finally:
        journal.close()


@dataclass
class Served:
    url: str
    server: CellServer
    thread: EngineThread
    controller: Controller
    recorder: EventRecorder
    client_key: Path
    client_cert: Path
    db: Path

    def client(self, user: str = OPERATOR, password: str = OPERATOR_PW, *, url: str = "") -> Client:
        """A client with a user name and password and no security (``connect`` adds it)."""
        client = Client(url or self.url, timeout=10)
        client.set_user(user)
        client.set_password(password)
        client.application_uri = "urn:microfactory:test-client"
        return client

    async def connect(self, user: str = OPERATOR, password: str = OPERATOR_PW, *, url: str = "",
                      key: Path | None = None, cert: Path | None = None) -> Client:
        """A signed-in client over SignAndEncrypt (the test's client certificate unless given)."""
        client = self.client(user, password, url=url)
        await client.set_security(SecurityPolicyBasic256Sha256, str(cert or self.client_cert),
                                  str(key or self.client_key), mode=ua.MessageSecurityMode.SignAndEncrypt)
        await client.connect()
        return client

    def audit(self, what: str) -> list[dict[str, object]]:
        rows = self.controller.journal.execute("SELECT body FROM audit WHERE what = ? ORDER BY seq", (what,))
        return [json.loads(body) for (body,) in rows]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("client-pki")
    key, cert = folder / "client-key.pem", folder / "client-cert.der"
    asyncio.run(cert_gen.setup_self_signed_certificate(
        key, cert, "urn:microfactory:test-client", "localhost", [ExtendedKeyUsageOID.CLIENT_AUTH],
        {"countryName": "CH", "organizationName": "test", "commonName": "test client"}))
    return key, cert


@pytest.fixture
def served(tmp_path: Path, pki: tuple[Path, Path]) -> Iterator[Served]:
    db = tmp_path / "journal.sqlite"
    make_users(db)
    cell = load_cell(CELL)
    procedure = dataclasses.replace(load_recipe(RECIPE, cell=cell, values=VALUES), parts_in_flight=2)
    controller = Controller(cell, speed=SPEED, db=db)
    recorder = EventRecorder(controller.bus, [EventKind.CELL_STATE])
    controller.sign_in(OPERATOR, OPERATOR_PW)  # who runs the lots a client starts (serve --user)
    thread = EngineThread(controller)
    thread.start()
    url = f"opc.tcp://127.0.0.1:{free_port()}"
    server = CellServer(controller, thread, endpoint=url, certificates=tmp_path / "pki",
                        start_lot=lambda: thread.run_lot(procedure, parts=PARTS))
    try:
        server.start()
        yield Served(url, server, thread, controller, recorder, pki[0], pki[1], db)
    finally:
        server.stop()
        thread.stop()
