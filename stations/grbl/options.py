"""The ``options:`` block of a Grbl station in the cell file (validated when the cell loads)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from microfactory.errors import ConfigError, SourceLocation


class GrblOptions(BaseModel):
    """Driver settings; an unknown key is refused, so a typo never silently changes nothing."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    poll_hz: float = Field(default=10.0, ge=5, le=20, description="status reports per second (Hz) while "
                           "the machine runs, jogs, homes or holds, or lines wait for their answer")
    idle_poll_hz: float = Field(default=1.0, ge=0.2, le=20,
                                description="status reports per second (Hz) while the machine is at rest "
                                "(Idle, Sleep, Alarm) and nothing was sent for 1 s; at most poll_hz")
    send_response: bool = Field(default=False, description="stream send-response, not character counting")
    stop_on_error: bool = Field(default=True, description="stop streaming at the first error:N")
    reset_on_connect: bool = Field(default=True, description="soft reset on connect for a fresh banner")
    auto_reconnect: bool = Field(default=True, description="reconnect by identity when the link drops")
    progress_every: int = Field(default=0, ge=0, description="publish progress every N answered lines "
                                "(0: about ten times a second); fewer events leave the link more host time")
    home_on_connect: bool = Field(default=False, description="connect policy: a machine found in Alarm "
                                  "after power-up or reset (homing enabled, $22=1; an Arduino resets on each "
                                  "port open) runs its homing cycle ($H) on connect and reconnect; off: the "
                                  "station connects in Alarm and says how to home or unlock it")
    machine_settings: dict[int, float] = Field(default_factory=dict, description="the machine's own `$$` "
                                               "values the dry run times programs with ($110-$112 max rates "
                                               "mm/min, $120-$122 accelerations mm/s², $27 pull-off mm); a "
                                               "simulated station also uses its sim: settings")
    sleep_on_standby: bool = Field(default=True, description="standby sends $SLP (spindle, laser and "
                                   "steppers off); waking soft-resets and unlocks")

    @classmethod
    def of(cls, options: Mapping[str, Any], *, station: str = "") -> GrblOptions:
        """Validate a station's ``options:`` map; raise :class:`ConfigError` naming each bad key."""
        try:
            return cls.model_validate(dict(options))
        except ValidationError as exc:
            problems = [(SourceLocation("<cell>", field=f"stations.{station}.options."
                                        + ".".join(str(p) for p in err["loc"])), str(err["msg"]))
                        for err in exc.errors()]
            raise ConfigError(problems, hint="see the grbl options in docs/cells.md") from None
