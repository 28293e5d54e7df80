"""The pre-check's fast path for the lines that make up nearly every real program: ``X.. Y.. Z.. F..``.

A CAM contour is thousands of lines holding only axis words (and now and then F) under a modal G0/G1.
For such a line the general path (lexer words, modal-group classification, the full block execution) does
far more than needed. :func:`try_fast_line` handles it directly — but only when it can prove the line
raises no problem at all; anything else (another word, a repeated letter, a comment in the middle, a
feed over the limit, G93, an arc or probe mode, an unknown position, a target outside the envelope, a
line over the length limit) returns False *before touching any state*, and the general path then checks
the line exactly as before. Problems, blocks, extents, time estimate and final state are therefore
identical either way (a property test compares both paths on random programs).
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from microfactory.gcode.precheck import _Checker

#: Only axis words and F (either case, spaces allowed as Grbl does), then at most one trailing comment.
_FAST_LINE = re.compile(r"((?:\s*[XYZFxyzf]\s*[+-]?(?:\d++(?:\.\d*+)?|\.\d++))+)"
                        r"\s*(?:\([^()]*\)|;[^\n]*)?\s*", re.ASCII)
_FAST_WORD = re.compile(r"([XYZFxyzf])\s*([+-]?(?:\d++(?:\.\d*+)?|\.\d++))", re.ASCII)
_EPS = 1e-6  # mm: the same tolerance as the general path
#: letter as written → (upper-case letter, index: 0..2 axis, 3 feed)
_LETTER = {c: (c.upper(), "XYZF".index(c.upper())) for c in "XYZFxyzf"}


def try_fast_line(checker: _Checker, number: int, raw: str) -> bool:
    """Check ``raw`` (source line ``number``) on the fast path; False (nothing changed) if it cannot."""
    match = _FAST_LINE.fullmatch(raw)
    if match is None:
        return False
    words = _FAST_WORD.findall(match.group(1))
    s = checker.s
    limits = checker.limits
    mode = s.motion
    if mode != "G0" and mode != "G1":
        return False
    if s.feed_mode != "G94":
        return False
    scale = 25.4 if s.units == "G20" else 1.0
    values: list[float | None] = [None, None, None, None]  # X, Y, Z, F as written
    text = ""
    for letter, num in words:
        up, index = _LETTER[letter]
        if values[index] is not None:
            return False  # repeated word: the general path reports it
        values[index] = float(num)
        text += up + num
    feed = values[3]
    if feed is not None and feed < 0:
        return False
    has_axes = values[0] is not None or values[1] is not None or values[2] is not None
    if len(text) > limits.max_line_length:
        return False
    feed_mm_min = s.feed_mm_min
    if feed is not None:
        feed_mm_min = feed * scale
        if feed_mm_min > limits.max_feed_mm_min + _EPS:
            return False
    if has_axes and mode == "G1" and (feed_mm_min is None or feed_mm_min <= 0):
        return False  # feed not set (or F0, which Grbl refuses too): the general path reports it
    start = s.position
    if has_axes:
        target = list(start)
        absolute = s.distance == "G90"
        bounds = checker._bounds
        if absolute:
            wcs = s.offsets[s.wcs]
            g92 = s.g92
        for i in range(3):
            value = values[i]
            if value is None:
                continue
            value *= scale
            if absolute:
                offset = wcs[i] + g92[i]  # ModalState.work_offset, same arithmetic order
                if i == 2:
                    offset += s.tool_length
                value += offset
            else:
                pos = start[i]
                if pos is None:
                    return False  # relative move from an unknown position: reported by the general path
                value += pos
            low, high = bounds[i]
            if value < low - _EPS or value > high + _EPS:
                return False
            target[i] = value
    # -- proven clean: now change state exactly as the general path would ---------------------------
    checker.line = number
    checker.add_block(number, text)
    if feed is not None:
        s.feed_mm_min = feed_mm_min
    if not has_axes:
        return True
    lo, hi = checker.lo, checker.hi
    for i in range(3):  # the extents grow by the start and the target (as check_point + linear do)
        for value in (start[i], target[i]):
            if value is None:
                continue
            cur = lo[i]
            if cur is None or value < cur:
                lo[i] = value
            cur = hi[i]
            if cur is None or value > cur:
                hi[i] = value
    d0 = 0.0 if start[0] is None or target[0] is None else target[0] - start[0]
    d1 = 0.0 if start[1] is None or target[1] is None else target[1] - start[1]
    d2 = 0.0 if start[2] is None or target[2] is None else target[2] - start[2]
    length = math.sqrt(d0 * d0 + d1 * d1 + d2 * d2)
    if length != 0.0:
        rate = limits.rapid_mm_min if mode == "G0" else min(feed_mm_min or 0.0, limits.max_feed_mm_min)
        unit = (d0 / length, d1 / length, d2 / length)
        checker.timer.move(length, rate, unit, unit, rapid=mode == "G0")
    s.position = (target[0], target[1], target[2])
    return True

