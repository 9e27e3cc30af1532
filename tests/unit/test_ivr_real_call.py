"""The IVR runners on real calls: two of our user agents over loopback, RTP audio and RFC 4733 digits."""

from __future__ import annotations

import asyncio
import time
import wave
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import numpy as np
import pytest

from ivr.announce import AnnouncementPolicy, play_hold
from ivr.menu import RouteToQueue, load_menus, run_menu
from ivr.prompts import SHIPPED_PROMPTS_DIR, PromptLibrary
from ivr.survey import SurveyAnswer, run_survey
from telephony.aio.ua import Call, UAConfig, UserAgent

pytestmark = pytest.mark.timeout(60)
MENUS = {
    "menus": {
        "main": {
            "prompt": "menu_main",  # twelve seconds long: only barge-in ends it early
            "options": {"1": "queue:sales", "3": "complaint:complaints"},
        }
    }
}


@pytest.fixture
async def answered() -> AsyncIterator[tuple[Call, Call]]:
    caller = UserAgent(UAConfig(host="127.0.0.1", port=0, user="customer", registrar=False))
    ivr = UserAgent(UAConfig(host="127.0.0.1", port=0, user="ivr"))
    await caller.start()
    await ivr.start()
    try:
        out = await caller.call(f"sip:ivr@127.0.0.1:{ivr.port}")
        inc = await asyncio.wait_for(ivr.incoming().__anext__(), 5)
        await inc.answer()
        await asyncio.wait_for(out.wait_answered(), 5)
        yield out, inc
    finally:
        await caller.close()
        await ivr.close()


async def test_menu_barge_in_over_rtp(answered, tmp_path):
    out, inc = answered
    assert out.media is not None
    out.media.record_to(tmp_path / "heard.wav")
    prompts = PromptLibrary(SHIPPED_PROMPTS_DIR)

    async def caller() -> None:
        await asyncio.sleep(0.8)
        await out.send_dtmf("3")

    started = time.monotonic()
    press = asyncio.create_task(caller())
    result = await asyncio.wait_for(run_menu(inc, load_menus(MENUS), prompts=prompts), 10)
    await press
    assert result.exit == RouteToQueue("complaints", complaint=True, callback_due=result.exit.callback_due)
    assert result.complaint and result.exit.callback_due is not None
    assert (result.exit.callback_due - datetime.now(UTC)).total_seconds() > 11 * 3600
    assert time.monotonic() - started < 5, "the digit did not stop the prompt"
    await out.hangup()
    await asyncio.wait_for(inc.wait_ended(), 5)
    out.media.stop_recording()
    with wave.open(str(tmp_path / "heard.wav")) as w:
        heard = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    assert np.abs(heard.astype(np.int32)).max() > 2000, "the caller heard no prompt"


async def test_hold_then_survey_over_rtp(answered):
    out, inc = answered
    prompts = PromptLibrary(SHIPPED_PROMPTS_DIR)
    asked = []

    def position() -> tuple[int, float | None]:
        asked.append(time.monotonic())
        return 2, 120.0

    hold = asyncio.create_task(play_hold(inc, prompts, position, AnnouncementPolicy(first_after=0.3, interval=5)))
    await asyncio.sleep(0.6)
    hold.cancel()
    with pytest.raises(asyncio.CancelledError):
        await hold
    assert len(asked) == 1

    async def caller() -> None:
        await asyncio.sleep(0.5)
        await out.send_dtmf("2")

    press = asyncio.create_task(caller())
    answer = await asyncio.wait_for(run_survey(inc, prompts), 30)
    await press
    assert answer is SurveyAnswer.AVERAGE
    await asyncio.wait_for(out.wait_ended(), 5)  # the survey hangs up after its thanks
    assert out.ended_by == "remote"


async def test_menu_then_survey_on_one_call_loses_no_digit(answered):
    out, inc = answered
    prompts = PromptLibrary(SHIPPED_PROMPTS_DIR)
    menus = load_menus({"menus": {"main": {"prompt": "position_1", "options": {"1": "queue:q"}}}})

    async def caller() -> None:
        await asyncio.sleep(0.5)
        await out.send_dtmf("1")
        await asyncio.sleep(1.0)
        await out.send_dtmf("3")

    press = asyncio.create_task(caller())
    result = await asyncio.wait_for(run_menu(inc, menus, prompts=prompts), 10)
    assert result.exit == RouteToQueue("q")
    answer = await asyncio.wait_for(run_survey(inc, prompts, timeout=3, attempts=1), 20)
    await press
    assert answer is SurveyAnswer.UNSATISFIED
