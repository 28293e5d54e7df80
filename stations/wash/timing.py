"""The dry run's timing model of one wash station: the cycle, the driver's exchanges and its polls.

A wash step takes, in process seconds: the link time of the exchanges that prepare the cycle (interlock
queries, set-and-verify of the program, ``WASH:STAR`` and its phase query), the cycle itself
(:func:`~stations.wash.settings.cycle_s`: heat-up from the bath's temperature, ultrasound, rinse, dry),
and the wait until the driver's **status poll** sees ``DONE``. The driver polls every ``poll_s`` or, when
the washer says less is left (``WASH:REM?`` answers whole seconds), after that long
(:func:`~stations.wash.settings.next_poll_s`); the model plays the same poll schedule, so the end is
seen when the driver would see it. Bytes cost 10 bits each at the station's ``baud``.
"""

from __future__ import annotations

from microfactory.cell import StationConfig
from microfactory.station import StepRequest
from stations.wash.settings import WashOptions, WashSettings, cycle_s, next_poll_s

#: bytes both ways of the exchanges before the cycle runs: ``SYST:LID?;LEV?;WASH:PHAS?`` (the
#: interlocks, ~140), the program set and read back (~190), then ``WASH:STAR`` and ``WASH:PHAS?`` (~67)
PREPARE_BYTES = 397
#: of which the bytes after ``WASH:STAR`` reached the washer (its phase query and answer)
AFTER_START_BYTES = 55
#: bytes both ways of one status poll (phase, remaining, bath, power, set point and the fence)
POLL_BYTES = 99
POLL_QUERY_BYTES = 45  # of which the queries, before the washer answers
BITS_PER_BYTE = 10
MAX_POLLS = 100_000  # a runaway schedule is a bug, not a long wash


class WashTiming:
    """Process seconds of one wash station's steps; the bath stays warm from one cycle to the next."""

    def __init__(self, config: StationConfig) -> None:
        self.config = config
        self.options = WashOptions.of(config)
        self.byte_s = BITS_PER_BYTE / config.baud
        self.bath_c = self.options.ambient_c

    def step_s(self, step: StepRequest) -> float:
        settings, problems = WashSettings.from_params(step.params)
        if problems:
            return 0.0  # refused before a byte is sent
        program = settings.resolved(self.options)
        cycle = cycle_s(program, bath_c=self.bath_c)
        self.bath_c = max(self.bath_c, program.temperature_c)
        b = self.byte_s
        t = PREPARE_BYTES * b  # the first poll is sent here
        end = t - AFTER_START_BYTES * b + cycle  # the washer's own clock started at WASH:STAR
        for _ in range(MAX_POLLS):
            arrive = t + POLL_QUERY_BYTES * b
            answered = t + POLL_BYTES * b
            if arrive >= end:
                return answered
            t = answered + next_poll_s(float(round(end - arrive)), self.options)
        raise RuntimeError(f"wash timing model: no end after {MAX_POLLS} polls of a {cycle:g} s cycle")
