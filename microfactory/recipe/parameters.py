"""Recipe parameters: typed values with a unit and bounds, and ``${name}`` substitution.

An operator changes a recipe's behaviour by its parameters only (laser power, feed, wash time ...), never
by editing G-code. A parameter is declared once in the recipe (type, unit, default, min, max) and used as
``${name}`` in step fields and in G-code templates. :func:`resolve_values` merges the defaults with the
values given for one run (``--set NAME=VALUE`` or the app's form), converting text to the declared type
and checking the bounds; :func:`substitute` expands the references.

``$${`` writes a literal ``${`` (rarely needed: G-code has no use for it).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

#: ``${name}``; names are identifiers (letters, digits, underscore, not starting with a digit).
REFERENCE = re.compile(r"\$\{([^}]*)\}")
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ESCAPE = "$${"
_ESCAPE_MARK = "\x00ESCAPED-DOLLAR-BRACE\x00"

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


class UnknownParameter(LookupError):
    """A ``${name}`` reference to a parameter the recipe does not declare.

    ``column`` is the 1-based column of the ``$`` inside the text that held the reference.
    """

    def __init__(self, name: str, known: list[str], column: int) -> None:
        self.name = name
        self.known = known
        self.column = column
        names = ", ".join(sorted(known)) or "none"
        super().__init__(f"unknown parameter ${{{name}}} (declared: {names})")


class ParameterValueError(ValueError):
    """A value that does not fit its parameter's type or bounds; the message says which and why."""


@dataclass(frozen=True)
class ParameterSpec:
    """What the recipe declares about one parameter (units are free text, e.g. ``mm/min``, ``°C``)."""

    name: str
    type: str  # "int" | "float" | "str" | "bool"
    default: Any
    unit: str = ""
    min: float | None = None
    max: float | None = None
    description: str = ""
    #: what an operator reads (``Laser power``); the name is what recipes and ``--set`` write
    label: str = ""
    #: False: fixed by the engineer, not offered in the run dialog (still set with ``--set``)
    adjustable: bool = True

    @property
    def title(self) -> str:
        """The label, or the name made readable (``laser_power`` → ``Laser power``)."""
        return self.label or self.name.replace("_", " ").strip().capitalize()

    def convert(self, value: Any) -> Any:
        """``value`` (typed or text from the command line) as this parameter's type, within bounds."""
        typed = _as_type(self.type, value, self.name)
        self.check_bounds(typed)
        return typed

    def check_bounds(self, value: Any) -> None:
        """Raise :class:`ParameterValueError` if a number lies outside ``[min, max]``."""
        if self.type not in ("int", "float"):
            return
        unit = f" {self.unit}" if self.unit else ""
        if self.min is not None and value < self.min:
            raise ParameterValueError(f"{self.name} = {value}{unit} is below its minimum {self.min:g}{unit}")
        if self.max is not None and value > self.max:
            raise ParameterValueError(f"{self.name} = {value}{unit} is above its maximum {self.max:g}{unit}")

    @property
    def bounds_text(self) -> str:
        """``"0..1000 S"``-style text for hints; empty when unbounded."""
        if self.min is None and self.max is None:
            return ""
        lo = "" if self.min is None else f"{self.min:g}"
        hi = "" if self.max is None else f"{self.max:g}"
        return f"{lo}..{hi}{' ' + self.unit if self.unit else ''}"


def _shown(value: Any) -> str:
    """``value`` as a message shows it: its repr, cut to 40 characters."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}... ({len(text)} characters)"


def _as_type(kind: str, value: Any, name: str) -> Any:
    if kind == "bool":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ParameterValueError(f"{name} needs true or false, not {value!r}")
    if kind == "str":
        if isinstance(value, (dict, list)):
            raise ParameterValueError(f"{name} needs a text value, not {type(value).__name__}")
        return str(value)
    if isinstance(value, bool):
        raise ParameterValueError(f"{name} needs a number ({kind}), not {value!r}")
    try:
        if kind == "int":
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value) if not isinstance(value, str) else int(value.strip(), 10)
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        text = str(value).strip()
        if text.lstrip("+-").isdigit() and len(text) > 30:
            raise ParameterValueError(f"{name}: a number of {len(text)} digits is out of any range") from None
        raise ParameterValueError(f"{name} needs {'a whole number' if kind == 'int' else 'a number'}, "
                                  f"not {_shown(value)}") from None
    if not math.isfinite(number):
        raise ParameterValueError(f"{name} needs a finite number, not {_shown(value)} (NaN and infinity pass "
                                  "no bounds check)")
    return number


def resolve_values(specs: Mapping[str, ParameterSpec], given: Mapping[str, Any] | None
                   ) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Merge defaults with ``given``; return the values and the problems as ``(name, text)``.

    Every problem is collected (an unknown name, a value of the wrong type, a value out of bounds), so a
    user fixing a ``--set`` list sees all of them at once.
    """
    values: dict[str, Any] = {name: spec.default for name, spec in specs.items()}
    problems: list[tuple[str, str]] = []
    for name, raw in (given or {}).items():
        spec = specs.get(name)
        if spec is None:
            known = ", ".join(sorted(specs)) or "none"
            problems.append((name, f"unknown parameter {name!r} (declared: {known})"))
            continue
        try:
            values[name] = spec.convert(raw)
        except ParameterValueError as exc:
            problems.append((name, str(exc)))
    return values, problems


def references(text: str) -> Iterator[tuple[str, int]]:
    """Each ``${name}`` in ``text`` as ``(name, 1-based column)``, skipping escaped ``$${``."""
    for m in REFERENCE.finditer(text):
        start = m.start()
        if start > 0 and text[start - 1] == "$":
            continue
        yield m.group(1).strip(), start + 1


def format_value(value: Any) -> str:
    """A value as it appears in text and G-code: ``1200.0`` → ``1200``, ``0.25`` → ``0.25``, bool → 1/0."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        text = f"{value:.4f}".rstrip("0").rstrip(".")
        return "0" if text in ("-0", "") else text
    return str(value)


def substitute_text(text: str, values: Mapping[str, Any]) -> str:
    """Expand every ``${name}`` in ``text``; raise :class:`UnknownParameter` for the first unknown one."""
    protected = text.replace(_ESCAPE, _ESCAPE_MARK)

    def expand(m: re.Match[str]) -> str:
        name = m.group(1).strip()
        if name not in values:
            raise UnknownParameter(name, list(values), m.start() + 1)
        return format_value(values[name])

    return REFERENCE.sub(expand, protected).replace(_ESCAPE_MARK, "${")


def substitute(value: Any, values: Mapping[str, Any]) -> Any:
    """Expand references in a field value.

    A string that is exactly one reference (``"${feed}"``) becomes the parameter's typed value, so a
    numeric field stays a number; other strings are expanded as text; lists and mappings recursively.
    """
    if isinstance(value, str):
        m = REFERENCE.fullmatch(value.strip())
        if m and not value.strip().startswith("$${"):
            name = m.group(1).strip()
            if name not in values:
                raise UnknownParameter(name, list(values), value.find("$") + 1)
            return values[name]
        return substitute_text(value, values)
    if isinstance(value, list):
        return [substitute(v, values) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, values) for k, v in value.items()}
    return value
