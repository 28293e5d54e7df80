"""Checkpoints: the first line that may not have run and the last that may have, from answers alone."""

from __future__ import annotations

from stations.grbl import checkpoint
from stations.grbl.streamer import ProgramLine


def program(n: int) -> list[ProgramLine]:
    lines = [ProgramLine("G21 G90", 1, "job.nc")]
    lines += [ProgramLine(f"G1 X-{i}.5 Y-1", i, "job.nc") for i in range(2, n + 1)]  # 12-13 bytes each
    return lines


def test_the_whole_planner_counts_as_not_run_and_the_receive_buffer_as_maybe_run() -> None:
    lines = program(300)
    point = checkpoint.running(lines, 100, planner_blocks=15, rx_bytes=128, every=50)
    # answers 1..100; the last 15 moves (lines 86..100) may still have been in the planner
    assert point.resume_line == 86
    # answers up to the one that writes the next checkpoint (line 150), then 127 bytes of lines behind
    behind = 0
    room = 127
    for line in lines[150:]:
        if room < len(line.text) + 1:
            break
        room -= len(line.text) + 1
        behind += 1
    assert point.may_have_run_to == 150 + behind
    assert point.fields()["program"] == "job.nc"


def test_at_the_start_nothing_ran_and_a_stop_says_what_was_sent() -> None:
    lines = program(30)
    start = checkpoint.running(lines, 0, planner_blocks=15, rx_bytes=128)
    assert start.resume_line == 1 and start.may_have_run_to == 30  # a short program fits the window
    stop = checkpoint.at_stop(lines, confirmed=12, sent=20)
    assert (stop.resume_line, stop.may_have_run_to, stop.stopped) == (13, 20, True)


def test_a_resume_preamble_maps_to_the_first_program_line_after_it() -> None:
    preamble = [ProgramLine(text, n, "job.nc (resume preamble)") for n, text in enumerate(["G21", "G90"], 1)]
    lines = preamble + [ProgramLine(f"G1 X-{i}", i, "job.nc") for i in range(40, 100)]
    point = checkpoint.running(lines, 1, planner_blocks=15, rx_bytes=128)
    assert point.resume_line == 40 and point.fields()["program"] == "job.nc"
