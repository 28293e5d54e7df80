"""A Grbl 1.1h controller (the cut and machine stations) simulated behind a pty.

``SIMULATOR.start(options, clock)`` opens a pty and returns a :class:`GrblHandle`; the driver opens
``handle.port`` like ``/dev/ttyUSB0``. Options (a cell file's ``sim:`` block, or ``--set key=value``):

``baud`` (bit/s, default 115200) · ``latency_ms`` (one-way, default 0) · ``motion`` (false: blocks
complete at once; ``zero_motion_time: true`` means the same) · ``settings`` (``{130: 200, 32: 1}``) ·
``identity``/``serial`` (the USB-like identity, also shown by ``$I``) · ``version`` (the ``[VER:...]``
string) · ``envelope`` (``{x: [-200, 0], y: [-150, 0], z: [-50, 0]}`` mm; default stock ``-$13x..0``) ·
``home`` (``[x, y, z]`` mm, where ``$H`` ends; default ``$27`` inside the switches) · ``seed`` (garbling)
· ``build_options`` (``[OPT:]`` letters, default ``VL``; ``M`` adds mist ``M7``) · ``reset_on_open``
(default true: an Arduino resets when the port is opened) · ``boot_ms`` (bootloader time after that
reset, default 100) · ``positive_space`` (a ``HOMING_FORCE_SET_ORIGIN`` build, ``$23=7``: ``0..$13x``)
· ``keep_g92_on_reset`` (default true) · ``friendly`` (no reset on open, positive space, no homing lock
and no soft limits: never the default) · ``echo`` (Grbl's build option
REPORT_ECHO_LINE_RECEIVED: ``[echo: LINE]`` for every line received; off in a stock build).

Stock Grbl 1.1h by default: ``$10=1``, soft limits ``$20=1`` with homing ``$22=1`` (powers up in
Alarm), machine space ``-$13x..0``. Probes for tests: :attr:`GrblDevice.extremes` (lowest and highest
machine position any block reached), :attr:`GrblDevice.soft_limit_alarms`.

Motion time and link time (baud, latency) are both the clock's time: simulated seconds in simulation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from microfactory.clock import Clock
from simulators.grbl.device import GrblDevice, GrblOptions, parse_options
from simulators.grbl.gcode import Vec
from simulators.link import PtyLink

__all__ = ["SIMULATOR", "GrblDevice", "GrblHandle", "GrblOptions", "GrblSimulator"]


class GrblHandle:
    """A running Grbl simulator: the :class:`~microfactory.simulation.SimulatorHandle` plus test probes.

    Probes (thread-safe snapshots): :attr:`received_lines` (every line the device took from its buffer,
    without terminator), :attr:`position` (machine mm), :attr:`state` (as a status report shows it),
    :attr:`settings`; :attr:`link` exposes byte counters (``bytes_in``/``bytes_out``).
    """

    def __init__(self, link: PtyLink, device: GrblDevice) -> None:
        self.link = link
        self.device = device

    @property
    def port(self) -> str:
        return self.link.port

    @property
    def identity(self) -> str:
        return self.device.options.identity

    def inject(self, fault: str, **params: Any) -> None:
        """Link faults ``drop``/``duplicate``/``garble``/``garble_up`` (``n``), ``garbage`` (``text``),
        ``delay`` (``s``), ``silence``/``speak``, ``unplug``/``replug``; device faults ``alarm``
        (``code``), ``error_on_line`` (``line``, ``code``), ``door`` (``open``), ``reset``."""
        self.link.inject(fault, **params)

    def faults(self) -> list[str]:
        return self.link.faults()

    def close(self) -> None:
        self.link.close()

    @property
    def received_lines(self) -> list[str]:
        return list(self.link.call(lambda: list(self.device.received_lines)))

    @property
    def executed_lines(self) -> list[str]:
        """G-code lines the machine carried out, in order (answered ``ok``; not in check mode)."""
        return list(self.link.call(lambda: list(self.device.executed_lines)))

    @property
    def faults_done(self) -> list[tuple[float, str]]:
        """(monotonic s, what) for each fault injected and what it did (``drop 'ok'``,
        ``garble_up '2' -> '3'`` ...)."""
        return list(self.link.call(lambda: list(self.link.faults_done)))

    @property
    def position(self) -> Vec:
        result: Vec = self.link.call(self.device.position)
        return result

    @property
    def state(self) -> str:
        return str(self.link.call(self.device.state_text))

    @property
    def settings(self) -> dict[int, float]:
        return dict(self.link.call(lambda: dict(self.device.settings)))

    def __enter__(self) -> GrblHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class GrblSimulator:
    """The factory registered under ``microfactory.simulators`` as ``grbl``."""

    def start(self, options: Mapping[str, Any], clock: Clock) -> GrblHandle:
        device = GrblDevice(parse_options(options))  # the link polls it in the clock's (process) seconds
        link = PtyLink(device, baud=int(options.get("baud", 115200)),
                       latency_s=float(options.get("latency_ms", 0.0)) / 1000.0,
                       seed=int(options.get("seed", 0)), name=f"grbl:{device.options.identity}", clock=clock)
        return GrblHandle(link, device)


SIMULATOR = GrblSimulator()
