"""The console in headless Chromium (Debian's binary, driven by Playwright), served by uvicorn in this loop.

The wallboard test measures, inside the page, when each agent card's state attribute changes and
compares it with the wall-clock time the events were published on the bus.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from acd import (
    AgentState,
    AgentStateChanged,
    CallCompleted,
    CallConnected,
    CallOffered,
    CallQueued,
    ConnectionMode,
    WrapupStarted,
)
from dialer.web import CampaignStats, serve_console
from dialer.web.server import ConsoleServer
from infra.bus import Event
from tests.web.conftest import PASSWORD, Console, build_console

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _chromium_or_skip() -> None:
    problem = None
    if not Path(CHROMIUM).exists():
        problem = f"{CHROMIUM} is missing: install Debian's chromium package"
    else:
        try:
            import playwright.async_api  # noqa: F401
        except ImportError:
            problem = "the playwright Python package is missing: pip install playwright (no `playwright install`)"
    if problem is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"browser tests cannot run: {problem}")
    pytest.skip(f"browser tests skipped: {problem}")


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Console, ConsoleServer]]:
    _chromium_or_skip()
    # The browser's clock is real: the console's must be too for time-in-state to read right.
    console = await build_console(tmp_path, clock=time.time)
    await console.add_user("alice", "agent", agent_id="1001")
    await console.add_user("sam", "supervisor")
    await console.add_user("mia", "manager")
    server = await serve_console(console.app, "127.0.0.1", 0)
    try:
        yield console, server
    finally:
        await server.stop()
        console.backend.close()
        console.live.detach()
        await console.engine.dispose()


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


async def _login(browser: Any, base: str, username: str) -> tuple[Any, list[str]]:
    context = await browser.new_context(viewport={"width": 1500, "height": 950}, accept_downloads=True)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    await page.goto(f"{base}/login")
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_load_state("domcontentloaded")
    return page, errors


RECORDER = """
() => {
  window.__changes = [];
  const grid = document.getElementById('agents');
  const note = (node) => {
    if (node.getAttribute && node.getAttribute('data-agent-id') === '1001')
      window.__changes.push({state: node.getAttribute('data-state'), t: performance.timeOrigin + performance.now()});
  };
  new MutationObserver((mutations) => {
    for (const m of mutations) {
      if (m.type === 'attributes') note(m.target);
      else for (const n of m.addedNodes) note(n);
    }
  }).observe(grid, {attributes: true, attributeFilter: ['data-state'], childList: true, subtree: true});
}
"""


async def test_wallboard_follows_an_agent_to_ready_on_call_and_wrap_up_within_a_second(
    served: tuple[Console, ConsoleServer], browser: Any, tmp_path: Path
) -> None:
    console, server = served
    base = f"http://127.0.0.1:{server.port}"
    page, errors = await _login(browser, base, "sam")
    assert page.url.endswith("/wallboard")
    await page.wait_for_selector('#conn-status[data-status="live"]', timeout=10_000)
    await page.wait_for_selector('[data-agent-id="1001"][data-state="logged_out"]', timeout=5_000)
    await page.evaluate(RECORDER)
    bus = console.bus
    t = time.monotonic()

    def publish(*events: Event) -> float:
        sent = time.time()
        for e in events:
            bus.publish(e)
        return sent

    sent: dict[str, float] = {}
    sent["ready"] = publish(AgentStateChanged(at=t, agent_id="1001", old=AgentState.LOGGED_OUT, new=AgentState.READY))
    await page.wait_for_selector('[data-agent-id="1001"][data-state="ready"]', timeout=2_000)
    publish(CallQueued(at=t + 1, call_id="call-1", queue="sales", position=1))
    await page.wait_for_selector('#calls tr[data-call-id="call-1"][data-state="queued"]', timeout=2_000)
    sent["on_call"] = publish(
        CallOffered(at=t + 2, call_id="call-1", queue="sales", agent_id="1001", mode=ConnectionMode.RING),
        AgentStateChanged(at=t + 2, agent_id="1001", old=AgentState.READY, new=AgentState.OFFERED, call_id="call-1"),
        CallConnected(
            at=t + 3, call_id="call-1", queue="sales", agent_id="1001", hold_s=3.0, ring_s=1.0, original_position=1
        ),
        AgentStateChanged(at=t + 3, agent_id="1001", old=AgentState.OFFERED, new=AgentState.ON_CALL, call_id="call-1"),
    )
    await page.wait_for_selector('[data-agent-id="1001"][data-state="on_call"]', timeout=2_000)
    sent["wrap_up"] = publish(
        CallCompleted(
            at=t + 40,
            call_id="call-1",
            queue="sales",
            agent_id="1001",
            by="caller",
            wait_s=3.0,
            talk_s=37.0,
            on_hold_s=0.0,
            original_position=1,
        ),
        AgentStateChanged(at=t + 40, agent_id="1001", old=AgentState.ON_CALL, new=AgentState.WRAP_UP, call_id="call-1"),
        WrapupStarted(at=t + 40, agent_id="1001", call_id="call-1", queue="sales", wrapup_s=10.0),
    )
    await page.wait_for_selector('[data-agent-id="1001"][data-state="wrap_up"]', timeout=2_000)

    changes = await page.evaluate("window.__changes")
    delays: dict[str, float] = {}
    for state, at in sent.items():
        seen = [c["t"] / 1000.0 for c in changes if c["state"] == state]
        assert seen, f"the wallboard never showed 1001 as {state}: {changes}"
        delays[state] = seen[0] - at
    assert all(-0.05 < d < 1.0 for d in delays.values()), delays
    assert [c["state"] for c in changes if c["state"] in sent] == ["ready", "on_call", "wrap_up"]
    assert await page.locator("#calls tr[data-call-id='call-1']").count() == 0
    card = page.locator('[data-agent-id="1001"]')
    assert (await card.locator(".chip.state").inner_text()) == "wrap-up"
    assert await page.locator("#queues tr[data-queue='sales']").count() == 1
    assert not errors, errors


async def test_wallboard_screenshot_with_a_busy_floor(
    served: tuple[Console, ConsoleServer], browser: Any, tmp_path: Path
) -> None:
    """Not a pass/fail of looks: fills the board the way a real floor does and keeps a screenshot."""
    console, server = served
    names = ["ana", "ben", "chen", "dara", "eli", "fang", "gus", "hana", "ivan", "jin", "kai", "lena", "mo", "nia"]
    now = time.monotonic()
    states = [AgentState.ON_CALL, AgentState.READY, AgentState.WRAP_UP, AgentState.PAUSED, AgentState.OFFERED]
    console.live.set_agent_names({f"20{i:02d}": n for i, n in enumerate(names)})
    for i in range(len(names)):
        agent = f"20{i:02d}"
        state = states[i % len(states)]
        queue = "sales" if i % 2 else "support"
        # Spread the times in state over the last minutes, as on a real floor.
        ago = 17.0 + 41.0 * i
        console.live.clock = lambda ago=ago: time.time() - ago  # type: ignore[misc]
        call = f"c{i}" if state in (AgentState.ON_CALL, AgentState.OFFERED, AgentState.WRAP_UP) else None
        if call:
            console.bus.publish(CallQueued(at=now - 200, call_id=call, queue=queue, position=1))
            if state == AgentState.OFFERED:
                console.bus.publish(
                    CallOffered(at=now, call_id=call, queue=queue, agent_id=agent, mode=ConnectionMode.RING)
                )
            else:
                console.bus.publish(
                    CallConnected(
                        at=now, call_id=call, queue=queue, agent_id=agent, hold_s=4.0 * i, ring_s=2.0,
                        original_position=1,
                    )
                )  # fmt: skip
        if state == AgentState.WRAP_UP and call:
            console.bus.publish(
                CallCompleted(
                    at=now, call_id=call, queue=queue, agent_id=agent, by="caller", wait_s=4.0, talk_s=95.0,
                    on_hold_s=0.0, original_position=1,
                )
            )  # fmt: skip
        reason = "lunch" if state == AgentState.PAUSED else ""
        console.bus.publish(
            AgentStateChanged(at=now, agent_id=agent, old=AgentState.LOGGED_OUT, new=state, reason=reason, call_id=call)
        )
    console.live.clock = time.time
    for i in range(3):
        console.bus.publish(CallQueued(at=now, call_id=f"w{i}", queue="support", position=i + 1, vip=i == 0))
    console.bus.publish(
        CampaignStats(
            campaign_id=1, name="spring-renewals", status="active", mode="predictive", dial_level=2.4,
            lines_in_use=17, max_lines=30, agents_available=3, abandon_rate_24h=0.018, abandon_rate_30d=0.022,
            effective_today=412, target_today=700, at=now,
        )
    )  # fmt: skip
    console.bus.publish(
        CampaignStats(
            campaign_id=2, name="winback", status="paused", mode="progressive", dial_level=1.0, lines_in_use=0,
            max_lines=10, agents_available=0, abandon_rate_24h=0.041, abandon_rate_30d=0.027, effective_today=35,
            target_today=200, at=now,
        )
    )  # fmt: skip
    base = f"http://127.0.0.1:{server.port}"
    page, errors = await _login(browser, base, "sam")
    await page.wait_for_selector('#conn-status[data-status="live"]', timeout=10_000)
    await page.wait_for_selector('[data-agent-id="2013"]', timeout=5_000)
    await page.wait_for_timeout(1200)  # let the per-second timers tick once
    target = Path(os.environ.get("WEB_SCREENSHOT_DIR") or tmp_path) / "wallboard.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(target), full_page=True)
    assert target.stat().st_size > 10_000
    assert await page.locator(".agent").count() == len(names) + 1  # alice (1001) is there, logged out
    assert await page.locator('#calls tr[data-state="queued"]').count() == 3
    assert not errors, errors


# dialer.dnc and dialer.lists.importer still call Result.tuples(), deprecated in SQLAlchemy 2.1;
# drop this filter when they iterate the rows directly.
@pytest.mark.filterwarnings("ignore:The Result.tuples:sqlalchemy.exc.SADeprecationWarning")
async def test_uploading_a_list_shows_the_import_summary(
    served: tuple[Console, ConsoleServer], browser: Any, tmp_path: Path
) -> None:
    console, server = served
    await console.add_campaign("spring", region="CN")
    csv_file = tmp_path / "leads.csv"
    csv_file.write_text(
        "phone,name\n13800138000,Wang Wei\n13800138001,Li Na\nnot a number,Broken\n13800138000,Wang Wei again\n",
        encoding="utf-8",
    )
    base = f"http://127.0.0.1:{server.port}"
    page, errors = await _login(browser, base, "mia")
    await page.goto(f"{base}/manager/lists/upload")
    await page.select_option("select[name=campaign]", "spring")
    await page.set_input_files("input[name=file]", str(csv_file))
    await page.click("#upload-form button[type=submit]")
    await page.wait_for_selector("#import-summary", timeout=20_000)
    counts = {
        name: int(await page.locator(f'[data-count="{name}"]').inner_text())
        for name in ("read", "imported", "merged", "rejected", "dnc_suppressed")
    }
    assert counts == {"read": 4, "imported": 2, "merged": 1, "rejected": 1, "dnc_suppressed": 0}
    async with page.expect_download() as download_info:
        await page.click("#rejects-link")
    download = await download_info.value
    saved = tmp_path / "rejects.csv"
    await download.save_as(str(saved))
    rejects = saved.read_text(encoding="utf-8-sig")
    assert "not a number" in rejects
    assert rejects.splitlines()[0].endswith("line,reason")
    assert not errors, errors


async def test_an_agent_cannot_open_supervisor_pages_in_the_browser(
    served: tuple[Console, ConsoleServer], browser: Any
) -> None:
    _console, server = served
    base = f"http://127.0.0.1:{server.port}"
    page, _errors = await _login(browser, base, "alice")
    assert page.url.endswith("/agent")
    assert await page.locator("nav a[href='/wallboard']").count() == 0
    for path in ("/wallboard", "/manager/campaigns", "/manager/lists/upload", "/manager/reports"):
        response = await page.goto(f"{base}{path}")
        assert response is not None
        assert response.status == 403, path
        assert "Not allowed" in await page.locator("h1").inner_text()
        assert await page.locator("#agents").count() == 0
    # Nor through the API or the wallboard's socket, from inside the page.
    status = await page.evaluate("fetch('/api/wallboard').then(r => r.status)")
    assert status == 403
    code = await page.evaluate(
        """() => new Promise((resolve) => {
            const ws = new WebSocket('ws://' + location.host + '/ws/wallboard');
            ws.onmessage = () => resolve('opened');
            ws.onclose = (e) => resolve(e.code);
        })"""
    )
    assert code != "opened"


def _wav(path: Path, seconds: float = 2.0) -> None:
    """A short stereo 8 kHz tone, shaped like the recorder's files (customer left, agent right)."""
    import math
    import struct
    import wave

    path.parent.mkdir(parents=True, exist_ok=True)
    frames = b"".join(
        struct.pack("<hh", int(8000 * math.sin(2 * math.pi * 440 * i / 8000)), 0) for i in range(int(8000 * seconds))
    )
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(frames)


