"""``microfactory drawing import PART.dxf --out drawing.yaml``: a drawing from the engineer's CAD file.

Reads the outline and the holes from the DXF file's layers (``--outline-layer``, ``--holes-layer``,
matched by name), checks the unit (``$INSUNITS``; ``--units`` for a file that does not say), validates
the result as a drawing (holes inside the outline …) and only then writes it. An existing ``--out`` is
never overwritten without ``--force``. Exit 0 written, 2 bad input (nothing written).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from microfactory.cli import arguments
from microfactory.drawing import parse_drawing
from microfactory.dxf import drawing_yaml, read_dxf
from microfactory.errors import ConfigError

EXIT_OK, EXIT_BAD_INPUT = 0, 2


def register(subparsers: Any) -> None:
    """Add ``drawing import``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "drawing", help="drawings for the vision station (import from DXF)",
        description="Drawings for the vision station (docs/drawings.md).")
    sub = parser.add_subparsers(dest="drawing_command", metavar="ACTION", required=True)
    imp = sub.add_parser("import", help="make a drawing from a DXF file's outline and holes",
                         description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    imp.add_argument("dxf", metavar="PART.dxf")
    imp.add_argument("--out", required=True, metavar="DRAWING.yaml", help="the drawing file to write")
    imp.add_argument("--outline-layer", default="OUTLINE", help="layer of the outline (default OUTLINE)")
    imp.add_argument("--holes-layer", default="HOLES", help="layer of the holes' circles (default HOLES)")
    imp.add_argument("--units", help="unit of a file that does not say its own: mm, cm, m, in, um")
    imp.add_argument("--name", help="drawing name (default: the DXF file's name)")
    imp.add_argument("--tol", type=arguments.positive_float, default=0.02,
                     help="± mm on the outline and hole positions "
                          "(default 0.02; edit the file for per-feature tolerances)")
    imp.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    imp.set_defaults(func=import_command)


def import_command(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.exists() and not args.force:
        raise ConfigError.single(str(out), "exists already; nothing written",
                                 hint="choose another --out, or add --force to replace it")
    if args.tol <= 0:
        raise ConfigError.single("--tol", f"must be > 0 mm (got {args.tol})")
    imported = read_dxf(args.dxf, args.outline_layer, args.holes_layer, args.units)
    text = drawing_yaml(imported, args.name or Path(args.dxf).stem, Path(args.dxf).name, args.tol)
    drawing = parse_drawing(text, str(out))  # refuse to write a drawing that would not load
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    shape = drawing.outline.shape if drawing.outline.shape != "profile" else \
        f"profile of {len(drawing.outline.points)} vertices"
    print(f"{out}: {shape} outline, {len(drawing.holes)} hole(s), from {args.dxf} (unit "
          f"{imported.unit_mm:g} mm)")
    for note in imported.notes:
        print(f"  note: {note}")
    return EXIT_OK
