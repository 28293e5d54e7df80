"""Qt slots that never let an exception escape (PyQt6 aborts the whole app when one does).

``@guarded`` wraps a widget method used as a slot: a :class:`MicrofactoryError` (a refusal, a station
that did not connect, an engine not running) is shown to the operator through the widget's
``show_error(text)``; anything else is a bug, logged with its traceback and shown as one. Never silent,
never fatal: the E-stop button must still work after any failure.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from microfactory.errors import MicrofactoryError

log = logging.getLogger("ui.slots")
F = TypeVar("F", bound=Callable[..., Any])


class ShowsErrors(Protocol):
    def show_error(self, text: str) -> None: ...


def guarded(method: F) -> F:
    """Make ``method`` (a slot of a widget with ``show_error``) safe to call from Qt."""
    @functools.wraps(method)
    def slot(self: ShowsErrors, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except MicrofactoryError as exc:
            self.show_error(str(exc))
        except Exception as exc:  # a bug: reported with its traceback, the app keeps running
            log.exception("%s failed", method.__qualname__)
            self.show_error(f"internal error in {method.__name__}: {exc!r} (logged; please report it)")
        return None

    return slot  # type: ignore[return-value]
