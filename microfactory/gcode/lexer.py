"""Split one line of G-code into words, the way Grbl 1.1 reads it.

Grbl ignores whitespace and case, drops ``( )`` and ``;`` comments, and reads a block as letter+number
words. The lexer never raises on odd input: anything it cannot read becomes a :class:`LexProblem` with a
1-based column, so the pre-check can report every problem of a file at once.

Accepted: letters ``A-Z`` (either case) each followed by a number (``+``/``-`` sign, digits, at most one
decimal point; whitespace allowed between letter and number, not inside the number), ``( ... )``
comments (no nesting), ``;`` to end of line, a line holding only ``%`` (program delimiter). Everything
else (``$`` system commands, ``/`` block delete, stray characters, a letter without a number, a number
without a letter, a number too large for a float) is a problem.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import NamedTuple

_WORD = re.compile(r"\s*([A-Za-z])\s*([+-]?(?:\d++(?:\.\d*+)?|\.\d++))", re.ASCII)
_SPACE = re.compile(r"\s*", re.ASCII)
_LINE = re.compile(r"(?:\s*[A-Za-z]\s*[+-]?(?:\d++(?:\.\d*+)?|\.\d++))*\s*", re.ASCII)
_COMMENT = re.compile(r"\([^)]*\)|;.*")


def _blank(m: re.Match[str]) -> str:
    return " " * (m.end() - m.start())


class Word(NamedTuple):
    """One letter+number word. ``letter`` is upper case; ``text`` is the number as written; 1-based
    ``column`` of the letter."""

    letter: str
    value: float
    text: str
    column: int


@dataclass(frozen=True, slots=True)
class LexProblem:
    """Something the lexer could not read: 1-based ``column``, Grbl-style ``code`` and plain ``text``."""

    column: int
    code: str
    text: str


@dataclass(slots=True)
class LexedLine:
    """The words of one source line and whatever could not be read."""

    words: list[Word] = field(default_factory=list)
    problems: list[LexProblem] = field(default_factory=list)


def _strip_comments(line: str, out: LexedLine) -> str:
    """Blank out comments (keeping columns) and note an unclosed ``(``."""
    if "(" not in line and ";" not in line and ")" not in line:
        return line
    line = _COMMENT.sub(_blank, line)
    if "(" not in line and ")" not in line:
        return line
    chars = list(line)
    i, n = 0, len(chars)
    while i < n:
        c = chars[i]
        if c == ";":
            for j in range(i, n):
                chars[j] = " "
            break
        if c == "(":
            close = line.find(")", i + 1)
            if close < 0:
                out.problems.append(LexProblem(i + 1, "syntax", "comment opened with '(' is not closed "
                                               "on this line"))
                close = n - 1
            for j in range(i, close + 1):
                chars[j] = " "
            i = close + 1
            continue
        if c == ")":
            out.problems.append(LexProblem(i + 1, "syntax", "')' without an opening '('"))
            chars[i] = " "
        i += 1
    return "".join(chars)


def _describe(char: str) -> str:
    if char == "$":
        return ("'$' system command inside a program; system commands ($H, $X, $J=...) go through the "
                "station's own commands, not the G-code stream")
    if char == "/":
        return "block delete '/' is not supported by Grbl 1.1"
    if char.isalpha():
        return f"letter {char.upper()!r} has no number after it (Grbl error 2)"
    if char.isdigit() or char in "+-.":
        return f"number without a letter before it at {char!r} (Grbl error 1)"
    return f"unexpected character {char!r} (Grbl reads only letters, numbers and comments)"


def _too_large(word: Word) -> LexProblem:
    digits = sum(c.isdigit() for c in word.text)
    return LexProblem(word.column, "syntax", f"number after {word.letter} has {digits} digits, too large "
                      "for any machine (Grbl error 2): check the program for a corrupted number")


def _drop_unreadable_numbers(out: LexedLine) -> None:
    """Move words whose number overflows a float (``inf``) to the problems."""
    words = out.words
    out.words = [w for w in words if math.isfinite(w.value)]
    out.problems.extend(_too_large(w) for w in words if not math.isfinite(w.value))


def lex_line(line: str) -> LexedLine:
    """Read one source line (without its line terminator) into words and problems; never raises."""
    out = LexedLine()
    text = _strip_comments(line.rstrip("\r\n"), out)
    stripped = text.strip()
    if not stripped or stripped == "%":
        return out
    if _LINE.fullmatch(text):
        out.words = [Word(m.group(1).upper(), float(m.group(2)), m.group(2), m.start(1) + 1)
                     for m in _WORD.finditer(text)]
        if not all(math.isfinite(w.value) for w in out.words):
            _drop_unreadable_numbers(out)
        return out
    pos, n = 0, len(text)
    match = _WORD.match
    while pos < n:
        m = match(text, pos)
        if m is None:
            pos = _SPACE.match(text, pos).end()  # type: ignore[union-attr]
            if pos >= n:
                break
            char = text[pos]
            code = "unsupported" if char in "$/" else "syntax"
            out.problems.append(LexProblem(pos + 1, code, _describe(char)))
            if char.isalpha():
                pos += 1
                continue
            # skip the rest of this unreadable run up to the next letter
            pos += 1
            while pos < n and not text[pos].isalpha():
                pos += 1
            continue
        number = m.group(2)
        word = Word(m.group(1).upper(), float(number), number, m.start(1) + 1)
        if math.isfinite(word.value):
            out.words.append(word)
        else:
            out.problems.append(_too_large(word))
        pos = m.end()
        if pos < n and text[pos] == ".":
            out.problems.append(LexProblem(pos + 1, "syntax", f"malformed number {number + '.'!r}...: "
                                           "more than one decimal point (Grbl error 2)"))
            while pos < n and (text[pos].isdigit() or text[pos] == "."):
                pos += 1
    return out
