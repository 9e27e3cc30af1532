"""`dialer demo` runs from a clean environment and shows real outcomes."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.timeout(120)
def test_demo_prints_outcomes_for_every_behaviour() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "dialer.cli", "demo"], capture_output=True, text=True, timeout=100, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert "registered with digest auth: 200" in out
    for outcome, status in (("answered", "200"), ("busy", "486"), ("no_answer", "487"), ("rejected", "603")):
        assert outcome in out and status in out
    assert "440 Hz tone" in out
    assert "DTMF received by the agent = 42" in out
