"""Load a recipe file: YAML with line numbers, the schema, then the checks that span fields.

:func:`load_recipe` reports every problem it finds at once (a :class:`~microfactory.errors.ConfigError`
whose problems each carry ``file:line:column`` and the field path): the schema's, then duplicate names,
routes to steps that do not exist, rework loops without a bound, steps nothing reaches, and ``${name}``
references to undeclared parameters. What needs a cell or files beside the recipe (stations, G-code,
drawings) is checked when compiling (:mod:`microfactory.recipe.compile`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from microfactory import yamlfile
from microfactory.errors import ConfigError, SourceLocation
from microfactory.recipe.parameters import ParameterSpec, references
from microfactory.recipe.schema import ROUTE_ENDS, RecipeFile, RecipeStep

HINT = "see docs/recipes.md for the recipe format"
Problem = tuple[SourceLocation, str]


@dataclass(frozen=True)
class Recipe:
    """A loaded, schema-valid recipe and where it came from (for relative paths and error locations)."""

    spec: RecipeFile
    path: Path
    doc: yamlfile.Located

    @property
    def id(self) -> str:
        return self.spec.recipe.id

    @property
    def name(self) -> str:
        return self.spec.recipe.name

    @property
    def version(self) -> str:
        return self.spec.recipe.version

    @property
    def folder(self) -> Path:
        """The folder relative program and drawing paths start from."""
        return self.path.parent

    @property
    def steps(self) -> list[RecipeStep]:
        return self.spec.procedure

    def parameters(self) -> dict[str, ParameterSpec]:
        """Declared parameters by name (typed defaults, units, bounds)."""
        return {p.name: p.spec for p in self.spec.parameters}

    def locate(self, *parts: str | int) -> SourceLocation:
        """``file:line:column`` of a field, e.g. ``locate("procedure", 2, "cut", "program")``."""
        return self.doc.locate(parts)

    def next_step(self, index: int) -> str:
        """Where ``on_pass`` goes when not given: the next step in the list, or ``done`` after the last."""
        steps = self.spec.procedure
        return steps[index + 1].id if index + 1 < len(steps) else "done"


def load_recipe(path: str | Path) -> Recipe:
    """Read, parse and check a recipe file; raise :class:`ConfigError` listing every problem."""
    p = Path(path)
    doc = yamlfile.load(p)
    spec = yamlfile.validate(RecipeFile, doc, hint=HINT)
    recipe = Recipe(spec, p.resolve(), doc)
    problems = check_structure(recipe)
    if problems:
        raise ConfigError(problems, hint=HINT)
    return recipe


def check_structure(recipe: Recipe) -> list[Problem]:
    """Every cross-field problem of a schema-valid recipe (empty when it is sound)."""
    return [*_duplicates(recipe), *_routes(recipe), *_loops_and_reach(recipe), *_references(recipe)]


def _duplicates(recipe: Recipe) -> Iterator[Problem]:
    seen: dict[str, int] = {}
    for i, param in enumerate(recipe.spec.parameters):
        if param.name in seen:
            yield (recipe.locate("parameters", i, "name"),
                   f"parameter {param.name!r} is declared twice (first at parameters[{seen[param.name]}]);"
                   " give each parameter its own name")
        seen.setdefault(param.name, i)
    ids: dict[str, int] = {}
    for i, step in enumerate(recipe.steps):
        if step.id in ids:
            yield (recipe.locate("procedure", i, "id"),
                   f"step id {step.id!r} is used twice (first at procedure[{ids[step.id]}]); "
                   "step ids must be unique")
        ids.setdefault(step.id, i)


def _routes(recipe: Recipe) -> Iterator[Problem]:
    ids = {s.id for s in recipe.steps}
    for i, step in enumerate(recipe.steps):
        for field in ("on_pass", "on_fail"):
            target = getattr(step, field)
            if target is not None and target not in ids and target not in ROUTE_ENDS:
                yield (recipe.locate("procedure", i, field),
                       f"{field} goes to {target!r}, which is no step of this recipe; use a step id "
                       f"({', '.join(sorted(ids))}), 'done' or 'scrap'")
        if step.on_pass is not None and step.on_pass == step.id:
            yield (recipe.locate("procedure", i, "on_pass"),
                   "on_pass goes back to the same step, so the part never leaves it; route it onwards")
        rework = step.on_fail not in (None, *ROUTE_ENDS)
        if rework and (step.on_pass or recipe.next_step(i)) == step.on_fail:
            yield (recipe.locate("procedure", i, "on_pass" if step.on_pass else "on_fail"),
                   f"a good part would go to the rework step {step.on_fail!r} too (on_pass "
                   f"{'is' if step.on_pass else 'defaults to the next step,'} {step.on_fail!r}); "
                   "add on_pass: done or the step good parts go to")
        if rework and step.max_rework == 0:
            yield (recipe.locate("procedure", i, "on_fail"),
                   f"on_fail reworks the part at {step.on_fail!r} but max_rework is 0, so the route is "
                   "never taken; set max_rework: 1 (or more), or on_fail: scrap")
        if not rework and step.max_rework > 0:
            yield (recipe.locate("procedure", i, "max_rework"),
                   "max_rework has no effect without on_fail: <rework step>; add the rework route or "
                   "remove max_rework")


def _loops_and_reach(recipe: Recipe) -> Iterator[Problem]:
    index = {s.id: i for i, s in enumerate(recipe.steps)}
    on_pass = {s.id: (s.on_pass or recipe.next_step(i)) for i, s in enumerate(recipe.steps)}
    reported: set[str] = set()
    for start in on_pass:
        path: list[str] = []
        node = start
        while node in on_pass and node not in path:
            path.append(node)
            node = on_pass[node]
        if node in path and node not in reported:
            loop = path[path.index(node):]
            reported.update(loop)
            yield (recipe.locate("procedure", index[loop[-1]], "on_pass"),
                   f"the pass routes loop ({' → '.join([*loop, node])}): a good part would never finish; "
                   "a loop back must go through on_fail with max_rework")
    reached = _reachable(recipe, on_pass)
    for i, step in enumerate(recipe.steps):
        if step.id not in reached:
            yield (recipe.locate("procedure", i, "id"),
                   f"step {step.id!r} is never reached (no route leads to it); route to it from "
                   "on_pass/on_fail or remove it")


def _reachable(recipe: Recipe, on_pass: dict[str, str]) -> set[str]:
    on_fail = {s.id: s.on_fail for s in recipe.steps if s.on_fail}
    todo = [recipe.steps[0].id]
    seen: set[str] = set()
    while todo:
        node = todo.pop()
        if node in seen or node not in on_pass:
            continue
        seen.add(node)
        todo.append(on_pass[node])
        if node in on_fail:
            todo.append(on_fail[node])
    return seen


def _references(recipe: Recipe) -> Iterator[Problem]:
    declared = {p.name for p in recipe.spec.parameters}
    for i, step in enumerate(recipe.steps):
        raw = _raw_step(recipe, i)
        for path, text in _strings(raw, ()):
            if path and path[0] == step.kind.value and path[-1:] == ("gcode",):
                continue  # inline G-code: checked with the step's own variables when compiling
            for name, _column in references(text):
                if name not in declared:
                    yield (recipe.locate("procedure", i, *path),
                           f"unknown parameter ${{{name}}} (declared: "
                           f"{', '.join(sorted(declared)) or 'none'}); declare it under parameters: or "
                           "fix the spelling")


def _raw_step(recipe: Recipe, index: int) -> Any:
    root = recipe.doc.root
    return root["procedure"][index]


def _strings(value: Any, path: Sequence[str | int]) -> Iterator[tuple[tuple[str | int, ...], str]]:
    if isinstance(value, str):
        yield tuple(path), value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, (*path, str(key)))
    elif isinstance(value, list):
        for n, item in enumerate(value):
            yield from _strings(item, (*path, n))
