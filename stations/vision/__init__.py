"""The vision-inspect station: camera driver, calibration, sub-pixel measurement, defects, verdicts.

``KIND`` is the ``microfactory.stations`` entry point named ``camera``. The measuring pipeline is usable
without a station: :func:`~stations.vision.inspect.inspect_image` with
:class:`~stations.vision.inspect.Settings`.
"""

from microfactory.station import StationKind
from stations.vision.inspect import Inspection, Settings, inspect_image
from stations.vision.job import CameraOptions
from stations.vision.station import VisionStation, check, estimate_s

KIND = StationKind(
    name="camera",
    station_class=VisionStation,
    capabilities=lambda config: frozenset({"inspect"}),
    check=check,
    estimate_s=estimate_s,
    options=CameraOptions,
    description="Backlit inspection camera (OpenCV VideoCapture): sub-pixel holes and edges, defects, "
                "verdicts against a drawing",
)

__all__ = ["KIND", "Inspection", "Settings", "VisionStation", "inspect_image"]
