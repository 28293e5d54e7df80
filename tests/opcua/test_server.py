"""The OPC UA server read, subscribed and commanded by asyncua's own client, on the simulated cell."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from asyncua import Client, Node, ua
from asyncua.crypto import cert_gen
from cryptography.x509.oid import ExtendedKeyUsageOID
from opcua_support import QUALITY, QUALITY_PW, Served, free_port

from microfactory.engine.packml import PackMLState
from microfactory.events import EventKind
from microfactory.opcua import model
from microfactory.opcua.server import CellServer

T = TypeVar("T")
PK = model.PACKML_NAMESPACE


def run(coro: Coroutine[Any, Any, T], timeout_s: float = 90.0) -> T:
    async def limited() -> T:
        return await asyncio.wait_for(coro, timeout_s)

    return asyncio.run(limited())


async def packml(client: Client, served: Served) -> Node:
    """The cell's PackML object, found by browsing from Objects by browse name."""
    pk = await client.get_namespace_index(PK)
    mf = await client.get_namespace_index(model.CELL_NAMESPACE)
    return await client.nodes.objects.get_child([f"{pk}:PackMLObjects", f"{mf}:{served.server.cell_id}"])


async def child(node: Node, client: Client, *path: str) -> Node:
    pk = await client.get_namespace_index(PK)
    return await node.get_child([p if ":" in p else f"{pk}:{p}" for p in path])


class States:
    """A subscription handler that keeps every StateCurrent value it is sent, in order."""

    def __init__(self) -> None:
        self.values: list[int] = []
        self.changed = asyncio.Event()

    def datachange_notification(self, node: Node, val: int, data: Any) -> None:
        self.values.append(int(val))
        self.changed.set()

    async def until(self, number: int, timeout_s: float = 60.0) -> None:
        async def wait() -> None:
            while number not in self.values:
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(wait(), timeout_s)


def test_the_browsed_packml_object_reads_the_cell_and_its_stations(served: Served) -> None:
    async def main() -> None:
        client = await served.connect()
        try:
            cell = await packml(client, served)
            names = {(await n.read_browse_name()).Name for n in await cell.get_children()}
            assert {"Status", "Admin", "BaseStateMachine", "SetUnitMode", "TagID", "PackMLVersion"} <= names
            assert set(served.controller.stations) <= names  # one PackML object per station
            state = await (await child(cell, client, "Status", "StateCurrent")).read_value()
            assert state == model.STATE_NUMBERS[PackMLState.IDLE] == 4
            current = await (await child(cell, client, "BaseStateMachine", "0:CurrentState")).read_value()
            assert current.Text == "Idle"
            mode = await (await child(cell, client, "Status", "UnitModeCurrent")).read_value()
            assert mode == 1  # Production
            machine = await child(cell, client, "BaseStateMachine")
            methods = {(await m.read_browse_name()).Name for m in await machine.get_methods()}
            assert methods == {"Reset", "Start", "Stop", "Hold", "Unhold", "Suspend", "Unsuspend", "Abort",
                               "Clear", "Complete"}
            mf = await client.get_namespace_index(model.CELL_NAMESPACE)
            mill = await cell.get_child([f"{mf}:mill"])
            mill_state = await (await child(mill, client, "Status", "StateCurrent")).read_value()
            assert mill_state == model.STATE_NUMBERS[PackMLState.IDLE]  # connected and homed: idle
        finally:
            await client.disconnect()

    run(main())


async def watch_lot(served: Served, *, hold: bool) -> list[int]:
    """Subscribe to StateCurrent, Start a lot; with ``hold`` hold it in Execute, see it held, stop it."""
    client = await served.connect()
    try:
        cell = await packml(client, served)
        seen = States()
        subscription = await client.create_subscription(10, seen)
        await subscription.subscribe_data_change(await child(cell, client, "Status", "StateCurrent"),
                                                 queuesize=1000)
        await seen.until(4)  # the initial value: Idle
        machine = await child(cell, client, "BaseStateMachine")
        pk = await client.get_namespace_index(PK)
        assert await machine.call_method(f"{pk}:Start") in ("starting", "execute")
        if hold:
            await seen.until(6)  # Execute
            assert await machine.call_method(f"{pk}:Hold") in ("holding", "held")
            await seen.until(11)  # Held: the cell holds
            assert served.controller.state == PackMLState.HELD
            assert await machine.call_method(f"{pk}:Stop") in ("stopping", "stopped")
            await seen.until(2)  # Stopped
        else:
            await seen.until(17, timeout_s=80)  # the lot completes
        await subscription.delete()
        return seen.values
    finally:
        await client.disconnect()


def bus_states(served: Served) -> list[int]:
    return [model.state_number(PackMLState(e.data["state"])) for e in served.recorder.events
            if e.kind == EventKind.CELL_STATE]


def test_a_subscribed_client_sees_every_state_of_a_lot_it_started(served: Served) -> None:
    values = run(watch_lot(served, hold=False), timeout_s=120)
    assert values[0] == 4 and values[1:] == bus_states(served)  # every change, in order, none lost
    assert bus_states(served) == [3, 6, 16, 17]  # Starting, Execute, Completing, Complete


def test_a_client_holds_the_lot_and_sees_the_cell_held(served: Served) -> None:
    values = run(watch_lot(served, hold=True), timeout_s=120)
    assert values[0] == 4 and values[1:] == bus_states(served)
    assert bus_states(served) == [3, 6, 10, 11, 7, 2]  # ... Holding, Held, Stopping, Stopped


