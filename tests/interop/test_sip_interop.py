"""Our SIP stack (`dialer sip serve`, `dialer sip call`) against real peers: sipp, baresip, pyVoIP.

These are the "Tests that must pass" of issue 2. Each test starts the CLI as a subprocess on
127.0.0.1 and a peer from tests/interop/peers.py; every process is killed at teardown.

What the tests rely on from the CLI (the contract, also in the issue report):
- ``dialer sip serve --listen 127.0.0.1:PORT [--user NAME:PASSWORD ...] [--answer-after S]``
  prints one JSON object per line on stdout: first ``{"event": "listening", "port": N, ...}``,
  then per call ``call_incoming`` (with ``call_id``), ``dtmf`` (with ``digit`` and the
  running ``digits``), ``call_ended`` (with ``call_id``, ``outcome`` and ``dtmf``, the
  digits of the whole call). It answers every INVITE, challenges REGISTER and INVITE when
  users are given, and routes an INVITE for a registered user to that user's binding.
- ``dialer sip call URI [--user N:P] [--play WAV] [--duration S] [--ring-timeout S]``
  prints exactly one JSON line with at least ``outcome`` and ``sip_status``; exit 0 only when
  answered.

The module runs when ``telephony.aio.ua`` imports. When it does not, every test fails with the
reason under CI (env ``CI`` set) and is skipped elsewhere.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pytest

from tests.interop.audio import active_seconds, dominant_frequency
from tests.interop.conftest import need_binaries
from tests.interop.peers import (
    LOOPBACK,
    Baresip,
    DialerServe,
    Processes,
    PyVoipPhone,
    dialer_argv,
    finish_dialer_call,
    run_dialer_call,
    run_sipp,
    start_dialer_call,
    start_dialer_serve,
    start_sipp,
)

try:
    import telephony.aio.ua  # noqa: F401 - only checks that our stack is there
except Exception as exc:  # an ImportError, or any error raised while importing a half-written stack
    STACK_MISSING: str | None = (
        f"our SIP stack is not importable: telephony.aio.ua raised {type(exc).__name__}: {exc}. "
        "These interop tests run once `dialer sip serve` / `dialer sip call` exist."
    )
else:
    STACK_MISSING = None

pytestmark = [pytest.mark.interop, pytest.mark.timeout(180)]


@pytest.fixture(autouse=True)
def _needs_our_stack_and_peers() -> None:
    if STACK_MISSING is not None:
        if os.environ.get("CI"):
            pytest.fail(STACK_MISSING, pytrace=False)
        pytest.skip(STACK_MISSING)
    need_binaries("sipp", "baresip")


def _serve(procs: Processes, *users: str, extra: tuple[str, ...] = ()) -> DialerServe:
    return start_dialer_serve(procs, users=users, extra_args=extra)


def _alive(serve: DialerServe) -> None:
    assert serve.proc.running, f"dialer sip serve died:\n{serve.proc.diagnostics()}"


# --------------------------------------------------------------------------- sipp basics


def test_sipp_builtin_uac_200_calls_against_serve(procs: Processes) -> None:
    serve = _serve(procs)
    res = run_sipp(procs, "uac", serve.target, calls=200, rate=50, timeout=60, trace_messages=False)
    assert res.ok, res.describe() + "\n" + serve.proc.diagnostics()
    assert res.successful == 200 and res.failed == 0, res.describe()
    _alive(serve)


def test_sipp_builtin_uac_over_tcp_against_serve(procs: Processes) -> None:
    """SIP over TCP (``-t t1``: one connection for every call) against serve on uvloop."""
    serve = _serve(procs)
    res = run_sipp(procs, "uac", serve.target, calls=20, rate=10, timeout=60, extra_args=["-t", "t1"])
    assert res.ok, res.describe() + "\n" + serve.proc.diagnostics()
    assert res.successful == 20 and res.failed == 0, res.describe()
    assert "Exception in callback" not in serve.proc.stderr(), serve.proc.diagnostics()
    _alive(serve)


def test_dialer_call_against_sipp_builtin_uas(procs: Processes) -> None:
    uas = start_sipp(procs, "uas", calls=1, timeout=30)
    call = run_dialer_call(procs, f"sip:service@{LOOPBACK}:{uas.port}", "--duration", "1")
    assert call.returncode == 0, call.describe()
    assert call.outcome.get("outcome") == "answered" and call.outcome.get("sip_status") == 200, call.describe()
    res = uas.result()
    assert res.ok and res.successful == 1, res.describe()


# --------------------------------------------------------------------------- our UAS against sipp scenarios


def test_register_is_challenged_and_accepted(procs: Processes) -> None:
    serve = _serve(procs, "alice:secret")
    res = run_sipp(
        procs,
        "uac_register_auth",
        serve.target,
        calls=1,
        timeout=20,
        extra_args=["-s", "alice", "-au", "alice", "-ap", "secret"],
    )
    assert res.ok and res.successful == 1, res.describe() + "\n" + serve.proc.diagnostics()


def test_register_with_wrong_password_is_refused(procs: Processes) -> None:
    serve = _serve(procs, "alice:secret")
    res = run_sipp(
        procs,
        "uac_register_auth",
        serve.target,
        calls=1,
        timeout=20,
        extra_args=["-s", "alice", "-au", "alice", "-ap", "nope"],
    )
    assert not res.ok and res.successful == 0, res.describe()
    _alive(serve)


def test_invite_is_challenged_then_answered(procs: Processes) -> None:
    serve = _serve(procs, "alice:secret")
    args = ["-s", "alice", "-au", "alice", "-ap", "secret", "-auth_uri", f"alice@{serve.target}"]
    res = run_sipp(procs, "uac_invite_auth", serve.target, calls=1, timeout=30, extra_args=args)
    assert res.ok and res.successful == 1, res.describe() + "\n" + serve.proc.diagnostics()
    serve.wait_event("call_ended", timeout=10)


def test_reinvite_hold_and_unhold(procs: Processes) -> None:
    serve = _serve(procs)
    res = run_sipp(procs, "uac_reinvite_hold", serve.target, calls=1, timeout=30)
    assert res.ok and res.successful == 1, res.describe() + "\n" + serve.proc.diagnostics()


def test_retransmitted_invite_and_bye_are_absorbed(procs: Processes) -> None:
    serve = _serve(procs, extra=("--answer-after", "2"))
    # -nr: sipp must not answer our (correct) retransmitted 180 by re-sending its INVITE; see the scenario.
    res = run_sipp(procs, "uac_retransmit", serve.target, calls=1, timeout=30, extra_args=["-nr"])
    assert res.ok and res.successful == 1, res.describe() + "\n" + serve.proc.diagnostics()
    serve.wait_event("call_ended", timeout=10)
    incoming = serve.lines.matching("call_incoming")
    assert len(incoming) == 1, f"a retransmitted INVITE created another call: {incoming}"


def test_malformed_burst_gets_400s_and_serve_survives(procs: Processes) -> None:
    serve = _serve(procs)
    res = run_sipp(procs, "uac_malformed", serve.target, calls=1, timeout=30)
    assert res.ok and res.successful == 1, res.describe() + "\n" + serve.proc.diagnostics()
    _alive(serve)
    again = run_sipp(procs, "uac", serve.target, calls=5, rate=10, timeout=30, trace_messages=False)
    assert again.ok and again.successful == 5, again.describe()


# --------------------------------------------------------------------------- our UAC against sipp scenarios


def test_busy_here_gives_outcome_busy(procs: Processes) -> None:
    uas = start_sipp(procs, "uas_busy", calls=1, timeout=30)
    call = run_dialer_call(procs, f"sip:busy@{LOOPBACK}:{uas.port}", "--ring-timeout", "3")
    assert call.returncode != 0, call.describe()
    assert call.outcome.get("outcome") == "busy" and call.outcome.get("sip_status") == 486, call.describe()
    res = uas.result()
    assert res.ok and res.successful == 1, "our ACK for the 486 did not arrive\n" + res.describe()


def test_ringing_without_answer_is_cancelled_at_ring_timeout(procs: Processes) -> None:
    uas = start_sipp(procs, "uas_ring_no_answer", calls=1, timeout=40)
    started = time.monotonic()
    call = run_dialer_call(procs, f"sip:ring@{LOOPBACK}:{uas.port}", "--ring-timeout", "3")
    elapsed = time.monotonic() - started
    assert call.returncode != 0, call.describe()
    assert call.outcome.get("outcome") == "no_answer", call.describe()
    assert elapsed >= 2.5, f"gave up after {elapsed:.1f} s, before the 3 s ring timeout"
    res = uas.result()
    assert res.ok and res.successful == 1, "CANCEL, or the ACK for the 487, did not arrive\n" + res.describe()


def test_answer_crossing_our_cancel_is_acked_and_hung_up(procs: Processes) -> None:
    uas = start_sipp(procs, "uas_200_487_race", calls=1, timeout=40)
    call = run_dialer_call(procs, f"sip:race@{LOOPBACK}:{uas.port}", "--ring-timeout", "2", "--duration", "1")
    assert call.outcome.get("outcome") == "answered" and call.outcome.get("sip_status") == 200, call.describe()
    res = uas.result()
    assert res.ok and res.successful == 1, "ACK or BYE for the 200 that crossed our CANCEL missing\n" + res.describe()


# --------------------------------------------------------------------------- dialer sip call against dialer sip serve


def test_call_sends_dtmf_that_serve_reports(procs: Processes) -> None:
    serve = _serve(procs)
    call = run_dialer_call(procs, f"sip:ivr@{serve.target}", "--dtmf", "12#", "--duration", "2")
    assert call.returncode == 0 and call.outcome.get("outcome") == "answered", call.describe()
    ended = serve.wait_event("call_ended", timeout=10)
    assert ended.get("dtmf") == "12#", ended
    assert [e["digit"] for e in serve.lines.matching("dtmf")] == ["1", "2", "#"]
    assert serve.lines.matching("dtmf")[-1]["digits"] == "12#"


def test_call_records_the_tone_serve_plays(procs: Processes, tmp_path: Path, tone_wav: Path) -> None:
    serve = _serve(procs, extra=("--play", str(tone_wav)))
    out = tmp_path / "received.wav"
    call = run_dialer_call(procs, f"sip:tone@{serve.target}", "--record", str(out), "--duration", "3")
    assert call.returncode == 0 and call.outcome.get("outcome") == "answered", call.describe()
    assert out.is_file(), call.describe()
    assert active_seconds(out) > 1.5, f"{out} is (nearly) silent\n{call.describe()}"
    assert dominant_frequency(out) == pytest.approx(1000.0, abs=20)


def test_serve_echo_sends_our_tone_back(procs: Processes, tmp_path: Path, tone_wav: Path) -> None:
    serve = _serve(procs, extra=("--echo",))
    out = tmp_path / "echoed.wav"
    call = run_dialer_call(
        procs, f"sip:echo@{serve.target}", "--play", str(tone_wav), "--record", str(out), "--duration", "3.5"
    )
    assert call.returncode == 0 and call.outcome.get("outcome") == "answered", call.describe()
    assert active_seconds(out) > 1.5, f"{out}: nothing came back\n{call.describe()}"
    assert dominant_frequency(out) == pytest.approx(1000.0, abs=20)


def _one_json_line(procs: Processes, *args: str) -> tuple[int, dict[str, object], str]:
    proc = procs.start("dialer-call-fail", dialer_argv("sip", "call", *args), max_seconds=30.0)
    rc = proc.wait()
    lines = [ln for ln in proc.stdout().splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected exactly one JSON line:\n{proc.diagnostics()}"
    assert "Traceback" not in proc.stderr(), proc.diagnostics()
    return rc, json.loads(lines[0]), proc.diagnostics()


def test_call_to_an_unresolvable_host_prints_failed(procs: Processes) -> None:
    from dialer.commands.sip import EXIT_CODES  # here: the module must import when our stack does not
    from telephony.sip.dialog import CallOutcome

    rc, outcome, diag = _one_json_line(procs, "sip:x@does-not-exist.invalid", "--ring-timeout", "2")
    assert rc == EXIT_CODES[CallOutcome.FAILED] == 7, diag
    assert outcome["outcome"] == "failed", outcome
    assert "does-not-exist.invalid" in str(outcome["detail"]) and "resolve" in str(outcome["detail"]), outcome


def test_call_that_cannot_bind_its_address_prints_failed(procs: Processes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind((LOOPBACK, 0))
        port = taken.getsockname()[1]
        rc, outcome, diag = _one_json_line(procs, f"sip:x@{LOOPBACK}:9", "--listen", f"{LOOPBACK}:{port}")
    assert rc == 7 and outcome["outcome"] == "failed", diag
    assert f"cannot listen on {LOOPBACK}:{port}" in str(outcome["detail"]), outcome


# --------------------------------------------------------------------------- baresip


def _registered_baresip(procs: Processes, tmp_path: Path, serve: DialerServe) -> Baresip:
    phone = Baresip(
        procs, tmp_path / "baresip", user="agent1", password="secret", registrar=(LOOPBACK, serve.port), lifetime=60
    ).start()
    phone.wait_registered(timeout=10)
    return phone


def test_call_to_registered_baresip_plays_tone(procs: Processes, tmp_path: Path, tone_wav: Path) -> None:
    serve = _serve(procs, "agent1:secret")
    phone = _registered_baresip(procs, tmp_path, serve)
    call = run_dialer_call(
        procs, f"sip:agent1@{serve.target}", "--user", "agent1:secret", "--play", str(tone_wav), "--duration", "4"
    )
    assert call.returncode == 0 and call.outcome.get("outcome") == "answered", (
        call.describe() + "\n" + phone.log()[-3000:]
    )
    assert any(e.get("type") == "CALL_ESTABLISHED" for e in phone.events), (
        "baresip never had the call: serve must route sip:agent1@ to agent1's registered contact "
        f"instead of answering it itself\n{serve.proc.stdout()[-2000:]}"
    )
    phone.wait_closed(timeout=10)
    recordings = phone.recordings("dec")
    assert recordings, f"baresip recorded nothing in {phone.snd_dir}"
    assert active_seconds(recordings[-1]) > 1.5, f"{recordings[-1]} is (nearly) silent"
    assert dominant_frequency(recordings[-1]) == pytest.approx(1000.0, abs=20)


def test_dtmf_from_baresip_is_received_exactly(procs: Processes, tmp_path: Path) -> None:
    serve = _serve(procs, "agent1:secret")
    phone = _registered_baresip(procs, tmp_path, serve)
    phone.dial(f"sip:dtmf@{serve.target}")
    phone.wait_established(timeout=10)
    time.sleep(0.5)
    phone.send_dtmf("1234#")
    last = serve.wait_event("dtmf", timeout=10, where=lambda e: e.get("digits") == "1234#")
    assert last["digit"] == "#"
    phone.hangup()
    ended = serve.wait_event("call_ended", timeout=10)
    assert ended.get("dtmf") == "1234#", ended
    digits = "".join(str(e["digit"]) for e in serve.lines.matching("dtmf"))
    assert digits == "1234#", f"each digit must be reported once: {serve.lines.matching('dtmf')}"


# --------------------------------------------------------------------------- pyVoIP


def test_pyvoip_registers_and_answers_our_call(procs: Processes) -> None:
    serve = _serve(procs, "pv:secret")
    phone = PyVoipPhone((LOOPBACK, serve.port), "pv", "secret", register_timeout=5)
    try:
        phone.start()
        assert phone.registered
        proc = start_dialer_call(procs, f"sip:pv@{serve.target}", "--user", "pv:secret", "--duration", "2")
        call = finish_dialer_call(proc)
        assert call.returncode == 0 and call.outcome.get("outcome") == "answered", call.describe()
        assert phone.wait_answered(5) and phone.calls_answered == 1, (
            "pyVoIP never answered: serve must route sip:pv@ to pv's registered contact (pyVoIP sends its "
            f"responses to the registrar's address)\n{serve.proc.stdout()[-2000:]}"
        )
        assert phone.wait_ended(10), "pyVoIP never saw our BYE"
        assert phone.errors == []
    finally:
        phone.stop()
