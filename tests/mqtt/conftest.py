"""Fixtures: a real mosquitto for each test (see ``mqtt_broker``), skipped only when it is not installed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from mqtt_broker import Broker, find_mosquitto


def _exe() -> str:
    exe = find_mosquitto()
    if exe is None:
        pytest.skip("mosquitto is not installed (Debian: apt-get install mosquitto; scripts/setup.sh "
                    "installs it)")
    return exe


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    broker = Broker(_exe(), tmp_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def secure_broker(tmp_path: Path) -> Iterator[Broker]:
    """TLS only, no anonymous clients; user ``cell-3`` with password ``s3cret-3``."""
    broker = Broker(_exe(), tmp_path, users={"cell-3": "s3cret-3"}, tls=True)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
