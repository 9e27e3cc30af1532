"""`dialer run` as an operator starts it: a real process, a config file, SIGTERM to stop."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import aiomqtt
import pytest

from telephony import UAConfig, UserAgent

pytestmark = pytest.mark.timeout(90)


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(tmp_path: Path, sip_port: int, mqtt_port: int, http_port: int = 0) -> Path:
    cfg = tmp_path / "dialer.toml"
    cfg.write_text(
        f"""
[site]
name = "test"
data_dir = "{tmp_path / "data"}"

[sip]
listen_host = "127.0.0.1"
listen_port = {sip_port}

[mqtt]
embedded = true
url = "mqtt://127.0.0.1:{mqtt_port}"

[http]
port = {http_port}

[logging]
level = "info"
format = "json"
"""
    )
    return cfg


async def test_run_starts_answers_sip_and_mqtt_then_stops_on_sigterm(tmp_path: Path) -> None:
    sip_port, mqtt_port, http_port = free_port(), free_port(socket.SOCK_STREAM), free_port(socket.SOCK_STREAM)
    cfg = write_config(tmp_path, sip_port, mqtt_port, http_port)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dialer.cli", "run", "--config", str(cfg),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ, "CI": "1"},
    )  # fmt: skip
    ua = UserAgent(UAConfig(host="127.0.0.1", port=0, registrar=False))
    await ua.start()
    try:
        resp = None
        for _ in range(100):
            resp = await ua.options(f"sip:ping@127.0.0.1:{sip_port}", timeout=0.3)
            if resp is not None:
                break
        assert resp is not None and resp.status == 200, "dialer run never answered OPTIONS"
        async with aiomqtt.Client("127.0.0.1", mqtt_port) as client:
            await client.publish("dialer/test/ping", b"1")
        assert (tmp_path / "data" / "dialer.db").exists()
        import httpx

        async with httpx.AsyncClient() as http:
            page = await http.get(f"http://127.0.0.1:{http_port}/login")
            assert page.status_code == 200 and "<form" in page.text
            denied = await http.get(f"http://127.0.0.1:{http_port}/wallboard", follow_redirects=False)
            assert denied.status_code in (302, 303, 401)  # no page without a login
    finally:
        await ua.close()
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert b"app.stopped" in err


async def test_run_rejects_a_bad_config_value_on_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[sip]\nlisten_port = "not-a-port"\n')
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dialer.cli", "run", "--config", str(cfg),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    text = err.decode().strip()
    assert proc.returncode == 2
    assert len(text.splitlines()) == 1, text
    assert "bad.toml" in text and "[sip] listen_port" in text and "not-a-port" in text and "integer" in text


async def test_run_with_acd_routes_a_did_call_to_a_nailed_agent(tmp_path: Path) -> None:
    """The [acd] section brings the ACD up inside `dialer run`: an agent registers with digest
    auth, logs in by dialling *55 (nailed), and a customer calling the DID is bridged in."""
    sip_port, mqtt_port = free_port(), free_port(socket.SOCK_STREAM)
    cfg = write_config(tmp_path, sip_port, mqtt_port)
    cfg.write_text(
        cfg.read_text()
        + """
[trunk]
host = "127.0.0.1"
port = 9
mode = "peer"

[acd]
login_code = "*55"

[acd.queues.sales]
wrapup_s = 1

[acd.agents.a1]
password = "pw-a1"
mode = "nailed"
queues = { sales = 0 }

[acd.dids]
"100" = "queue:sales"
"""
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dialer.cli", "run", "--config", str(cfg),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    agent = UserAgent(UAConfig(host="127.0.0.1", port=0, user="a1", registrar=False))
    customer = UserAgent(UAConfig(host="127.0.0.1", port=0, user="customer", registrar=False))
    await agent.start()
    await customer.start()
    try:
        reg = None
        for _ in range(100):
            reg = await agent.register(f"sip:127.0.0.1:{sip_port}", "a1", "pw-a1", expires=300, timeout=0.3)
            if reg is not None and reg.status != 503:  # 503 + Retry-After while still starting
                break
            await asyncio.sleep(0.1)
        assert reg is not None and reg.status == 200, "agent could not register to dialer run"
        leg = await agent.call(f"sip:*55@127.0.0.1:{sip_port}", auth=("a1", "pw-a1"))
        assert (await asyncio.wait_for(leg.wait_answered(), 5)).outcome.value == "answered"
        await asyncio.sleep(0.5)  # LOGIN, then the agent is ready
        call = await customer.call(f"sip:100@127.0.0.1:{sip_port}")
        assert (await asyncio.wait_for(call.wait_answered(), 5)).outcome.value == "answered"
        assert call.media is not None and leg.media is not None
        heard: list[object] = []
        tap = leg.media.new_tap(lambda left, right: heard.append(left))
        leg.media.add_tap(tap)
        import numpy as np

        from telephony.media.player import tone

        await call.play(tone(1000.0, 1.0, 0.4))
        await asyncio.sleep(0.3)
        leg.media.remove_tap(tap)
        pcm = np.concatenate([np.asarray(h) for h in heard]).astype(float)
        spectrum = np.abs(np.fft.rfft(pcm))
        assert abs(np.argmax(spectrum[5:]) + 5 - 1000 * len(pcm) / 8000) < 30, "the agent did not hear the customer"
        await call.hangup()
        await asyncio.sleep(0.3)
        assert not leg.ended  # the nailed leg stays up after the customer leaves
    finally:
        await customer.close()
        await agent.close()
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()[-3000:]
    import sqlite3

    db = sqlite3.connect(tmp_path / "data" / "dialer.db")
    verbs = [r[0] for r in db.execute("select event from queue_log order by id")]
    assert "LOGIN" in verbs and "ENTERQUEUE" in verbs and "CONNECT" in verbs, verbs
    rows = list(db.execute("select path, duration, sha256, agent_id, queue from recordings"))
    assert len(rows) == 1, "the bridged call was not recorded (queue policy defaults to all)"
    path, duration, sha, agent_id, queue = rows[0]
    assert agent_id == "a1" and queue == "sales" and duration > 0.5 and sha
    import wave

    files = list((tmp_path / "data").rglob("*.wav"))
    recorded = [f for f in files if f.name.endswith(".wav") and str(f).endswith(path)]
    assert recorded, (path, files)
    with wave.open(str(recorded[0])) as w:
        assert w.getnchannels() == 2 and w.getframerate() == 8000
