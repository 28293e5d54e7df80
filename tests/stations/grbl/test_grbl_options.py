"""A Grbl station's ``options:`` block: a typo or an out-of-range value stops the cell from loading."""

from __future__ import annotations

from pathlib import Path

import pytest

from microfactory.cell import load_cell
from microfactory.errors import ConfigError
from stations.grbl import KIND, GrblOptions

CELL = """\
cell: {id: b1, name: Test bench}
stations:
  - id: cut
    kind: grbl
    port: 0403:6001:A1B2
    limits:
      envelope: {x: [0, 80], y: [0, 60], z: [-30, 0]}
      max_feed_mm_min: 1200
    options:
      poll_hz: 20
      stop_on_eror: false
"""


def test_kind_declares_its_options_model() -> None:
    assert KIND.options is GrblOptions
    assert GrblOptions().poll_hz == 10.0 and GrblOptions().stop_on_error


def test_a_typo_in_options_is_an_error_at_the_key(tmp_path: Path) -> None:
    path = tmp_path / "cell.yaml"
    path.write_text(CELL)
    with pytest.raises(ConfigError) as err:
        load_cell(path)
    [(loc, message)] = err.value.problems
    assert (loc.file, loc.line, loc.column) == (str(path), 11, 7)
    assert loc.field.endswith("options.stop_on_eror") and "Extra inputs are not permitted" in message


def test_valid_options_load_and_poll_rate_is_bounded(tmp_path: Path) -> None:
    path = tmp_path / "cell.yaml"
    path.write_text(CELL.replace("      stop_on_eror: false\n", ""))
    assert load_cell(path).stations[0].options == {"poll_hz": 20}
    path.write_text(CELL.replace("      stop_on_eror: false\n", "").replace("poll_hz: 20", "poll_hz: 50"))
    with pytest.raises(ConfigError, match="poll_hz: Input should be less than or equal to 20"):
        load_cell(path)


def test_the_station_refuses_bad_options_built_without_a_cell_file() -> None:
    with pytest.raises(ConfigError, match=r"stations\.cut\.options\.sned_response"):
        GrblOptions.of({"sned_response": True}, station="cut")
