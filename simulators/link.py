"""The serial link every byte-level simulator sits behind: a pty, a baud-rate/latency model, faults.

A :class:`PtyLink` owns a pty (``os.openpty``) and one thread. The thread reads what the host writes to
the slave end, makes those bytes visible to the :class:`Device` no faster than a UART at ``baud`` would
(10 bits per byte, 8N1) plus a one-way ``latency``, and writes the device's answers back at the same rate.
Pacing is scheduled by due times (``t_due = max(prev_due, arrival + latency) + 10/baud``), never by
sleeping per byte, so wake-up jitter does not accumulate and throughput is bounded by the baud rate
alone. Link time is the clock's time (simulated time in simulation): a line at 115200 baud costs the
same simulated milliseconds at ×1, ×K and as fast as possible. The link thread is one of the clock's
actors (:func:`microfactory.clock.actor_for`) and counts every byte it reads and writes on the clock's
ledger, so a virtual clock never moves while a byte is on its way.

Faults act on the link (see :data:`PtyLink.LINK_FAULTS` and :meth:`PtyLink.inject`): answers dropped,
duplicated or garbled on the way to the host (``drop``, ``duplicate``, ``garble``), a bit flipped in a
line on the way to the device (``garble_up``), a garbage line (``garbage``), every byte to the host
held back for a while (``delay``), ``silence``/``speak``, ``unplug``/``replug``; a device adds its own
(an alarm, an error on a line, a reset) through :meth:`Device.device_faults`. :meth:`PtyLink.inject` is
thread-safe: it runs under the same lock the link thread holds while it calls the device.

The pty and a client that closes and reopens it: the link keeps its own descriptor of the slave end
open, so the master never sees EIO while no client is attached. Bytes the device sends while nobody has
the port open wait in the pty's input queue (as in a USB-serial adapter's buffer); a client that wants a
fresh start flushes its input after opening (pyserial ``reset_input_buffer``).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import random
import threading
import time
import tty
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from microfactory.clock import Clock, ScaledClock, WallActor, actor_for, ledger_for
from simulators.ptyopen import OpenWatch

log = logging.getLogger("simulators.link")

BITS_PER_BYTE = 10  # start bit + 8 data bits + stop bit (8N1)
_IDLE_WAKE_S = 0.05  # upper bound on one select() wait, so close() is noticed promptly


class Device(Protocol):
    """The device side of a link: receives host bytes at UART pace, sends lines through the link.

    Every method is called on the link thread with :attr:`PtyLink.lock` held, so a device needs no
    locking of its own as long as other threads reach it through :meth:`PtyLink.call`.
    """

    def attach(self, link: PtyLink) -> None:
        """Called once, before :meth:`power_on`, with the link the device sends through."""
        ...

    def power_on(self) -> None:
        """Start from power-up (first start and after a replug): reset state, send any banner."""
        ...

    def receive(self, data: bytes) -> None:
        """Bytes that have just finished arriving over the wire (already paced)."""
        ...

    def poll(self, now: float) -> float | None:
        """Advance internal time to ``now`` (the link clock's s); return when to be polled next."""
        ...

    def device_faults(self) -> Mapping[str, Callable[..., None]]:
        """Device-specific faults by name; each is called with the keyword parameters of ``inject``."""
        ...


@dataclass
class _Chunk:
    """Bytes crossing the wire from ``start`` (clock s), one every ``byte_s``."""

    start: float
    data: bytes

    def end(self, byte_s: float) -> float:
        return self.start + len(self.data) * byte_s


class _Direction:
    """One direction of the wire: a queue of chunks paced at ``byte_s`` seconds per byte."""

    def __init__(self, byte_s: float, latency_s: float) -> None:
        self.byte_s = byte_s
        self.latency_s = latency_s
        self.chunks: deque[_Chunk] = deque()
        self._last_due = 0.0

    def push(self, data: bytes, now: float) -> None:
        """Queue ``data`` arriving at ``now``: one chunk per line (and one for a tail without a newline),
        so what arrives when does not depend on how the writer's bytes were grouped into reads."""
        for piece in data.splitlines(keepends=True):
            start = max(self._last_due, now + self.latency_s)
            chunk = _Chunk(start, piece)
            self._last_due = chunk.end(self.byte_s)
            self.chunks.append(chunk)

    def take_due(self, now: float) -> bytes:
        """Remove and return every chunk whose last byte has arrived by ``now``.

        A line is handed over whole when its last byte is in (a line-oriented reader acts on its newline;
        a realtime byte is a chunk of its own): one event per line instead of one per byte."""
        out = bytearray()
        while self.chunks and self.chunks[0].end(self.byte_s) <= now + 1e-12:
            out += self.chunks.popleft().data
        return bytes(out)

    def next_due(self) -> float | None:
        return self.chunks[0].end(self.byte_s) if self.chunks else None

    def clear(self) -> None:
        self.chunks.clear()
        self._last_due = 0.0


class PtyLink:
    """A pty with a simulated UART between the host and a :class:`Device`.

    ``baud`` in bit/s (8N1: baud/10 bytes per second each way); ``latency_s`` a one-way delay in seconds
    added in each direction; ``seed`` makes garbling reproducible; ``name`` labels the thread and logs;
    ``clock`` is the time the link and the device run in (default: monotonic time).
    """

    LINK_FAULTS = ("drop", "duplicate", "garble", "garble_up", "garbage", "delay", "silence", "speak",
                   "unplug", "replug")

    def __init__(self, device: Device, *, baud: int = 115200, latency_s: float = 0.0, seed: int = 0,
                 name: str = "sim", clock: Clock | None = None) -> None:
        if baud <= 0:
            raise ValueError(f"baud must be > 0, got {baud}")
        if latency_s < 0:
            raise ValueError(f"latency must be >= 0 s, got {latency_s}")
        self.device = device
        self.baud = baud
        self.latency_s = latency_s
        self.name = name
        self.clock: Clock = clock or ScaledClock(1.0)
        self._ledger = ledger_for(self.clock)
        self._actor = actor_for(self.clock, f"sim-link-{name}")
        self._wall_cap = _IDLE_WAKE_S if isinstance(self._actor, WallActor) else None
        self.lock = threading.RLock()
        self._byte_s = BITS_PER_BYTE / baud
        self._inbound = _Direction(self._byte_s, latency_s)
        self._outbound = _Direction(self._byte_s, latency_s)
        self._rng = random.Random(seed)
        self._drop = 0
        self._garble = 0
        self._duplicate = 0
        self._garble_up = 0
        self._garble_up_in_line = False  # a flip was made in the line now arriving: wait for its end
        self._held_until = 0.0  # ``delay``: nothing reaches the host before this (clock s)
        # (monotonic s, what) for each fault injected and each answer or line a fault changed
        self.faults_done: list[tuple[float, str]] = []
        self._silent = False
        self._master: int | None = None
        self._slave: int | None = None
        self._opens: OpenWatch | None = None
        self._port = ""
        self._last_port = ""
        self._stop = threading.Event()
        self._backlog = bytearray()
        self.bytes_in = 0
        self.bytes_out = 0
        self._open_pty()
        self._thread = threading.Thread(target=self._run, name=f"sim-link-{name}", daemon=True)
        with self.lock:
            device.attach(self)
            device.power_on()
        self._thread.start()

    # ---- public API -------------------------------------------------------------------------------

    @property
    def port(self) -> str:
        """Path of the slave end the host opens (changes on replug); empty while unplugged."""
        return self._port

    @property
    def plugged(self) -> bool:
        return self._master is not None

    @property
    def drained(self) -> bool:
        """Nothing left to write to the host (every queued answer is on the wire)."""
        return not self._outbound.chunks and not self._backlog

    def send(self, data: bytes) -> None:
        """Queue raw bytes to the host (paced); dropped while silent or unplugged."""
        if self._silent or self._master is None or not data:
            return
        self._outbound.push(data, self.clock.now())
        if threading.current_thread() is not self._thread:
            self._wake()

    def send_line(self, text: str, *, answer: bool = False) -> None:
        """Queue ``text + "\\r\\n"``. ``answer=True`` marks a final answer (``ok``/``error``), which
        ``drop`` and ``garble`` act on; unsolicited lines (status, alarms, banners) are left alone."""
        data = (text + "\r\n").encode("latin-1")
        if answer and self._drop > 0:
            self._drop -= 1
            log.info("%s: fault drop: answer %r not sent (%d more)", self.name, text, self._drop)
            self._did(f"drop {text!r}")
            return
        if answer and self._garble > 0:
            self._garble -= 1
            data = self._garbled(data)
            log.info("%s: fault garble: answer %r sent as %r (%d more)", self.name, text, data, self._garble)
            self._did(f"garble {text!r} -> {data!r}")
        self.send(data)
        if answer and self._duplicate > 0:
            self._duplicate -= 1
            log.info("%s: fault duplicate: answer %r sent twice (%d more)", self.name, text, self._duplicate)
            self._did(f"duplicate {text!r}")
            self.send(data)

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` under the link lock (read or change device state from another thread)."""
        with self.lock:
            result = fn()
        self._wake()
        return result

    def faults(self) -> list[str]:
        """Every fault name :meth:`inject` accepts: the link's and the device's."""
        return sorted({*self.LINK_FAULTS, *self.device.device_faults()})

    def inject(self, fault: str, **params: Any) -> None:
        """Inject ``fault`` (see the module docstring); unknown names raise ``ValueError``.

        ``drop``/``duplicate``/``garble`` take ``n`` (answers affected, default 1); ``garble_up`` takes
        ``n`` (lines from the host with one digit's low bit flipped, ``G1X24.9`` → ``G1X34.9``, the flip a
        checksum-less protocol cannot see); ``garbage`` sends ``text`` (default unreadable bytes) as one
        line now; ``delay`` holds every byte to the host back for ``s`` seconds from now (a stalled USB
        adapter: late, not lost); ``silence`` loses every byte to the host until ``speak``.
        """
        device_faults = self.device.device_faults()
        if fault not in self.LINK_FAULTS and fault not in device_faults:
            raise ValueError(f"unknown fault {fault!r} for simulator {self.name!r}; known: {self.faults()}")
        log.info("%s: inject %s %s", self.name, fault, params)
        with self.lock:
            self._did(f"inject {fault} {params}" if params else f"inject {fault}")
            if fault in device_faults:
                device_faults[fault](**params)
            elif fault == "drop":
                self._drop += int(params.get("n", 1))
            elif fault == "garble":
                self._garble += int(params.get("n", 1))
            elif fault == "duplicate":
                self._duplicate += int(params.get("n", 1))
            elif fault == "garble_up":
                self._garble_up += int(params.get("n", 1))
            elif fault == "garbage":
                text = params.get("text", "\x00\xffo#k%\x7f")
                self._did(f"garbage {text!r}")
                self.send(str(text).encode("latin-1") + b"\r\n")
            elif fault == "delay":
                self._held_until = self.clock.now() + float(params.get("s", 1.0))
            elif fault == "silence":
                self._silent = True
                self._outbound.clear()
            elif fault == "speak":
                self._silent = False
            elif fault == "unplug":
                self._close_pty()
            elif fault == "replug" and self._master is None:
                self._open_pty(avoid=self._last_port)
                self.device.power_on()
        self._wake()

    def _did(self, what: str) -> None:
        self.faults_done.append((time.monotonic(), what))

    def wake(self) -> None:
        """Make the link thread poll the device now (after a state change from another thread)."""
        self._wake()

    def close(self) -> None:
        """Stop the thread and close the pty (idempotent)."""
        self._stop.set()
        self._wake()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=2.0)
        with self.lock:
            self._close_pty()

    # ---- pty ----------------------------------------------------------------------------------------

    def _open_pty(self, avoid: str = "") -> None:
        """Open a pty; ``avoid`` a path (the unplugged one), as a re-enumerated USB device gets a new one."""
        rejected: list[int] = []
        master, slave = os.openpty()
        while os.ttyname(slave) == avoid and len(rejected) < 8:
            rejected += [master, slave]
            master, slave = os.openpty()
        for fd in rejected:
            os.close(fd)
        tty.setraw(slave)
        tty.setraw(master)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self._port = os.ttyname(slave)
        if self._opens is not None:
            self._opens.close()
        self._opens = OpenWatch(self._port)
        self._ledger.watch(self._port + ">", master)  # host → device bytes the link has not read
        self._inbound.clear()
        self._outbound.clear()
        self._backlog.clear()
        log.info("%s: pty %s (%d baud, latency %.1f ms)", self.name, self._port, self.baud,
                 self.latency_s * 1e3)

    def _close_pty(self) -> None:
        if self._master is None:
            return
        log.info("%s: unplug %s", self.name, self._port)
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)  # type: ignore[arg-type]
        self._master = self._slave = None
        if self._opens is not None:
            self._opens.close()
            self._opens = None
        self._ledger.forget(self._port + ">")
        self._last_port = self._port
        self._port = ""
        self._backlog.clear()
        self._inbound.clear()
        self._outbound.clear()

    def _garbled(self, data: bytes) -> bytes:
        body = bytearray(data[:-2])
        if body:
            i = self._rng.randrange(len(body))
            body[i] ^= 1 << self._rng.randrange(7)
        body.insert(self._rng.randrange(len(body) + 1), self._rng.choice(b"\x00\xff#%&\x7f"))
        return bytes(body) + b"\r\n"

    # ---- thread -------------------------------------------------------------------------------------

    def _wake(self) -> None:
        self._actor.poke()

    def _run(self) -> None:
        try:
            self._serve()
        finally:
            self._actor.close()

    def _serve(self) -> None:
        next_poll: float | None = 0.0
        while not self._stop.is_set():
            now = self.clock.now()
            out_due = self._outbound.next_due()
            if out_due is not None and self._held_until > now:
                out_due = self._held_until
            due = [t for t in (next_poll, self._inbound.next_due(), out_due) if t is not None]
            master = self._master
            opens = self._opens
            fds = [master] if master is not None else []
            if opens is not None and opens.available:
                fds.append(opens.fileno())
            ready = self._actor.wait_fds(fds, min(due, default=None), self._wall_cap)
            with self.lock:
                if opens is not None and opens is self._opens and opens.fileno() in ready and opens.take():
                    self._ledger.received(self._port + ">", 1)  # the host's open, counted by its transport
                    self._host_opened()
                if master is not None and master in ready and master == self._master:
                    self._read_host(master)
                next_poll = self._step(self.clock.now())

    def _host_opened(self) -> None:
        """The host opened the port: before any byte it sends, the device hears of it (a DTR reset)."""
        opened = getattr(self.device, "host_opened", None)
        if opened is not None and opened():
            self._outbound.clear()  # a board that reset on open stopped sending what it was sending
            self._backlog.clear()

    def _read_host(self, master: int) -> None:
        try:
            data = os.read(master, 4096)
        except BlockingIOError:
            return
        except OSError as exc:  # EIO: no slave open anywhere (cannot happen while we hold ours)
            log.debug("%s: read from master failed: %s", self.name, exc)
            return
        if data:
            self.bytes_in += len(data)
            self._ledger.received(self._port + ">", len(data))
            if self._garble_up > 0 or self._garble_up_in_line:
                data = self._flip_up(data)
            self._inbound.push(data, self.clock.now())

    def _flip_up(self, data: bytes) -> bytes:
        """``garble_up``: flip the low bit of the first digit of each of the next lines (a digit stays a
        digit, so the line still parses: the corruption only an echo or a checksum could catch)."""
        out = bytearray(data)
        for i, byte in enumerate(out):
            if self._garble_up_in_line:
                self._garble_up_in_line = byte != ord("\n")
            elif self._garble_up > 0 and ord("0") <= byte <= ord("9"):
                out[i] = byte ^ 1
                self._garble_up -= 1
                self._garble_up_in_line = True
                self._did(f"garble_up {chr(byte)!r} -> {chr(out[i])!r}")
                log.info("%s: fault garble_up: %r became %r on the way in", self.name, chr(byte), chr(out[i]))
        return bytes(out)

    def _step(self, now: float) -> float | None:
        arrived = self._inbound.take_due(now)
        if arrived:
            self.device.receive(arrived)
        next_poll = self.device.poll(now)
        self._write_host(now)
        return next_poll

    def _write_host(self, now: float) -> None:
        if self._master is None:
            self._outbound.clear()
            return
        if now < self._held_until:  # ``delay``: the bytes wait (paced again once released)
            return
        data = bytes(self._backlog) + self._outbound.take_due(now)
        self._backlog.clear()
        if not data:
            return
        channel = self._port + "<"
        self._ledger.sent(channel, len(data))  # counted before the write: the host may read them at once
        try:
            written = os.write(self._master, data)
        except BlockingIOError:
            written = 0
        except OSError as exc:
            if exc.errno != errno.EIO:
                raise
            written = len(data)  # nobody listening: the bytes are lost on the wire
            self._ledger.received(channel, len(data))
        self._ledger.received(channel, len(data) - written)
        self.bytes_out += written
        if written < len(data):  # the host is not reading and the pty queue is full: wait
            self._backlog += data[written:]
