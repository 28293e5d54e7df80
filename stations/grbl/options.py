"""The ``options:`` block of a Grbl station in the cell file (validated when the cell loads)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class GrblOptions(BaseModel):
    """Driver settings; an unknown key is refused, so a typo never silently changes nothing."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    poll_hz: float = Field(default=10.0, ge=5, le=20, description="status reports per second (Hz)")
    send_response: bool = Field(default=False, description="stream send-response, not character counting")
    stop_on_error: bool = Field(default=True, description="stop streaming at the first error:N")
    reset_on_connect: bool = Field(default=True, description="soft reset on connect for a fresh banner")
    auto_reconnect: bool = Field(default=True, description="reconnect by identity when the link drops")
