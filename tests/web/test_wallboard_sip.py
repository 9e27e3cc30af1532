"""The wallboard in headless Chromium follows a real agent through a real call within a second.

The console runs on the real ACD harness (SIP on 127.0.0.1, ``tests/integration/acd_harness.py``)
with the production :class:`AppBackend`, served by uvicorn in this loop. A supervisor opens the
wallboard; an agent phone (our UA) dials the login code, a caller (our UA) calls the DID, the
agent's phone answers, the caller hangs up. The test notes the wall time of each SIP event as
the phones see it, and a MutationObserver in the page notes ``Date.now()`` whenever the agent's
row changes state; each change must show within 1 s after its SIP event.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dialer.app import DialerApp
from dialer.console_backend import AppBackend
from dialer.web import LiveState, create_app, serve_console
from dialer.web.models import User
from dialer.web.server import ConsoleServer
from infra.settings import load_settings
from telephony.aio.ua import Call
from tests.integration.acd_harness import HOST, PASSWORD, Phone, World, agent, queue, until, world
from tests.web.conftest import _PASSWORD_HASH
from tests.web.test_browser import CHROMIUM, CHROMIUM_ARGS, _chromium_or_skip, _login

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

AGENT = "1001"
DID = "5000"
WRAPUP_S = 3.0
#: how late the page may show a change after its SIP event
MAX_DELAY_S = 1.0

RECORDER = """
() => {
  window.__changes = [];
  const grid = document.getElementById('agents');
  const note = (node) => {
    if (node.getAttribute && node.getAttribute('data-agent-id') === '__AGENT__')
      window.__changes.push({state: node.getAttribute('data-state'), t: Date.now()});
  };
  new MutationObserver((mutations) => {
    for (const m of mutations) {
      if (m.type === 'attributes') note(m.target);
      else for (const n of m.addedNodes) note(n);
    }
  }).observe(grid, {attributes: true, attributeFilter: ['data-state'], childList: true, subtree: true});
}
""".replace("__AGENT__", AGENT)


@dataclass
class Floor:
    w: World
    server: ConsoleServer
    phone: Phone


@pytest.fixture
async def floor(tmp_path: Path) -> AsyncIterator[Floor]:
    _chromium_or_skip()
    cfg = {
        "queues": [queue("q", wrapup_s=WRAPUP_S, ring_timeout_s=5.0)],
        "agents": [agent(AGENT)],
        "dids": {DID: "queue:q"},
    }
    async with world(tmp_path, cfg) as w:
        async with w.sessionmaker() as session:
            session.add(User(username="sam", password_hash=_PASSWORD_HASH, role="supervisor"))
            session.add(User(username="alice", password_hash=_PASSWORD_HASH, role="agent", agent_id=AGENT))
            await session.commit()
        settings = load_settings(
            None, site={"data_dir": tmp_path / "data"}, http={"secret_key": "test-secret-key-0123456789"}
        )
        app = DialerApp(settings=settings, sessionmaker=w.sessionmaker, bus=w.bus, acd=w.service)
        backend = AppBackend(app)
        live = LiveState(clock=time.time)
        web = create_app(settings=settings, sessionmaker=w.sessionmaker, bus=w.bus, backend=backend, live=live)
        server = await serve_console(web, HOST, 0)
        phone = await w.phone(AGENT)  # REGISTER with digest auth, accepted
        try:
            yield Floor(w, server, phone)
        finally:
            await server.stop()
            backend.close()
            live.detach()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    _chromium_or_skip()
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            await b.close()


async def test_wallboard_shows_a_real_agent_ready_on_call_and_wrap_up_within_a_second(
    floor: Floor, browser: Any
) -> None:
    w, phone = floor.w, floor.phone
    page, errors = await _login(browser, f"http://{HOST}:{floor.server.port}", "sam")
    assert page.url.endswith("/wallboard")
    await page.wait_for_selector('#conn-status[data-status="live"]', timeout=10_000)
    await page.wait_for_selector(f'[data-agent-id="{AGENT}"][data-state="logged_out"]', timeout=5_000)
    await page.evaluate(RECORDER)

    # The phone answers offers itself, noting when its 200 OK went out.
    legs: list[Call] = []

    def incoming(call: Call) -> None:
        async def take() -> None:
            await call.ring()
            await call.answer()
            legs.append(call)

        asyncio.get_running_loop().create_task(take())

    phone.ua.on_incoming = incoming
    sip: dict[str, float] = {}

    # 1. The login code: the ACD answers, beeps, logs the agent in (ready) and hangs up.
    login = await phone.ua.call(f"sip:{w.service.config.login_code}@{HOST}:{w.port}", auth=(AGENT, PASSWORD))
    outcome = await asyncio.wait_for(login.wait_answered(), 5)
    assert outcome.outcome.value == "answered", outcome
    assert login.answered_at is not None
    sip["ready"] = login.answered_at  # the ACD's 200 OK to the code
    await until(lambda: w.state(AGENT) == "ready", what="ready after the login code")
    await asyncio.wait_for(login.wait_ended(), 5)
    await page.wait_for_selector(f'[data-agent-id="{AGENT}"][data-state="ready"]', timeout=3_000)

    # 2. A caller calls the DID; the phone rings and answers.
    caller = await w.call(DID, "15551234")
    await until(lambda: bool(legs), what="the agent's phone answers")
    leg = legs[0]
    assert leg.answered_at is not None
    sip["on_call"] = leg.answered_at  # the phone's 200 OK sent
    await until(lambda: w.state(AGENT) == "on_call", what="on_call")
    await page.wait_for_selector(f'[data-agent-id="{AGENT}"][data-state="on_call"]', timeout=3_000)
    await asyncio.sleep(0.5)  # a short talk

    # 3. The caller hangs up: its BYE goes out; the ACD ends the agent's leg with a BYE.
    await caller.hangup()
    assert caller.ended_at is not None
    bye_sent = caller.ended_at
    await asyncio.wait_for(leg.wait_ended(), 5)
    assert leg.ended_by == "remote" and leg.ended_at is not None
    sip["wrap_up"] = leg.ended_at  # the agent's phone received the BYE
    await until(lambda: w.state(AGENT) == "wrap_up", what="wrap_up")
    await page.wait_for_selector(f'[data-agent-id="{AGENT}"][data-state="wrap_up"]', timeout=3_000)

    changes: list[dict[str, Any]] = await page.evaluate("window.__changes")
    first: dict[str, float] = {}
    for c in changes:
        first.setdefault(c["state"], c["t"] / 1000.0)
    missing = [s for s in sip if s not in first]
    assert not missing, f"the wallboard never showed {AGENT} as {missing}: {changes}"
    delays = {state: round(first[state] - at, 3) for state, at in sip.items()}
    # ready and on_call follow their SIP event; the ACD publishes wrap-up as it sends its BYE to the
    # agent, so the page may show it a few ms before the phone has the BYE, never before the caller's BYE.
    assert 0.0 <= delays["ready"] < MAX_DELAY_S, (delays, changes)
    assert 0.0 <= delays["on_call"] < MAX_DELAY_S, (delays, changes)
    assert -0.1 < delays["wrap_up"] < MAX_DELAY_S, (delays, changes)
    assert 0.0 <= first["wrap_up"] - bye_sent < MAX_DELAY_S, (first["wrap_up"] - bye_sent, changes)
    order = [c["state"] for c in changes if c["state"] in sip]
    assert order == ["ready", "on_call", "wrap_up"], changes

    # Wrap-up ends by its timer: the row goes back to ready.
    await page.wait_for_selector(f'[data-agent-id="{AGENT}"][data-state="ready"]', timeout=int(WRAPUP_S * 1000) + 3_000)
    assert w.state(AGENT) == "ready"
    assert not errors, errors
