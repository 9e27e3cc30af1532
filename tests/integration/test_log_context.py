"""Every log line an ACD call task writes carries that call's id (and the agent's on offers):
context is bound per task (structlog contextvars), so lines of concurrent calls never mix."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import LogCapture

from infra.logging import in_log_context
from tests.integration.acd_harness import agent, queue, until, world

pytestmark = pytest.mark.timeout(30)


@contextmanager
def captured() -> Iterator[list[dict[str, Any]]]:
    """Like structlog.testing.capture_logs, but with the bound context merged in as in production."""
    old = structlog.get_config()
    cap = LogCapture()
    structlog.configure(processors=[structlog.contextvars.merge_contextvars, cap], cache_logger_on_first_use=False)
    try:
        yield cap.entries
    finally:
        structlog.configure(**old)


async def test_in_log_context_binds_only_inside_its_task() -> None:
    log = structlog.get_logger()

    async def work(tag: str) -> None:
        await asyncio.sleep(0)
        log.info("work", tag=tag)

    with captured() as logs:
        await asyncio.gather(
            asyncio.create_task(in_log_context(work("a"), call_id="c-a", agent_id=None)),
            asyncio.create_task(in_log_context(work("b"), call_id="c-b")),
        )
        log.info("outside")
    by_tag = {e.get("tag"): e for e in logs}
    assert by_tag["a"]["call_id"] == "c-a" and "agent_id" not in by_tag["a"]
    assert by_tag["b"]["call_id"] == "c-b"
    assert "call_id" not in by_tag[None]


async def test_acd_call_tasks_log_with_their_call_and_agent(tmp_path: Path) -> None:
    cfg = {"queues": [queue("q")], "agents": [agent("a")], "dids": {"100": "queue:q"}}
    with captured() as logs:
        async with world(tmp_path, cfg) as w:
            phone = await w.phone("a")
            await w.service.agent_login("a")
            caller = await w.call("100", "15551234")
            await until(lambda: bool(phone.answered), what="agent answers")
            await until(lambda: w.state("a") == "on_call", what="on_call")
            await caller.hangup()
            await until(lambda: w.state("a") == "ready", what="ready again")
    mine = {e["event"] for e in logs if e.get("call_id") == caller.id}
    # media.start is written by telephony when the ACD answers the caller, and names no call
    # itself: its call_id can only come from the ACD task's bound context.
    assert "media.start" in mine, sorted(mine)
    assert any(e["event"] == "acd.bridged" and e.get("agent_id") == "a" for e in logs if e.get("call_id") == caller.id)
