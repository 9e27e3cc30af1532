"""StereoWavRecorder: channel mapping, alignment, pause gaps, header after each flush, crash safety."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from recordings.recorder import Channel, Gap, RecorderError, StereoWavRecorder

RATE = 8000
FRAME = 160  # 20 ms
REPO = Path(__file__).resolve().parents[2]


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def frame(value: int) -> np.ndarray:
    return np.full(FRAME, value, dtype=np.int16)


def read_stereo(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getcomptype()) == (2, 2, RATE, "NONE")
        data = w.readframes(w.getnframes())
    return np.frombuffer(data, dtype="<i2").reshape(-1, 2)


def recorder(tmp_path: Path, clock: Clock, **kw) -> StereoWavRecorder:
    return StereoWavRecorder(tmp_path / "rec.wav", clock=clock, background=False, **kw)


def test_customer_left_agent_right(tmp_path):
    clock = Clock()
    rec = recorder(tmp_path, clock)
    for _ in range(50):
        clock.t += 0.02
        rec.feed(Channel.CUSTOMER, frame(1000))
        rec.agent(frame(-1000))
    info = rec.close()
    audio = read_stereo(info.path)
    assert audio.shape == (50 * FRAME, 2)
    assert (audio[:, 0] == 1000).all() and (audio[:, 1] == -1000).all()
    assert info.frames == 8000 and info.duration == 1.0 and info.gaps == ()


def test_bursty_agent_stays_aligned(tmp_path):
    clock = Clock()
    rec = recorder(tmp_path, clock)
    next_flush = 0.7
    for k in range(100):
        clock.t = k * 0.02
        rec.customer(frame(k + 1))
        if k % 5 == 4:  # the agent's frames come five at a time, 80 ms late
            for j in range(k - 4, k + 1):
                rec.agent(frame(j + 1))
        if clock.t >= next_flush:
            rec.flush()
            next_flush += 0.7
    info = rec.close()
    audio = read_stereo(info.path)
    assert len(audio) == 100 * FRAME
    np.testing.assert_array_equal(audio[:, 0], audio[:, 1])
    assert audio[:, 1].min() > 0  # nothing padded: the burst stayed within max_lag
    assert info.padded == (0, 0)


def test_agent_later_than_max_lag_is_padded_then_realigned(tmp_path):
    clock = Clock()
    rec = recorder(tmp_path, clock, max_lag=0.3)
    for k in range(100):
        clock.t = k * 0.02
        rec.customer(frame(k + 1))
        if k == 25:
            rec.flush()  # agent has sent nothing: padded up to 0.5 s - 0.3 s
        if k == 29:  # then its first 0.6 s arrive at once
            for j in range(30):
                rec.agent(frame(j + 1))
        if k >= 30:
            rec.agent(frame(k + 1))
    info = rec.close()
    audio = read_stereo(info.path)
    padded = int(0.2 * RATE)
    assert info.padded[1] == padded and info.dropped[1] == padded
    assert (audio[:padded, 1] == 0).all()
    # After the padded span the agent's audio sits exactly beside the customer's of the same instant.
    np.testing.assert_array_equal(audio[padded:, 0], audio[padded:, 1])
    assert len(audio) == 100 * FRAME


def test_silent_side_is_padded_from_the_wall_clock(tmp_path):
    clock = Clock()
    rec = recorder(tmp_path, clock, flush_interval=1.0, max_lag=0.3)
    for k in range(50):
        clock.t = k * 0.02
        rec.customer(frame(7))
    clock.t = 3.0  # nobody sends for two seconds (hold): the file still follows real time
    rec.flush()
    with wave.open(str(rec.path)) as w:
        assert w.getnframes() == int((3.0 - 0.3) * RATE)
    info = rec.close()
    audio = read_stereo(info.path)
    assert (audio[:, 1] == 0).all()
    assert (audio[: 50 * FRAME, 0] == 7).all() and (audio[50 * FRAME :, 0] == 0).all()


def test_pause_writes_silence_and_reports_the_gap(tmp_path):
    clock = Clock()
    rec = recorder(tmp_path, clock)
    for k in range(150):
        clock.t = (k + 1) * 0.02
        if k == 50:
            rec.pause("card number")
            assert rec.paused
        if k == 100:
            rec.resume()
            assert not rec.paused
        rec.customer(frame(100))
        rec.agent(frame(-100))
    info = rec.close()
    assert info.gaps == (Gap(8000, 16000 + 800, "card number"),)
    assert info.gaps[0].start_seconds == 1.0 and info.gaps[0].end_seconds == pytest.approx(2.1)
    audio = read_stereo(info.path)
    assert (audio[8000:16800] == 0).all()
    assert (audio[:8000, 0] == 100).all() and (audio[16800:, 1] == -100).all()


def test_pause_guards_frames_of_a_silent_direction(tmp_path):
    clock = Clock()
    rec = recorder(tmp_path, clock, max_lag=0.3)
    for k in range(100):
        clock.t = (k + 1) * 0.02
        if k == 50:
            rec.pause("pci")  # the agent has sent nothing so far
        rec.customer(frame(5))
        if k >= 50:
            rec.agent(frame(9))  # everything the agent says is after the pause
    info = rec.close()  # closing while paused ends the gap with the recording
    audio = read_stereo(info.path)
    gap = info.gaps[0]
    assert gap.end == len(audio)
    assert (audio[:, 1] == 0).all(), "agent audio spoken during the pause leaked into the file"
    assert gap.start == int(1.02 * RATE) - int(0.3 * RATE)


def test_header_is_valid_after_every_flush(tmp_path):
    clock = Clock()
    rec = recorder(tmp_path, clock, flush_interval=0.5, max_lag=0.1)
    written = []
    for k in range(100):
        clock.t = (k + 1) * 0.02
        rec.customer(frame(1))
        rec.agent(frame(2))
        if k % 10 == 9:
            rec.flush()
            with wave.open(str(rec.path)) as w:
                written.append(w.getnframes())
            assert rec.path.stat().st_size == 44 + written[-1] * 4
    assert written == [(i + 1) * 10 * FRAME for i in range(10)]
    rec.close()


def test_close_reports_size_and_sha256(tmp_path):
    clock = Clock()
    rec = recorder(tmp_path, clock)
    rng = np.random.default_rng(1)
    for _ in range(20):
        clock.t += 0.02
        rec.customer(rng.integers(-3000, 3000, FRAME, dtype=np.int16))
        rec.agent(rng.integers(-3000, 3000, FRAME, dtype=np.int16))
    info = rec.close()
    content = info.path.read_bytes()
    assert info.size == len(content) == 44 + 20 * FRAME * 4
    assert info.sha256 == hashlib.sha256(content).hexdigest()
    with pytest.raises(RecorderError, match="already closed"):
        rec.close()
    with pytest.raises(RecorderError, match="is closed"):
        rec.customer(frame(1))


def test_never_overwrites_and_checks_arguments(tmp_path):
    (tmp_path / "rec.wav").write_bytes(b"old")
    with pytest.raises(RecorderError, match="already exists"):
        recorder(tmp_path, Clock())
    with pytest.raises(ValueError, match="max_lag"):
        StereoWavRecorder(tmp_path / "x.wav", flush_interval=0.2, max_lag=0.5)
    assert (tmp_path / "rec.wav").read_bytes() == b"old"


async def test_aclose_and_background_writer(tmp_path):
    rec = StereoWavRecorder(tmp_path / "bg.wav", flush_interval=0.2, max_lag=0.05)
    for _ in range(25):
        rec.customer(frame(3))
        rec.agent(frame(4))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with wave.open(str(rec.path)) as w:
            if w.getnframes() >= 25 * FRAME:
                break
        time.sleep(0.05)
    with wave.open(str(rec.path)) as w:
        assert w.getnframes() >= 25 * FRAME, "the writer thread did not flush"
    info = await rec.aclose()
    assert read_stereo(info.path)[: 25 * FRAME].tolist() == [[3, 4]] * (25 * FRAME)


def test_a_flush_is_two_writes_and_an_idle_one_none(tmp_path, monkeypatch):
    """The block, then the header with its sizes: no seek, no per-frame write (see the module docstring)."""
    import recordings.recorder as recorder_module

    calls: list[tuple[int, int]] = []
    real_pwrite = os.pwrite

    def pwrite(fd: int, data: bytes, offset: int) -> int:
        calls.append((len(data), offset))
        return real_pwrite(fd, data, offset)

    clock = Clock()
    rec = recorder(tmp_path, clock, flush_interval=0.5, max_lag=0.1)
    monkeypatch.setattr(recorder_module.os, "pwrite", pwrite)
    for _ in range(25):
        clock.t += 0.02
        rec.customer(frame(1))
        rec.agent(frame(2))
    rec.flush()
    assert calls == [(25 * FRAME * 4, 44), (44, 0)]
    calls.clear()
    rec.flush()  # nothing new (and no wall-clock padding due yet)
    assert calls == []
    info = rec.close()
    assert info.frames == 25 * FRAME and read_stereo(info.path)[:, 1].tolist() == [2] * (25 * FRAME)


async def test_tap_fed_background_recorder_is_written_per_batch(tmp_path):
    rec = StereoWavRecorder(tmp_path / "tap.wav", flush_interval=0.2, max_lag=0.05)
    for batch in range(3):
        rec.feed_stereo(np.full(4000, batch + 1, np.int16), np.full(4000, -batch - 1, np.int16))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with wave.open(str(rec.path)) as w:
                if w.getnframes() >= (batch + 1) * 4000:
                    break
            time.sleep(0.02)
        with wave.open(str(rec.path)) as w:
            assert w.getnframes() == (batch + 1) * 4000, "the writer did not write the batch"
        deadline = time.monotonic() + 5
        while not rec._parked and time.monotonic() < deadline:  # nothing pending: the writer lets it be
            time.sleep(0.02)
        assert rec._parked
    info = await rec.aclose()
    audio = read_stereo(info.path)
    assert audio[:, 0].tolist() == [1] * 4000 + [2] * 4000 + [3] * 4000 and (audio[:, 1] == -audio[:, 0]).all()


CHILD = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from recordings.recorder import StereoWavRecorder
    rec = StereoWavRecorder(sys.argv[1], flush_interval=1.0)
    start = time.monotonic()
    fed = 0
    while True:
        # 20 ms frames at real-time pace, as the media tap delivers them.
        rec.customer(np.full(160, 1000, np.int16))
        rec.agent(np.full(160, -1000, np.int16))
        fed += 160
        if fed % 1600 == 0:
            print(fed, flush=True)
        delay = start + fed / 8000 - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    """
)


