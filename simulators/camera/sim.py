"""The simulated camera as the cell sees it: a hot folder of rendered frames, one part per frame.

``port: sim`` on a ``camera`` station starts :class:`CameraSimulator`. It renders frames into a
temporary *hot folder* (a folder with a ``HOTFOLDER`` marker, the convention vendor acquisition tools
use): it keeps one frame waiting; when the camera driver takes it (and removes it, as hot-folder
consumers do) the next part is rendered. The driver opens the folder through its ordinary image-sequence
path, so nothing of the simulator leaks into the driver.

Each frame shows one part from the drawing at a slightly random pose, with out-of-focus dust on the
backlight and, at the ``defect_rate``, one defect from ``defect_classes``. ``inject("defect", cls=...)``
puts a defect on the next frame; ``unplug`` removes the folder (the camera is lost); ``replug`` brings
it back; ``dark`` and ``empty`` make the next frame under-exposed or show no part; ``target`` (``cols``,
``rows``, ``pitch_mm``, ``dot_mm``) shows a dot-grid calibration target instead of a part.
Options ``bright_dn`` (above 255 the backlight saturates) and ``front_light`` (a bright part on a dark
field) set the lighting; the drawing may have any outline.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from microfactory.clock import Clock
from microfactory.drawing import Drawing, load_drawing
from simulators.camera.render import Dust, Frame, Optics, Pose, Truth, dot_grid, render
from simulators.camera.scene import DEFECT_CLASSES, Scene, add_defect

log = logging.getLogger("simulators.camera")

DEFAULT_DRAWING = Path(__file__).resolve().parents[2] / "recipes" / "drawings" / "watch-plate.yaml"
PATTERN = "frame_%06d.png"
FAULTS = ("defect", "unplug", "replug", "dark", "empty", "target")


class PartGenerator:
    """Random parts for a lot: pose jitter, dust, and defects at ``defect_rate`` (seeded)."""

    def __init__(self, drawing: Drawing, optics: Optics, *, defect_rate: float = 0.0,
                 defect_classes: tuple[str, ...] = DEFECT_CLASSES, seed: int | None = None,
                 dust: int = 2, shift_px: float = 30.0, rotation_deg: float = 2.0) -> None:
        unknown = set(defect_classes) - set(DEFECT_CLASSES)
        if unknown:
            raise ValueError(f"unknown defect classes {sorted(unknown)}; known: {', '.join(DEFECT_CLASSES)}")
        self.drawing, self.optics = drawing, optics
        self.defect_rate, self.defect_classes = defect_rate, tuple(defect_classes)
        self.rng = np.random.default_rng(seed)
        self.dust, self.shift_px, self.rotation_deg = dust, shift_px, rotation_deg

    def frame(self, defect: str | None = None, optics: Optics | None = None, empty: bool = False) -> Frame:
        """Render the next part; ``defect`` forces one defect class (else the random rate applies)."""
        rng, optics = self.rng, optics or self.optics
        scene = Scene() if empty else Scene.from_drawing(self.drawing)
        if not empty:
            if defect is None and self.defect_classes and rng.random() < self.defect_rate:
                defect = str(rng.choice(self.defect_classes))
            if defect is not None:
                add_defect(scene, self.drawing, defect, rng)
        pose = Pose(float(rng.uniform(-1, 1) * self.shift_px), float(rng.uniform(-1, 1) * self.shift_px),
                    float(rng.uniform(-1, 1) * self.rotation_deg))
        dust = [Dust(float(rng.uniform(0, optics.width)), float(rng.uniform(0, optics.height)),
                     float(rng.uniform(3, 12)), float(rng.uniform(0.05, 0.25)))
                for _ in range(int(rng.integers(0, self.dust + 1)))]
        return render(scene, optics, pose, dust, rng)


class CameraSimulator:
    """A running simulated camera: renders into a hot folder from a background thread."""

    def __init__(self, generator: PartGenerator, folder: Path | None = None) -> None:
        self.generator = generator
        self._own = folder is None
        self.folder = folder or Path(tempfile.mkdtemp(prefix="mf-camera-"))
        self.truths: dict[int, Truth] = {}
        self._index = 0
        self._pending: dict[str, Any] = {}
        self._unplugged = False
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._prepare()
        self._render_next()  # the first frame is there before anyone opens the folder
        self._thread = threading.Thread(target=self._run, name="camera-sim", daemon=True)
        self._thread.start()

    # -- SimulatorHandle --------------------------------------------------------------------------
    @property
    def port(self) -> str:
        return str(self.folder)

    @property
    def identity(self) -> str:
        return f"sim-camera-{self.folder.name}"

    def faults(self) -> list[str]:
        return list(FAULTS)

    def inject(self, fault: str, **params: Any) -> None:
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
        with self._lock:
            if fault == "unplug":
                self._unplugged = True
                shutil.rmtree(self.folder, ignore_errors=True)
                return
            if fault == "replug":
                self._unplugged = False
                self._prepare()
            elif fault == "defect":
                cls = str(params.get("cls", "chip"))
                if cls not in DEFECT_CLASSES:
                    raise ValueError(f"unknown defect class {cls!r}; known: {', '.join(DEFECT_CLASSES)}")
                self._pending["defect"] = cls
            elif fault == "target":
                self._pending["target"] = (int(params.get("cols", 15)), int(params.get("rows", 11)),
                                           float(params.get("pitch_mm", 1.2)),
                                           float(params.get("dot_mm", 0.6)))
            else:
                self._pending[fault] = True
            # the frame waiting in the folder is re-rendered so the *next* grab shows the change
            if not self._unplugged and fault != "replug" and self._waiting() and self._index > 0:
                self._index -= 1
                self._render_next()
        self._wake.set()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5)
        if self._own:
            shutil.rmtree(self.folder, ignore_errors=True)

    # -- internals --------------------------------------------------------------------------------
    def _prepare(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "HOTFOLDER").write_text(PATTERN + "\n", encoding="utf-8")

    def _waiting(self) -> bool:
        return any(self.folder.glob("frame_*.png"))

    def _render_next(self) -> None:
        pending, self._pending = self._pending, {}
        optics = self.generator.optics
        if pending.get("dark"):
            optics = replace(optics, bright_dn=25.0)
        if pending.get("target"):
            frame = render(dot_grid(*pending["target"]), optics, Pose(3.0, -2.0, 0.7), [], self.generator.rng)
        else:
            frame = self.generator.frame(pending.get("defect"), optics, bool(pending.get("empty")))
        ok, png = cv2.imencode(".png", frame.image)
        if not ok:
            raise OSError("cannot encode the rendered frame as PNG")
        tmp = self.folder / f".rendering-{os.getpid()}.tmp"  # written whole, then renamed into place
        tmp.write_bytes(png.tobytes())
        os.replace(tmp, self.folder / (PATTERN % self._index))
        self.truths[self._index] = frame.truth
        self._index += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                try:
                    if not self._unplugged and not self._waiting():
                        self._render_next()
                except OSError as exc:  # folder removed under us (unplug): wait for replug
                    log.info("camera simulator: %s", exc)
            self._wake.wait(0.01)
            self._wake.clear()


class CameraSimulatorFactory:
    """Entry point ``microfactory.simulators: camera``: ``start(options, clock)`` → a running camera."""

    def start(self, options: Mapping[str, Any], clock: Clock) -> CameraSimulator:
        drawing = load_drawing(options.get("drawing", DEFAULT_DRAWING))
        optics = Optics(width=int(options.get("width", 2448)), height=int(options.get("height", 2048)),
                        mm_per_px=float(options.get("mm_per_px", 0.010)),
                        psf_sigma_px=float(options.get("psf_sigma_px", 0.8)),
                        bright_dn=float(options.get("bright_dn", 200.0)),
                        front_light=bool(options.get("front_light", False)))
        classes = options.get("defect_classes", DEFECT_CLASSES)
        generator = PartGenerator(drawing, optics, defect_rate=float(options.get("defect_rate", 0.0)),
                                  defect_classes=tuple(classes), seed=options.get("seed"),
                                  dust=int(options.get("dust", 2)))
        folder = options.get("folder")
        return CameraSimulator(generator, Path(folder) if folder else None)
