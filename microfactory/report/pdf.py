"""The lot report as a PDF certificate of conformance (fpdf2): a one-page summary, then the SPC charts, the
per-part measurements and the per-part genealogy.

Why fpdf2: a well-kept, pure-Python PDF library (no system libraries), fast enough for a 1,000-part lot
(~150 pages) in a few seconds, with vector drawing primitives we draw the X̄/R charts with — sharp at any
zoom, a few hundred bytes each, and no plotting stack (matplotlib) pulled into the core for two kinds of
line chart. Text uses DejaVu Sans when the system has it (σ, X̄, ±), else the PDF core font with the
few non-Latin-1 signs spelled out. Tables are written with ``text()`` at computed positions rather than
``cell()`` flow layout: one call per cell keeps a 9,000-row genealogy well under the 10 s budget.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fpdf import FPDF

FONT_DIRS = (
    Path("/usr/share/fonts/truetype/dejavu"),
    Path("/usr/share/fonts/dejavu"),
    Path("/usr/local/share/fonts"),
)
LEFT, TOP, WIDTH = 12.0, 14.0, 186.0
ROW = 3.6  # mm per table row
CHART_H = 38.0  # mm
BOTTOM = 282.0
PLAIN = {"σ": "sigma", "X̄": "Xbar", "R̄": "Rbar", "—": "-", "…": "...", "≤": "<=", "≥": ">=", "→": "->"}


class Certificate(FPDF):
    """An A4 PDF with the lot in every page's footer."""

    def __init__(self, lot: str) -> None:
        super().__init__("P", "mm", "A4")
        self.lot = lot
        self.set_auto_page_break(False)
        self.set_margins(LEFT, TOP, LEFT)
        self.unicode = False
        for folder in FONT_DIRS:
            regular, bold = folder / "DejaVuSans.ttf", folder / "DejaVuSans-Bold.ttf"
            if regular.is_file() and bold.is_file():
                self.add_font("body", "", str(regular))
                self.add_font("body", "B", str(bold))
                self.unicode = True
                break
        self.family = "body" if self.unicode else "helvetica"
        self.alias_nb_pages()

    def t(self, text: Any) -> str:
        s = "" if text is None else str(text)
        if self.unicode:
            return s
        for sign, words in PLAIN.items():
            s = s.replace(sign, words)
        return s.encode("latin-1", "replace").decode("latin-1")

    def font(self, size: float, bold: bool = False) -> None:
        self.set_font(self.family, "B" if bold else "", size)

    def footer(self) -> None:
        self.set_y(-10)
        self.font(7)
        self.set_text_color(90)
        self.cell(
            0,
            4,
            self.t(f"lot {self.lot} — certificate of conformance — page {self.page_no()} of {{nb}}"),
            align="C",
        )
        self.set_text_color(0)

    def heading(self, text: str, size: float = 11) -> None:
        self.font(size, True)
        self.cell(0, 6, self.t(text), new_x="LMARGIN", new_y="NEXT")
        self.font(8)


def render(report: dict[str, Any], path: str | Path) -> Path:
    """Write ``report`` (:func:`microfactory.report.lot.build`) as a PDF at ``path``."""
    lot = report["lot"]
    pdf = Certificate(lot["lot"])
    pdf.set_title(f"Certificate of conformance, lot {lot['lot']}")
    pdf.set_creator(f"microfactory {report['report']['microfactory']}")
    _summary_page(pdf, report)
    _spc_pages(pdf, report["spc"])
    _measurement_pages(pdf, report)
    _genealogy_pages(pdf, report)
    out = Path(path)
    pdf.output(str(out))
    return out


