"""Fixtures for interop tests: a process owner per test (every peer killed on teardown) and test audio.

The peers themselves live in ``tests/interop/peers.py``; a missing peer binary fails under CI
(``CI`` set) and skips elsewhere, with the install command in the message.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.interop.audio import write_tone
from tests.interop.peers import Processes


def need_binaries(*names: str) -> None:
    """Fail under CI, skip elsewhere, when a peer program is not installed."""
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        msg = f"{', '.join(missing)} not installed: apt-get install sip-tester baresip-core (scripts/setup --test)"
        if os.environ.get("CI"):
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    """Owner of every peer process the test starts; all are stopped at teardown, pass or fail.

    Peer logs stay in ``<tmp_path>/peers`` (pytest keeps the last runs' tmp dirs).
    """
    owner = Processes(tmp_path / "peers")
    try:
        yield owner
    finally:
        owner.close()


@pytest.fixture
def tone_wav(tmp_path: Path) -> Path:
    """3 s of 1 kHz at half scale, 8 kHz mono PCM16."""
    return write_tone(tmp_path / "tone-1k.wav", frequency=1000.0, seconds=3.0)
