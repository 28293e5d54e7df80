"""What a washer's error entry means for the operator: the fault raised and the recovery offered."""

from __future__ import annotations

from collections.abc import Sequence

from microfactory.errors import StationFault
from stations.wash.scpi import DeviceError

LID_RECOVERY = "close the lid and press Reset"
LEVEL_RECOVERY = "top up the bath and press Reset"
HEATER_RECOVERY = "check the heater and the fluid, power-cycle the washer, then press Reset"


def recovery_for(error: DeviceError) -> str:
    """What the operator does about a device error (the words on the alarm banner)."""
    text = error.text.lower()
    if "lid" in text:
        return LID_RECOVERY
    if "level" in text:
        return LEVEL_RECOVERY
    if "standby" in text:
        return "the washer is in standby: press Reset (the station wakes it), then run the step again"
    if error.code == -310:
        return HEATER_RECOVERY
    if error.code in (-100, -102, -113):
        return ("the washer did not understand a line: if it happens again, check the cable (noise) and "
                "the washer's firmware against the protocol page")
    if error.code == -222:
        return "a set point was out of the washer's range: check the recipe's wash step"
    return "see the washer's manual for this error, then press Reset"


def fault_from(station: str, errors: Sequence[DeviceError], during: str, *, phase: str = "") -> StationFault:
    """The fault for the error entries read ``during`` something (oldest first); none → the phase alone."""
    if not errors:
        return StationFault(station, phase or "FAULT", f"the washer is in {phase or 'FAULT'} ({during}) and "
                            "its error queue is empty",
                            recovery="check the washer's display, then press Reset")
    first = errors[0]
    more = "; then " + "; ".join(str(e) for e in errors[1:]) if errors[1:] else ""
    return StationFault(station, str(first.code), f"{first.text} ({during}){more}",
                        recovery=recovery_for(first))
