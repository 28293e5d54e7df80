"""The lot report as JSON (everything) or CSV (one row per step and per measured feature, for a
spreadsheet or a quality database)."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

CSV_COLUMNS = (
    "lot",
    "part",
    "part_state",
    "scrap_reason",
    "record",
    "step",
    "station",
    "firmware",
    "operator",
    "attempt",
    "start_s",
    "end_s",
    "ok",
    "verdict",
    "feature",
    "measured",
    "nominal",
    "tol",
    "in_tol",
    "image_sha256",
    "recipe",
    "version",
    "recipe_sha256",
)


def to_json(report: dict[str, Any]) -> str:
    return json.dumps(report, ensure_ascii=False, indent=1, sort_keys=False)


def to_csv(report: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    lot = report["lot"]["lot"]
    for part in report["parts"]:
        base = {
            "lot": lot,
            "part": part["part"],
            "part_state": part["state"],
            "scrap_reason": part["reason"],
            "image_sha256": part["image_sha256"],
            "recipe": part["recipe"],
            "version": part["version"],
            "recipe_sha256": part["recipe_sha256"],
        }
        for s in part["steps"]:
            writer.writerow(
                {
                    **base,
                    "record": "step",
                    "step": s["step"],
                    "station": s["station"],
                    "firmware": s["firmware"],
                    "operator": s["operator"],
                    "attempt": s["attempt"],
                    "start_s": s["start_s"],
                    "end_s": s["end_s"],
                    "ok": s["ok"],
                    "verdict": s["verdict"],
                }
            )
        for m in part["measurements"]:
            writer.writerow(
                {
                    **base,
                    "record": "measurement",
                    "step": m.get("step", ""),
                    "feature": m["feature"],
                    "measured": m["measured"],
                    "nominal": m["nominal"],
                    "tol": m["tol"],
                    "in_tol": m.get("ok"),
                }
            )
    return out.getvalue()