def test_file_survives_a_killed_process(tmp_path):
    path = tmp_path / "crash.wav"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    fed = 0
    try:
        assert child.stdout is not None
        for line in child.stdout:
            fed = int(line)
            if fed >= int(3.3 * RATE):
                break
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        if child.stdout is not None:
            child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    assert fed >= int(3.3 * RATE)
    with wave.open(str(path)) as w:
        frames = w.getnframes()
        audio = np.frombuffer(w.readframes(frames), dtype="<i2").reshape(-1, 2)
    print(f"fed {fed} frames, {frames} on disk after SIGKILL")
    assert frames >= fed - RATE, f"lost more than 1 s: {frames} frames on disk, {fed} fed"
    assert (audio[:, 0] == 1000).all() and (audio[:, 1] == -1000).all()


def test_fed_by_a_media_tap(tmp_path):
    from telephony.media.tap import LEFT, RIGHT, Tap
    from telephony.rtp.g711 import ulaw_decode, ulaw_encode

    clock = Clock()
    rec = recorder(tmp_path, clock, flush_interval=1.0)
    tap = Tap(rec, now=0.0, flush_interval=0.5, delay=0.2, first_flush=0.5)
    customer, agent = ulaw_encode(frame(2000)), ulaw_encode(frame(-500))
    for k in range(150):  # 3 s; the agent's packets arrive 60 ms later than the customer's
        clock.t = k * 0.02
        tap.feed(LEFT, 1000 + k * FRAME, 0x1111, customer, "PCMU", clock.t)
        if k >= 3:
            tap.feed(RIGHT, 5000 + (k - 3) * FRAME, 0x2222, agent, "PCMU", clock.t)
        if k % 35 == 0:
            rec.flush()
    assert rec.path.stat().st_size > 44  # written while the call goes on
    rec.pause("card")
    pause_at = clock.t
    clock.t += 0.5
    rec.resume()
    tap.close(clock.t)
    info = rec.close()
    audio = read_stereo(info.path)
    left_value, right_value = int(ulaw_decode(customer)[0]), int(ulaw_decode(agent)[0])
    assert info.padded == (0, 0)  # the tap fills gaps itself: no wall-clock padding
    assert (audio[: 2 * RATE, 0] == left_value).all()
    assert (audio[int(0.1 * RATE) : 2 * RATE, 1] == right_value).all()
    gap = info.gaps[0]
    assert gap.end >= int((pause_at + 0.5) * RATE) and (audio[gap.start : gap.end] == 0).all()
