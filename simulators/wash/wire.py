"""Wire faults of the washer's serial line that :class:`~simulators.link.PtyLink` does not model itself.

The link already drops and garbles answers, goes silent and unplugs. What the wash fault matrix needs on
top (``docs/faults.md``, ``## Wash``) is kept here, small and in the link's words, so the washer can be
tested against every fault today:

- ``duplicate`` (``n``): the next ``n`` answers arrive twice (a USB adapter replaying a buffer);
- ``garbage`` (``text``): one line of noise arrives now, outside any exchange;
- ``delay`` (``s``): every answer is held back for ``s`` seconds of link time from now, then sent in
  order (a stalled adapter or a busy firmware: late, not lost);
- ``garble_up`` (``n``): in each of the next ``n`` lines the host sends that carry a digit, the first
  digit has its low bit flipped (``WASH:TEMP 30`` arrives as ``WASH:TEMP 20``): a digit stays a digit, so
  the washer accepts the line — the corruption only a read-back can catch.

Link time is wall time (``time.monotonic``), like the link's own pacing; the washer's process time is
never involved. These names match the link faults branch ``grbl-link`` adds to ``simulators/link.py``;
once they are on the link, the link's take over and this module goes.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Protocol

log = logging.getLogger("simulators.wash")

NOISE = "\x00\xffo#k%\x7f"


class AnswerSink(Protocol):
    """Where answers go: :meth:`simulators.link.PtyLink.send_line` and ``send``."""

    def send_line(self, text: str, *, answer: bool = False) -> None: ...

    def send(self, data: bytes) -> None: ...


class WireFaults:
    """The washer's answer path (duplicate, delay, garbage) and the upstream digit flip (``garble_up``)."""

    NAMES = ("duplicate", "garbage", "delay", "garble_up")

    def __init__(self) -> None:
        self._duplicate = 0
        self._garble_up = 0
        self._held_until = 0.0
        self._held: deque[str] = deque()
        self.done: list[str] = []  # what each fault did, for tests: "garble_up '3' -> '2' in ..."

    def faults(self, sink: Callable[[], AnswerSink | None]) -> Mapping[str, Callable[..., None]]:
        """The injectable faults by name; ``sink`` gives the link to send garbage through."""
        def duplicate(**p: Any) -> None:
            self._duplicate += int(p.get("n", 1))

        def garbage(**p: Any) -> None:
            text = str(p.get("text", NOISE))
            link = sink()
            if link is not None:
                self.done.append(f"garbage {text!r}")
                link.send(text.encode("latin-1") + b"\r\n")

        def delay(**p: Any) -> None:
            self._held_until = time.monotonic() + float(p.get("s", 1.0))

        def garble_up(**p: Any) -> None:
            self._garble_up += int(p.get("n", 1))

        return {"duplicate": duplicate, "garbage": garbage, "delay": delay, "garble_up": garble_up}

    def inbound(self, line: str) -> str:
        """A line the host sent, as the washer receives it (``garble_up`` flips its first digit)."""
        if self._garble_up <= 0:
            return line
        for i, c in enumerate(line):
            if c.isdigit():
                flipped = chr(ord(c) ^ 1)
                self._garble_up -= 1
                out = line[:i] + flipped + line[i + 1:]
                self.done.append(f"garble_up {line!r} -> {out!r}")
                log.info("wash: fault garble_up: %r arrived as %r", line, out)
                return out
        return line

    def answer(self, link: AnswerSink, text: str) -> None:
        """Send one answer now, or hold it while a ``delay`` lasts; ``duplicate`` sends it twice."""
        copies = 1
        if self._duplicate > 0:
            self._duplicate -= 1
            copies = 2
            self.done.append(f"duplicate {text!r}")
        for _ in range(copies):
            if self._held or time.monotonic() < self._held_until:
                self._held.append(text)
            else:
                link.send_line(text, answer=True)

    def release(self, link: AnswerSink | None, now: float) -> float | None:
        """Send the held answers once the delay is over; return when to be polled next (monotonic s)."""
        if not self._held:
            return None
        if now < self._held_until:
            return self._held_until
        if link is not None:
            self.done.append(f"delay released {len(self._held)} answer(s)")
            while self._held:
                link.send_line(self._held.popleft(), answer=True)
        self._held.clear()
        return None

    def power_on(self) -> None:
        """A replugged washer starts with nothing held."""
        self._held.clear()
        self._held_until = 0.0