async def _seed_recordings(console: Console) -> None:
    from datetime import UTC, datetime, timedelta

    from recordings.models import Recording, RecordingStatus

    root = console.settings.recordings.root(console.data_dir)
    start = datetime.now(UTC) - timedelta(hours=2)
    async with console.sessionmaker() as s:
        for i, (agent, campaign) in enumerate([("1001", "spring"), ("1001", "spring"), ("1002", "autumn")]):
            rid = f"{i:032x}"
            _wav(root / "2026" / f"{rid}.wav")
            s.add(
                Recording(
                    id=rid, call_id=f"call-{i}", agent_id=agent, campaign=campaign,
                    started_at=start + timedelta(minutes=7 * i), ended_at=start + timedelta(minutes=7 * i, seconds=95),
                    duration=95.0 + 20 * i, size=32044,
                    path=f"2026/{rid}.wav", gaps=[], status=RecordingStatus.COMPLETE, outcome="completed",
                )
            )  # fmt: skip
        await s.commit()


async def test_a_supervisor_finds_plays_and_scores_a_recording_on_the_qa_page(
    served: tuple[Console, ConsoleServer], browser: Any, tmp_path: Path
) -> None:
    console, server = served
    await _seed_recordings(console)
    base = f"http://127.0.0.1:{server.port}"
    page, errors = await _login(browser, base, "sam")
    await page.click("nav a[href='/qa']")
    await page.wait_for_selector("#qa-results tr[data-id]", timeout=10_000)
    assert await page.locator("#qa-results tr[data-id]").count() == 3
    await page.fill("#qa-filters input[name=agent]", "1001")
    await page.click("#qa-filters button[type=submit]")
    from playwright.async_api import expect

    # (wait_for_function evaluates a string: the page's CSP rightly forbids that)
    await expect(page.locator("#qa-results tr[data-id]")).to_have_count(2, timeout=5_000)
    await page.click("#qa-results tr[data-id]:first-child")
    await page.wait_for_selector("#qa-criteria input", timeout=5_000)
    inputs = page.locator("#qa-criteria input")
    assert await inputs.count() >= 1
    assert await page.locator("#qa-player").get_attribute("src") is not None
    for i in range(await inputs.count()):
        await inputs.nth(i).fill("4")
    await page.fill("#qa-score-form textarea[name=comments]", "friendly, quoted the offer")
    await page.click("#qa-score-form button[type=submit]")
    await page.wait_for_selector("#qa-score-status.ok", timeout=5_000)
    assert (await page.locator("#qa-score-status").inner_text()).startswith("Saved:")
    await page.wait_for_selector("#qa-report tr", timeout=5_000)
    assert (await page.locator("#qa-report tr td").first.inner_text()) == "1001"
    assert await page.locator("nav a.active[href='/qa']").count() == 1
    target = Path(os.environ.get("WEB_SCREENSHOT_DIR") or tmp_path) / "qa.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(target), full_page=True)
    assert not errors, errors  # nothing blocked by the Content-Security-Policy


