"""Each defect class is found (with its class and a box on the truth); dust on the backlight is not."""

from __future__ import annotations

import pytest
from vision_support import OPTICS, drawing, frame

from simulators.camera import DEFECT_CLASSES, Dust
from stations.vision import Settings, inspect_image


def _overlaps(a: tuple[int, int, int, int], b: tuple[int, int, int, int], pad: int = 4) -> bool:
    return not (a[0] > b[0] + b[2] + pad or b[0] > a[0] + a[2] + pad or
                a[1] > b[1] + b[3] + pad or b[1] > a[1] + a[3] + pad)


@pytest.mark.parametrize("cls", [c for c in DEFECT_CLASSES if not c.endswith("size_hole")])
@pytest.mark.parametrize("seed", [11, 12])
def test_defect_found_with_class_and_box(cls: str, seed: int) -> None:
    f = frame(seed, defect=cls)
    result = inspect_image(f.image, Settings(OPTICS.mm_per_px, drawing()))
    assert result.verdict == "fail"
    truth = f.truth.defects[0]
    hits = [d for d in result.defects if d.cls == cls]
    assert hits, f"{cls} not found; found {[d.cls for d in result.defects]}"
    assert any(_overlaps(d.bbox, truth.bbox) for d in hits)


@pytest.mark.parametrize("cls", ["oversize_hole", "undersize_hole"])
def test_wrong_hole_size_fails_its_feature(cls: str) -> None:
    f = frame(13, defect=cls)
    result = inspect_image(f.image, Settings(OPTICS.mm_per_px, drawing()))
    hole = f.truth.defects[0].hole
    failed = [x for x in result.features if not x.ok]
    assert [x.name for x in failed] == [f"{hole}.diameter"]
    assert (failed[0].deviation > 0) == (cls == "oversize_hole")


@pytest.mark.parametrize("seed", [21, 22, 23])
def test_dust_on_the_backlight_does_not_reject_a_good_part(seed: int) -> None:
    plain = frame(seed)
    # dark, out-of-focus specks right on a hole rim, on the outline and in the open
    spots = []
    for h in plain.truth.holes:
        spots.append(Dust(h.x_px + h.r_px, h.y_px, 8.0, 0.25))
    spots += [Dust(512, 100, 10.0, 0.25), Dust(100, 400, 5.0, 0.2)]
    f = frame(seed, dust=spots)
    result = inspect_image(f.image, Settings(OPTICS.mm_per_px, drawing()))
    assert result.verdict == "pass", result.reasons
    assert not result.defects


def test_thresholds_come_from_the_recipe() -> None:
    f = frame(11, defect="chip")
    d = drawing()
    lenient = d.defects.model_copy(update={"chip_mm": 0.5})
    assert inspect_image(f.image, Settings(OPTICS.mm_per_px, d, lenient)).verdict == "pass"


@pytest.mark.parametrize("hole", ["A", "B", "C"])
def test_a_chip_on_a_hole_rim_names_that_hole(hole: str) -> None:
    import numpy as np

    from simulators.camera import Pose, Scene, render
    from simulators.camera.scene import Disc

    d = drawing()
    scene = Scene.from_drawing(d)
    h = d.hole(hole)
    scene.removed.append(Disc(h.x + h.d / 2 + 0.004, h.y, 0.015))  # bites into the rim, outward
    f = render(scene, OPTICS, Pose(5.0, -3.0, 1.0), [], np.random.default_rng(3))
    result = inspect_image(f.image, Settings(OPTICS.mm_per_px, d))
    assert [(x.cls, x.where) for x in result.defects] == [("chip", hole)]
