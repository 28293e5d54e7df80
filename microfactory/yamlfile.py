"""YAML files with line numbers, for every file a user writes (cell files, recipes, drawings).

``ruamel.yaml``'s round-trip loader keeps each mapping's and sequence's source positions (and the
comments, so files the app saves stay readable). :func:`load` returns plain data plus a :class:`Located`
view that maps a field path such as ``("stations", 2, "baud")`` back to ``file:line:column``;
:func:`validate` runs a pydantic model and turns each validation error into a located problem, so the
user reads ``cell.yaml:14:11: stations[2].baud: Input should be a valid integer`` instead of a traceback.

Hostile or broken files are refused with a located :class:`ConfigError`, never another exception: a control
character or a lone surrogate (YAML allows neither), nesting deeper than :data:`MAX_DEPTH` levels (refused
as the scanner reaches it, so a 3000-deep file fails in milliseconds instead of exhausting the stack), and
an integer too long for Python to convert (more than ``sys.get_int_max_str_digits()`` digits).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import ConstructorError, RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.reader import ReaderError
from ruamel.yaml.scanner import RoundTripScanner, ScannerError

from microfactory.errors import ConfigError, SourceLocation

M = TypeVar("M", bound=BaseModel)
PathPart = str | int


def field_path(parts: Sequence[PathPart]) -> str:
    """``("stations", 2, "baud")`` → ``stations[2].baud``."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


@dataclass
class Located:
    """A loaded YAML document that remembers where each value came from."""

    file: str
    root: Any

    def locate(self, parts: Sequence[PathPart]) -> SourceLocation:
        """Best location for ``parts``: the deepest node that exists (1-based line and column)."""
        node = self.root
        line, col = 1, 1
        for part in parts:
            if isinstance(node, CommentedMap) and part in node:
                pos = node.lc.value(part) if not isinstance(node[part], (CommentedMap, CommentedSeq)) \
                    else node.lc.key(part)
                line, col = pos[0] + 1, pos[1] + 1
                node = node[part]
            elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
                pos = node.lc.item(part)
                line, col = pos[0] + 1, pos[1] + 1
                node = node[part]
            else:
                if isinstance(node, (CommentedMap, CommentedSeq)) and line == 1 and col == 1:
                    line, col = node.lc.line + 1, node.lc.col + 1
                break
        return SourceLocation(self.file, line, col, field_path(parts))


#: Deepest nesting of mappings and sequences a file may have (levels). Cell files, recipes and drawings
#: nest fewer than ten; the limit only exists to refuse hostile input before it exhausts the stack.
MAX_DEPTH = 64

_DEPTH_HINT = (f"a cell file, recipe or drawing nests a few levels; flatten the structure (at most "
               f"{MAX_DEPTH} levels)")


class _Scanner(RoundTripScanner):
    """The round-trip scanner, refusing nesting deeper than :data:`MAX_DEPTH` as soon as it reaches it."""

    def _too_deep(self) -> ScannerError:
        return ScannerError(None, None, f"nesting deeper than {MAX_DEPTH} levels", self.reader.get_mark())

    def fetch_flow_collection_start(self, *args: Any, **kwargs: Any) -> None:
        if self.flow_level >= MAX_DEPTH:
            raise self._too_deep()
        super().fetch_flow_collection_start(*args, **kwargs)

    def add_indent(self, column: int) -> bool:
        if len(self.indents) >= MAX_DEPTH:
            raise self._too_deep()
        return bool(super().add_indent(column))


class _Constructor(RoundTripConstructor):
    """The round-trip constructor; an integer too long to convert becomes a located error."""

    def construct_yaml_int(self, node: Any) -> Any:
        try:
            return super().construct_yaml_int(node)
        except ValueError:
            digits = len(str(node.value))
            raise ConstructorError(None, None, f"a number of {digits} digits is too long to read "
                                   f"(at most {sys.get_int_max_str_digits()} digits)",
                                   node.start_mark) from None


_Constructor.add_constructor("tag:yaml.org,2002:int", _Constructor.construct_yaml_int)


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.Scanner = _Scanner
    yaml.Constructor = _Constructor
    yaml.max_depth = 2 * MAX_DEPTH  # a backstop: the scanner refuses deep flow and block nesting first
    return yaml


def _line_col(text: str, position: int) -> tuple[int, int]:
    """1-based line and column of the character at 0-based ``position`` in ``text``."""
    before = text[:position]
    line = before.count("\n") + 1
    return line, position - (before.rfind("\n") + 1) + 1


def _explain(exc: MarkedYAMLError) -> tuple[str, str]:
    """What went wrong, and what to do, for one YAML error."""
    problem = exc.problem or exc.context or "malformed YAML"
    if isinstance(exc, ConstructorError):
        return f"YAML value error: {problem}", "write a shorter number (or quote it if it is a text)"
    if "nesting deeper" in problem or "maximum depth" in problem:
        return f"YAML syntax error: nesting deeper than {MAX_DEPTH} levels", _DEPTH_HINT
    return f"YAML syntax error: {problem}", "fix the indentation or punctuation at that place"


def load_text(text: str, file: str = "<text>") -> Located:
    """Parse YAML text; a syntax error becomes a :class:`ConfigError` with the line and column."""
    try:
        root = _yaml().load(text)
    except ReaderError as exc:
        at_line, at_col = _line_col(text, exc.position)
        char = exc.character if isinstance(exc.character, int) else ord(exc.character[:1] or b"\0")
        raise ConfigError.single(file, f"character U+{char:04X} is not allowed in a YAML file "
                                 "(a control character or a lone surrogate)", line=at_line, column=at_col,
                                 hint="delete it; inside a double-quoted string an escape such as "
                                      "\\t or \\u00e9 may stand for a character") from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        col = mark.column + 1 if mark is not None else None
        problem, hint = _explain(exc)
        raise ConfigError.single(file, problem, line=line, column=col, hint=hint) from None
    except RecursionError:
        raise ConfigError.single(file, "YAML structure too deep to read", hint=_DEPTH_HINT) from None
    return Located(file, root)


def load(path: str | Path) -> Located:
    """Read and parse a YAML file; a missing or unreadable file is a :class:`ConfigError` too."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError.single(p, "file not found", hint="check the path (relative paths start from "
                                 "the current folder)") from None
    except UnicodeDecodeError as exc:
        data = p.read_bytes()[:exc.start]
        line = data.count(b"\n") + 1
        column = len(data) - (data.rfind(b"\n") + 1) + 1
        bad = exc.object[exc.start:exc.end]
        raise ConfigError.single(p, f"bytes {bad!r} are not UTF-8 text", line=line, column=column,
                                 hint="save the file as UTF-8 (is it a text YAML file?)") from None
    except OSError as exc:
        raise ConfigError.single(p, f"cannot read the file: {exc}", hint="is it a text YAML file?") from None
    return load_text(text, str(p))


def validate(model: type[M], doc: Located, *, hint: str = "") -> M:
    """Validate ``doc`` against ``model``; every pydantic error becomes a located problem."""
    if doc.root is None:
        raise ConfigError.single(doc.file, "the file is empty", hint=hint or "see the documented format")
    try:
        return model.model_validate(doc.root, context={"file": doc.file})
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if isinstance(p, (str, int)))
            problems.append((doc.locate(loc), str(err["msg"])))
        raise ConfigError(problems, hint=hint) from None


def dump_roundtrip(doc: Any, path: str | Path) -> None:
    """Write a round-trip document back, keeping its comments and key order."""
    with Path(path).open("w", encoding="utf-8") as fh:
        _yaml().dump(doc, fh)
