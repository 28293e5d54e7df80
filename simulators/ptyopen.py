"""Noticing that the host opened a simulator's pty, as a board whose DTR line resets it would.

An Arduino-based Grbl resets whenever the host opens its port (the USB serial chip pulses DTR, which
is wired to the MCU's reset). A pty has no DTR line, and the link keeps the slave end open itself, so
the master sees nothing when a host opens the slave. Linux's inotify reports every ``open(2)`` of a
file, device nodes in ``/dev/pts`` included: :class:`OpenWatch` watches the slave's path for
``IN_OPEN`` and the link tells the device. The standard library has no inotify binding and the two
calls needed are stable C ABI, so ctypes is used rather than a dependency. Where inotify is missing
(not Linux) :attr:`OpenWatch.available` is False and no open is ever reported: the simulator then
behaves like a board without auto-reset, and says so in the log.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import struct

log = logging.getLogger("simulators.link")

_IN_OPEN = 0x00000020
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len (then len bytes of name)


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.inotify_init1  # noqa: B018 - probe: AttributeError where inotify does not exist
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _libc()


class OpenWatch:
    """Counts opens of one path (a pty slave) since the last :meth:`take`."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd = -1
        if _LIBC is None:
            log.info("no inotify here: opening %s will not reset the simulated board", path)
            return
        fd = _LIBC.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            log.info("inotify_init1 failed (errno %d): no reset on open for %s", ctypes.get_errno(), path)
            return
        if _LIBC.inotify_add_watch(fd, os.fsencode(path), _IN_OPEN) < 0:
            log.info("inotify_add_watch(%s) failed (errno %d): no reset on open", path, ctypes.get_errno())
            os.close(fd)
            return
        self._fd = fd

    @property
    def available(self) -> bool:
        return self._fd >= 0

    def fileno(self) -> int:
        """The descriptor to select on (readable when an open was seen); -1 when unavailable."""
        return self._fd

    def take(self) -> int:
        """How many times the path was opened since the last call (reads the pending events)."""
        if self._fd < 0:
            return 0
        opens = 0
        while True:
            try:
                data = os.read(self._fd, 4096)
            except (BlockingIOError, InterruptedError):
                return opens
            except OSError:
                return opens
            if not data:
                return opens
            offset = 0
            while offset + _EVENT.size <= len(data):
                _wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
                offset += _EVENT.size + length
                if mask & _IN_OPEN:
                    opens += 1

    def close(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1
