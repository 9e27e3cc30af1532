"""`dialer recordings list|export|verify|retention` round trip on a temporary SQLite database,
and what a recording looks like after its process was killed during the call.

Recordings are made by the real service and recorder; the audio reaches the tap as G.711
payloads from two stand-in legs of a real :class:`~telephony.media.bridge.Bridge`.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import wave
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import numpy as np
import pytest
from typer.testing import CliRunner

from dialer.commands.recordings import app
from infra.db import create_engine, create_sessionmaker, migrate
from recordings.recorder import sha256_file
from recordings.service import RecordingMeta, RecordingService, RecordingSummary
from telephony.aio.media_session import MediaSession
from telephony.media.bridge import Bridge
from telephony.media.tap import LEFT, RIGHT
from telephony.rtp.g711 import ulaw_decode, ulaw_encode
from telephony.rtp.stream import RtpSender

pytestmark = pytest.mark.timeout(120)
RATE = 8000
runner = CliRunner()


class StandInLeg:
    """Just enough of a MediaLeg for a Bridge to hold; audio is fed to the tap directly."""

    params = None

    def __init__(self) -> None:
        self.sender = RtpSender()
        self.rtp_out = self.send_rtp

    def send_rtp(self, datagram: bytes) -> None:
        return None

    def set_rtp_handler(self, handler: object) -> None:
        return None


async def record(
    service: RecordingService, call_id: str, meta: RecordingMeta, seconds: float = 1.0
) -> RecordingSummary:
    a, b = StandInLeg(), StandInLeg()
    bridge = Bridge(a, b)
    handle = await service.start(call_id, cast(MediaSession, a), bridge, meta)
    now = asyncio.get_running_loop().time()
    left, right = ulaw_encode(np.full(160, 2000, np.int16)), ulaw_encode(np.full(160, -1000, np.int16))
    for k in range(int(seconds * 50)):
        handle.tap.feed(LEFT, 1000 + 160 * k, 1, left, "PCMU", now + k * 0.02)
        handle.tap.feed(RIGHT, 9000 + 160 * k, 2, right, "PCMU", now + k * 0.02)
    return await handle.stop()


def at(text: str) -> Callable[[], datetime]:
    moment = datetime.fromisoformat(text).replace(tzinfo=UTC)
    return lambda: moment


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A data directory with a migrated SQLite database; commands find it through $DIALER_DATA_DIR."""
    data = tmp_path / "var"
    monkeypatch.setenv("DIALER_DATA_DIR", str(data))
    monkeypatch.delenv("DIALER_CONFIG", raising=False)
    monkeypatch.delenv("DIALER_DATABASE__URL", raising=False)
    monkeypatch.chdir(tmp_path)

    async def setup() -> None:
        engine = create_engine(f"sqlite+aiosqlite:///{data / 'dialer.db'}")
        await migrate(engine)
        await engine.dispose()

    asyncio.run(setup())
    yield data


