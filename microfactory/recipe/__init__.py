"""Recipes as data: the file format, parameters, loading, compiling to a Procedure, validation.

Operators write recipes (YAML, see ``docs/recipes.md``), never code. The engine only ever sees the
:class:`~microfactory.procedure.Procedure` that :func:`compile_recipe` makes of a recipe for one cell.
"""

from microfactory.recipe.compile import compile_recipe
from microfactory.recipe.loader import Recipe, load_recipe
from microfactory.recipe.parameters import ParameterSpec
from microfactory.recipe.validate import Problem, ValidationReport, validate_recipe

__all__ = ["ParameterSpec", "Problem", "Recipe", "ValidationReport", "compile_recipe", "load_recipe",
           "validate_recipe"]