# -- page 1 ---------------------------------------------------------------------------------------
def _summary_page(pdf: Certificate, report: dict[str, Any]) -> None:
    lot, s = report["lot"], report["summary"]
    pdf.add_page()
    pdf.font(16, True)
    pdf.cell(0, 9, pdf.t("Certificate of conformance"), new_x="LMARGIN", new_y="NEXT")
    pdf.font(10)
    pdf.cell(
        0,
        5,
        pdf.t(f"Lot {lot['lot']} — {s['good']} good parts of {s['parts']}"),
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.ln(2)
    o = s["oee"]
    rows = [
        ("Recipe", f"{lot['recipe']} version {lot['version']}"),
        ("Recipe sha256", lot["recipe_sha256"] or "(no file recorded)"),
        ("Parameters", ", ".join(f"{k}={v}" for k, v in sorted(lot["parameters"].items())) or "defaults"),
        ("Cell", lot["cell"] or "(not recorded)"),
        ("Started / ended (UTC)", f"{_when(lot['started_at'])} / {_when(lot['ended_at']) or 'not ended'}"),
        ("Run by", lot["user"] or "(no user: the journal had no users)"),
        (
            "Lot state",
            (lot["state"] or "never ended")
            + (f" — closed: {lot['closed_reason']}" if lot["closed_reason"] else ""),
        ),
        (
            "Parts",
            f"{s['parts']}: {s['good']} good, {s['rework']} reworked, {s['scrap']} scrapped, "
            f"{s['unfinished']} unfinished; yield {100 * s['yield']:.1f} %",
        ),
        (
            "Cycle time",
            f"{_num(s['cycle_time_s'])} s per part; lead time mean {_num(s['lead_time_s']['mean'])} s, "
            f"max {_num(s['lead_time_s']['max'])} s",
        ),
        ("Throughput", f"{_num(s['throughput_per_h'])} good parts per hour (process time)"),
        ("Energy", f"{_num(s['energy_per_part_wh'])} Wh per good part ({_num(s['energy_wh'])} Wh in all)"),
        (
            "OEE",
            f"{100 * o['oee']:.1f} % = availability {100 * o['availability']:.1f} % × performance "
            f"{100 * o['performance']:.1f} % × quality {100 * o['quality']:.1f} %",
        ),
        ("Stops", "; ".join(f"{r['code']} on {r['source']}" for r in s["stop_reasons"][:6]) or "none"),
    ]
    _key_values(pdf, rows)
    pdf.ln(3)
    pdf.heading("Measured features (drawing nominal ± tolerance, mm)", 10)
    cols = [
        ("feature", 34),
        ("nominal ± tol", 30),
        ("n", 12),
        ("mean", 22),
        ("σ", 20),
        ("Cp", 16),
        ("Cpk", 16),
        ("out of tol", 18),
    ]
    body = [
        [
            f["feature"],
            f"{f['nominal']:g} ± {f['tol']:g}",
            f["n"],
            _num(f["mean"], 5),
            _num(f["sigma"], 5),
            _num(f["cp"], 2),
            _num(f["cpk"], 2),
            f["out_of_tolerance"],
        ]
        for f in report["spc"]
    ]
    _table(pdf, cols, body, flags=[bool(r[7]) for r in body])
    pdf.ln(3)
    a = report["audit"]
    pdf.heading("Audit trail", 10)
    if a["intact"]:
        text = (
            f"Intact: {a['records']} hash-chained records verified against the tables. "
            f"Last hash {a['last_hash']}."
        )
    else:
        text = f"ALTERED: {len(a['problems'])} problem(s) — " + "; ".join(a["problems"][:3])
        pdf.set_text_color(180, 0, 0)
    pdf.multi_cell(WIDTH, 4, align="L", text=pdf.t(text), new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(0)
    pdf.ln(2)
    pdf.heading("Signatures", 10)
    if not report["signatures"]:
        pdf.multi_cell(
            WIDTH,
            4,
            align="L",
            text=pdf.t(
                "Not signed electronically. Approved by (name, date, signature): "
                "______________________________________________"
            ),
            new_x="LMARGIN",
            new_y="NEXT",
        )
    for sig in report["signatures"]:
        state = "valid" if sig["valid"] else f"INVALID: {sig['why']}"
        if not sig["valid"]:
            pdf.set_text_color(180, 0, 0)
        pdf.multi_cell(
            WIDTH,
            4,
            align="L",
            text=pdf.t(
                f"{sig['meaning'].upper()} by {sig['name']} ({sig['user']}) on "
                f"{_when(sig['signed_at'])} UTC — bound to sha256 "
                f"{sig['subject_sha256'][:16]}… — {state}"
            ),
            new_x="LMARGIN",
            new_y="NEXT",
        )
        pdf.set_text_color(0)
    pdf.font(7)
    pdf.set_y(BOTTOM - 8)
    pdf.multi_cell(
        WIDTH,
        3,
        align="L",
        text=pdf.t(
            f"Generated {report['report']['generated_at']} by microfactory "
            f"{report['report']['microfactory']} from {report['report']['journal']}. "
            f"Lot records sha256 {report['report']['lot_sha256']}."
        ),
    )


def _key_values(pdf: Certificate, rows: list[tuple[str, str]]) -> None:
    for key, value in rows:
        pdf.font(8, True)
        pdf.cell(38, 4.6, pdf.t(key))
        pdf.font(8)
        pdf.multi_cell(WIDTH - 38, 4.6, align="L", text=pdf.t(value), new_x="LMARGIN", new_y="NEXT")


# -- tables ---------------------------------------------------------------------------------------
def _table(
    pdf: Certificate,
    cols: Sequence[tuple[str, float]],
    body: list[list[Any]],
    *,
    flags: list[bool] | None = None,
    size: float = 7.5,
    mono: bool = False,
) -> None:
    """A ruled table; a new page repeats the header; rows whose ``flags`` entry is true are red.

    ``mono``: the long tables (per part) are set in the PDF core font Courier, one ``text()`` call per
    row with the columns padded — a tenth of the calls of one per cell, and no font to embed."""
    per_char = size * 0.6 * 25.4 / 72  # Courier's advance: 0.6 em, in mm
    widths = [max(1, int(w / per_char)) for _, w in cols]

    def line(values: Sequence[Any]) -> str:
        return " ".join(_clip(pdf, v, n).ljust(n) for v, n in zip(values, widths, strict=True))

    def write_row(values: Sequence[Any], y: float) -> None:
        if mono:
            pdf.text(LEFT + 0.6, y, line(values))
            return
        x = LEFT
        for (_, w), value in zip(cols, values, strict=True):
            pdf.text(x + 0.6, y, pdf.t(_fit(value, w, size)))
            x += w

    def face(bold: bool = False) -> None:
        if mono:
            pdf.set_font("courier", "B" if bold else "", size)
        else:
            pdf.font(size, bold)

    def header() -> None:
        face(True)
        write_row([name for name, _ in cols], pdf.get_y() + ROW - 0.9)
        pdf.line(LEFT, pdf.get_y() + ROW, LEFT + WIDTH, pdf.get_y() + ROW)
        pdf.set_y(pdf.get_y() + ROW + 0.4)
        face()

    header()
    for n, row in enumerate(body):
        if pdf.get_y() + ROW > BOTTOM:
            pdf.add_page()
            header()
        red = bool(flags and flags[n])
        if red:
            pdf.set_text_color(180, 0, 0)
        write_row(row, pdf.get_y() + ROW - 0.9)
        if red:
            pdf.set_text_color(0)
        pdf.set_y(pdf.get_y() + ROW)


def _clip(pdf: Certificate, value: Any, chars: int) -> str:
    """Latin-1 text (Courier is a core font) cut to ``chars`` with a trailing ``~`` when cut."""
    text = "" if value is None else str(value)
    if not text.isascii():  # rare: most cells are ids, numbers and words
        for sign, words in PLAIN.items():
            text = text.replace(sign, words)
        text = text.replace("µ", "u").encode("latin-1", "replace").decode("latin-1")
    return text if len(text) <= chars else text[: chars - 1] + "~"


def _fit(value: Any, width_mm: float, size: float) -> str:
    text = "" if value is None else str(value)
    limit = max(3, int(width_mm / (size * 0.19)))  # ~average glyph width of the font at this size
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- SPC charts -----------------------------------------------------------------------------------
def _spc_pages(pdf: Certificate, spc: list[dict[str, Any]]) -> None:
    charted = [f for f in spc if f["xbar"]]
    if not charted:
        return
    pdf.add_page()
    pdf.heading("SPC: X̄ and R charts per feature (subgroups of 5 parts in lot order)")
    for f in charted:
        if pdf.get_y() + CHART_H + 10 > BOTTOM:
            pdf.add_page()
        y = pdf.get_y()
        pdf.font(8, True)
        pdf.text(
            LEFT,
            y + 3,
            pdf.t(
                f"{f['feature']}: nominal {f['nominal']:g} ± {f['tol']:g} mm, n {f['n']}, "
                f"mean {_num(f['mean'], 5)}, σ {_num(f['sigma'], 5)}, Cp {_num(f['cp'], 2)}, "
                f"Cpk {_num(f['cpk'], 2)}"
            ),
        )
        lim = f["limits"]
        _chart(
            pdf,
            LEFT,
            y + 5,
            112,
            CHART_H,
            f["xbar"],
            "X̄ (mm)",
            centre=lim["xbarbar"],
            ucl=lim["ucl_x"],
            lcl=lim["lcl_x"],
        )
        _chart(
            pdf,
            LEFT + 118,
            y + 5,
            68,
            CHART_H,
            f["range"],
            "R (mm)",
            centre=lim["rbar"],
            ucl=lim["ucl_r"],
            lcl=lim["lcl_r"],
        )
        pdf.set_y(y + CHART_H + 8)


def _chart(
    pdf: Certificate,
    x: float,
    y: float,
    w: float,
    h: float,
    values: list[float],
    label: str,
    *,
    centre: float | None,
    ucl: float | None,
    lcl: float | None,
    spec: tuple[float, float] | None = None,
) -> None:
    """A line chart of ``values`` with its centre line (green) and control limits (blue, dashed); points
    beyond a control limit are red. Spec limits are not drawn on the X̄ chart: they bound single parts,
    not subgroup means (the SPC table has Cp/Cpk and the count out of tolerance)."""
    lines = [v for v in (centre, ucl, lcl, *(spec or ())) if v is not None]
    lo, hi = min([*values, *lines]), max([*values, *lines])
    if math.isclose(lo, hi):
        lo, hi = lo - 1e-6, hi + 1e-6
    pad = (hi - lo) * 0.08
    lo, hi = lo - pad, hi + pad
    px, py, pw, ph = x + 14, y + 2, w - 16, h - 8

    def ty(v: float) -> float:
        return py + ph - (v - lo) / (hi - lo) * ph

    pdf.set_draw_color(120)
    pdf.set_line_width(0.15)
    pdf.rect(px, py, pw, ph)
    pdf.font(6)
    for v in (lo + pad, (lo + hi) / 2, hi - pad):
        pdf.text(x, ty(v) + 1, pdf.t(f"{v:.5g}"))
    pdf.text(px, y + h - 1.5, pdf.t(f"{label}, {len(values)} subgroups"))
    for value, colour, dashed in (
        (centre, (0, 110, 0), False),
        (ucl, (0, 0, 170), True),
        (lcl, (0, 0, 170), True),
        *((s, (190, 0, 0), False) for s in spec or ()),
    ):
        if value is None:
            continue
        pdf.set_draw_color(*colour)
        pdf.set_dash_pattern(dash=1.2, gap=0.8) if dashed else pdf.set_dash_pattern()
        pdf.line(px, ty(value), px + pw, ty(value))
    pdf.set_dash_pattern()
    step = pw / max(1, len(values) - 1)
    points = [(px + i * step, ty(v)) for i, v in enumerate(values)]
    pdf.set_draw_color(30)
    pdf.set_line_width(0.2)
    if len(points) > 1:
        pdf.polyline(points)
    out = [
        (p, v)
        for p, v in zip(points, values, strict=True)
        if (ucl is not None and v > ucl) or (lcl is not None and v < lcl)
    ]
    pdf.set_fill_color(200, 0, 0)
    for (cx, cy), _v in out:
        pdf.circle(cx, cy, 0.7, style="F")
    pdf.set_draw_color(0)


# -- per part -------------------------------------------------------------------------------------
def _measurement_pages(pdf: Certificate, report: dict[str, Any]) -> None:
    features = [f["feature"] for f in report["spc"]]
    if not features:
        return
    pdf.add_page()
    pdf.heading("Measurements per part: deviation from nominal (µm); red: outside tolerance")
    width = min(20.0, (WIDTH - 58) / len(features))
    cols = [("part", 30.0), ("state", 16.0), ("image sha256", 12.0)] + [(f, width) for f in features]
    body, flags = [], []
    for part in report["parts"]:
        dev = {m["feature"]: m for m in part["measurements"]}
        cells = [
            f"{1000 * dev[f]['deviation']:+.1f}" if f in dev and dev[f].get("deviation") is not None else ""
            for f in features
        ]
        flags.append(any(f in dev and not dev[f].get("ok", True) for f in features))
        body.append([part["part"], part["state"], part["image_sha256"][:6], *cells])
    _table(pdf, cols, body, size=6.5, flags=flags, mono=True)


def _genealogy_pages(pdf: Certificate, report: dict[str, Any]) -> None:
    pdf.add_page()
    pdf.heading("Genealogy per part: every step, station, firmware, attempt, time and result")
    firmware: dict[str, str] = {}
    for part in report["parts"]:
        for s in part["steps"]:
            if s["firmware"] and s["firmware"] not in firmware:
                firmware[s["firmware"]] = f"F{len(firmware) + 1}"
    pdf.font(7)
    for fw, ref in firmware.items():
        pdf.multi_cell(WIDTH, 3.4, align="L", text=pdf.t(f"{ref} = {fw}"), new_x="LMARGIN", new_y="NEXT")
    lot = report["lot"]
    pdf.multi_cell(
        WIDTH,
        3.4,
        align="L",
        text=pdf.t(
            f"Operator: {lot['user'] or '(no user)'}; recipe {lot['recipe']} "
            f"{lot['version']} sha256 {lot['recipe_sha256'] or '-'}"
        ),
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.ln(1)
    cols = [
        ("part", 30),
        ("step", 18),
        ("station", 15),
        ("fw", 8),
        ("try", 7),
        ("start s", 17),
        ("end s", 17),
        ("result", 13),
        ("verdict", 13),
        ("part result / reason", 48),
    ]
    body = []
    for part in report["parts"]:
        last = len(part["steps"]) - 1
        for i, s in enumerate(part["steps"]):
            result = "in doubt" if s["end_s"] is None else ("ok" if s["ok"] else "failed")
            outcome = (part["state"] + (f": {part['reason']}" if part["reason"] else "")) if i == last else ""
            body.append(
                [
                    part["part"] if i == 0 else "",
                    s["step"],
                    s["station"],
                    firmware.get(s["firmware"], ""),
                    s["attempt"] + 1,
                    _num(s["start_s"], 1),
                    _num(s["end_s"], 1),
                    result,
                    s["verdict"],
                    outcome,
                ]
            )
    _table(
        pdf,
        cols,
        body,
        size=6.5,
        flags=[r[7] != "ok" or r[9].startswith("scrapped") for r in body],
        mono=True,
    )


def _num(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}f}" if isinstance(value, float | int) else str(value)


def _when(iso: str | None) -> str:
    return (iso or "").replace("T", " ")[:19]