def cli(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, f"{args}: exit {result.exit_code}\n{result.output}"
    return result.output


def make_recordings(data: Path) -> dict[str, RecordingSummary]:
    async def go() -> dict[str, RecordingSummary]:
        engine = create_engine(f"sqlite+aiosqlite:///{data / 'dialer.db'}")
        db = create_sessionmaker(engine)
        root = data / "recordings"
        made = {}
        try:
            for name, when, meta in [
                ("old", "2026-03-01T10:00:00", RecordingMeta("a1", 7, "spring", None, "completed")),
                ("mid", "2026-03-02T23:30:00", RecordingMeta("a2", 7, "spring", None, "busy")),
                ("new", "2026-03-09T08:00:00", RecordingMeta("a1", None, None, "support", "completed")),
            ]:
                service = RecordingService(db, root, clock=at(when))
                made[name] = await record(service, f"{name}@10.0.0.1", meta)
        finally:
            await engine.dispose()
        return made

    return asyncio.run(go())


def test_list_export_verify_retention_round_trip(site: Path, tmp_path: Path) -> None:
    made = make_recordings(site)
    root = site / "recordings"
    assert (root / made["old"].path).parent == root / "2026" / "03" / "01"

    rows = [json.loads(line) for line in cli("list", "--json").splitlines()]
    assert [r["call_id"] for r in rows] == ["new@10.0.0.1", "mid@10.0.0.1", "old@10.0.0.1"]  # newest first
    assert all(r["status"] == "complete" and len(r["sha256"]) == 64 for r in rows)
    by_agent = [json.loads(x)["id"] for x in cli("list", "--agent", "a1", "--json").splitlines()]
    assert by_agent == [made["new"].id, made["old"].id]
    spring_done = cli("list", "--campaign", "spring", "--outcome", "completed", "--json").splitlines()
    assert [json.loads(x)["id"] for x in spring_done] == [made["old"].id]
    assert [json.loads(x)["id"] for x in cli("list", "--campaign", "7", "--json").splitlines()] == [
        made["mid"].id,
        made["old"].id,
    ]
    day = cli("list", "--date", "2026-03-02", "--json").splitlines()
    assert [json.loads(x)["id"] for x in day] == [made["mid"].id]
    table = cli("list")
    assert "3 recording(s)" in table and made["old"].id[:12] in table and "spring" in table
    cli("list", "--date", "March 2nd", code=1)

    out = tmp_path / "export"
    assert "exported 1 recording(s)" in cli("export", made["old"].id[:8], "--out", str(out))
    copied = out / made["old"].path
    assert copied.read_bytes() == (root / made["old"].path).read_bytes()
    out2 = tmp_path / "export2"
    cli("export", "--date", "2026-03-01..2026-03-02", "--out", str(out2))
    with (out2 / "manifest.csv").open(newline="") as f:
        manifest = list(csv.DictReader(f))
    assert sorted(m["call_id"] for m in manifest) == ["mid@10.0.0.1", "old@10.0.0.1"]
    for m in manifest:
        assert sha256_file(out2 / m["file"]) == m["sha256"]
        assert float(m["duration"]) == pytest.approx(1.0, abs=0.05) and m["campaign"] == "spring"
    cli("export", "--out", str(out2), code=1)  # nothing named
    cli("export", "ffffffffff", "--out", str(out2), code=1)

    assert "verified 3 recording(s): 3 ok, 0 with problems" in cli("verify", "--all")
    mid = root / made["mid"].path
    data = bytearray(mid.read_bytes())
    data[-1] ^= 0xFF
    mid.write_bytes(bytes(data))
    (root / made["new"].path).unlink()
    report = cli("verify", "--all", code=1)
    assert f"MISMATCH: {made['mid'].path} ({made['mid'].id})" in report
    assert f"MISSING: {made['new'].path} ({made['new'].id})" in report
    assert "1 ok, 2 with problems" in report
    assert "MISMATCH" in cli("verify", made["mid"].id, code=1)
    assert "1 ok" in cli("verify", made["old"].id)

    # The machine's today is long after March: with 30 days kept, every March recording goes.
    dry = cli("retention", "--dry-run", "--days", "30")
    assert f"would delete {made['old'].path}" in dry and f"would delete {made['mid'].path}" in dry
    assert (root / made["old"].path).exists()
    done = cli("retention", "--days", "30")
    assert "deleted 2 file(s) older than 30 day(s); 3 row(s) marked deleted" in done  # 'new' had lost its file
    assert not (root / made["old"].path).exists()
    assert cli("list", "--json") == ""
    assert len(cli("list", "--deleted", "--json").splitlines()) == 3
    assert "verified 0 recording(s)" in cli("verify", "--all")


CHILD = textwrap.dedent(
    """
    import asyncio, os, signal, sys, time
    from datetime import UTC, datetime
    from typing import cast
    import numpy as np
    sys.path.insert(0, {repo!r})
    from infra.db import create_engine, create_sessionmaker
    from recordings.service import RecordingMeta, RecordingService
    from telephony.aio.media_session import MediaSession
    from telephony.media.bridge import Bridge
    from telephony.media.tap import LEFT, RIGHT
    from telephony.rtp.g711 import ulaw_encode
    from tests.integration.test_recordings_cli import StandInLeg

    async def main():
        engine = create_engine({url!r})
        service = RecordingService(create_sessionmaker(engine), {root!r})
        a, b = StandInLeg(), StandInLeg()
        handle = await service.start("crash@10.0.0.9", cast(MediaSession, a), Bridge(a, b), RecordingMeta("a9"))
        left, right = ulaw_encode(np.full(160, 2000, np.int16)), ulaw_encode(np.full(160, -1000, np.int16))
        loop = asyncio.get_running_loop()
        start = loop.time()
        for k in range(150):  # 3 s of a call, in real time
            await asyncio.sleep(max(0.0, start + k * 0.02 - loop.time()))
            now = loop.time()
            handle.tap.feed(LEFT, 1000 + 160 * k, 1, left, "PCMU", now)
            handle.tap.feed(RIGHT, 9000 + 160 * k, 2, right, "PCMU", now)
        print(handle.relpath, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    asyncio.run(main())
    """
)


def test_a_killed_recording_is_playable_and_verify_says_unfinished(site: Path) -> None:
    root = site / "recordings"
    repo = str(Path(__file__).resolve().parents[2])
    script = CHILD.format(repo=repo, url=f"sqlite+aiosqlite:///{site / 'dialer.db'}", root=str(root))
    child = subprocess.run(
        [sys.executable, "-c", script],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": repo},
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    relpath = child.stdout.strip().splitlines()[-1]
    path = root / relpath
    with wave.open(str(path)) as w:  # a valid WAV header: playable as it is
        assert (w.getnchannels(), w.getframerate(), w.getsampwidth()) == (2, RATE, 2)
        audio = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
    customer, agent = ulaw_decode(ulaw_encode(np.array([2000, -1000], np.int16)))
    # The timeline starts with the recording; the first packet came after the row was written.
    first = int(np.flatnonzero(audio[:, 0])[0])
    fed = len(audio) - first
    assert fed >= 2 * RATE, f"lost more than 1 s of 3 s: {fed / RATE:.2f} s of audio on disk"
    assert (audio[first:, 0] == customer).all() and (audio[first:, 1] == agent).all()

    # A file nobody wrote a row for (e.g. the database was down), in the same tree.
    stray = root / "2026" / "01" / "05" / "stray.wav"
    stray.parent.mkdir(parents=True)
    shutil.copy(path, stray)

    listed = [json.loads(x) for x in cli("list", "--json").splitlines()]
    assert [(r["call_id"], r["status"], r["sha256"]) for r in listed] == [("crash@10.0.0.9", "recording", None)]
    report = cli("verify", "--all", code=1)
    assert f"UNFINISHED: {relpath}" in report and "never finished (the process stopped during the call)" in report
    assert "the file is playable" in report
    assert "NO METADATA: 2026/01/05/stray.wav (no id): no metadata row (playable" in report
    adopted = cli("verify", "--all", "--adopt", code=1)  # the stray file still has no row
    assert "adopted 1 unfinished" in adopted and "UNFINISHED" not in adopted
    row = json.loads(cli("list", "--json").splitlines()[0])
    assert row["status"] == "recovered" and row["sha256"] == sha256_file(path)
    assert row["duration"] == pytest.approx(len(audio) / RATE)
    stray.unlink()
    assert "1 ok, 0 with problems" in cli("verify", "--all")
