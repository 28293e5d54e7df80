"""Run control: pick a released recipe and a lot size; the PackML command buttons; operator prompts.

There is a button for every PackML command an operator gives (Clear, Reset, Start, Hold, Unhold, Suspend,
Unsuspend, Stop, Abort) in a fixed slot; a state shows exactly the buttons of the commands it accepts and
hides the others without moving the rest, so a button never slides under a gloved finger and the
operator is never left in a state with no way out (ABORTED shows Clear, STOPPED shows Reset).

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
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from microfactory.engine.packml import Command
from microfactory.errors import MicrofactoryError
from microfactory.events import Event, EventKind
from microfactory.recipe import load_recipe
from ui.slots import guarded
from ui.theme import set_style_property

#: The operator's commands in the order of their slots: the recovery path first (Clear → Reset →
#: Start), then the run commands, Stop and Abort last. ``complete`` is the engine's own (end of lot).
COMMANDS: tuple[Command, ...] = (Command.CLEAR, Command.RESET, Command.START, Command.HOLD, Command.UNHOLD,
                                 Command.SUSPEND, Command.UNSUSPEND, Command.STOP, Command.ABORT)
COMMAND_HINTS = {
    Command.CLEAR: "Acknowledge the abort once the cause is fixed (the cell goes to Stopped)",
    Command.RESET: "Make the cell ready for a new lot (Stopped or Complete → Idle)",
    Command.START: "Start a lot of the chosen recipe",
    Command.HOLD: "Pause the lot: stations finish or pause their step and wait",
    Command.UNHOLD: "Continue the held lot",
    Command.SUSPEND: "Pause because of an outside cause (no stock, downstream full)",
    Command.UNSUSPEND: "Continue the suspended lot",
    Command.STOP: "End the lot in a controlled way (parts in progress are left unfinished)",
    Command.ABORT: "Stop everything now (the E-stop does this and more)",
}


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

    Idle it is one line ("No operator action needed"); a prompt's whole text is shown, wrapped, however
    long (a fault prompt's explanation is the reason the operator has to decide), with the recommended
    answer marked and first in reading order. The banner sits below the command buttons, so growing
    never moves a control.
    """

    answered = pyqtSignal(str, str)  # prompt id, choice
    IDLE_TEXT = "No operator action needed."
    MAX_CHOICES = 4
    RECOMMENDED = " (recommended)"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("banner")
        self.text = QLabel(self.IDLE_TEXT)
        self.text.setObjectName("bannerText")
        self.text.setWordWrap(True)
        self.text.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.MinimumExpanding)
        self.buttons = QGridLayout()
        self._choices: list[str] = []
        self._recommended = ""
        self._pool: list[QPushButton] = []
        for index in range(self.MAX_CHOICES):
            button = QPushButton("")
            button.setObjectName(f"choice{index}")
            button.setMinimumWidth(120)
            button.clicked.connect(lambda _=False, i=index: self._answer(i))
            button.hide()
            self._pool.append(button)
            self.buttons.addWidget(button, index // 2, index % 2)
        box = QHBoxLayout(self)
        box.addWidget(self.text, 1)
        box.addLayout(self.buttons)
        self.setMinimumHeight(56)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
        self.prompt_id = ""
        self._idle()

    @property
    def active(self) -> bool:
        """True while a prompt waits for the operator."""
        return bool(self.prompt_id)

    @property
    def recommended(self) -> str:
        """The choice the engine recommends for the prompt shown ("" if none or idle)."""
        return self._recommended

    def choice_buttons(self) -> list[QPushButton]:
        """The buttons of the prompt shown, in the order of its choices."""
        return self._pool[: len(self._choices)]

    def _answer(self, index: int) -> None:
        if self.prompt_id and index < len(self._choices):
            self.answered.emit(self.prompt_id, self._choices[index])

    def _idle(self) -> None:
        self.prompt_id = ""
        self._choices = []
        self._recommended = ""
        self.text.setText(self.IDLE_TEXT)
        self.setToolTip("")
        set_style_property("prompting", False, self, self.text)
        for button in self._pool:
            button.hide()
            set_style_property("recommended", False, button)

    def show_prompt(self, event: Event) -> None:
        self.prompt_id = str(event.get("id"))
        where = " · ".join(str(x) for x in (event.get("station"), event.get("part")) if x)
        text = f"Operator: {event.get('text')}" + (f"  ({where})" if where else "")
        self.text.setText(text)
        self.setToolTip(text)
        set_style_property("prompting", True, self, self.text)
        self._choices = [str(c) for c in (event.get("choices") or ["ok"])][: self.MAX_CHOICES]
        wanted = str(event.get("recommended") or "")
        self._recommended = wanted if wanted in self._choices else ""
        for index, button in enumerate(self._pool):
            if index < len(self._choices):
                choice = self._choices[index]
                marked = choice == self._recommended
                button.setText(choice.capitalize() + (self.RECOMMENDED if marked else ""))
                set_style_property("recommended", marked, button)
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
        self.recipe.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        row.addWidget(self.recipe, 1)
        row.addWidget(self.parts)
        commands = QHBoxLayout()
        for name in COMMANDS:
            button = QPushButton(name.value.capitalize())
            button.setObjectName(f"cmd_{name.value}")
            button.setToolTip(COMMAND_HINTS[name])
            button.clicked.connect(lambda _=False, n=name.value: self._pressed(n))
            policy = button.sizePolicy()
            policy.setRetainSizeWhenHidden(True)  # a hidden command keeps its slot: nothing moves
            button.setSizePolicy(policy)
            self.buttons[name.value] = button
            commands.addWidget(button)
        commands.addStretch(1)
        self.banner = PromptBanner()
        self.message = QLabel("")
        self.message.setWordWrap(True)
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        box.addLayout(row)
        box.addLayout(commands)
        box.addWidget(self.message)
        box.addWidget(self.banner)
        self.set_allowed(set())

    def show_error(self, text: str) -> None:
        self.message.setText(text)

    @guarded
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
        """Show only the commands the cell accepts now (from ``cell.state`` events); the others are
        hidden and disabled, and keep their slots."""
        for name, button in self.buttons.items():
            accepted = name in allowed
            button.setEnabled(accepted)
            button.setVisible(accepted)

    #: the cell states in which the last failed command's explanation still applies
    _blocked_in: frozenset[str] = frozenset()

    def explain_failed_command(self, event: Event) -> None:
        """A command the cell could not finish (a Clear on a machine that lost its position) is said
        where the operator looks, with the way out: it stays until the cell leaves that state."""
        code = str(event.get("code") or "")
        action = code.removesuffix("_FAILED").lower()
        self._blocked_in = frozenset({"clearing", "aborting", "aborted"})
        self.message.setText(f"⚠ {action.capitalize()} did not finish: {event.get('text', '')}\n"
                             "Switch to Manual mode (Manual tab), home or unlock the station named, "
                             "leave Manual mode, then press Clear again.")

    def shown_commands(self) -> set[str]:
        """The commands whose buttons an operator can press now."""
        return {name for name, button in self.buttons.items() if button.isEnabled() and
                not button.isHidden()}

    def apply(self, event: Event) -> None:
        if event.kind == EventKind.CELL_STATE:
            allowed = {str(a).lower() for a in (event.get("allowed") or [])}
            self.set_allowed(allowed)
            if self._blocked_in and str(event.get("state")).lower() not in self._blocked_in:
                self.message.setText("")
                self._blocked_in = frozenset()
        elif event.kind == EventKind.ALARM and event.source == "cell" \
                and str(event.get("code") or "").endswith("_FAILED"):
            self.explain_failed_command(event)
        elif event.kind == EventKind.PROMPT:
            self.banner.show_prompt(event)
        elif event.kind == EventKind.PROMPT_ANSWERED:
            self.banner.clear(str(event.get("id")))
