"""The whole inbound flow over real SIP on loopback: a DID routed to an IVR menu, a wrong digit
that gets the retry prompt while the menu stays, the right digit (RFC 4733) choosing a queue whose
skilled ready agent is offered and answers, and a time-of-day menu whose closed branch sends the
caller to its closed destination.

Every menu prompt is a tone of its own frequency (written into the harness's prompt folder), so
what the caller heard, and in which order, is read from the caller's received audio.
"""

from __future__ import annotations

import asyncio
import wave
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from ivr.prompts import write_wav
from telephony.aio.ua import Call
from telephony.media.player import tone
from tests.integration.acd_harness import agent, queue, until, world

pytestmark = pytest.mark.timeout(60)

MENU_HZ = 400.0
INVALID_HZ = 1300.0
CLOSED_HZ = 1700.0
CALLER_HZ = 500.0
FRAME = 160  # 20 ms at 8 kHz


def _write_prompts(tmp_path: Path) -> None:
    """Prompts the harness's PromptLibrary finds first (its folder is ``tmp_path / 'prompts'``)."""
    folder = tmp_path / "prompts"
    folder.mkdir(exist_ok=True)
    write_wav(folder / "t_menu.wav", tone(MENU_HZ, 0.5, 0.4))
    write_wav(folder / "t_invalid.wav", tone(INVALID_HZ, 0.5, 0.4))
    write_wav(folder / "t_noinput.wav", tone(900.0, 0.5, 0.4))
    write_wav(folder / "t_closed.wav", tone(CLOSED_HZ, 0.4, 0.4))


class Ear:
    """Everything a leg receives, live (a media tap), and the tones heard in it, in order."""

    def __init__(self, call: Call) -> None:
        assert call.media is not None, "the leg has no media"
        self.chunks: list[npt.NDArray[np.int16]] = []
        tap = call.media.new_tap(lambda left, _right: self.chunks.append(np.asarray(left, dtype=np.int16)),
                                 flush_interval=0.05, delay=0.06)  # fmt: skip
        call.media.add_tap(tap)

    def samples(self) -> npt.NDArray[np.int16]:
        return np.concatenate(self.chunks) if self.chunks else np.zeros(0, dtype=np.int16)

    def tones(self, min_frames: int = 5) -> list[float]:
        """Dominant frequency of each run of loud 20 ms frames (runs shorter than ``min_frames`` dropped);
        a run ends at silence or when the frequency changes by more than 60 Hz."""
        audio = self.samples().astype(np.float64)
        usable = len(audio) - len(audio) % FRAME
        frames = audio[:usable].reshape(-1, FRAME)
        runs: list[list[float]] = []
        prev: float | None = None
        for frame in frames:
            if np.sqrt(np.mean(frame**2)) < 1500:
                prev = None
                continue
            spectrum = np.abs(np.fft.rfft(frame * np.hanning(FRAME)))
            spectrum[0] = 0.0
            hz = float(np.argmax(spectrum)) * 8000 / FRAME
            if prev is None or abs(hz - prev) > 60:
                runs.append([])
            runs[-1].append(hz)
            prev = hz
        return [float(np.median(r)) for r in runs if len(r) >= min_frames]

    def heard(self, *expected: float) -> bool:
        got = self.tones()
        return len(got) >= len(expected) and all(abs(g - e) < 60 for g, e in zip(got, expected, strict=False))

    def quiet_for(self, seconds: float) -> bool:
        """The last ``seconds`` received are silence (a prompt has finished playing)."""
        tail = self.samples()[-round(seconds * 8000) :].astype(np.float64)
        return len(tail) >= round(seconds * 8000) and float(np.sqrt(np.mean(tail**2))) < 500


def _dominant_hz(path: Path) -> float:
    with wave.open(str(path), "rb") as f:
        heard = np.frombuffer(f.readframes(f.getnframes()), dtype=np.int16)
    loud = np.flatnonzero(np.abs(heard) > 3000)
    assert len(loud) > 800, f"{path} holds no audio"
    seg = heard[loud[0] : loud[0] + 1600].astype(np.float64)
    return float(np.argmax(np.abs(np.fft.rfft(seg)))) * 8000 / len(seg)


def _menus() -> dict[str, object]:
    today = datetime.now(UTC).date()
    all_day = {"mon-sun": "00:00-24:00"}
    return {
        "entry": "main",
        "menus": {
            "main": {
                "prompt": "t_menu",
                "invalid_prompt": "t_invalid",
                "no_input_prompt": "t_noinput",
                "timeout": 8,
                "max_retries": 2,
                "options": {"1": "queue:sales", "2": "queue:support"},
                "default": "hangup",
            },
            # Open around the clock except on the days around now: closed whatever the test's hour.
            "night": {
                "prompt": "t_menu",
                "timeout": 8,
                "options": {"1": "queue:sales"},
                "hours": {
                    "timezone": "UTC",
                    "days": all_day,
                    "closed_dates": [(today + timedelta(days=d)).isoformat() for d in (-1, 0, 1)],
                    "closed_prompt": "t_closed",
                    "closed_action": "queue:night",
                },
            },
            # The same hours without the closed dates: open now (the control for the closed case).
            "day": {
                "prompt": "t_menu",
                "timeout": 8,
                "options": {"1": "queue:sales"},
                "hours": {
                    "timezone": "UTC",
                    "days": all_day,
                    "closed_prompt": "t_closed",
                    "closed_action": "queue:night",
                },
            },
        },
    }


