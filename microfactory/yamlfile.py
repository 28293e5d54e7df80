"""YAML files with line numbers, for every file a user writes (cell files, recipes, drawings).

``ruamel.yaml``'s round-trip loader keeps each mapping's and sequence's source positions (and the
comments, so files the app saves stay readable). :func:`load` returns plain data plus a :class:`Located`
view that maps a field path such as ``("stations", 2, "baud")`` back to ``file:line:column``;
:func:`validate` runs a pydantic model and turns each validation error into a located problem, so the
user reads ``cell.yaml:14:11: stations[2].baud: Input should be a valid integer`` instead of a traceback.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

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


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    return yaml


def load_text(text: str, file: str = "<text>") -> Located:
    """Parse YAML text; a syntax error becomes a :class:`ConfigError` with the line and column."""
    try:
        root = _yaml().load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        col = mark.column + 1 if mark is not None else None
        problem = exc.problem or exc.context or "malformed YAML"
        raise ConfigError.single(file, f"YAML syntax error: {problem}", line=line, column=col,
                                 hint="fix the indentation or punctuation at that place") from None
    return Located(file, root)


def load(path: str | Path) -> Located:
    """Read and parse a YAML file; a missing or unreadable file is a :class:`ConfigError` too."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError.single(p, "file not found", hint="check the path (relative paths start from "
                                 "the current folder)") from None
    except (OSError, UnicodeDecodeError) as exc:
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
