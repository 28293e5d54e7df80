"""The stream guard's bookkeeping, report by report (pure: no link, no clock)."""

from __future__ import annotations

from stations.grbl.codec import parse_status
from stations.grbl.stream_guard import Outstanding, StreamGuard, TroubleKind

LINE = "G1X-10.001Y-10.000"  # 18 characters + "\n"
SIZE = len(LINE) + 1


def guard() -> StreamGuard:
    return StreamGuard(rx_bytes=128, planner_blocks=15)


def report(planner_free: int, rx_used: int) -> str:
    return f"<Run|MPos:-1.000,-1.000,0.000|Bf:{planner_free},{128 - rx_used}>"


def test_an_extra_answer_shows_in_the_first_report_although_a_line_went_out_behind_the_query() -> None:
    # the streamer credited one line too many: it believes 6 lines wait, Grbl holds 7 (one outside
    # its buffer, planning it, and 6 in the buffer); the streamer refilled right after the '?' went out
    written = [Outstanding(LINE, SIZE, written_t=t, started_t=t) for t in (1.0, 1.1, 1.2, 1.3, 1.4)]
    behind = Outstanding(LINE, SIZE, written_t=2.01, started_t=2.005)
    status = parse_status(report(0, 5 * SIZE + 1))  # +1: Grbl's ring reads one byte high (RX_SLACK)
    trouble = guard().check_report(status, 2.0, [*written, behind], 1.5, newest_asked_t=2.0)
    assert trouble is not None and trouble.kind is TroubleKind.DESYNC


def test_the_same_report_is_consistent_when_no_answer_was_counted_twice() -> None:
    written = [Outstanding(LINE, SIZE, written_t=t, started_t=t) for t in (1.0, 1.1, 1.2, 1.3, 1.4, 1.5)]
    behind = Outstanding(LINE, SIZE, written_t=2.01, started_t=2.005)
    # the head is outside the buffer (planning it), 5 lines in the buffer, the newest not yet arrived
    status = parse_status(report(0, 5 * SIZE + 1))
    assert guard().check_report(status, 2.0, [*written, behind], 1.5, newest_asked_t=2.0) is None


def test_a_line_whose_write_began_before_the_query_may_be_in_the_report() -> None:
    # a write in progress when '?' went out: its bytes may precede the '?' on the wire
    written = [Outstanding(LINE, SIZE, written_t=t, started_t=t) for t in (1.0, 1.1, 1.2, 1.3, 1.4, 1.5)]
    racing = Outstanding(LINE, SIZE, written_t=2.01, started_t=1.99)
    status = parse_status(report(0, 6 * SIZE + 1))
    assert guard().check_report(status, 2.0, [*written, racing], 1.5, newest_asked_t=2.0) is None


def test_a_stale_pairing_of_report_and_query_does_not_invent_a_desync() -> None:
    # reports lost in a silence leave the poller's queue behind: asked_t is old, newest_asked_t is not
    written = [Outstanding(LINE, SIZE, written_t=t, started_t=t) for t in (1.0, 1.1, 1.2)]
    status = parse_status(report(14, 3 * SIZE + 1))
    assert guard().check_report(status, 0.5, written, 0.9, newest_asked_t=2.0) is None
