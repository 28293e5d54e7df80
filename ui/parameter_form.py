"""A form for a recipe's parameters: one field per parameter, its human label and unit, its bounds, and
its error under it in the core's own words.

Used by the recipe editor (new defaults for a new version) and the run dialog (this lot's values). A
spin box's range is left open so a wrong value can be typed and is then explained, instead of being
silently clamped; the bounds are the core's (:meth:`ParameterSpec.check_bounds`), checked at once on
the GUI thread (arithmetic only), while the full validation runs on a worker thread in the caller.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from PyQt6.QtCore import pyqtSignal
from PyQt6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from microfactory.recipe.parameters import ParameterSpec, ParameterValueError

ERROR_STYLE = "color: #c62828;"


def bound_problem(spec: ParameterSpec, value: Any) -> str:
    """The inline error for ``value`` in the core's own words, or empty when it is within bounds."""
    if spec.type in ("int", "float") and isinstance(value, (int, float)):
        try:
            spec.check_bounds(value)
        except ParameterValueError as exc:
            text = str(exc)
            if text.startswith(f"{spec.name} "):  # the operator reads the label, not the recipe's name
                text = spec.title + text[len(spec.name):]
            return f"{text} — enter a value between {spec.min:g} and {spec.max:g}" \
                if spec.min is not None and spec.max is not None else text
    return ""


def decimals_for(spec: ParameterSpec) -> int:
    """Decimals a float field shows: 3 for small quantities (a 0.05 mm depth), 1 for large ones (feeds)."""
    numbers = [abs(float(x)) for x in (spec.min, spec.max, spec.default) if isinstance(x, (int, float))]
    return 3 if max(numbers, default=1.0) < 10 else 1


def label_text(spec: ParameterSpec) -> str:
    """``Laser power (S) [200…1000]``: the parameter's label, unit and bounds as the form shows them."""
    unit = f" ({spec.unit})" if spec.unit else ""
    bounds = f" [{spec.min:g}…{spec.max:g}]" if spec.min is not None and spec.max is not None else ""
    return f"{spec.title}{unit}{bounds}"


class ParameterForm(QWidget):
    """Fields for ``specs``; ``edited`` fires on every change (the caller re-validates)."""

    edited = pyqtSignal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.specs: dict[str, ParameterSpec] = {}
        self.fields: dict[str, QWidget] = {}
        self.errors: dict[str, QLabel] = {}
        self.form = QFormLayout(self)
        self.form.setContentsMargins(0, 0, 0, 0)

    def show_specs(self, specs: Iterable[ParameterSpec], values: Mapping[str, Any] | None = None) -> None:
        """Rebuild the form for ``specs``, filled with ``values`` (else each default)."""
        while self.form.rowCount():
            self.form.removeRow(0)
        self.specs = {spec.name: spec for spec in specs}
        self.fields.clear()
        self.errors.clear()
        for name, spec in self.specs.items():
            field = self._field(spec, (values or {}).get(name, spec.default))
            error = QLabel("")
            error.setObjectName(f"error_{name}")
            error.setWordWrap(True)
            error.setStyleSheet(ERROR_STYLE)
            holder = QWidget()
            row = QVBoxLayout(holder)
            row.setContentsMargins(0, 0, 0, 0)
            row.addWidget(field)
            row.addWidget(error)
            label = QLabel(label_text(spec))
            label.setWordWrap(True)
            label.setToolTip(f"{spec.description}\n(recipe name: {name})" if spec.description else name)
            self.form.addRow(label, holder)
            self.fields[name], self.errors[name] = field, error

    def _field(self, spec: ParameterSpec, value: Any) -> QWidget:
        widget: QWidget
        if spec.type == "int":
            box = QSpinBox()
            box.setRange(-2_000_000_000, 2_000_000_000)
            box.setValue(int(value))
            box.valueChanged.connect(lambda _v: self.edited.emit())
            widget = box
        elif spec.type == "float":
            dbox = QDoubleSpinBox()
            dbox.setDecimals(decimals_for(spec))
            dbox.setRange(-1e9, 1e9)
            if spec.min is not None and spec.max is not None:
                dbox.setSingleStep(round((spec.max - spec.min) / 100, decimals_for(spec)) or 0.001)
            dbox.setValue(float(value))
            dbox.valueChanged.connect(lambda _v: self.edited.emit())
            widget = dbox
        elif spec.type == "bool":
            check = QCheckBox()
            check.setChecked(bool(value))
            check.toggled.connect(lambda _v: self.edited.emit())
            widget = check
        else:
            line = QLineEdit(str(value))
            line.textChanged.connect(lambda _v: self.edited.emit())
            widget = line
        if spec.unit and isinstance(widget, (QSpinBox, QDoubleSpinBox)):
            widget.setSuffix(f" {spec.unit}")
        widget.setObjectName(f"param_{spec.name}")
        widget.setMinimumHeight(40)
        widget.setToolTip(spec.description)
        return widget

    def values(self) -> dict[str, Any]:
        """The values as typed, by parameter name."""
        out: dict[str, Any] = {}
        for name, widget in self.fields.items():
            if isinstance(widget, (QSpinBox, QDoubleSpinBox)):
                out[name] = widget.value()
            elif isinstance(widget, QCheckBox):
                out[name] = widget.isChecked()
            elif isinstance(widget, QLineEdit):
                out[name] = widget.text()
        return out

    def check_bounds(self) -> bool:
        """Show each field's bound error under it; True when every value is within its bounds."""
        values = self.values()
        ok = True
        for name, spec in self.specs.items():
            problem = bound_problem(spec, values.get(name))
            self.errors[name].setText(problem)
            ok = ok and not problem
        return ok

    def show_problem(self, name: str, text: str) -> bool:
        """Put a located problem of the core's validation under its field; False if no such field."""
        label = self.errors.get(name)
        if label is None:
            return False
        label.setText(text)
        return True