def test_a_command_the_state_refuses_comes_back_bad_with_the_engines_message(served: Served) -> None:
    async def main() -> ua.CallMethodResult:
        client = await served.connect()
        try:
            cell = await packml(client, served)
            machine = await child(cell, client, "BaseStateMachine")
            hold = await child(machine, client, "Hold")
            with pytest.raises(ua.uaerrors.BadInvalidState):
                await machine.call_method(hold)
            request = ua.CallMethodRequest()
            request.ObjectId, request.MethodId = machine.nodeid, hold.nodeid
            return (await client.uaclient.call([request]))[0]
        finally:
            await client.disconnect()

    result = run(main())
    assert result.StatusCode.value == ua.StatusCodes.BadInvalidState
    assert "command 'hold' is not allowed while the cell is 'idle'" in result.OutputArguments[0].Value
    assert served.controller.state == PackMLState.IDLE


def test_a_quality_reviewer_reads_but_may_not_command(served: Served) -> None:
    async def main() -> None:
        client = await served.connect(QUALITY, QUALITY_PW)
        try:
            cell = await packml(client, served)
            assert await (await child(cell, client, "Status", "StateCurrent")).read_value() == 4
            machine = await child(cell, client, "BaseStateMachine")
            pk = await client.get_namespace_index(PK)
            with pytest.raises(ua.uaerrors.BadUserAccessDenied):
                await machine.call_method(f"{pk}:Abort")
        finally:
            await client.disconnect()

    run(main())
    assert served.controller.state == PackMLState.IDLE


def test_a_wrong_password_is_refused_and_audited(served: Served) -> None:
    async def main() -> None:
        with pytest.raises(ua.uaerrors.BadUserAccessDenied):
            await served.connect(password="not-the-password")

    run(main())
    refused = served.audit("opcua_refused")
    assert [r["user"] for r in refused] == ["olga"] and "wrong password" in str(refused[0]["reason"])
    assert "127.0.0.1" in str(refused[0]["peer"])  # where the attempt came from
    assert [r["user"] for r in served.audit("signin_failed")] == ["olga"]  # counts towards the lock-out
    assert served.controller.journal.verify().problems == []


def test_an_unsigned_connection_is_refused_and_audited(served: Served) -> None:
    """A client that opens a SecurityPolicy None channel (which asyncua keeps for discovery) and tries
    to activate a session on it with a plain-text password: refused before the password is looked at."""
    async def main() -> None:
        client = served.client()
        with pytest.raises(ua.UaError, match="No matching endpoints"):  # asyncua's client will not try
            await client.connect()
        await client.disconnect()
        client = served.client()
        await client.connect_socket()
        try:
            await client.send_hello()
            await client.open_secure_channel()
            params = ua.CreateSessionParameters()
            params.ClientNonce, params.EndpointUrl = os.urandom(32), served.url
            params.SessionName, params.RequestedSessionTimeout = "unsigned", 60000
            params.ClientDescription = ua.ApplicationDescription()
            await client.uaclient.create_session(params)
            token = ua.UserNameIdentityToken()
            token.UserName, token.Password, token.PolicyId = "olga", b"operator-pass-1", "username"
            activate = ua.ActivateSessionParameters()
            activate.UserIdentityToken = token
            with pytest.raises(ua.uaerrors.BadSecurityModeRejected):
                await client.uaclient.activate_session(activate)
        finally:
            client.disconnect_socket()

    run(main())
    refused = served.audit("opcua_refused")
    assert [(r["user"], str(r["reason"]).split(" (")[0]) for r in refused] == [
        ("olga", "unsigned connection")]
    assert "127.0.0.1" in str(refused[0]["peer"])
    assert served.audit("signin_failed") == []  # refused before any password check


def test_with_a_trust_list_only_its_client_certificates_may_connect(served: Served, tmp_path: Path) -> None:
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    shutil.copy(served.client_cert, trusted / "plant-client.der")
    stranger_key, stranger_cert = tmp_path / "stranger-key.pem", tmp_path / "stranger-cert.der"
    asyncio.run(cert_gen.setup_self_signed_certificate(
        stranger_key, stranger_cert, "urn:microfactory:test-client", "localhost",
        [ExtendedKeyUsageOID.CLIENT_AUTH], {"commonName": "not on the list"}))
    url = f"opc.tcp://127.0.0.1:{free_port()}"
    second = CellServer(served.controller, served.thread, endpoint=url, certificates=tmp_path / "pki",
                        trusted=trusted)
    second.start()
    try:
        async def main() -> None:
            client = await served.connect(url=url)  # the trusted certificate
            try:
                assert await (await child(await packml(client, served), client, "Status",
                                          "StateCurrent")).read_value() == 4
            finally:
                await client.disconnect()
            with pytest.raises(ua.uaerrors.BadCertificateUntrusted):
                await served.connect(url=url, key=stranger_key, cert=stranger_cert)

        run(main())
    finally:
        second.stop()
    refused = served.audit("opcua_refused")
    assert len(refused) == 1 and "BadCertificateUntrusted" in str(refused[0]["reason"])
    assert "not on the list" in str(refused[0]["reason"]) and "127.0.0.1" in str(refused[0]["peer"])
