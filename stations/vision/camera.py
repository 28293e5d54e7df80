"""The camera driver: frames from anything ``cv2.VideoCapture`` opens, grabbed off the event loop.

A source is named by one string (the cell file's ``port``):

* ``0``, ``1`` … — a local camera by device index;
* ``rtsp://…``, ``http://…`` — a network stream;
* a video file (``lot.mp4``);
* an image sequence as a printf pattern (``frames/img_%04d.png``) or a folder holding numbered images.

A folder that contains a file named ``HOTFOLDER`` is a *hot folder*: another program (a vendor's
acquisition tool, or the camera simulator) drops numbered frames into it, and each frame is taken once
and removed, so the producer knows it was consumed. The driver waits up to its answer timeout for the
next frame to appear. A source that cannot be opened or stops giving frames is a
:class:`~microfactory.errors.StationFault`, never a crash.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from microfactory.errors import StationFault

log = logging.getLogger("stations.vision.camera")

HOT_MARKER = "HOTFOLDER"
IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".bmp", ".jpg", ".jpeg", ".pgm")
NUMBERED = re.compile(r"^(.*?)(\d+)(\.[A-Za-z]+)$")


def sequence_pattern(folder: Path) -> str:
    """The printf pattern of the numbered images in ``folder`` (``frame_%06d.png``) for CAP_IMAGES.

    A hot folder's marker may name the pattern (its first line); otherwise the first numbered image
    found sets it.
    """
    marker = folder / HOT_MARKER
    if marker.exists():
        text = marker.read_text(encoding="utf-8").strip()
        if "%" in text:
            return str(folder / text.splitlines()[0])
    for p in sorted(folder.iterdir()):
        m = NUMBERED.match(p.name)
        if m and p.suffix.lower() in IMAGE_SUFFIXES:
            return str(folder / f"{m.group(1)}%0{len(m.group(2))}d{m.group(3)}")
    raise FileNotFoundError(f"no numbered images in {folder}")


class CameraSource:
    """A blocking frame source on ``cv2.VideoCapture``; :class:`Camera` runs it on one worker thread."""

    def __init__(self, spec: str, *, station: str = "camera", width: int | None = None,
                 height: int | None = None, exposure: float | None = None, timeout_s: float = 5.0,
                 loop_video: bool = False) -> None:
        self.spec = spec.strip()
        self.station = station
        self.width, self.height, self.exposure = width, height, exposure
        self.timeout_s = timeout_s
        self.loop_video = loop_video
        self.cap: cv2.VideoCapture | None = None
        self.hot: Path | None = None
        self.pattern = ""
        self.frames = 0
        self.next_index = 0
        self.sequence_open = False
        self._closed = threading.Event()

    def _fault(self, code: str, text: str, recovery: str) -> StationFault:
        return StationFault(self.station, code, f"{text} (source {self.spec!r})", recovery=recovery)

    def open(self) -> None:
        """Open the source; raises :class:`StationFault` when nothing can be opened."""
        spec = self.spec
        cap: cv2.VideoCapture
        if spec.isdigit():
            cap = cv2.VideoCapture(int(spec))
        elif "://" in spec:
            cap = cv2.VideoCapture(spec)
        else:
            path = Path(spec)
            if path.is_dir():
                if (path / HOT_MARKER).exists():
                    self.hot = path
                try:
                    self.pattern = sequence_pattern(path)
                except (FileNotFoundError, OSError) as exc:
                    raise self._fault("no-source", str(exc), "put numbered frames in the folder") from None
                self._open_sequence()
                return
            elif "%" in spec:
                self.pattern = spec
                self._open_sequence()
                return
            elif path.exists():
                cap = cv2.VideoCapture(spec)
            else:
                raise self._fault("no-source", "no such camera, file or folder",
                                  "check the station's port: a device index, a video file, an image folder "
                                  "or pattern, or a stream URL")
        if not cap.isOpened():
            raise self._fault("open-failed", "the camera source could not be opened",
                              "check the cable or path and that no other program holds the camera")
        for prop, value in ((cv2.CAP_PROP_FRAME_WIDTH, self.width), (cv2.CAP_PROP_FRAME_HEIGHT, self.height),
                            (cv2.CAP_PROP_EXPOSURE, self.exposure)):
            if value is not None and not cap.set(prop, float(value)):
                log.info("%s: the backend ignores property %s", self.spec, prop)
        self.cap = cap

    def _open_sequence(self) -> None:
        """An image sequence is read one numbered file at a time; a hot folder may still be empty."""
        self.next_index = self._first_index()
        if Path(self.pattern % self.next_index).exists():
            probe = self._open_frame(self.next_index)
            opened = probe.isOpened()
            probe.release()
            if not opened:
                raise self._fault("open-failed", "the first frame cannot be read",
                                  "check that the folder holds images OpenCV can read (PNG, TIFF ...)")
        elif self.hot is None:
            raise self._fault("no-source", "no frames match the pattern", "check the pattern and folder")
        self.sequence_open = True

    @property
    def live(self) -> bool:
        """A device or a network stream (not a file or a folder)."""
        return self.spec.isdigit() or "://" in self.spec

    @property
    def backend(self) -> str:
        if self.sequence_open:
            return "CV_IMAGES"
        return self.cap.getBackendName() if self.cap is not None else ""

    def grab(self) -> np.ndarray:
        """Take the next frame (waiting up to ``timeout_s`` for a hot folder's next file)."""
        if self.cap is None and not self.sequence_open:
            raise self._fault("not-open", "the camera is not open", "connect the station first")
        deadline = time.monotonic() + self.timeout_s
        reopened = False
        while True:
            if self.sequence_open:
                ok, frame = self._read_sequence()
            else:
                assert self.cap is not None
                ok, frame = self.cap.read()
            if ok and frame is not None:
                self.frames += 1
                if self.hot is not None:
                    Path(self.pattern % self.next_index).unlink(missing_ok=True)
                self.next_index += 1
                return frame
            if self.loop_video and self.frames > 0 and self.cap is not None:
                self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                continue
            if self.live and not reopened:  # a camera or stream that hiccupped: reopen it once
                reopened = True
                self.close()
                self._closed.clear()
                try:
                    self.open()
                except StationFault as exc:
                    log.warning("%s: reopening after a lost frame failed: %s", self.spec, exc.text)
                if self.cap is not None:
                    continue
            waiting = self.pattern and (self.hot is None or self.hot.exists())
            if not waiting or time.monotonic() > deadline or self._closed.is_set():
                raise self._fault("lost", "the camera gave no frame",
                                  "check the camera's cable and power (or the frame source), then reset "
                                  "the station")
            self._closed.wait(0.005)

    def peek(self) -> np.ndarray | None:
        """The frame the camera sees now, without taking it: a hot folder's waiting frame stays for the
        next inspection, a numbered sequence does not advance, a live camera gives its newest frame, a
        recorded video has no live view (None). For the operator's live view only."""
        if self.sequence_open:
            if self.hot is not None and not self.hot.exists():
                return None
            index = self._first_index() if self.hot is not None else self.next_index
            if not Path(self.pattern % index).exists():
                return None
            cap = self._open_frame(index)
            try:
                ok, frame = cap.read()
            finally:
                cap.release()
            return frame if ok else None
        if self.cap is not None and self.live:
            ok, frame = self.cap.read()
            return frame if ok else None
        return None

    def _open_frame(self, index: int) -> cv2.VideoCapture:
        """One numbered frame as a one-image capture (CAP_IMAGES only scans the first few numbers)."""
        return cv2.VideoCapture(self.pattern % index, cv2.CAP_IMAGES)

    def _read_sequence(self) -> tuple[bool, np.ndarray | None]:
        if self.hot is not None:  # a hot folder is read oldest (lowest number) first
            if not self.hot.exists():
                return False, None
            self.next_index = self._first_index()
        path = Path(self.pattern % self.next_index)
        if not path.exists():
            return False, None  # not written yet (asking OpenCV would only log a warning)
        cap = self._open_frame(self.next_index)
        try:
            ok, frame = cap.read()
        finally:
            cap.release()
        return ok, frame

    def _first_index(self) -> int:
        """Lowest frame number present for the pattern (OpenCV starts there too)."""
        head, _, tail = Path(self.pattern).name.partition("%")
        m = re.match(r"0?(\d*)d(.*)$", tail)
        suffix = m.group(2) if m else ""
        numbers = [int(p.name[len(head):len(p.name) - len(suffix)]) for p in Path(self.pattern).parent.glob(
            f"{head}*{suffix}") if p.name[len(head):len(p.name) - len(suffix)].isdigit()]
        return min(numbers, default=0)

    def close(self) -> None:
        self._closed.set()
        self.sequence_open = False
        if self.cap is not None:
            self.cap.release()
            self.cap = None


class Camera:
    """Async face of a :class:`CameraSource`: every call runs on one worker thread, never on the loop."""

    def __init__(self, source: CameraSource) -> None:
        self.source = source
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"camera-{source.station}")

    async def _run(self, fn, *args):  # type: ignore[no-untyped-def]
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def open(self) -> None:
        await self._run(self.source.open)

    async def grab(self) -> np.ndarray:
        frame: np.ndarray = await self._run(self.source.grab)
        return frame

    async def peek(self) -> np.ndarray | None:
        """The frame seen now, not taken (see :meth:`CameraSource.peek`), in order with the grabs."""
        frame: np.ndarray | None = await self._run(self.source.peek)
        return frame

    async def run(self, fn, *args):  # type: ignore[no-untyped-def]
        """Run CPU work (inspection) on the camera's worker, in order with the grabs."""
        return await self._run(fn, *args)

    async def close(self) -> None:
        self.source._closed.set()
        await self._run(self.source.close)
        self._pool.shutdown(wait=False)
