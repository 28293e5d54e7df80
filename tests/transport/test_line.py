"""The line transport over a real pty: lines, timeouts, realtime bytes, disconnect, reconnect, trace."""

from __future__ import annotations

import asyncio
import os
import tty

import pytest

from microfactory.errors import Disconnected, PortNotFound, StationTimeout
from microfactory.testing import ScriptedPeer
from microfactory.transport import ByteTrace, LineTransport, resolve_port
from microfactory.transport.trace import read_trace


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(asyncio.wait_for(coro, 10))


def test_lines_cross_the_pty_and_crlf_is_accepted() -> None:
    with ScriptedPeer([(b"hello\n", b"ok\r\nsecond\n")]) as peer:
        async def go() -> list[str]:
            t = LineTransport.for_path(peer.port, name="t")
            await t.open()
            await t.write_line("hello")
            lines = [await t.readline(2), await t.readline(2)]
            await t.close()
            return lines

        assert run(go()) == ["ok", "second"]
        peer.verify()


def test_timeout_names_the_phase_and_port() -> None:
    with ScriptedPeer([]) as peer:
        async def go() -> None:
            t = LineTransport.for_path(peer.port, name="t")
            await t.open()
            try:
                await t.readline(0.1, phase="handshake")
            finally:
                await t.close()

        with pytest.raises(StationTimeout, match=r"no handshake within 0\.1 s") as err:
            run(go())
        assert peer.port in str(err.value)


def test_realtime_bytes_bypass_the_line_queue() -> None:
    with ScriptedPeer([(b"G1 X1\n", b"ok\n")], realtime={b"?": b"<Idle>\n", b"!": b""}) as peer:
        async def go() -> list[str]:
            t = LineTransport.for_path(peer.port, name="t")
            await t.open()
            assert t.write_realtime(b"?")
            first = await t.readline(2)
            t.write_realtime(b"!")
            await t.write_line("G1 X1")
            second = await t.readline(2)
            await t.close()
            return [first, second]

        assert run(go()) == ["<Idle>", "ok"]
        assert bytes(peer.realtime_seen) == b"?!"
        peer.verify()


def test_garbage_is_counted_not_hidden() -> None:
    with ScriptedPeer([(b"x\n", b"\xff\xfe\x80ok\n")]) as peer:
        async def go() -> tuple[str, int]:
            t = LineTransport.for_path(peer.port, name="t")
            await t.open()
            await t.write_line("x")
            line = await t.readline(2)
            await t.close()
            return line, t.garbage_lines

        line, garbage = run(go())
        assert "\ufffd" in line and garbage == 1


def test_pulled_cable_raises_disconnected_and_reconnect_finds_the_new_port() -> None:
    master, slave = os.openpty()
    tty.setraw(slave)
    first = os.ttyname(slave)
    ports = [first]

    async def go() -> str:
        t = LineTransport(lambda: ports[-1], name="t")
        await t.open()
        os.close(master)  # the device disappears
        os.close(slave)
        with pytest.raises(Disconnected):
            await t.readline(5)
        assert t.lost.is_set()
        m2, s2 = os.openpty()  # ... and comes back under a new name
        tty.setraw(s2)
        ports.append(os.ttyname(s2))
        await t.reconnect(backoff_s=0.01)
        os.write(m2, b"back\n")
        line = await t.readline(2)
        await t.close()
        os.close(m2)
        os.close(s2)
        return line

    assert run(go()) == "back"


def test_unknown_port_is_a_clear_error() -> None:
    with pytest.raises(PortNotFound, match="microfactory ports"):
        resolve_port("/dev/does-not-exist")
    with pytest.raises(PortNotFound, match="no USB serial device"):
        resolve_port("0403:6001:NOPE")


def test_trace_records_both_directions(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "trace.jsonl"
    with ScriptedPeer([(b"$I\n", b"[VER:1.1h]\nok\n")]) as peer:
        trace = ByteTrace(path)

        async def go() -> None:
            t = LineTransport.for_path(peer.port, name="mill", trace=trace)
            await t.open()
            await t.write_line("$I")
            assert await t.readline(2) == "[VER:1.1h]"
            assert await t.readline(2) == "ok"
            await t.close()

        run(go())
        trace.close()
    records = list(read_trace(path))
    assert records[0].direction == "tx" and records[0].data == b"$I\n"
    assert b"".join(r.data for r in records if r.direction == "rx") == b"[VER:1.1h]\nok\n"
    assert all(r.port == "mill" for r in records)


def test_scripted_peer_reports_leftovers_and_mismatches() -> None:
    with ScriptedPeer([(b"a\n", b""), (b"b\n", b"")]) as peer:
        fd = os.open(peer.port, os.O_RDWR | os.O_NOCTTY)
        os.write(fd, b"a\n")
        with pytest.raises(AssertionError, match="never happened"):
            assert not peer.wait_done(0.2)
            peer.verify()
        os.write(fd, b"c\n")
        assert peer.wait_done(2)
        with pytest.raises(AssertionError, match="expected b'b\\\\n'"):
            peer.verify()
        os.close(fd)
