"""A byte-level ultrasonic washer on a pty, speaking the wash station's SCPI-style protocol.

``SIMULATOR.start(options, clock)`` returns a :class:`WashSimulatorHandle`; the driver opens
``handle.port`` as it would a USB serial adapter. The washer's bath and cycle run in the clock's process
time, so a ×100 clock washes a lot in seconds. Shares no code with ``stations.wash``.
"""

from __future__ import annotations

from simulators.wash.device import WasherDevice, WashSimulator, WashSimulatorHandle
from simulators.wash.model import STORED_PROGRAMS, PowerDraw, Washer, WasherConfig

SIMULATOR = WashSimulator()

__all__ = ["SIMULATOR", "STORED_PROGRAMS", "PowerDraw", "WashSimulator", "WashSimulatorHandle", "Washer",
           "WasherConfig", "WasherDevice"]
