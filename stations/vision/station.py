"""The vision-inspect station: grab a frame, inspect it against the drawing, return the verdict.

Step ``inspect`` (params: ``drawing`` path, optional ``defects`` limit overrides, ``annotate`` bool,
default true) → ``StepResult(ok=True, verdict="pass"|"fail", reasons=[...], data={measurements, image,
sha256, frame, ...})``. A frame that cannot be inspected (no part, bad exposure) is a failed step
(``ok=False``, verdict ``error``) whose reason says what to do; a camera that stops giving frames is a
:class:`~microfactory.errors.StationFault`. Grabs and image processing run on the camera's own worker
thread, never on the event loop.
"""

from __future__ import annotations

import logging
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from microfactory.clock import Clock, charge_compute
from microfactory.errors import ConfigError, MicrofactoryError, StationFault
from microfactory.events import EventBus, EventKind
from microfactory.station import PortHandle, Station, StationState, StationStatus, StepRequest, StepResult
from stations.vision import annotate
from stations.vision.calibration import calibrate
from stations.vision.camera import Camera, CameraSource
from stations.vision.inspect import Inspection, inspect_image
from stations.vision.job import CameraOptions, calibrate_params, camera_options, settings

if TYPE_CHECKING:
    from microfactory.cell import StationConfig

log = logging.getLogger("stations.vision")

#: What a camera station does: ``inspect`` parts; ``calibrate`` from a target (maintenance).
ACTIONS = ("inspect", "calibrate")


def check(step: StepRequest, config: StationConfig) -> list[str]:
    """Pre-check a step without I/O on the camera: for ``inspect`` the drawing loads and the limits are
    sane; for ``calibrate`` the target is described."""
    if step.action not in ACTIONS:
        return [f"camera station {config.id!r} cannot {step.action!r}; it can: {', '.join(ACTIONS)}"]
    try:
        if step.action == "calibrate":
            calibrate_params(step.params)
        else:
            settings(step.params, camera_options(config.options))
    except ConfigError as exc:
        return [str(exc)]
    return []


def estimate_s(step: StepRequest, config: StationConfig) -> float:
    """Process seconds for one inspection: exposure plus processing (cell options)."""
    opts = camera_options(config.options)
    return opts.exposure_s + opts.processing_s


