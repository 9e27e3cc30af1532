"""Answering machines over real SIP: with ``on_machine = "message"`` the runner waits for the
machine's beep and leaves the campaign's machine message (composed from the shipped prompts and
the callback number), then hangs up; with ``"hangup"`` it hangs up at once. Either way the CDR
outcome is ``machine``. The customer side is our UA playing a long greeting and a 1 kHz beep.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dialer.runner import campaign_messages
from ivr.prompts import SHIPPED_PROMPTS_DIR, PromptLibrary
from tests.integration.test_runner_calls import World, _finished, rms, until, world

pytestmark = pytest.mark.timeout(90)

LIBRARY = PromptLibrary(SHIPPED_PROMPTS_DIR)
CALLBACK = "+442079460001"


async def _machine_campaign(w: World, name: str, on_machine: str) -> int:
    return await w.campaign(
        name,
        amd=True,
        on_machine=on_machine,
        callback_number=CALLBACK,
        amd_thresholds={"greeting_max_ms": 2300, "total_analysis_ms": 5000},
    )


async def test_a_machine_gets_the_message_after_its_beep_or_is_hung_up(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        speaks, hangs_up = "+442071230070", "+442071230071"
        w.customers.behaviour = {speaks: "machine", hangs_up: "machine"}
        # A long spoken greeting (a shipped prompt, real speech for the VAD), as machines play.
        greeting = np.asarray(LIBRARY.load("menu_main"))[: 4 * 8000]
        w.customers.machine_greeting = greeting
        beep_end = (len(greeting) + 2800 + 3200) / 8000
        c_message = await _machine_campaign(w, "leave-message", "message")
        c_hangup = await _machine_campaign(w, "hang-up", "hangup")
        (lead_speaks,) = await w.leads(c_message, [speaks])
        (lead_hangs,) = await w.leads(c_hangup, [hangs_up])
        runner = await w.runner(c_message, await w.pool({"a1": "answer"}), prompts=LIBRARY)
        await w.runner(c_hangup, await w.pool({"b1": "answer"}), prompts=LIBRARY)
        await until(lambda: _finished(w, [lead_speaks, lead_hangs]), 60, "both machine calls to end")

        rows = {r.lead_id: r for r in await w.cdrs()}
        for row in rows.values():
            assert (row.outcome, row.amd_result, row.agent_id, row.bridged_at) == ("machine", "machine", None, None)
            assert row.answered_at is not None and row.ended_at is not None
        spoke, hung = rows[lead_speaks], rows[lead_hangs]
        assert spoke.answered_at is not None and spoke.ended_at is not None
        assert hung.answered_at is not None and hung.ended_at is not None
        assert (hung.ended_at - hung.answered_at).total_seconds() < beep_end, "hung up before the beep"

        # The message side: nothing sent to the machine before its beep, the campaign's machine
        # message after it (the customer's recording of what it heard).
        _, message = campaign_messages(LIBRARY, runner.settings)
        assert message is not None and np.array_equal(runner.machine_message, message)
        heard = w.customers.recordings[speaks]
        await until(lambda: heard.exists() and heard.stat().st_size > 1000, 5, "the machine's recording")
        pcm = _pcm(heard)
        before = pcm[: int((beep_end - 0.2) * 8000)]
        after = pcm[int((beep_end + 0.3) * 8000) :]
        assert _rms(before) < 200, "silence while the machine greets"
        assert _rms(after[: 2 * 8000]) > 1000, "the message right after the beep"
        span = _loud_span_s(after)
        assert span >= 0.9 * len(message) / 8000, f"heard {span:.1f} s of a {len(message) / 8000:.1f} s message"
        held = (spoke.ended_at - spoke.answered_at).total_seconds()
        assert held >= beep_end + 0.8 * len(message) / 8000, "hung up only after the whole message"
        assert rms(w.customers.recordings[hangs_up]) < 200, "the hang-up campaign left nothing"


def _pcm(path: Path) -> np.ndarray:
    import wave

    with wave.open(str(path), "rb") as f:
        return np.frombuffer(f.readframes(f.getnframes()), dtype=np.int16).astype(np.float64)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x * x))) if x.size else 0.0


def _loud_span_s(x: np.ndarray) -> float:
    """Seconds from the first to the last 20 ms frame with sound."""
    frames = x[: len(x) // 160 * 160].reshape(-1, 160)
    loud = np.flatnonzero(np.sqrt(np.mean(frames * frames, axis=1)) > 300)
    return float((loud[-1] - loud[0] + 1) * 0.02) if loud.size else 0.0
