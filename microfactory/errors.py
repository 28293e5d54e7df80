"""One error hierarchy for the whole controller.

Every error says what happened, where, and what the user can do about it: the CLI prints ``str(error)``
and exits non-zero, the app shows it in a banner, the journal stores it. Subclasses carry the structured
fields (file/line/field, port/sent/received, station/code/recovery, limit/value) so callers can act on
them without parsing text.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class MicrofactoryError(Exception):
    """Base of every error this project raises on purpose.

    ``hint`` is the one sentence telling the user what to do next; it is appended to the message.
    """

    def __init__(self, message: str, *, hint: str = "") -> None:
        self.message = message
        self.hint = hint
        super().__init__(self.__str__())

    def __str__(self) -> str:
        return f"{self.message}\n  → {self.hint}" if self.hint else self.message


@dataclass(frozen=True)
class SourceLocation:
    """A place in a text file (1-based line and column) and the dotted field path inside it."""

    file: str
    line: int | None = None
    column: int | None = None
    field: str = ""

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.field}" if self.field else where


class ConfigError(MicrofactoryError):
    """A cell file, recipe or drawing that does not parse or does not validate.

    Holds every problem found (not only the first), each with its location.
    """

    def __init__(self, problems: list[tuple[SourceLocation, str]], *, hint: str = "") -> None:
        self.problems = problems
        lines = [f"{loc}: {text}" for loc, text in problems]
        super().__init__("\n".join(lines) if lines else "invalid configuration", hint=hint)

    @classmethod
    def single(cls, file: str | Path, message: str, *, line: int | None = None, column: int | None = None,
               field: str = "", hint: str = "") -> ConfigError:
        return cls([(SourceLocation(str(file), line, column, field), message)], hint=hint)


class CommunicationError(MicrofactoryError):
    """The link to a station failed: port missing or busy, garbled bytes, no answer, disconnect."""

    def __init__(self, message: str, *, port: str = "", sent: bytes | str | None = None,
                 received: bytes | None = None, hint: str = "") -> None:
        self.port = port
        self.sent = sent
        self.received = received
        details = message
        if port:
            details = f"{port}: {details}"
        if sent is not None:
            details += f" (sent {sent!r})"
        if received is not None:
            details += f" (received {received[:80]!r})"
        super().__init__(details, hint=hint)


class PortNotFound(CommunicationError):
    """No serial port matches the path or USB identity given."""


class StationTimeout(CommunicationError):
    """A station did not answer within its timeout for the phase named in the message."""


class Disconnected(CommunicationError):
    """The port went away (cable pulled, device reset, simulator unplugged)."""


class ProtocolError(CommunicationError):
    """The station answered something its protocol does not allow here."""


class StationFault(MicrofactoryError):
    """The station reports a fault or alarm; ``recovery`` says what clears it."""

    def __init__(self, station: str, code: str, text: str, *, recovery: str = "") -> None:
        self.station = station
        self.code = code
        self.text = text
        self.recovery = recovery
        super().__init__(f"station {station!r}: {code}: {text}", hint=recovery)


class SafetyRefusal(MicrofactoryError):
    """The controller refused to send something that would break a machine limit or an interlock.

    Nothing was sent. ``limit`` names the limit, ``value`` the offending value, ``where`` the source
    (e.g. ``part.nc:12``).
    """

    def __init__(self, message: str, *, limit: str = "", value: object = None, where: str = "",
                 hint: str = "") -> None:
        self.limit = limit
        self.value = value
        self.where = where
        prefix = f"{where}: " if where else ""
        super().__init__(f"{prefix}{message}", hint=hint)


class InterlockOpen(SafetyRefusal):
    """An interlock (lid, door, level, E-stop latch) forbids the action until it clears."""


class StateError(MicrofactoryError):
    """A command that is not allowed in the current state (e.g. Start while Held)."""


class AccessDenied(MicrofactoryError):
    """Sign-in refused, a session expired, a locked account, or a role that may not do this (21 CFR 11)."""
