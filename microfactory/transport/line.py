"""An async line transport over pyserial.

Reads happen on a reader thread per port (never on the event loop) and are handed to the loop; ordinary
writes go through a single-worker executor per port, so they never block the loop and never interleave;
realtime bytes (Grbl ``?``, ``!``, ``~``, ctrl-X) bypass that queue with one direct ``os.write`` and are
safe from any thread — that is the E-stop path. A dead port (cable pulled, simulator unplugged) ends the
reader, sets :attr:`LineTransport.lost` and makes every waiting :meth:`readline` raise
:class:`~microfactory.errors.Disconnected`; :meth:`reconnect` resolves the port again (by USB identity, or
the simulator's new pty) with exponential backoff.

Given the cell's clock, the reader thread is one of its actors and every byte written or read is counted
on its ledger (:mod:`microfactory.clock`), so a simulated clock never moves while a line is on its way; on
a bench both are plain ``select`` and no-ops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import serial

from microfactory.clock import Actor, Clock, RealClock, actor_for, ledger_for
from microfactory.errors import CommunicationError, Disconnected, PortNotFound, StationTimeout
from microfactory.estop import EStopLatch
from microfactory.transport.trace import ByteTrace

log = logging.getLogger("microfactory.transport")

READ_WAKE_S = 0.05  # wall s: how often an idle reader looks whether the port is being closed
MAX_LINE_BYTES = 4096  # a longer run without a newline is noise (wrong baud rate?) and is surfaced as such


class _Lost:
    """Sentinel queued when the port dies."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


