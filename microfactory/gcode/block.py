"""One block (line) of words sorted into Grbl 1.1's modal groups, with the grammar Grbl enforces.

What Grbl would refuse on grammar alone is found here: codes it does not know (error 20), two codes of
one modal group (21), two commands fighting over the axis words (24), a repeated word (25), negative
values where none are allowed (4). The meaning of the block (where it moves) is the pre-check's job.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from microfactory.gcode.lexer import Word

_G_GROUPS: dict[str, str] = {
    **dict.fromkeys(("G4", "G10", "G28", "G28.1", "G30", "G30.1", "G53", "G92", "G92.1"), "non-modal"),
    **dict.fromkeys(("G0", "G1", "G2", "G3", "G38.2", "G38.3", "G38.4", "G38.5", "G80"), "motion"),
    **dict.fromkeys(("G17", "G18", "G19"), "plane"),
    **dict.fromkeys(("G90", "G91"), "distance"),
    "G91.1": "arc distance",
    **dict.fromkeys(("G93", "G94"), "feed mode"),
    **dict.fromkeys(("G20", "G21"), "units"),
    "G40": "cutter compensation",
    **dict.fromkeys(("G43.1", "G49"), "tool length"),
    **dict.fromkeys(("G54", "G55", "G56", "G57", "G58", "G59"), "work coordinates"),
    "G61": "path control",
}
_M_GROUPS: dict[str, str] = {
    **dict.fromkeys(("M0", "M1", "M2", "M30"), "stopping"),
    **dict.fromkeys(("M3", "M4", "M5"), "spindle"),
    **dict.fromkeys(("M7", "M8", "M9"), "coolant"),
}
#: Non-modal commands that take the block's axis words for themselves.
AXIS_COMMANDS = frozenset(("G10", "G28", "G30", "G92"))
_VALUE_LETTERS = frozenset("FIJKLNPRSTXYZ")
_NON_NEGATIVE = frozenset("FNPST")
_HINTS = {"E": " (an extruder word: this looks like 3D-printer G-code)", "A": " (rotary axis)",
          "B": " (rotary axis)", "C": " (rotary axis)", "H": " (tool length register: use G43.1 Z)",
          "D": " (cutter radius register: compensation is not supported)", "Q": " (peck depth: canned "
          "cycles are not supported)", "O": " (subprograms are not supported)"}


@dataclass(frozen=True, slots=True)
class BlockProblem:
    """A grammar problem of one block: 1-based column (None: whole block), short code, plain text."""

    column: int | None
    code: str
    text: str


@dataclass(slots=True)
class ParsedBlock:
    """The block's G and M codes by modal group and its value words by letter."""

    gcodes: dict[str, str] = field(default_factory=dict)
    mcodes: dict[str, str] = field(default_factory=dict)
    values: dict[str, Word] = field(default_factory=dict)
    columns: dict[str, int] = field(default_factory=dict)
    problems: list[BlockProblem] = field(default_factory=list)

    @property
    def axis_words(self) -> list[Word]:
        """The X/Y/Z words in the block, in X, Y, Z order."""
        return [self.values[a] for a in "XYZ" if a in self.values]


def code_name(letter: str, value: float) -> str:
    """``G01`` → ``G1``, ``G38.20`` → ``G38.2``: the canonical name of a G or M code."""
    return f"{letter}{value:g}"


def parse_block(words: list[Word]) -> ParsedBlock:
    """Sort ``words`` into modal groups and value words, noting every grammar problem."""
    block = ParsedBlock()
    for word in words:
        letter = word.letter
        if letter in ("G", "M"):
            _add_code(block, word)
        elif letter in _VALUE_LETTERS:
            if letter in block.values:
                block.problems.append(BlockProblem(word.column, "repeated", f"word {letter} is given twice "
                                                   "in one block (Grbl error 25)"))
                continue
            if letter in _NON_NEGATIVE and word.value < 0:
                block.problems.append(BlockProblem(word.column, "syntax", f"{letter}{word.text}: {letter} "
                                                   "cannot be negative (Grbl error 4)"))
                continue
            block.values[letter] = word
        else:
            block.problems.append(BlockProblem(word.column, "unsupported", f"word {letter}{word.text} is not "
                                               f"Grbl 1.1 G-code{_HINTS.get(letter, '')} (error 20)"))
    motion = block.gcodes.get("motion")
    axis_command = block.gcodes.get("non-modal")
    if block.gcodes.get("tool length") == "G43.1":
        if axis_command in AXIS_COMMANDS or (motion is not None and block.axis_words):
            block.problems.append(BlockProblem(None, "conflict", "G43.1 takes the block's Z word for the "
                                               "tool length offset: no motion or other axis command in its "
                                               "block (Grbl error 24)"))
        elif any(a in block.values for a in "XY"):
            block.problems.append(BlockProblem(block.columns["G43.1"], "syntax", "G43.1 takes only a Z word "
                                               "(the tool length offset) (Grbl error 37)"))
        axis_command = None
    if motion is not None and axis_command in AXIS_COMMANDS and block.axis_words:
        block.problems.append(BlockProblem(None, "conflict", f"{motion} and {axis_command} in one block both "
                                           "want the axis words (Grbl error 24)"))
    return block


def _add_code(block: ParsedBlock, word: Word) -> None:
    name = code_name(word.letter, word.value)
    table = _G_GROUPS if word.letter == "G" else _M_GROUPS
    group = table.get(name)
    if group is None:
        block.problems.append(BlockProblem(word.column, "unsupported", f"{name} is not supported by "
                                           "Grbl 1.1 (error 20)"))
        return
    codes = block.gcodes if word.letter == "G" else block.mcodes
    if group in codes:
        block.problems.append(BlockProblem(word.column, "conflict", f"{codes[group]} and {name} in one "
                                           f"block are both {group} codes (Grbl error 21)"))
        return
    codes[group] = name
    block.columns[name] = word.column