async def test_an_agent_cannot_open_the_qa_page(served: tuple[Console, ConsoleServer], browser: Any) -> None:
    console, server = served
    await _seed_recordings(console)
    base = f"http://127.0.0.1:{server.port}"
    page, _errors = await _login(browser, base, "alice")
    assert await page.locator("nav a[href='/qa']").count() == 0
    response = await page.goto(f"{base}/qa")
    assert response is not None and response.status == 403
    assert "Not allowed" in await page.locator("h1").inner_text()
    assert await page.locator("#qa-results").count() == 0
    for url in ("/api/recordings", "/api/recordings/" + "0" * 32 + "/audio", "/api/qa/report"):
        assert await page.evaluate(f"fetch('{url}').then(r => r.status)") == 403, url


async def test_reports_page_screenshot(served: tuple[Console, ConsoleServer], browser: Any, tmp_path: Path) -> None:
    """The manager's reports on the hand-built history of tests/unit/reports_data.py, kept as a screenshot."""
    from recordings.qa import store_survey_answer
    from tests.unit.reports_data import DAY, local, seed

    console, server = served
    await seed(console.sessionmaker)
    async with console.sessionmaker() as s:
        for i, (answer, agent, camp) in enumerate(
            [(1, "1001", "spring"), (2, "1001", "spring"), (3, "1002", "autumn")]
        ):
            await store_survey_answer(s, f"sv{i}", answer, now=local(10 + i), agent_id=agent, campaign=camp)
        await s.commit()
    base = f"http://127.0.0.1:{server.port}"
    page, errors = await _login(browser, base, "mia")
    await page.goto(f"{base}/manager/reports?day={DAY}&days=7")
    assert await page.locator("svg.chart").count() == 3
    assert await page.locator("#agents-table tbody tr").count() == 5
    assert await page.locator("#surveys-by-agent tbody tr").count() == 2
    target = Path(os.environ.get("WEB_SCREENSHOT_DIR") or tmp_path) / "reports.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(target), full_page=True)
    await page.goto(f"{base}/manager/reports?day={DAY}&days=7&campaign=spring")
    assert await page.locator("#report-at-risk tbody tr").count() >= 1
    await page.screenshot(path=str(target.with_name("reports-spring.png")), full_page=True)
    assert not errors, errors
