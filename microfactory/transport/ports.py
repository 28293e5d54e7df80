"""Serial ports by path or by USB identity.

A bench's USB adapters get new ``/dev/ttyUSB*`` names when replugged or after a reboot; a cell file can
name a port by its USB identity ``vid:pid[:serial]`` instead, and :func:`resolve_port` finds the device
that carries it now (``serial.tools.list_ports``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from serial.tools import list_ports as _list_ports

from microfactory.errors import PortNotFound

_USB = re.compile(r"^(?:usb:)?([0-9a-fA-F]{4}):([0-9a-fA-F]{4})(?::(.+))?$")


@dataclass(frozen=True)
class PortInfo:
    """One serial port as the OS lists it."""

    device: str
    description: str = ""
    vid: int | None = None
    pid: int | None = None
    serial_number: str | None = None
    manufacturer: str | None = None

    @property
    def identity(self) -> str:
        """``vid:pid[:serial]`` in hex, or empty for ports that are not USB."""
        if self.vid is None or self.pid is None:
            return ""
        ident = f"{self.vid:04x}:{self.pid:04x}"
        return f"{ident}:{self.serial_number}" if self.serial_number else ident


def list_ports() -> list[PortInfo]:
    """Every serial port the OS reports, sorted by device path."""
    ports = [PortInfo(p.device, p.description or "", p.vid, p.pid, p.serial_number, p.manufacturer)
             for p in _list_ports.comports()]
    return sorted(ports, key=lambda p: p.device)


def parse_identity(spec: str) -> tuple[int, int, str | None] | None:
    """``"0403:6001:A9X1"`` → ``(0x0403, 0x6001, "A9X1")``; None if ``spec`` is not a USB identity."""
    m = _USB.match(spec)
    if not m:
        return None
    return int(m.group(1), 16), int(m.group(2), 16), m.group(3)


def resolve_port(spec: str) -> str:
    """The device path for ``spec`` (a path, or a USB identity); raises :class:`PortNotFound`."""
    ident = parse_identity(spec)
    if ident is None:
        if not os.path.exists(spec) and "://" not in spec:
            raise PortNotFound(f"no such serial port {spec!r}", port=spec,
                               hint="check the cable and the path; `microfactory ports` lists the ports "
                                    "this computer sees")
        return spec
    vid, pid, serial_number = ident
    matches = [p for p in list_ports() if p.vid == vid and p.pid == pid
               and (serial_number is None or p.serial_number == serial_number)]
    if not matches:
        raise PortNotFound(f"no USB serial device with identity {spec}", port=spec,
                           hint="is it plugged in and powered? `microfactory ports` lists what is connected")
    if len(matches) > 1:
        names = ", ".join(f"{m.device} ({m.identity})" for m in matches)
        raise PortNotFound(f"USB identity {spec} matches several devices: {names}", port=spec,
                           hint="add the serial number: vid:pid:SERIAL")
    return matches[0].device
