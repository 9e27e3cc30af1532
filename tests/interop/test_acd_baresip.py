"""baresip (Debian's baresip-core) as a ring-mode agent softphone of the live ACD, over real SIP on loopback.

baresip registers with digest auth to the ACD's registrar, dials the login code (the ACD answers,
beeps, logs the agent in and hangs up), and auto-answers the customer call the ACD offers it. Our
UA is the customer calling the DID through the trusted trunk address. The queue log must show
ENTERQUEUE and CONNECT for baresip's agent, the customer's tone must reach baresip's sndfile
recording, and the agent must go to wrap-up when the customer hangs up.

baresip is driven over ctrl_tcp from a thread (``tests/interop/peers.py``); its blocking calls
run in ``asyncio.to_thread`` so the ACD keeps running in this loop meanwhile. A missing baresip
fails under CI and skips elsewhere (``need_binaries``).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from telephony.media.player import tone
from tests.integration.acd_harness import PASSWORD, World, agent, queue, until, world
from tests.interop.audio import active_seconds, dominant_frequency
from tests.interop.conftest import need_binaries
from tests.interop.peers import LOOPBACK, Baresip, Processes

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]

AGENT = "agent1"
DID = "100"
WRAPUP_S = 3.0


def _count(phone: Baresip, kind: str) -> int:
    with phone._cond:
        return sum(1 for e in phone.events if e.get("type") == kind)


async def _wait_count(phone: Baresip, kind: str, n: int, timeout: float = 10.0) -> None:
    """Until baresip has reported ``n`` ``kind`` events (a phone sees several calls here)."""
    await until(
        lambda: _count(phone, kind) >= n,
        timeout=timeout,
        what=f"baresip event {kind} #{n}; events so far: {[e.get('type') for e in phone.events]}\n"
        f"{phone.log()[-3000:]}",
    )


def _config() -> dict[str, Any]:
    return {
        "queues": [queue("q", wrapup_s=WRAPUP_S, ring_timeout_s=8.0)],
        "agents": [agent(AGENT, {"q": 0})],
        "dids": {DID: "queue:q"},
    }


async def _registered_baresip(procs: Processes, tmp_path: Path, w: World) -> Baresip:
    phone = Baresip(
        procs,
        tmp_path / "baresip",
        user=AGENT,
        password=PASSWORD,
        registrar=(LOOPBACK, w.port),
        answer_mode="auto",
        lifetime=90,
    )
    await asyncio.to_thread(phone.start)
    await asyncio.to_thread(phone.wait_registered, 10)
    return phone


async def test_baresip_agent_logs_in_takes_a_queued_call_hears_it_and_wraps_up(
    procs: Processes, tmp_path: Path
) -> None:
    need_binaries("baresip")
    async with world(tmp_path, _config()) as w:
        phone = await _registered_baresip(procs, tmp_path, w)
        assert w.state(AGENT) == "logged_out"
        trace = phone.log()  # baresip -s: its SIP trace
        assert "SIP/2.0 401 Unauthorized" in trace, "the registrar accepted REGISTER without a digest challenge"
        assert f'Authorization: Digest username="{AGENT}"' in trace

        # Log in from the phone: dial the login code; the ACD answers, beeps and hangs up.
        await asyncio.to_thread(phone.dial, f"sip:{w.service.config.login_code}@{LOOPBACK}:{w.port}")
        await until(lambda: w.state(AGENT) == "ready", timeout=10, what=f"{AGENT} ready after the login code")
        await _wait_count(phone, "CALL_CLOSED", 1)  # the login call ended by the ACD
        logins = [r for r in await w.rows("LOGIN") if r.agent == AGENT]
        assert len(logins) == 1 and logins[0].data1 == "ring", [(r.event, r.agent, r.data1) for r in await w.rows()]

        customer = await w.call(DID, "15550100")
        await until(lambda: w.state(AGENT) == "on_call", timeout=10, what=f"{AGENT} answered (auto-answer)")
        await _wait_count(phone, "CALL_ESTABLISHED", 2)
        assert customer.media is not None
        await customer.play(tone(1000.0, 2.0, 0.5))
        hung_up_at = time.monotonic()
        await customer.hangup()
        await until(lambda: w.state(AGENT) == "wrap_up", what="wrap-up after the customer hung up")
        assert time.monotonic() - hung_up_at < WRAPUP_S
        await _wait_count(phone, "CALL_CLOSED", 2)  # the ACD ended baresip's leg too

        rows = [r for r in await w.rows() if r.call_id == customer.id]
        verbs = [(r.event, r.queue, r.agent) for r in rows]
        assert verbs[:2] == [("ENTERQUEUE", "q", "NONE"), ("CONNECT", "q", AGENT)], verbs
        assert rows[0].data2 == "15550100"
        wrap = [r for r in await w.rows("WRAPUPSTART") if r.agent == AGENT]
        assert len(wrap) == 1, [(r.event, r.agent, r.call_id) for r in await w.rows()]

        # The customer's tone reached baresip: sndfile's dump of what it decoded (named by the
        # second the call started, so the customer's call, the later one, owns the newest file).
        dumps = phone.recordings("dec")
        assert dumps, f"baresip recorded nothing in {phone.snd_dir}"
        newest = max(dumps, key=lambda p: p.stat().st_mtime)
        assert active_seconds(newest) > 1.5, f"{newest} is (nearly) silent"
        assert dominant_frequency(newest) == pytest.approx(1000.0, abs=20)

        await until(lambda: w.state(AGENT) == "ready", timeout=WRAPUP_S + 3, what="ready again after wrap-up")
