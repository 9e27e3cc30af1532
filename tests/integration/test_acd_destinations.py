"""Where callers go when a queue limit sends them away, over real SIP: voicemail (a WAV recorded
from the caller), a callback request (confirmed, hung up, place kept, dialled once when an agent
takes it), another queue; and the IVR's complaint option with its callback SLA flag."""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from acd import CallbackAtRisk, CallExitedWithTimeout
from acd.models import CallbackRow
from acd.service import VoicemailRecorded
from telephony.media.player import tone
from telephony.sip.uri import Address, SipURI
from tests.integration.acd_harness import agent, queue, until, world

pytestmark = pytest.mark.timeout(40)


async def test_max_wait_to_voicemail_records_the_caller(tmp_path: Path) -> None:
    cfg = {"queues": [queue("q", max_wait_s=0.3, max_wait_destination="voicemail")], "dids": {"100": "queue:q"}}
    async with world(tmp_path, cfg) as w:
        caller = await w.call("100", "1100")
        talk = asyncio.create_task(caller.play(tone(600, 1.0, 0.4), loop=True))
        try:
            await until(lambda: bool(w.of(CallExitedWithTimeout)), timeout=3, what="max wait")
            await asyncio.sleep(0.3 + 0.15 + 0.8)  # intro prompt, beep, then speak for a while
        finally:
            talk.cancel()
        await caller.hangup()
        await until(lambda: bool(w.of(VoicemailRecorded)), what="voicemail recorded")
        vm = w.of(VoicemailRecorded)[0]
        assert vm.number == "1100" and vm.queue == "q" and vm.reason == "max-wait"
        with wave.open(vm.path, "rb") as f:
            audio = np.frombuffer(f.readframes(f.getnframes()), dtype=np.int16)
        loud = audio[np.abs(audio) > 3000]
        assert len(loud) > 2000
        seg = audio[np.flatnonzero(np.abs(audio) > 3000)[0] :][:1600].astype(np.float64)
        assert abs(float(np.argmax(np.abs(np.fft.rfft(seg)))) * 8000 / len(seg) - 600) < 20
        rows = await w.rows()
        exit_row = next(r for r in rows if r.event == "EXITWITHTIMEOUT")
        assert (exit_row.data1, exit_row.data4) == ("1", "voicemail")
        assert any(r.event == "VOICEMAIL" and r.data1 == vm.path for r in rows)


async def test_max_wait_to_another_queue(tmp_path: Path) -> None:
    cfg = {
        "queues": [queue("q", max_wait_s=0.3, max_wait_destination="queue:overflow"), queue("overflow")],
        "agents": [agent("b", {"overflow": 0})],
        "dids": {"100": "queue:q"},
    }
    async with world(tmp_path, cfg) as w:
        pb = await w.phone("b")
        await w.service.agent_login("b")
        call = await w.call("100", "1200")
        await until(lambda: bool(pb.answered), what="overflow agent answers")
        rows = [r for r in await w.rows() if r.call_id == call.id]
        assert [(r.event, r.queue) for r in rows[:4]] == [
            ("ENTERQUEUE", "q"),
            ("EXITWITHTIMEOUT", "q"),
            ("ENTERQUEUE", "overflow"),
            ("CONNECT", "overflow"),
        ]
        assert rows[1].data4 == "queue:overflow"


async def test_max_wait_to_callback_confirms_and_keeps_the_request(tmp_path: Path) -> None:
    cfg = {"queues": [queue("q", max_wait_s=0.3, max_wait_destination="callback")], "dids": {"100": "queue:q"}}
    async with world(tmp_path, cfg) as w:
        call = await w.call("100", "1300")
        await asyncio.wait_for(call.wait_ended(), 5)
        assert call.ended_by == "remote"  # confirmed by a prompt, then hung up by the ACD
        line = w.service.calls_in_line("q")
        assert len(line) == 1 and line[0].callback_id == f"cb-{call.id}"
        rows = await w.rows()
        assert [r.event for r in rows if r.call_id == call.id][:3] == [
            "ENTERQUEUE",
            "EXITWITHTIMEOUT",
            "CALLBACKREQUEST",
        ]
        await asyncio.sleep(0.1)
        async with w.sessionmaker() as session:
            cb = (await session.execute(select(CallbackRow))).scalars().one()
        assert (cb.state, cb.number, cb.queue) == ("requested", "1300", "q")


async def test_callback_keeps_its_place_and_is_dialled_once(tmp_path: Path) -> None:
    cfg = {
        "queues": [queue("q", exit_keys={"5": "callback"}, hold={"enabled": True, "first_after_s": 30})],
        "agents": [agent("a")],
        "dids": {"100": "queue:q"},
    }
    async with world(tmp_path, cfg) as w:
        pa = await w.phone("a")
        first = await w.call("100", "1401")
        await until(lambda: len(w.service.calls_in_line("q")) == 1)
        await first.send_dtmf("5")
        await asyncio.wait_for(first.wait_ended(), 5)  # asked for a callback and was released
        second = await w.call("100", "1402")
        await until(lambda: len(w.service.calls_in_line("q")) == 2)
        assert [c.callback_id is not None for c in w.service.calls_in_line("q")] == [True, False]
        await w.service.agent_login("a")
        await until(lambda: bool(pa.answered), what="agent takes the callback first")
        assert SipURI.parse(pa.offers[0].remote).user == "1401"
        await until(lambda: len(w.called_back) == 1, what="the customer is dialled")
        customer = w.called_back[0]
        assert customer.headers is not None
        assert Address.parse(customer.headers.get("to") or "").uri.user == "1401"
        await until(lambda: w.state("a") == "on_call")
        await asyncio.wait_for(customer.wait_answered(), 5)
        await customer.hangup()
        await until(lambda: len(pa.offers) == 2, what="then the caller who came second")
        assert SipURI.parse(pa.offers[1].remote).user == "1402"
        assert len(w.called_back) == 1  # dialled once
        rows = await w.rows()
        assert any(r.event == "CALLBACKDONE" for r in rows)
        await second.hangup()


async def test_complaint_option_creates_a_callback_with_an_sla_flag(tmp_path: Path) -> None:
    menus = {
        "entry": "main",
        "menus": {
            "main": {
                "prompt": "menu_main",
                "timeout": 3,
                "options": {"1": "queue:q", "3": {"action": "complaint", "queue": "q", "sla_hours": 0.0005}},
            }
        },
    }
    cfg = {"queues": [queue("q")], "dids": {"200": "menu:main"}, "menus": menus}
    async with world(tmp_path, cfg) as w:
        call = await w.call("200", "1500")
        await asyncio.sleep(0.2)
        await call.send_dtmf("3")
        await asyncio.wait_for(call.wait_ended(), 5)
        await until(lambda: bool(w.of(CallbackAtRisk)), timeout=3, what="SLA risk flag (80% of 1.8 s)")
        await asyncio.sleep(0.1)
        async with w.sessionmaker() as session:
            cb = (await session.execute(select(CallbackRow))).scalars().one()
        assert cb.complaint and cb.number == "1500" and cb.at_risk
        assert any(r.event == "CALLBACKATRISK" for r in await w.rows())
