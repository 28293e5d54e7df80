"""Run control: pick a released recipe and a lot size; Start / Hold / Unhold / Stop / Reset; prompts.

Every button hands a command to the engine thread and returns at once; the result (or a refusal) comes
back as an event or a future callback — nothing here waits.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from PyQt6.QtCore import pyqtSignal
from PyQt6.QtWidgets import (
    QComboBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from microfactory.errors import MicrofactoryError
from microfactory.events import Event, EventKind
from microfactory.recipe import load_recipe
from ui.theme import set_style_property

COMMANDS = ("start", "hold", "unhold", "stop", "reset")


def released_recipes(folder: Path) -> list[tuple[str, Path]]:
    """(label, path) of every released recipe in ``folder``; drafts are not offered to operators."""
    out = []
    for path in sorted(folder.glob("*.yaml")):
        try:
            recipe = load_recipe(path)
        except MicrofactoryError:
            continue
        if recipe.spec.recipe.status == "released":
            out.append((f"{recipe.name} (v{recipe.version})", path))
    return out


class PromptBanner(QFrame):
    """A non-blocking banner for operator prompts, with one button per choice.

    It is always there at a fixed height — "No operator action needed" when idle — so a prompt
    appearing never moves the buttons under a gloved finger and never relayouts the whole page.
    """

    answered = pyqtSignal(str, str)  # prompt id, choice
    IDLE_TEXT = "No operator action needed."
    MAX_CHOICES = 4

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("banner")
        self.text = QLabel(self.IDLE_TEXT)
        self.text.setObjectName("bannerText")
        self.text.setWordWrap(True)
        self.text.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.buttons = QHBoxLayout()
        self._choices: list[str] = []
        self._pool: list[QPushButton] = []
        for index in range(self.MAX_CHOICES):
            button = QPushButton("")
            button.setMinimumWidth(140)
            button.clicked.connect(lambda _=False, i=index: self._answer(i))
            button.hide()
            self._pool.append(button)
            self.buttons.addWidget(button)
        box = QHBoxLayout(self)
        box.addWidget(self.text, 1)
        box.addLayout(self.buttons)
        self.setFixedHeight(84)
        self.prompt_id = ""
        self._idle()

    @property
    def active(self) -> bool:
        """True while a prompt waits for the operator."""
        return bool(self.prompt_id)

    def choice_buttons(self) -> list[QPushButton]:
        """The buttons of the prompt shown, in the order of its choices."""
        return self._pool[: len(self._choices)]

    def _answer(self, index: int) -> None:
        if self.prompt_id and index < len(self._choices):
            self.answered.emit(self.prompt_id, self._choices[index])

    def _idle(self) -> None:
        self.prompt_id = ""
        self._choices = []
        self.text.setText(self.IDLE_TEXT)
        set_style_property("prompting", False, self, self.text)
        for button in self._pool:
            button.hide()

    def show_prompt(self, event: Event) -> None:
        self.prompt_id = str(event.get("id"))
        where = " · ".join(str(x) for x in (event.get("station"), event.get("part")) if x)
        self.text.setText(f"Operator: {event.get('text')}" + (f"  ({where})" if where else ""))
        set_style_property("prompting", True, self, self.text)
        self._choices = [str(c) for c in (event.get("choices") or ["ok"])][: self.MAX_CHOICES]
        for index, button in enumerate(self._pool):
            if index < len(self._choices):
                button.setText(self._choices[index].capitalize())
                button.show()
            else:
                button.hide()

    def clear(self, prompt_id: str) -> None:
        if prompt_id == self.prompt_id:
            self._idle()


class RunControl(QWidget):
    """Recipe and lot size, the PackML command buttons and the prompt banner."""

    start_lot = pyqtSignal(object, int)  # recipe path, parts

    def __init__(self, recipes_dir: Path, command: Callable[[str], None],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._command = command
        self.recipe = QComboBox()
        for label, path in released_recipes(recipes_dir):
            self.recipe.addItem(label, path)
        self.parts = QSpinBox()
        self.parts.setRange(1, 10000)
        self.parts.setValue(10)
        self.parts.setSuffix(" parts")
        self.parts.setMinimumHeight(44)
        self.buttons: dict[str, QPushButton] = {}
        row = QHBoxLayout()
        row.addWidget(QLabel("Recipe"))
        row.addWidget(self.recipe, 2)
        row.addWidget(self.parts)
        for name in COMMANDS:
            button = QPushButton(name.capitalize())
            button.setObjectName(f"cmd_{name}")
            button.clicked.connect(lambda _=False, n=name: self._pressed(n))
            self.buttons[name] = button
            row.addWidget(button)
        self.banner = PromptBanner()
        self.message = QLabel("")
        self.message.setWordWrap(True)
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        box.addLayout(row)
        box.addWidget(self.message)
        box.addWidget(self.banner)
        self.set_allowed({"reset", "start"})

    def _pressed(self, name: str) -> None:
        if name == "start":
            path = self.recipe.currentData()
            if path is None:
                self.message.setText("No released recipe in the recipes folder: release one in the editor.")
                return
            self.start_lot.emit(path, self.parts.value())
            return
        self._command(name)

    def select(self, path: Path, label: str) -> None:
        """Show ``path`` as the chosen recipe, so the recipe named is the lot running; a recipe started
        from elsewhere (the demo, a script) is not in the released list: it is added, marked so."""
        wanted = os.path.abspath(path)  # no filesystem access on the GUI thread
        for index in range(self.recipe.count()):
            if os.path.abspath(self.recipe.itemData(index)) == wanted:
                self.recipe.setCurrentIndex(index)
                return
        self.recipe.addItem(f"{label} — not released", Path(path))
        self.recipe.setCurrentIndex(self.recipe.count() - 1)

    def set_allowed(self, allowed: set[str]) -> None:
        """Enable only the commands the cell accepts now (from ``cell.state`` events)."""
        for name, button in self.buttons.items():
            button.setEnabled(name in allowed)

    def apply(self, event: Event) -> None:
        if event.kind == EventKind.CELL_STATE:
            allowed = {str(a).lower() for a in (event.get("allowed") or [])}
            self.set_allowed(allowed)
        elif event.kind == EventKind.PROMPT:
            self.banner.show_prompt(event)
        elif event.kind == EventKind.PROMPT_ANSWERED:
            self.banner.clear(str(event.get("id")))
