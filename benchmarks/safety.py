"""Safety benchmark (issue 10): moves out of the envelope, foreign exceptions under fuzzing, E-stop latency.

Three parts, each its own module so each is measured by the code that owns it:

- ``safety_envelope.measure(quick)`` → ``out_of_envelope_reached`` (goal 0) and ``programs_tried``:
  sequences of programs and recipe parameters through the production drivers against the simulator with
  soft limits on.
- ``safety_estop.measure(quick)`` → ``estop_to_byte_ms_p99`` (goal ≤ 50): E-stop to the stop byte on the
  wire, 16 stations during a lot.
- the fuzz part, here: every loader and parser of ``tests/fuzz/fuzz_targets.py`` fed ``--examples`` inputs
  each (10,000 by default) → ``fuzz_examples`` and ``foreign_exceptions`` per target (goal 0 foreign).

A part whose module is not there yet is named in ``"missing"`` and contributes no figure (never an
invented one). The last line printed is one JSON object; ``foreign_samples`` gives, for each foreign
exception type, an input that raised it, so a failure can be turned into a test at once.

    .venv/bin/python benchmarks/safety.py                 # 10,000 examples per target (long)
    .venv/bin/python benchmarks/safety.py --quick         # 500 per target, and the quick sibling runs
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(HERE), str(REPO / "tests" / "fuzz")]

from fuzz_targets import Workspace, build_targets, fuzz, quiet_logging  # noqa: E402

SIBLINGS = {"safety_envelope": ("out_of_envelope_reached", "programs_tried"),
            "safety_estop": ("estop_to_byte_ms_p99",)}


def sibling_figures(quick: bool) -> tuple[dict[str, Any], list[str]]:
    """The figures of the sibling modules that exist; the names of those that do not."""
    figures: dict[str, Any] = {}
    missing: list[str] = []
    for module_name, keys in SIBLINGS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            missing.append(module_name)
            continue
        result = module.measure(quick)
        figures.update({key: result[key] for key in keys})
        figures.update({k: v for k, v in result.items() if k not in keys and k not in figures})
    return figures, missing


def fuzz_figures(examples: int, only: list[str] | None, seed: int | None) -> dict[str, Any]:
    """Feed ``examples`` inputs to each target; count examples and foreign exceptions per target."""
    workspace = Workspace()
    try:
        targets = [t for t in build_targets(workspace) if not only or t.name in only]
        fed: dict[str, int] = {}
        foreign: dict[str, int] = {}
        samples: dict[str, dict[str, str]] = {}
        seconds: dict[str, float] = {}
        for target in targets:
            t0 = time.perf_counter()
            with quiet_logging():
                result = fuzz(target, examples, seed=seed)
            seconds[target.name] = round(time.perf_counter() - t0, 1)
            fed[target.name] = result.examples
            foreign[target.name] = result.foreign
            if result.samples:
                samples[target.name] = result.samples
            print(f"{target.name}: {result.examples} examples, {result.foreign} foreign, "
                  f"{seconds[target.name]} s", file=sys.stderr, flush=True)
    finally:
        workspace.close()
    return {"fuzz_examples": fed, "foreign_exceptions": foreign,
            "foreign_exceptions_total": sum(foreign.values()), "fuzz_wall_s": seconds,
            "foreign_samples": samples}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="500 examples per target, quick sibling runs")
    parser.add_argument("--examples", type=int, default=None, help="examples per fuzz target (default 10000)")
    parser.add_argument("--target", action="append", help="fuzz only this target (repeatable)")
    parser.add_argument("--seed", type=int, default=None, help="hypothesis seed (default: random)")
    parser.add_argument("--no-siblings", action="store_true", help="fuzz only; report the siblings missing")
    args = parser.parse_args(argv)
    examples = args.examples or (500 if args.quick else 10_000)
    if args.no_siblings:
        figures: dict[str, Any] = {}
        missing = [f"{name} (not run: --no-siblings)" for name in SIBLINGS]
    else:
        figures, missing = sibling_figures(args.quick)
    out: dict[str, Any] = {key: figures.get(key) for keys in SIBLINGS.values() for key in keys}
    out.update(fuzz_figures(examples, args.target, args.seed))
    out.update({k: v for k, v in figures.items() if k not in out})
    out["missing"] = missing
    out["examples_per_target"] = examples
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