class VisionStation(Station):
    """A backlit inspection camera on ``cv2.VideoCapture``."""

    kind = "camera"

    def __init__(self, config: StationConfig, *, bus: EventBus, clock: Clock, port: PortHandle) -> None:
        super().__init__(config, bus=bus, clock=clock, port=port)
        self.options: CameraOptions = camera_options(config.options)
        self.camera: Camera | None = None
        self.last: Inspection | None = None
        self.inspected = 0
        base = self.options.images_dir or str(Path(tempfile.gettempdir()) / "microfactory-images")
        self.images_dir = Path(base) / config.id

    def _source(self) -> CameraSource:
        return CameraSource(self.port.resolve(), station=self.id, width=self.options.width,
                            height=self.options.height, exposure=self.options.exposure,
                            timeout_s=self.config.timeouts.answer_s, loop_video=self.options.loop_video)

    async def connect(self) -> None:
        self.state_machine.trigger_safely("link_up")
        camera = Camera(self._source())
        try:
            await camera.open()
        except StationFault:
            await camera.close()
            self.state_machine.trigger_safely("fault")
            raise
        self.camera = camera
        self.firmware = f"{camera.source.backend or 'opencv'} {camera.source.spec}"
        self.bus.publish(EventKind.STATION_LINK, self.id, connected=True, port=camera.source.spec)
        self.state_machine.trigger_safely("ready")

    async def identify(self) -> str:
        return self.firmware

    async def status(self) -> StationStatus:
        fields: dict[str, Any] = {"frames": self.camera.source.frames if self.camera else 0,
                                  "inspected": self.inspected}
        if self.last is not None:
            fields["last_verdict"] = self.last.verdict
        return StationStatus(self.state, fields)

    def check_step(self, step: StepRequest) -> list[str]:
        return check(step, self.config)

    async def run_step(self, step: StepRequest) -> StepResult:
        if self.camera is None:
            raise StationFault(self.id, "not-connected", "the camera is not open", recovery="connect first")
        problems = self.check_step(step)
        if problems:
            return StepResult(ok=False, verdict="error", reasons=problems)
        if step.action == "calibrate":
            return await self._calibrate(step)
        job = settings(step.params, self.options)
        self.state_machine.trigger_safely("start")
        t0 = self.clock.now()
        try:
            self.bus.publish(EventKind.STATION_PROGRESS, self.id, done=0, total=2, remaining_s=0.0)
            try:
                frame = await self.camera.grab()
            except StationFault:
                self.state_machine.trigger_safely("fault")
                self.bus.publish(EventKind.STATION_LINK, self.id, connected=False,
                                 port=self.camera.source.spec, detail="no frame")
                raise
            self.bus.publish(EventKind.STATION_PROGRESS, self.id, done=1, total=2, remaining_s=0.0)
            result: Inspection = await self.camera.run(inspect_image, frame, job)
            data = await self.camera.run(self._record, frame, result, step, bool(
                step.params.get("annotate", True)))
            # a simulated frame comes at once and compute costs no simulated time: charge the modelled
            # exposure and processing (cell options) so a simulated lot pays what the bench pays
            await charge_compute(self.clock, self.options.exposure_s + self.options.processing_s)
        finally:
            if self.state == StationState.BUSY:
                self.state_machine.trigger_safely("finish")
        self.last, self.inspected = result, self.inspected + 1
        self.bus.publish(EventKind.STATION_PROGRESS, self.id, done=2, total=2, remaining_s=0.0)
        for f in result.features:
            self.bus.publish(EventKind.MEASUREMENT, self.id, part=step.part, feature=f.name,
                             value=f.measured, unit="mm", verdict="pass" if f.ok else "fail")
        duration = self.clock.now() - t0
        if result.verdict == "error":
            return StepResult(ok=False, data=data, verdict="error", reasons=result.reasons,
                              duration_s=duration)
        return StepResult(ok=True, data=data, verdict=result.verdict, reasons=result.reasons,
                          duration_s=duration)

    async def _calibrate(self, step: StepRequest) -> StepResult:
        """Grab the target, calibrate, store the file (``options.calibration`` or beside the images) and
        use it from the next inspection on."""
        assert self.camera is not None
        p = calibrate_params(step.params)
        self.state_machine.trigger_safely("start")
        t0 = self.clock.now()
        try:
            frame = await self.camera.grab()
            cal = await self.camera.run(lambda: calibrate(frame, p.cols, p.rows, p.pitch_mm,
                                                          pattern=p.pattern, focal_px=p.focal_px,
                                                          camera=self.id))
        except ConfigError as exc:
            return StepResult(ok=False, verdict="error", reasons=[str(exc)])
        finally:
            if self.state == StationState.BUSY:
                self.state_machine.trigger_safely("finish")
        path = Path(self.options.calibration or self.images_dir.parent / f"{self.id}-calibration.json")
        path.parent.mkdir(parents=True, exist_ok=True)
        cal.save(path)
        self.options = self.options.model_copy(update={"calibration": str(path)})
        data = {"calibration": str(path), "mm_per_px": cal.mm_per_px, "dist": cal.dist,
                "residual_px": cal.residual_px, "fit_residual_px": cal.fit_residual_px}
        return StepResult(ok=True, data=data, duration_s=self.clock.now() - t0)

    def _record(self, frame: np.ndarray, result: Inspection, step: StepRequest, draw: bool) -> dict[str, Any]:
        data: dict[str, Any] = {"measurements": result.to_json(), "firmware": self.firmware}
        if draw:
            name = re.sub(r"[^A-Za-z0-9_.-]+", "_", step.part or step.key or f"frame{self.inspected}")
            path = self.images_dir / f"{name}-{self.inspected:05d}.png"
            try:
                data["image"], data["sha256"] = str(path), annotate.save(frame, result, path)
            except OSError as exc:
                raise MicrofactoryError(f"cannot save the annotated image {path}: {exc}",
                                        hint="check the camera station's images_dir option") from exc
        return data

    async def preview(self, max_side: int = 960) -> tuple[np.ndarray, float] | None:
        """A small grey copy of what the camera sees now and its scale (preview px per frame px), for
        the operator's live view; takes no frame from the inspection and changes no state. None while
        the camera is closed or has nothing to show."""
        if self.camera is None:
            return None

        def shrink(frame: np.ndarray | None) -> tuple[np.ndarray, float] | None:
            if frame is None:
                return None
            grey = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
            scale = min(1.0, max_side / max(grey.shape[:2]))
            small = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) \
                if scale < 1.0 else grey.copy()
            return small, scale

        frame = await self.camera.peek()
        result: tuple[np.ndarray, float] | None = await self.camera.run(shrink, frame)
        return result

    async def hold(self) -> None:
        """An inspection is short; hold takes effect after the current frame."""
        self.state_machine.trigger_safely("request_hold")
        self.state_machine.trigger_safely("hold_complete")

    async def resume(self) -> None:
        self.state_machine.trigger_safely("resume")
        self.state_machine.trigger_safely("ready")

    async def stop(self) -> None:
        """Nothing moves; stopping only returns the station to idle."""
        self.state_machine.ensure("ready", StationState.IDLE, cause="stop")

    async def reset(self) -> None:
        """Reopen the camera (after a lost link) and return to idle."""
        if self.camera is not None:
            await self.camera.close()
            self.camera = None
        self.state_machine.trigger_safely("link_down")
        await self.connect()

    async def close(self) -> None:
        if self.camera is not None:
            await self.camera.close()
            self.camera = None
        self.state_machine.trigger_safely("link_down")

    def send_stop_bytes(self) -> None:
        """A camera has nothing to stop; the latch (refusing every step until Clear) is all it needs."""
        log.info("%s: emergency stop (camera: nothing to stop)", self.id)
