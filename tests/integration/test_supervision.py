"""Live supervision over loopback with four of our user agents: customer, agent, supervisor and a
"pbx" in the middle that holds the three legs, bridges customer and agent, and runs the
supervision the supervisor dialled with a feature code.

Customer, agent and supervisor each play a tone (500, 1100 and 1750 Hz: no low-order
G.711 intermodulation product of two of them lands on the third) and record what they hear;
the recordings' spectra show who heard whom in each mode. Modes are switched from the
supervisor's phone with RFC 4733 DTMF.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from telephony.aio.supervision import (
    DEFAULT_KEYS,
    Supervision,
    SupervisionError,
    SupervisionEvent,
    SupervisionMode,
    SupervisionModeChanged,
    SupervisionStarted,
    parse_feature_code,
)
from telephony.aio.ua import Call, UAConfig, UserAgent
from telephony.media.bridge import Bridge
from telephony.media.player import tone
from telephony.media.tap import Tap
from telephony.rtp.g711 import Pcm16
from telephony.sip.uri import Address

pytestmark = pytest.mark.timeout(60)

FREQ = {"customer": 500.0, "agent": 1100.0, "supervisor": 1750.0}
AMPLITUDE = 0.2
PRESENT = 0.4 * AMPLITUDE * 32767
ABSENT = 0.03 * AMPLITUDE * 32767
WINDOW = 0.8  # seconds of audio analysed per phase


def tone_amplitude(pcm: Pcm16, freq: float) -> float:
    window = np.hanning(len(pcm))
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64) * window))
    freqs = np.fft.rfftfreq(len(pcm), 1 / 8000)
    band = (freqs > freq - 15) & (freqs < freq + 15)
    return float(spectrum[band].max() * 2 / window.sum())


def heard(pcm: Pcm16) -> set[str]:
    out = set()
    for who, freq in FREQ.items():
        level = tone_amplitude(pcm, freq)
        assert level > PRESENT or level < ABSENT, f"{who}'s tone at an ambiguous level {level:.0f}"
        if level > PRESENT:
            out.add(who)
    return out


class Ear:
    """Records what one phone receives, window by window (a tap on its media session)."""

    def __init__(self, call: Call) -> None:
        assert call.media is not None
        self.media = call.media
        self.chunks: list[Pcm16] = []
        self.tap: Tap | None = None

    def _consume(self, left: Pcm16, right: Pcm16) -> None:
        self.chunks.append(left)

    def begin(self) -> None:
        self.chunks = []
        self.tap = self.media.new_tap(self._consume, flush_interval=0.1, delay=0.1)
        self.media.add_tap(self.tap)

    def end(self) -> Pcm16:
        assert self.tap is not None
        self.media.remove_tap(self.tap)
        return np.concatenate(self.chunks) if self.chunks else np.zeros(0, dtype=np.int16)


async def next_call(ua: UserAgent) -> Call:
    return await asyncio.wait_for(ua.incoming().__anext__(), 5)


@pytest.fixture
async def uas() -> AsyncIterator[dict[str, UserAgent]]:
    agents = {
        name: UserAgent(UAConfig(host="127.0.0.1", port=0, user=name, registrar=name == "pbx"))
        for name in ("pbx", "customer", "agent", "supervisor")
    }
    for ua in agents.values():
        await ua.start()
    try:
        yield agents
    finally:
        for ua in agents.values():
            await ua.close()


async def connect(caller: UserAgent, callee: UserAgent, user: str) -> tuple[Call, Call]:
    out = await caller.call(f"sip:{user}@127.0.0.1:{callee.port}")
    inc = await next_call(callee)
    await inc.answer()
    await asyncio.wait_for(out.wait_answered(), 5)
    return out, inc


async def listen_all(ears: dict[str, Ear], seconds: float = WINDOW) -> dict[str, set[str]]:
    for ear in ears.values():
        ear.begin()
    await asyncio.sleep(seconds)
    return {who: heard(ear.end()) for who, ear in ears.items()}


@dataclass
class Scene:
    """Customer and agent bridged at the pbx, each playing its tone; the supervisor has dialled in."""

    pbx: UserAgent
    phones: dict[str, Call]  # each person's own call
    legs: dict[str, Call]  # the pbx's side of each
    bridge: Bridge
    ears: dict[str, Ear]
    events: list[SupervisionEvent] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def on_event(self, event: SupervisionEvent) -> None:
        self.events.append(event)
        self.changed.set()

    def supervision(self, mode: str = "listen", **kwargs: Any) -> Supervision:
        legs = self.legs
        return Supervision(
            legs["customer"], legs["agent"], legs["supervisor"], mode, on_event=self.on_event, agent_id="101", **kwargs
        )

    async def key(self, digit: str) -> None:
        """The supervisor presses ``digit``; returns once the pbx reported the change."""
        self.changed.clear()
        await self.phones["supervisor"].send_dtmf(digit)
        await asyncio.wait_for(self.changed.wait(), 5)


@pytest.fixture
async def scene(uas: dict[str, UserAgent]) -> AsyncIterator[Scene]:
    pbx = uas["pbx"]
    customer_phone, customer_leg = await connect(uas["customer"], pbx, "pbx")
    agent_leg, agent_phone = await connect(pbx, uas["agent"], "agent101")
    assert customer_leg.media is not None and agent_leg.media is not None
    bridge = Bridge(customer_leg.media, agent_leg.media)
    supervisor_phone, supervisor_leg = await connect(uas["supervisor"], pbx, "*22101")
    phones = {"customer": customer_phone, "agent": agent_phone, "supervisor": supervisor_phone}
    legs = {"customer": customer_leg, "agent": agent_leg, "supervisor": supervisor_leg}
    players = [
        asyncio.create_task(call.play(tone(FREQ[who], 2.0, AMPLITUDE), loop=True)) for who, call in phones.items()
    ]
    try:
        yield Scene(pbx, phones, legs, bridge, {who: Ear(call) for who, call in phones.items()})
    finally:
        for task in players:
            task.cancel()
        await asyncio.gather(*players, return_exceptions=True)


async def test_listen_whisper_barge_and_leave_from_the_supervisors_phone(scene: Scene) -> None:
    legs, phones, ears, events = scene.legs, scene.phones, scene.ears, scene.events
    # The pbx reads the feature code the supervisor dialled.
    assert legs["supervisor"].headers is not None
    dialled = Address.parse(legs["supervisor"].headers.get("to") or "").uri.user or ""
    assert parse_feature_code(dialled) == (SupervisionMode.LISTEN, "101")
    assert await listen_all({w: ears[w] for w in ("customer", "agent")}, 0.5) == {
        "customer": {"agent"},
        "agent": {"customer"},
    }

    supervision = scene.supervision("listen", bridge=scene.bridge)
    await supervision.start()
    assert not scene.bridge.active
    sup, call_id = legs["supervisor"].remote, legs["customer"].id
    assert events == [SupervisionStarted(sup, "101", call_id, SupervisionMode.LISTEN)]
    await asyncio.sleep(0.2)  # the phones' taps and jitter buffers settle on the new streams
    assert await listen_all(ears) == {
        "customer": {"agent"},
        "agent": {"customer"},
        "supervisor": {"customer", "agent"},
    }

    # DTMF from the customer is still detected at the pbx while the conference mixes, and
    # still reaches the agent's phone as it did through the bridge.
    await phones["customer"].send_dtmf("5")
    assert await asyncio.wait_for(legs["customer"].dtmf().__anext__(), 5) == "5"
    assert await asyncio.wait_for(phones["agent"].dtmf().__anext__(), 5) == "5"

    for key, previous, mode, expected in (
        ("2", "listen", "whisper", {"customer": {"agent"}, "agent": {"customer", "supervisor"}}),
        ("3", "whisper", "barge", {"customer": {"agent", "supervisor"}, "agent": {"customer", "supervisor"}}),
    ):
        await scene.key(key)
        assert events[-1] == SupervisionModeChanged(
            sup, "101", call_id, SupervisionMode(mode), SupervisionMode(previous), "dtmf"
        )
        assert supervision.mode == mode
        await asyncio.sleep(0.2)
        result = await listen_all(ears)
        assert {w: result[w] for w in ("customer", "agent")} == expected, mode
        assert result["supervisor"] == {"customer", "agent"}

    # '#' ends the session: the bridge is back and the supervisor's call is hung up.
    await phones["supervisor"].send_dtmf("#")
    ended = await asyncio.wait_for(supervision.wait_ended(), 5)
    assert ended.reason == "supervisor_left" and ended.mode is SupervisionMode.BARGE and ended.duration > 1
    assert events[-1] is ended and len(events) == 4
    assert scene.bridge.active
    await asyncio.wait_for(phones["supervisor"].wait_ended(), 5)
    assert phones["supervisor"].ended_by == "remote"
    await asyncio.sleep(0.2)
    assert await listen_all({w: ears[w] for w in ("customer", "agent")}) == {
        "customer": {"agent"},
        "agent": {"customer"},
    }


async def test_supervisor_hanging_up_restores_the_bridge(scene: Scene) -> None:
    supervision = scene.supervision("whisper", bridge=scene.bridge)
    await supervision.start()
    await asyncio.sleep(0.3)
    assert (await listen_all({"agent": scene.ears["agent"]}, 0.5))["agent"] == {"customer", "supervisor"}
    await scene.phones["supervisor"].hangup()
    ended = await asyncio.wait_for(supervision.wait_ended(), 5)
    assert ended.reason == "supervisor_hung_up" and scene.bridge.active
    assert await supervision.stop() is ended  # stopping a finished session changes nothing
    await asyncio.sleep(0.2)
    assert (await listen_all({"agent": scene.ears["agent"]}, 0.5))["agent"] == {"customer"}


async def test_customer_hanging_up_ends_the_session_and_the_supervisors_call(scene: Scene) -> None:
    supervision = scene.supervision("barge", bridge=scene.bridge)
    await supervision.start()
    await asyncio.sleep(0.2)
    await scene.phones["customer"].hangup()
    ended = await asyncio.wait_for(supervision.wait_ended(), 5)
    assert ended.reason == "call_ended"
    assert not scene.bridge.active  # nobody left to bridge the agent to
    await asyncio.wait_for(scene.phones["supervisor"].wait_ended(), 5)


async def test_api_control_without_a_bridge_and_keeping_the_supervisors_call(scene: Scene) -> None:
    scene.bridge.stop()
    supervision = scene.supervision("listen", hangup_supervisor=False, keys={"9": "barge", "0": "leave"})
    await supervision.start()
    supervision.set_mode("whisper")
    assert scene.events[-1] == SupervisionModeChanged(
        scene.legs["supervisor"].remote,
        "101",
        scene.legs["customer"].id,
        SupervisionMode.WHISPER,
        SupervisionMode.LISTEN,
        "api",
    )
    await scene.key("9")  # the configured keys, not the defaults
    assert supervision.mode is SupervisionMode.BARGE
    await scene.phones["supervisor"].send_dtmf("2")  # not a key any more: ignored
    await asyncio.sleep(0.3)
    assert supervision.mode is SupervisionMode.BARGE
    ended = await supervision.stop()
    assert ended is not None and ended.reason == "stopped"
    assert supervision.bridge is not None and supervision.bridge.active  # a new plain bridge
    assert not scene.phones["supervisor"].ended
    await asyncio.sleep(0.2)
    assert (await listen_all({"customer": scene.ears["customer"]}, 0.5))["customer"] == {"agent"}


async def test_supervising_needs_answered_distinct_calls(scene: Scene) -> None:
    legs = scene.legs
    with pytest.raises(SupervisionError, match="three different calls"):
        Supervision(legs["customer"], legs["agent"], legs["customer"])
    with pytest.raises(SupervisionError, match="'spy'; use one of listen, whisper, barge"):
        Supervision(legs["customer"], legs["agent"], legs["supervisor"], "spy")
    with pytest.raises(SupervisionError, match="'x' is not a DTMF key"):
        scene.supervision(keys={"x": "listen"})
    with pytest.raises(SupervisionError, match="key '5' maps to 'mute'"):
        scene.supervision(keys={"5": "mute"})
    assert dict(scene.supervision().keys) == dict(DEFAULT_KEYS)
    await scene.phones["agent"].hangup()
    await asyncio.wait_for(legs["agent"].wait_ended(), 5)
    with pytest.raises(SupervisionError, match=r"agent call .* answer it before supervising"):
        await scene.supervision().start()
    assert scene.events == []


def test_parse_feature_code() -> None:
    assert parse_feature_code("*22101") == (SupervisionMode.LISTEN, "101")
    assert parse_feature_code(" *234711 ") == (SupervisionMode.WHISPER, "4711")
    assert parse_feature_code("*24007") == (SupervisionMode.BARGE, "007")
    assert parse_feature_code("*22") is None  # no extension
    assert parse_feature_code("*22abc") is None
    assert parse_feature_code("*25101") is None
    assert parse_feature_code("101") is None
    # The longest prefix wins, so a short code can share its start with a longer one.
    codes = {"*2": "listen", "*21": "barge"}
    assert parse_feature_code("*21555", codes) == (SupervisionMode.BARGE, "555")
    assert parse_feature_code("*2555", codes) == (SupervisionMode.LISTEN, "555")
    with pytest.raises(SupervisionError, match="feature code '\\*9' maps to 'spy'"):
        parse_feature_code("*9101", {"*9": "spy"})
