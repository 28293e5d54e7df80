"""The contract between the core and the simulators, so the core can start one without importing it.

A simulator package exposes, under the entry point group ``microfactory.simulators`` with the station
kind as name, an object with a ``start(options, clock)`` method returning a :class:`SimulatorHandle`.
The handle owns a pty: the driver opens ``handle.port`` exactly as it would open ``/dev/ttyUSB0``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from microfactory.clock import Clock


@runtime_checkable
class SimulatorHandle(Protocol):
    """A running simulator behind a pty."""

    @property
    def port(self) -> str:
        """Path of the pty's slave end (changes after an unplug/replug, like a real USB device)."""
        ...

    @property
    def identity(self) -> str:
        """A stable identity (like a USB serial number) that survives unplug/replug."""
        ...

    def inject(self, fault: str, **params: Any) -> None:
        """Inject a fault by name (``drop``, ``garble``, ``silence``, ``unplug``, ``replug``, ``alarm`` ...).

        Unknown names raise ``ValueError`` listing the known ones.
        """
        ...

    def faults(self) -> list[str]:
        """Names accepted by :meth:`inject`."""
        ...

    def close(self) -> None:
        """Stop the simulator thread and close the pty."""
        ...


@runtime_checkable
class Simulator(Protocol):
    """Factory registered under ``microfactory.simulators``."""

    def start(self, options: Mapping[str, Any], clock: Clock) -> SimulatorHandle:
        """Start a simulator with the cell file's ``sim:`` options on a new pty."""
        ...
