"""The camera driver over real sources written by the test: a video file, an image folder, a hot folder;
a lost source is a StationFault, not a crash."""

from __future__ import annotations

import asyncio
from pathlib import Path

import cv2
import numpy as np
import pytest

from microfactory.errors import StationFault
from stations.vision.camera import HOT_MARKER, Camera, CameraSource


def _frames(n: int) -> list[np.ndarray]:
    return [np.full((96, 128, 3), 40 + 40 * i, np.uint8) for i in range(n)]


def test_video_file(tmp_path: Path) -> None:
    path = tmp_path / "lot.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 5, (128, 96))
    assert writer.isOpened()
    for f in _frames(3):
        writer.write(f)
    writer.release()
    source = CameraSource(str(path), timeout_s=0.2)
    source.open()
    levels = [int(source.grab().mean()) for _ in range(3)]
    assert levels == pytest.approx([40, 80, 120], abs=4)
    with pytest.raises(StationFault, match="gave no frame"):
        source.grab()
    source.close()


def test_image_folder_and_pattern(tmp_path: Path) -> None:
    for i, f in enumerate(_frames(3)):
        cv2.imwrite(str(tmp_path / f"img_{i + 7:04d}.png"), f[:, :, 0])
    for spec in (str(tmp_path), str(tmp_path / "img_%04d.png")):
        source = CameraSource(spec, timeout_s=0.1)
        source.open()
        assert [int(source.grab().mean()) for _ in range(3)] == [40, 80, 120]
        source.close()


def test_hot_folder_consumes_frames_and_waits_for_the_next(tmp_path: Path) -> None:
    (tmp_path / HOT_MARKER).write_text("frame_%06d.png\n")
    cv2.imwrite(str(tmp_path / "frame_000000.png"), np.full((64, 64), 10, np.uint8))

    async def go() -> list[int]:
        camera = Camera(CameraSource(str(tmp_path), timeout_s=5.0))
        await camera.open()
        first = await camera.grab()
        assert not (tmp_path / "frame_000000.png").exists()  # taken once, removed
        waiting = asyncio.ensure_future(camera.grab())
        await asyncio.sleep(0.05)
        assert not waiting.done()  # the loop stays free while the grab waits on the worker
        cv2.imwrite(str(tmp_path / "frame_000001.png"), np.full((64, 64), 20, np.uint8))
        second = await asyncio.wait_for(waiting, 5)
        await camera.close()
        return [int(first.mean()), int(second.mean())]

    assert asyncio.run(go()) == [10, 20]


def test_lost_hot_folder_is_a_station_fault(tmp_path: Path) -> None:
    (tmp_path / HOT_MARKER).write_text("frame_%06d.png\n")
    cv2.imwrite(str(tmp_path / "frame_000000.png"), np.full((64, 64), 10, np.uint8))
    source = CameraSource(str(tmp_path), station="cam", timeout_s=5.0)
    source.open()
    source.grab()
    for p in tmp_path.iterdir():
        p.unlink()
    tmp_path.rmdir()
    with pytest.raises(StationFault) as err:
        source.grab()
    assert err.value.station == "cam" and err.value.code == "lost" and err.value.recovery


@pytest.mark.parametrize("spec", ["/no/such/camera.avi", "99"])
def test_source_that_cannot_open(spec: str) -> None:
    with pytest.raises(StationFault):
        CameraSource(spec).open()
