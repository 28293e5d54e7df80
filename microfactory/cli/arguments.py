"""Argument types for every command: numbers checked where they are read, so bad input exits 2 at once.

``argparse`` calls a ``type=`` function on the text and turns an ``ArgumentTypeError`` into
``microfactory run: error: argument --speed: ...`` with exit code 2, before any file is opened or any
station contacted. ``type=float`` alone accepts ``nan`` and ``inf``; these do not. The rules themselves
live in :mod:`microfactory.bounds`, shared with the loaders and the Python API.
"""

from __future__ import annotations

import argparse
import math
import sqlite3
from pathlib import Path

from microfactory import bounds

#: First 16 bytes of every SQLite 3 database file.
SQLITE_HEADER = b"SQLite format 3\x00"
#: Tables a run journal holds; a SQLite file with other tables and none of these is someone else's.
JOURNAL_TABLES = frozenset({"runs", "parts", "steps", "events", "audit"})


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def _whole(text: str) -> int:
    try:
        return int(text.strip(), 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def finite_float(text: str) -> float:
    """Any finite number (``nan``/``inf`` refused)."""
    return _number(text)


def positive_float(text: str) -> float:
    """A finite number above 0."""
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0, not {text}")
    return value


def non_negative_float(text: str) -> float:
    """A finite number, 0 or more."""
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
    return value


def positive_int(text: str) -> int:
    """A whole number of 1 or more (a baud rate, a line number, a count)."""
    value = _whole(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {text}")
    return value


def part_count(text: str) -> int:
    """``--parts N``: 1 to :data:`~microfactory.bounds.MAX_LOT_SIZE` parts."""
    try:
        return bounds.part_count(_whole(text))
    except bounds.BadNumber as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def speed_factor(text: str) -> float:
    """``--speed K|max``: the process-time speed factor, finite and above 0 (1 = real time), or ``max``.

    The one place a speed factor is read from text, so a new spelling (such as ``max``) is added here.
    """
    if text.strip().lower() == "max":  # as fast as possible (a simulated cell on its virtual clock)
        return math.inf
    try:
        return bounds.speed_factor(_number(text))
    except bounds.BadNumber as exc:
        raise argparse.ArgumentTypeError(f"{exc}, or max for as fast as possible") from None


def journal_path(text: str) -> str:
    """``--db PATH``: a new file, ``:memory:``, or an existing microfactory run journal.

    Refuses (before anything runs, and without writing a byte) a directory, a file that is not SQLite
    (a typo naming a text file would otherwise be overwritten by nothing and crash the run) and a SQLite
    database that belongs to something else (the run would add its tables to it).
    """
    if text == ":memory:":
        return text
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder; give a journal file inside it "
                                         f"(e.g. {path / 'microfactory-runs.sqlite'})")
    if not path.exists() or path.stat().st_size == 0:
        return text
    try:
        with path.open("rb") as fh:
            head = fh.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot read {text}: {exc.strerror}") from None
    if head != SQLITE_HEADER:
        raise argparse.ArgumentTypeError(f"{text} is not a run journal (not a SQLite database); nothing "
                                         "was written to it. Give a new file or a journal a run wrote")
    tables = _tables(path)
    if tables and not tables & JOURNAL_TABLES:
        raise argparse.ArgumentTypeError(f"{text} is a SQLite database of something else (tables: "
                                         f"{', '.join(sorted(tables)[:5])}); nothing was written to it. "
                                         "Give a new file or a journal a run wrote")
    return text


def _tables(path: Path) -> set[str]:
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        raise argparse.ArgumentTypeError(f"{path} is not a readable run journal ({exc}); nothing was "
                                         "written to it") from None
