"""Our UA on uvloop, the event loop `dialer sip serve`, `dialer run` and `dialer demo` use.

uvloop's transports do not subclass asyncio's (``asyncio.Transport``,
``asyncio.DatagramTransport``), so code that checks transport types works under the
default loop and breaks only in production. These tests place calls on a uvloop loop.
"""

from __future__ import annotations

import asyncio

import pytest
import uvloop

from telephony.aio.ua import UAConfig, UserAgent
from telephony.sip.dialog import CallOutcome

pytestmark = pytest.mark.timeout(60)


async def _call_between_two_uas(transport: str) -> tuple[str, str, str]:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, uvloop.Loop)
    a = UserAgent(UAConfig(host="127.0.0.1", port=0, user="a", registrar=False))
    b = UserAgent(UAConfig(host="127.0.0.1", port=0, user="b", registrar=False))
    await a.start()
    await b.start()
    try:
        out = await a.call(f"sip:b@127.0.0.1:{b.port};transport={transport}")
        inc = await asyncio.wait_for(b.incoming().__anext__(), 5)
        await inc.answer()
        outcome = await asyncio.wait_for(out.wait_answered(), 5)
        assert inc.source is not None
        via = inc.headers.get("via") if inc.headers is not None else None
        await out.hangup()
        await asyncio.wait_for(inc.wait_ended(), 5)
        assert inc.ended_by == "remote"
        return outcome.outcome.value, inc.source.transport, via or ""
    finally:
        await a.close()
        await b.close()


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_call_on_uvloop(transport: str) -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        outcome, source_transport, via = runner.run(_call_between_two_uas(transport))
    assert outcome == CallOutcome.ANSWERED.value
    assert source_transport == transport
    assert f"SIP/2.0/{transport.upper()}" in via
