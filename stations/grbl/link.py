"""The link of a Grbl station: connect and handshake, watching for link loss, reconnect, and close.

Connecting resets Grbl (or waits for its banner) and reads ``$I``, ``$$``, ``$#`` and ``$G``, refusing a
machine whose settings disagree with the cell file; the watcher reconnects by identity when the port
goes away (``options: {auto_reconnect: ...}``); closing stops motion first. Kept together because they
share the link's life cycle (the watcher task and the ``_closing`` flag).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from microfactory.errors import (
    CommunicationError,
    MicrofactoryError,
    ProtocolError,
    StationFault,
    StationTimeout,
)
from microfactory.events import EventKind, Severity
from stations.grbl.channel import RESET
from stations.grbl.codec import parse_build_info
from stations.grbl.motion import FEED_HOLD, GrblMotion
from stations.grbl.settings import GrblSettings, refuse_if_inconsistent

log = logging.getLogger("stations.grbl")

BOOT_RETRY_S = 0.25  # s between '?' while a board that reset on open may still be in its bootloader
POWER_UP_ALARM = ("in Alarm after power-up or reset: homing is enabled ($22=1), so Grbl locks out G-code "
                  "until the machine is homed ($H) or unlocked ($X)")


class GrblLink(GrblMotion):
    """Connect, handshake, reconnect after link loss, and close."""

    async def connect(self) -> None:
        """Open the port, reset Grbl (or wait for its banner), read ``$I``, ``$$``, ``$#``, ``$G``."""
        self._closing = False
        self.state_machine.trigger_safely("link_up")
        try:
            await self.transport.open(self.config.timeouts.connect_s)
            self.channel.start()
            await self._handshake()
        except BaseException:
            await self._shutdown_link()
            self.state_machine.trigger_safely("link_down")
            raise
        if self._watch is None or self._watch.done():
            self._watch = asyncio.get_running_loop().create_task(self._watch_link(), name=f"{self.id}-link")

    async def _handshake(self) -> None:
        timeouts = self.config.timeouts
        self.transport.drain_lines()
        self.poller.port = self.transport.port  # its messages name the port, not only the station
        self.channel.banner.clear()
        if self.reset_on_connect:
            self.channel.realtime(RESET)
        await self._wait_banner(timeouts.connect_s)
        # A status answer to a '?' sent now comes after every banner already on its way (a power-up
        # banner that raced our reset), so the lines sent next cannot be flushed by a late reset. An
        # Arduino resets when the port opens and its bootloader loses what it is sent meanwhile: the
        # banner seen may be an older one, so '?' is asked again until the firmware answers.
        deadline = time.monotonic() + max(timeouts.status_s, timeouts.connect_s)
        while True:
            try:
                await self.poller.fresh(min(BOOT_RETRY_S, timeouts.status_s))
                break
            except StationTimeout:
                if time.monotonic() >= deadline:
                    raise self._not_grbl("no status report after the reset banner") from None
        answer = await self._query("$I", phase="build info ($I)")
        build = parse_build_info(answer.pushed, port=self.transport.port)
        if self._identity is not None and build.firmware != self._identity:
            # a reused pty or USB path (or another board on the same adapter): never trust it blindly
            raise ProtocolError(f"station {self.id!r}: the device now on {self.transport.port} is not the "
                                f"machine this station was connected to: $I says {build.firmware!r}, it was "
                                f"{self._identity!r}; nothing was sent to it",
                                port=self.transport.port,
                                hint="check which device is on this port (a reused path?), then connect the "
                                     "station again")
        self.build = build
        self._identity = build.firmware
        self.firmware = self.build.firmware
        self.settings = GrblSettings.parse((await self._query("$$", phase="settings ($$)")).pushed)
        if self.check_cell_limits:
            refuse_if_inconsistent(self.settings, self.config.limits, station=self.id,
                                   build_options=self.build.options)
        await self._report_buffer_state()
        await self.read_machine_state(phase="on connect")
        self.poller.start()
        report = await self.poller.fresh(timeouts.status_s)
        if report.state == "Alarm" and self.options.home_on_connect and self.settings.homing \
                and not self.estopped:
            await self._home_on_connect()
        elif report.state == "Alarm":  # and with the E-stop latched, homing would move: it stays locked
            self.state_machine.trigger_safely("alarm")
            if self.alarm_code is None:
                self.bus.publish(EventKind.ALARM, self.id, code="HOMING", severity=str(Severity.WARNING),
                                 text=POWER_UP_ALARM, recovery=self.home_hint())
        else:
            self.state_machine.trigger_safely("ready")
        log.info("%s: connected to %s on %s", self.id, self.firmware, self.transport.port)

    async def _home_on_connect(self) -> None:
        """The connect policy ``home_on_connect``: a machine in Alarm after power-up (an Arduino resets on
        every port open) runs its homing cycle, so machine space and soft limits hold again."""
        log.info("%s: in Alarm after power-up or reset; homing ($H) (options.home_on_connect)", self.id)
        self.bus.publish(EventKind.LOG, self.id, level="info",
                         text="in Alarm after power-up or reset: homing ($H) (options: home_on_connect)")
        self._waking = True  # a status asked just before $H was parsed still says Alarm
        try:
            answer = await self.channel.command("$H", timeout_s=self.config.timeouts.step_s,
                                                phase="homing on connect ($H)")
        finally:
            self._waking = False
        if not answer.ok:
            self.state_machine.trigger_safely("alarm")
            raise self._error_fault("$H", answer.line, "homing on connect")
        self.alarm_code = None
        self.state_machine.trigger_safely("ready")


    async def _report_buffer_state(self) -> None:
        """Turn on ``Bf:`` in status reports (``$10`` bit 2): the streamer checks its byte count against
        it. The user's value is kept and written back on close (stock Grbl ships ``$10=1``)."""
        mask = int(self.settings.get(10, 1) or 0)
        if mask & 2:
            return
        await self._query(f"$10={mask | 2}", phase="status report mask ($10, to report buffer state Bf:)")
        if self._status_mask_restore is None:
            self._status_mask_restore = mask
        log.info("%s: $10=%d -> %d while connected (Bf: in status reports)", self.id, mask, mask | 2)

    async def _restore_status_mask(self) -> None:
        if self._status_mask_restore is None:
            return
        mask = self._status_mask_restore
        try:
            await self._query(f"$10={mask}", phase="restoring $10")
            self._status_mask_restore = None
        except MicrofactoryError as exc:  # a dead link, a refusal, or the E-stop latch holding every byte
            log.warning("%s: could not restore the user's $10=%d: %s (it is %d now)", self.id, mask, exc,
                        mask | 2)

    # -- link loss, reconnect, close ---------------------------------------------------------------
    async def _watch_link(self) -> None:
        while not self._closing:
            await self.transport.lost.wait()
            if self._closing or not self.auto_reconnect:
                return
            log.warning("%s: link lost; reconnecting by identity", self.id)
            await self.poller.stop()
            await self.channel.stop()
            try:
                await self.transport.reconnect()
                self.state_machine.trigger_safely("link_up")
                self.channel.start()
                await self._handshake()
            except CommunicationError as exc:
                log.error("%s: reconnect failed: %s", self.id, exc)
                self.state_machine.trigger_safely("link_down")  # offline before anyone hears the alarm
                self.bus.publish(EventKind.ALARM, self.id, code="RECONNECT", severity=str(Severity.ERROR),
                                 text=f"reconnect failed: {exc.message}", recovery=exc.hint or
                                 "check the port, power and cable, then connect the station again")
                await self._shutdown_link()
                return
            self.reconnected.set()

    async def close(self) -> None:
        """Stop motion, switch the spindle/laser off (soft reset does M5), close the port."""
        self._closing = True
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None
        try:
            if self.transport.connected and self.poller.dead.is_set() and self.poller.silenced_by is None:
                # a machine that stopped answering gets the stop bytes, but no wait for a banner that will
                # not come (and no "is this a Grbl?" guess: it was one a moment ago)
                self.channel.realtime(FEED_HOLD)
                self.channel.realtime(RESET)
                self.channel.forget_resets()
                log.warning("%s on %s: closing a machine that does not answer: feed hold and reset sent, "
                            "not confirmed; the machine may still be moving: use the E-stop", self.id,
                            self.transport.port)
            elif self.transport.connected:  # (after a limit alarm the reset of the stop ends the silence)
                try:
                    await self._stop_motion()
                except (CommunicationError, StationFault) as exc:
                    log.warning("%s: could not stop cleanly before closing: %s", self.id, exc)
                else:
                    await self._restore_status_mask()
        finally:  # whatever refused the last words (the E-stop latch, a dead link), the port is closed
            await self._shutdown_link()
            self.state_machine.trigger_safely("link_down")

    async def _shutdown_link(self) -> None:
        await self.poller.stop()
        await self.channel.stop()
        await self.transport.close()

