"""`dialer demo`: see the product work on loopback, with no carrier, database server or broker.

This first stage exercises the telephony core the way the product uses it: a PBX-side user
agent with a registrar and digest auth, an agent softphone that registers to it, and
customers behind a simulated carrier who answer, are busy, or never pick up. The table
shows each call's typed outcome, SIP status and what was heard. The campaign and ACD
stages join this command as they land.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from telephony import Call, CallOutcome, UAConfig, UserAgent
from telephony.media.player import tone


def demo(
    calls: Annotated[int, typer.Option(help="Customer calls to place")] = 6,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Logs on stderr")] = False,
) -> None:
    """Run a short live demonstration on 127.0.0.1 and print what happened."""
    from infra.logging import configure_logging

    configure_logging(level="info" if verbose else "warning")
    asyncio.run(_demo(calls))


async def _demo(n_calls: int) -> None:
    console = Console()
    pbx = UserAgent(UAConfig(host="127.0.0.1", port=0, user="pbx", accounts={"agent1": "demo-secret"}))
    agent = UserAgent(UAConfig(host="127.0.0.1", port=0, user="agent1", registrar=False))
    carrier = UserAgent(UAConfig(host="127.0.0.1", port=0, user="carrier", registrar=False))
    for ua in (pbx, agent, carrier):
        await ua.start()
    console.print(f"[bold]PBX[/] listening on udp/tcp 127.0.0.1:{pbx.port}; carrier on :{carrier.port}")
    behaviours = ["answer", "busy", "no_answer", "answer", "reject", "answer"]
    heard: dict[str, float] = {}
    agent_done = asyncio.Event()

    async def customer(call: Call, behaviour: str) -> None:
        if behaviour == "busy":
            await call.reject(486)
        elif behaviour == "reject":
            await call.reject(603)
        elif behaviour == "no_answer":
            await call.ring()
        else:
            await call.ring()
            await asyncio.sleep(0.3)
            await call.answer()
            await call.play(tone(440.0, 1.0, 0.3))

    pending: list[str] = []

    def on_carrier_call(call: Call) -> None:
        behaviour = pending.pop(0) if pending else "answer"
        asyncio.get_running_loop().create_task(customer(call, behaviour))

    carrier.on_incoming = on_carrier_call

    async def agent_phone(call: Call) -> None:
        await call.answer()
        digits: list[str] = []
        async for d in call.dtmf():
            digits.append(d)
            if d == "#":
                break
        heard["agent_dtmf"] = float(len(digits))
        heard["agent_digits"] = float(int("".join(digits).rstrip("#") or 0))
        agent_done.set()

    def on_agent_call(call: Call) -> None:
        asyncio.get_running_loop().create_task(agent_phone(call))

    agent.on_incoming = on_agent_call

    try:
        resp = await agent.register(f"sip:127.0.0.1:{pbx.port}", "agent1", "demo-secret", expires=300)
        console.print(
            f"agent1 registered with digest auth: [green]{resp.status if resp else 'no answer'}[/]"
            if resp is not None and resp.status == 200
            else "[red]agent1 could not register[/]"
        )
        table = Table(title="Customer calls through the simulated carrier")
        for col in ("#", "behaviour", "outcome", "SIP", "ring s", "audio heard"):
            table.add_column(col)
        for i in range(n_calls):
            behaviour = behaviours[i % len(behaviours)]
            pending.append(behaviour)
            t0 = time.monotonic()
            call = await pbx.call(f"sip:+1555000{i:04d}@127.0.0.1:{carrier.port}", ring_timeout=2.0)
            outcome = await call.wait_answered()
            ring = time.monotonic() - t0
            audio = "-"
            if outcome.outcome is CallOutcome.ANSWERED and call.media is not None:
                frames: list[np.ndarray] = []
                tap = call.media.new_tap(functools.partial(_keep_left, frames))
                call.media.add_tap(tap)
                await asyncio.sleep(1.2)
                call.media.remove_tap(tap)
                pcm = np.concatenate(frames) if frames else np.zeros(0, np.int16)
                audio = f"{_dominant(pcm):.0f} Hz tone" if pcm.size else "silence"
                await call.hangup()
            else:
                await call.wait_ended()
            table.add_row(
                str(i + 1), behaviour, outcome.outcome.value, str(outcome.sip_status or "-"), f"{ring:.1f}", audio
            )
        console.print(table)
        # The PBX calls the registered agent through its binding; the agent keys in a code.
        out = await pbx.call("sip:agent1@127.0.0.1")
        if (await out.wait_answered()).outcome is CallOutcome.ANSWERED:
            await out.send_dtmf("42#")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(agent_done.wait(), 5)
            await out.hangup()
        console.print(
            f"PBX -> agent1 through the registrar: DTMF received by the agent = "
            f"[bold]{int(heard.get('agent_digits', -1))}[/] ({int(heard.get('agent_dtmf', 0))} keys incl. #)"
        )
    finally:
        for ua in (pbx, agent, carrier):
            await ua.close()


def _keep_left(sink: list[np.ndarray], left: np.ndarray, right: np.ndarray) -> None:
    sink.append(left)


def _dominant(pcm: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64)))
    spectrum[:5] = 0
    return float(np.argmax(spectrum) * 8000 / max(len(pcm), 1))
