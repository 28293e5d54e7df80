"""Colours and sizes shared by every widget, so a state looks the same everywhere."""

from __future__ import annotations

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
QFrame#banner { background: #fff3cd; border: 2px solid #ef8f00; border-radius: 8px; }
"""


def badge_style(colour: str) -> str:
    return f"background: {colour};"
