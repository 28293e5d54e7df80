"""Cell files: valid ones load; every malformed one names file, line, field and what to do."""

from __future__ import annotations

from pathlib import Path

import pytest

from microfactory.cell import load_cell
from microfactory.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]

VALID = """\
cell: {id: b1, name: Test bench}
stations:
  - id: mill
    kind: grbl
    port: 0403:6001:A1B2
    limits:
      envelope: {x: [0, 80], y: [0, 60], z: [-30, 0]}
      max_feed_mm_min: 1200
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cell.yaml"
    path.write_text(text)
    return path


def test_every_shipped_cell_file_loads() -> None:
    files = sorted((REPO / "recipes" / "cells").glob("*.yaml"))
    assert files, "no cell files shipped"
    for path in files:
        cell = load_cell(path)
        assert cell.stations, path


def test_valid_cell_and_usb_identity(tmp_path: Path) -> None:
    cell = load_cell(write(tmp_path, VALID))
    mill = cell.station("mill")
    assert mill.usb_identity == ("0403", "6001", "A1B2")
    assert mill.limits.envelope is not None and mill.limits.envelope.z == (-30.0, 0.0)
    assert not mill.simulated
    with pytest.raises(KeyError, match="stations: mill"):
        cell.station("lathe")


@pytest.mark.parametrize(
    ("text", "line", "field", "words"),
    [
        (VALID.replace("max_feed_mm_min: 1200", "max_feed_mm_min: fast"), 8,
         "stations[0].limits.max_feed_mm_min", "valid number"),
        (VALID.replace("x: [0, 80]", "x: [80, 0]"), 7, "stations[0].limits.envelope", "must be below max"),
        (VALID.replace("kind: grbl", "kind: lathe"), 4, "stations[0].kind", "unknown station kind 'lathe'"),
        (VALID.replace("id: mill", "id: Mill 1"), 3, "stations[0].id", "lower-case"),
        (VALID.replace("    port: 0403:6001:A1B2\n", "    port: 0403:6001:A1B2\n    colour: red\n"), 6,
         "stations[0].colour", "Extra inputs are not permitted"),
        (VALID + "  - id: mill\n    kind: grbl\n", 9, "stations[1].id", "appears twice"),
    ],
)
def test_malformed_cell_names_line_and_field(tmp_path: Path, text: str, line: int, field: str,
                                             words: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_cell(path)
    loc, message = err.value.problems[0]
    assert loc.file == str(path)
    assert loc.line == line, str(err.value)
    assert loc.field == field
    assert words in message
    assert f"{path}:{line}:" in str(err.value)


def test_yaml_syntax_error_has_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "cell: {id: b1\nstations: [\n")
    with pytest.raises(ConfigError, match="YAML syntax error") as err:
        load_cell(path)
    assert err.value.problems[0][0].line is not None


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_cell(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="empty"):
        load_cell(write(tmp_path, "# nothing\n"))


def test_a_typo_in_a_station_option_is_located(tmp_path: Path) -> None:
    port = "    port: 0403:6001:A1B2\n"
    text = VALID.replace(port, port + "    options: {pol_hz: 20}\n")
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_cell(path)
    loc, message = err.value.problems[0]
    assert (loc.line, loc.field) == (6, "stations[0].options.pol_hz")
    assert "Extra inputs are not permitted" in message


def test_an_option_out_of_range_is_located(tmp_path: Path) -> None:
    port = "    port: 0403:6001:A1B2\n"
    text = VALID.replace(port, port + "    options: {poll_hz: 200}\n")
    with pytest.raises(ConfigError, match=r"options.poll_hz: Input should be less than or equal to 20"):
        load_cell(write(tmp_path, text))