def _config() -> dict[str, object]:
    return {
        "queues": [queue("sales", skill="sales"), queue("support", skill="support"), queue("night")],
        "agents": [
            agent("sup1", {"support": 0}, skills={"support": 5}),
            agent("sal1", {"sales": 0}, skills={"sales": 5}),
            agent("ngt1", {"night": 0}),
        ],
        "dids": {"300": "menu:main", "301": "menu:night", "302": "menu:day"},
        "menus": _menus(),
    }


async def test_invalid_digit_retries_then_valid_digit_reaches_the_skilled_agent(tmp_path: Path) -> None:
    _write_prompts(tmp_path)
    async with world(tmp_path, _config()) as w:
        support = await w.phone("sup1")
        sales = await w.phone("sal1")
        await w.service.agent_login("sup1")
        await w.service.agent_login("sal1")
        assert (w.state("sup1"), w.state("sal1")) == ("ready", "ready")

        caller = await w.call("300", "15557001")
        ear = Ear(caller)
        await until(lambda: ear.heard(MENU_HZ) and ear.quiet_for(0.3), what="the menu prompt played")
        await caller.send_dtmf("7")  # no such option
        await until(
            lambda: ear.heard(MENU_HZ, INVALID_HZ, MENU_HZ) and ear.quiet_for(0.3),
            what="the retry prompt, then the menu again",
        )
        # The menu stays: nobody queued, nobody offered, the call still up.
        assert not caller.ended
        assert await w.rows("ENTERQUEUE") == []
        assert w.service.calls_in_line("support") == [] and w.service.calls_in_line("sales") == []
        assert support.offers == [] and sales.offers == []

        await caller.send_dtmf("2")  # support
        await until(lambda: bool(support.answered), what="the support agent answers")
        await until(lambda: w.state("sup1") == "on_call", what="sup1 on_call")
        assert sales.offers == [], "a sales agent was offered a support call"
        assert w.state("sal1") == "ready"
        assert ear.tones()[:3] == pytest.approx([MENU_HZ, INVALID_HZ, MENU_HZ], abs=60)

        leg = support.current
        assert leg.media is not None
        recorded = tmp_path / "agent-heard.wav"
        leg.media.record_to(recorded)
        await caller.play(tone(CALLER_HZ, 0.6, 0.5))
        await asyncio.sleep(0.15)
        leg.media.stop_recording()
        assert abs(_dominant_hz(recorded) - CALLER_HZ) < 20

        rows = [r for r in await w.rows() if r.call_id == caller.id]
        assert [(r.event, r.queue) for r in rows[:2]] == [("ENTERQUEUE", "support"), ("CONNECT", "support")]
        assert rows[1].agent == "sup1"
        assert rows[0].data2 == "15557001"
        assert all(r.queue != "sales" for r in rows)
        await caller.hangup()
        await asyncio.wait_for(leg.wait_ended(), 5)


async def test_closed_hours_send_the_caller_to_the_closed_destination(tmp_path: Path) -> None:
    _write_prompts(tmp_path)
    async with world(tmp_path, _config()) as w:
        night = await w.phone("ngt1")
        sales = await w.phone("sal1")
        await w.service.agent_login("ngt1")
        await w.service.agent_login("sal1")

        # Control: the same hours without the closed dates are open, so the menu prompt plays.
        open_caller = await w.call("302", "15557002")
        open_ear = Ear(open_caller)
        await until(lambda: open_ear.heard(MENU_HZ), what="the open menu's prompt")
        assert not open_ear.heard(CLOSED_HZ)
        await open_caller.hangup()

        caller = await w.call("301", "15557003")
        ear = Ear(caller)
        await until(lambda: bool(night.answered), what="the closed destination's agent answers")
        await until(lambda: w.state("ngt1") == "on_call", what="ngt1 on_call")
        assert ear.tones()[:1] == pytest.approx([CLOSED_HZ], abs=60), ear.tones()
        assert all(abs(t - MENU_HZ) > 60 for t in ear.tones()), "a closed menu played its options"
        assert sales.offers == []
        rows = [r for r in await w.rows() if r.call_id == caller.id]
        assert [(r.event, r.queue, r.agent) for r in rows[:2]] == [
            ("ENTERQUEUE", "night", "NONE"),
            ("CONNECT", "night", "ngt1"),
        ]
        assert all(r.call_id != open_caller.id for r in await w.rows("ENTERQUEUE"))
        await caller.hangup()
        await asyncio.wait_for(night.current.wait_ended(), 5)
