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


def write_config(tmp_path: Path, sip_port: int, mqtt_port: int) -> Path:
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

[logging]
level = "info"
format = "json"
"""
    )
    return cfg


async def test_run_starts_answers_sip_and_mqtt_then_stops_on_sigterm(tmp_path: Path) -> None:
    sip_port, mqtt_port = free_port(), free_port(socket.SOCK_STREAM)
    cfg = write_config(tmp_path, sip_port, mqtt_port)
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
