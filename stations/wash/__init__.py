"""The ultrasonic wash station: an SCPI-style driver (:class:`WashStation`) and its registered kind.

``KIND`` is what the ``microfactory.stations`` entry point ``wash`` points at: the station class, its
capabilities (``wash`` plus the cell file's), the pre-check of a wash step and the dry-run timing model.
"""

from __future__ import annotations

from microfactory.cell import StationConfig
from microfactory.station import StationKind
from stations.wash.driver import WashStation
from stations.wash.settings import PROGRAMS, WashOptions, WashSettings, check, estimate_s
from stations.wash.timing import WashTiming


def _capabilities(config: StationConfig) -> frozenset[str]:
    return frozenset({"wash", *config.capabilities})


KIND = StationKind(
    name="wash",
    station_class=WashStation,
    capabilities=_capabilities,
    check=check,
    estimate_s=estimate_s,
    options=WashOptions,
    timing=WashTiming,
    description="Ultrasonic washer with a heated bath (SCPI-style serial protocol)",
)

__all__ = ["KIND", "PROGRAMS", "WashOptions", "WashSettings", "WashStation"]