class LineTransport:
    """Lines in, bytes out, over one serial port.

    ``resolve`` returns the device path to open now (a fixed path, a USB identity lookup, or a
    simulator's current pty); ``name`` labels errors, logs and the trace (usually the station id).
    """

    def __init__(self, resolve: Callable[[], str], *, baud: int = 115200, name: str = "",
                 trace: ByteTrace | None = None, on_link: Callable[[bool, str], None] | None = None,
                 latch: EStopLatch | None = None, clock: Clock | None = None) -> None:
        self._resolve = resolve
        self.latch = latch
        self.clock: Clock = clock or RealClock()
        self._ledger = ledger_for(self.clock)
        self.baud = baud
        self.name = name
        self.trace = trace
        self._on_link = on_link
        self._serial: serial.Serial | None = None
        self._fd: int | None = None
        self._fd_lock = threading.Lock()  # a realtime write never uses an fd that close() let go
        self._reader: threading.Thread | None = None
        self._closing = threading.Event()
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"serial-write-{name}")
        self._writer_closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lines: asyncio.Queue[str | _Lost] = asyncio.Queue()
        self.lost = asyncio.Event()
        self.port = ""
        self.garbage_lines = 0

    @classmethod
    def for_path(cls, path: str, **kwargs: object) -> LineTransport:
        """A transport to a fixed device path."""
        return cls(lambda: path, **kwargs)  # type: ignore[arg-type]

    # -- open / close --------------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._serial is not None and not self.lost.is_set()

    async def open(self, timeout_s: float = 5.0) -> None:
        """Resolve and open the port, start the reader; raise :class:`PortNotFound` or
        :class:`CommunicationError` (busy, permission) naming the port and what to do."""
        self._loop = asyncio.get_running_loop()
        if self._writer_closed:  # closed before: a reopened port gets a fresh writer thread
            self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"serial-write-{self.name}")
            self._writer_closed = False
        port = self._resolve()
        self.port = port
        try:
            ser = await asyncio.wait_for(self._loop.run_in_executor(self._writer, self._open_serial, port),
                                         timeout_s)
        except TimeoutError:
            raise StationTimeout(f"opening took longer than {timeout_s} s", port=port,
                                 hint="is another program holding the port?") from None
        self._serial = ser
        with self._fd_lock:
            self._fd = ser.fileno()
        self._ledger.watch(port + "<", ser.fileno())  # the reader is attached: bytes to it are in flight
        self._ledger.sent(port + ">", 1)  # the open itself, which a simulator notices (DTR) like a byte
        self._closing.clear()
        self.lost = asyncio.Event()
        self._lines = asyncio.Queue()
        actor = actor_for(self.clock, f"read-{port}")
        self._reader = threading.Thread(target=self._read_loop, args=(ser, actor), daemon=True,
                                        name=f"serial-read-{self.name or port}")
        self._reader.start()
        log.info("%s: opened %s at %d baud", self.name, port, self.baud)
        if self._on_link:
            self._on_link(True, port)

    def _open_serial(self, port: str) -> serial.Serial:
        try:
            return serial.serial_for_url(port, self.baud, timeout=0.05, write_timeout=2.0, exclusive=True)
        except serial.SerialException as exc:
            text = str(exc)
            if "No such file" in text or ("could not open port" in text and "2]" in text):
                raise PortNotFound(f"no such serial port ({text})", port=port,
                                   hint="check the cable and the path; `microfactory ports` lists the ports"
                                   ) from None
            if "busy" in text.lower() or "lock" in text.lower():
                raise CommunicationError(f"port is busy ({text})", port=port,
                                         hint="close the other program using it (another sender, a "
                                              "terminal) and try again") from None
            raise CommunicationError(f"cannot open port ({text})", port=port,
                                     hint="check permissions (dialout group) and the cable") from None

    async def close(self) -> None:
        """Stop the reader and close the port (idempotent)."""
        self._closing.set()
        ser, self._serial = self._serial, None
        with self._fd_lock:  # waits for a realtime write in progress; none uses the fd after this
            self._fd = None
        self._ledger.forget(self.port + "<")
        if ser is not None:
            with contextlib.suppress(OSError, serial.SerialException):
                ser.cancel_read()
            if self._reader is not None:
                await asyncio.get_running_loop().run_in_executor(None, self._reader.join, 2.0)
            with contextlib.suppress(OSError, serial.SerialException):
                ser.close()
            log.info("%s: closed %s", self.name, self.port)
        self.shutdown()

    def shutdown(self) -> None:
        """Release the writer thread (done by :meth:`close`; :meth:`open` starts a new one)."""
        self._writer.shutdown(wait=False)
        self._writer_closed = True

    # -- reading -------------------------------------------------------------------------------------
    def _read_loop(self, ser: serial.Serial, actor: Actor) -> None:
        try:
            self._read_lines(ser, actor)
        finally:
            actor.close()

    def _read_lines(self, ser: serial.Serial, actor: Actor) -> None:
        buf = bytearray()
        channel = self.port + "<"
        fd = ser.fileno()
        while not self._closing.is_set():
            try:
                if not actor.wait_fds([fd], None, READ_WAKE_S):
                    continue
                chunk = os.read(fd, max(ser.in_waiting, 1))
            except (serial.SerialException, OSError, TypeError, AttributeError, ValueError) as exc:
                if not self._closing.is_set():
                    self._post(_Lost(f"port went away: {exc}"))
                return
            if not chunk:  # readable but empty: the other end is gone (pyserial says the same)
                if not self._closing.is_set():
                    self._post(_Lost("port went away: device reports readiness to read but returned no data"))
                return
            self._ledger.received(channel, len(chunk))
            if self.trace:
                self.trace.record(self.name, "rx", chunk)
            buf += chunk
            while True:
                idx = buf.find(b"\n")
                if idx < 0:
                    break
                raw = bytes(buf[:idx]).rstrip(b"\r")
                del buf[: idx + 1]
                self._post(self._decode(raw))
            if len(buf) > MAX_LINE_BYTES:
                self._post(self._decode(bytes(buf)))
                buf.clear()

    def _decode(self, raw: bytes) -> str:
        text = raw.decode("ascii", errors="replace")
        if "\ufffd" in text:
            self.garbage_lines += 1
        return text

    def _post(self, item: str | _Lost) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # loop closed between the check and the call
            loop.call_soon_threadsafe(self._deliver, item)

    def _deliver(self, item: str | _Lost) -> None:
        if isinstance(item, _Lost):
            log.warning("%s: %s", self.name, item.reason)
            self.lost.set()
            if self._on_link:
                self._on_link(False, item.reason)
        self._lines.put_nowait(item)

    async def readline(self, timeout_s: float | None = None, *, phase: str = "answer") -> str:
        """The next line (without its line ending).

        Raises :class:`StationTimeout` after ``timeout_s`` (link time) naming ``phase``, and
        :class:`Disconnected` once the port is gone.
        """
        if self.lost.is_set() and self._lines.empty():
            raise Disconnected("port is disconnected", port=self.port,
                               hint="check the cable and the power")
        try:
            item = await asyncio.wait_for(self._lines.get(), timeout_s)
        except TimeoutError:
            raise StationTimeout(f"no {phase} within {timeout_s:g} s", port=self.port,
                                 hint="is the device powered and at the configured baud rate?") from None
        if isinstance(item, _Lost):
            self._lines.put_nowait(item)  # every later reader sees the loss too
            raise Disconnected(item.reason, port=self.port,
                               hint="check the cable and the power")
        return item

    def drain_lines(self) -> list[str]:
        """Discard and return the lines already received (e.g. before a handshake)."""
        out: list[str] = []
        while not self._lines.empty():
            item = self._lines.get_nowait()
            if isinstance(item, _Lost):
                self._lines.put_nowait(item)
                break
            out.append(item)
        return out

    # -- writing -------------------------------------------------------------------------------------
    async def write(self, data: bytes) -> None:
        """Queue ``data`` on the port's writer thread and wait until it is written."""
        ser = self._serial
        if ser is None or self.lost.is_set():
            raise Disconnected("port is not open", port=self.port, sent=data,
                               hint="connect the station first")
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._writer, self._write_all, ser, data)
        except RuntimeError:  # the port closed between the check and the write (writer shut down)
            raise Disconnected("port closed while writing", port=self.port, sent=data,
                               hint="connect the station first") from None
        except (serial.SerialException, OSError) as exc:
            text = str(exc)  # pyserial's own text already starts "write failed: ..."
            raise Disconnected(text if text.startswith("write failed") else f"write failed: {text}",
                               port=self.port, sent=data,
                               hint="check the cable and power") from None

    def _write_all(self, ser: serial.Serial, data: bytes) -> None:
        channel = self.port + ">"
        self._ledger.sent(channel, len(data))  # before the write: the device may read them at once
        try:
            with self.latch.sending(data) if self.latch is not None else contextlib.nullcontext():
                if self.trace is None:
                    ser.write(data)
                    return
                with self.trace.sending(self.name, "tx", data):
                    ser.write(data)
        except BaseException:
            self._ledger.received(channel, len(data))
            raise

    async def write_line(self, line: str) -> None:
        """Write ``line`` followed by ``\\n`` (ASCII)."""
        await self.write(line.encode("ascii") + b"\n")

    def write_realtime(self, data: bytes) -> bool:
        """Write ``data`` at once, bypassing the writer queue; safe from any thread.

        For the single-byte realtime commands a device accepts between (or inside) lines. Returns False
        (and logs) if the port is not open — E-stop callers then fall back to the next layer of safety —
        or if the E-stop latch refuses ``data`` (a cycle start while latched).

        The file descriptor is used under a lock that :meth:`close` also takes before letting it go, so
        a reconnect can never hand this write a descriptor the system reused for another file.
        """
        if self.latch is not None and not self.latch.passes_realtime(data):
            log.warning("%s: realtime %r not sent: E-stop is latched", self.name, data)
            return False
        with self._fd_lock:
            fd = self._fd
            if fd is None:
                log.error("%s: realtime %r not sent: port not open", self.name, data)
                return False
            channel = self.port + ">"
            self._ledger.sent(channel, len(data))
            try:
                # Realtime bytes (E-stop among them) never wait for the trace: write first, record after.
                os.write(fd, data)
            except OSError as exc:
                self._ledger.received(channel, len(data))
                log.error("%s: realtime %r failed: %s", self.name, data, exc)
                return False
        if self.trace:
            self.trace.record(self.name, "rt", data)
        return True

    # -- reconnect -----------------------------------------------------------------------------------
    async def reconnect(self, *, attempts: int = 8, backoff_s: float = 0.1, max_backoff_s: float = 5.0,
                        timeout_s: float = 5.0) -> None:
        """Close, then resolve and open the port again, backing off exponentially between tries."""
        await self.close()
        delay = backoff_s
        last: Exception | None = None
        for attempt in range(1, attempts + 1):
            try:
                await self.open(timeout_s)
                log.info("%s: reconnected on %s (attempt %d)", self.name, self.port, attempt)
                return
            except CommunicationError as exc:
                last = exc
                log.info("%s: reconnect attempt %d failed: %s", self.name, attempt, exc.message)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_backoff_s)
        raise Disconnected(f"could not reconnect after {attempts} attempts: {last}", port=self.port,
                           hint="check the cable; a USB identity in the cell file finds a device that "
                                "came back under a new name")
