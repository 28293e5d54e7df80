"""Colours and sizes shared by every widget, so a state looks the same everywhere."""

from __future__ import annotations

from PyQt6.QtWidgets import QWidget

STATE_COLOURS = {
    "offline": "#4a4a4a", "connecting": "#7a7a7a", "idle": "#2e7d32", "busy": "#1565c0",
    "holding": "#ef8f00", "held": "#ef8f00", "faulted": "#c62828", "alarm": "#c62828",
    "standby": "#6a4c93",
}
CELL_COLOURS = {
    "Idle": "#2e7d32", "Execute": "#1565c0", "Starting": "#1565c0", "Completing": "#1565c0",
    "Complete": "#2e7d32", "Holding": "#ef8f00", "Held": "#ef8f00", "Unholding": "#ef8f00",
    "Suspending": "#ef8f00", "Suspended": "#ef8f00", "Unsuspending": "#ef8f00", "Stopping": "#6d6d6d",
    "Stopped": "#6d6d6d", "Aborting": "#c62828", "Aborted": "#c62828", "Clearing": "#6d6d6d",
    "Resetting": "#6d6d6d",
}
SEVERITY_COLOURS = {"info": "#1565c0", "warning": "#ef8f00", "error": "#c62828", "critical": "#8e0000"}

STYLE = """
QWidget { font-size: 14px; }
QPushButton { min-height: 44px; padding: 4px 14px; font-size: 15px; font-weight: 600; }
QPushButton:disabled { color: #9a9a9a; }
QPushButton#estop { background: #c62828; color: white; border: 4px solid #ffd600; border-radius: 8px;
                    font-size: 22px; font-weight: 800; min-width: 190px; min-height: 64px; }
QPushButton#estop:pressed { background: #8e0000; }
QFrame#tile { border: 2px solid #bdbdbd; border-radius: 8px; background: #fafafa; }
QLabel#tileTitle { font-size: 18px; font-weight: 700; }
QLabel#stateBadge { color: white; font-weight: 700; border-radius: 6px; padding: 4px 10px; font-size: 15px; }
QLabel#cellState { color: white; font-weight: 800; border-radius: 6px; padding: 6px 14px; font-size: 20px; }
QProgressBar { border: 1px solid #9e9e9e; border-radius: 4px; background: #ffffff; color: #111111;
               text-align: center; font-weight: 600; min-height: 24px; }
QProgressBar::chunk { background: #90caf9; border-radius: 3px; }
QFrame#banner[prompting="false"] { background: #f2f2f2; border: 2px solid #d0d0d0; border-radius: 8px; }
QFrame#banner[prompting="true"] { background: #fff3cd; border: 2px solid #ef8f00; border-radius: 8px; }
QLabel#bannerText[prompting="false"] { font-size: 15px; color: #6d6d6d; }
QLabel#bannerText[prompting="true"] { font-size: 16px; font-weight: 600; color: #111111; }
QPushButton[recommended="true"] { background: #1565c0; color: white; border: 2px solid #0d47a1;
                                  border-radius: 6px; }
QPushButton#cmd_abort:enabled { color: #c62828; }
"""


def badge_style(colour: str) -> str:
    return f"background: {colour};"


def restyle(widget: QWidget, sheet: str) -> None:
    """Set a widget's own style sheet only when it changes: every call re-parses the sheet and
    re-polishes the widget and its children, which 16 tiles changing state many times a second felt."""
    if widget.styleSheet() != sheet:
        widget.setStyleSheet(sheet)


def set_style_property(name: str, value: bool, *widgets: QWidget) -> None:
    """Switch a dynamic property the app style sheet selects on, re-polishing only these widgets."""
    for widget in widgets:
        if widget.property(name) == value:
            continue
        widget.setProperty(name, value)
        style = widget.style()
        if style is not None:
            style.unpolish(widget)
            style.polish(widget)
