"""ACD state on MQTT under the configured ``[mqtt] topic_prefix``: the bridge builds topics as
``<topic_prefix>/<site>/...`` (not a hard-coded ``dialer/``), ``dialer run``'s app passes the
setting through, and a prefix that is not a topic refuses to start with the fix named."""

from __future__ import annotations

import asyncio
import json
import socket
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt
import pytest

from acd.service import AgentStatus
from dialer.app import DialerApp
from infra.bus import EventBus
from infra.mqtt import EmbeddedBroker, MqttBridge
from infra.settings import load_settings

WAIT = 10.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def first_message(port: int, topic: str) -> aiomqtt.Message:
    """Subscribe (late: the agent state is retained) and return the first message on ``topic``."""
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"reader-{port}") as client:
        await client.subscribe(topic, qos=1)
        async with asyncio.timeout(WAIT):
            async for message in client.messages:
                return message
    raise AssertionError("no message")


def status(agent_id: str) -> AgentStatus:
    return AgentStatus(
        agent_id=agent_id, state="ready", mode="ring", reason="", call_id=None, since=datetime(2026, 12, 1, tzinfo=UTC)
    )


async def test_bridge_publishes_under_the_topic_prefix() -> None:
    port = free_port()
    bus = EventBus()
    url = f"mqtt://127.0.0.1:{port}"
    async with (
        EmbeddedBroker("127.0.0.1", port),
        MqttBridge(bus, url=url, site="paris", topic_prefix="acme/cc") as bridge,
    ):
        assert bridge.prefix == "acme/cc/paris/"
        bus.publish(status("a1"))
        async with asyncio.timeout(WAIT):
            await bridge.flush()
        message = await first_message(port, "acme/cc/paris/#")
    assert message.topic.value == "acme/cc/paris/agents/a1/state"
    assert message.retain
    payload = json.loads(bytes(message.payload))
    assert (payload["type"], payload["data"]["agent_id"]) == ("AgentStatus", "a1")


@pytest.mark.parametrize("prefix", ["", "/dialer", "dialer/", "a//b", "dialer/#", "dial+er"])
def test_a_prefix_that_is_not_topic_levels_is_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match=r"topic_prefix .* e\.g\. 'dialer' or 'acme/dialer'"):
        MqttBridge(EventBus(), site="paris", topic_prefix=prefix)


def test_default_prefix_is_dialer() -> None:
    assert MqttBridge(EventBus(), site="paris").prefix == "dialer/paris/"


async def test_the_app_passes_the_mqtt_topic_prefix_setting(tmp_path: Path) -> None:
    port = free_port()
    settings = load_settings(
        None,
        site={"name": "lyon", "data_dir": tmp_path / "data"},
        database={"url": f"sqlite+aiosqlite:///{tmp_path / 'd.db'}"},
        mqtt={"embedded": True, "url": f"mqtt://127.0.0.1:{port}", "topic_prefix": "acme/dialer"},
        sip={"listen_host": "127.0.0.1", "listen_port": 0},
        http={"enabled": False},
    )
    app = DialerApp(settings=settings)
    await app.start()
    try:
        assert app.mqtt is not None and app.mqtt.prefix == "acme/dialer/lyon/"
        app.bus.publish(status("a2"))
        async with asyncio.timeout(WAIT):
            await app.mqtt.flush()
        message = await first_message(port, "acme/dialer/lyon/#")
        assert message.topic.value == "acme/dialer/lyon/agents/a2/state"
    finally:
        await app.stop()
