"""Self-check of the interop harness with the peers alone: no code of ours on the wire.

Every sipp scenario loads in sipp; each UAS scenario runs against a companion sipp UAC and each
UAC scenario against a companion sipp UAS (scenarios/selfcheck_*.xml); baresip registers to a
sipp registrar, calls another baresip, plays a tone that the other one records and sends DTMF;
pyVoIP 1.6.8 registers to a sipp registrar and answers a call from a tiny scripted UAC. If one
of these fails, the interop tests of our stack cannot be trusted, so they are fixed here first.
"""

from __future__ import annotations

import hashlib
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.interop.audio import active_seconds, dominant_frequency, write_silence, write_tone
from tests.interop.conftest import need_binaries
from tests.interop.peers import (
    LOOPBACK,
    SCENARIOS,
    Baresip,
    Processes,
    PyVoipPhone,
    check_scenario_syntax,
    free_port,
    free_port_range,
    run_sipp,
    start_sipp,
)

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]

ALL_SCENARIOS = sorted(p.name for p in SCENARIOS.glob("*.xml"))


@pytest.fixture(autouse=True)
def _peers_installed() -> None:
    need_binaries("sipp", "baresip")


# --------------------------------------------------------------------------- pure helpers


def test_tone_is_found_at_its_frequency(tmp_path: Path) -> None:
    assert dominant_frequency(write_tone(tmp_path / "a.wav", frequency=1000.0)) == pytest.approx(1000.0, abs=5)
    assert dominant_frequency(write_tone(tmp_path / "b.wav", frequency=440.0)) == pytest.approx(440.0, abs=5)


def test_silence_has_no_dominant_frequency(tmp_path: Path) -> None:
    silent = write_silence(tmp_path / "s.wav", seconds=2.0)
    assert dominant_frequency(silent) == 0.0
    assert active_seconds(silent) == 0.0


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = {free_port() for _ in range(20)}
    assert len(ports) == 20
    for port in ports:
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            with socket.socket(socket.AF_INET, kind) as s:
                s.bind((LOOPBACK, port))
    base = free_port_range(10)
    assert not ports & set(range(base, base + 10))


# --------------------------------------------------------------------------- sipp


def test_sipp_builtin_uac_against_builtin_uas(procs: Processes) -> None:
    uas = start_sipp(procs, "uas", calls=20, timeout=30)
    res = run_sipp(procs, "uac", f"{LOOPBACK}:{uas.port}", calls=20, rate=50, timeout=30, trace_messages=False)
    assert res.ok and res.successful == 20 and res.failed == 0, res.describe()
    server = uas.result()
    assert server.ok and server.successful == 20, server.describe()


def test_sipp_failure_is_reported(procs: Processes) -> None:
    """Nobody listening: the harness must report a failed run, not a pass."""
    res = run_sipp(procs, "uac", f"{LOOPBACK}:{free_port()}", calls=1, timeout=3, extra_args=["-recv_timeout", "1000"])
    assert not res.ok
    assert res.returncode != 0 and res.successful == 0, res.describe()


@pytest.mark.parametrize("scenario", ALL_SCENARIOS)
def test_scenario_loads_in_sipp(procs: Processes, scenario: str) -> None:
    ok, detail = check_scenario_syntax(procs, scenario)
    assert ok, f"{scenario} does not load in sipp: {detail}"


@pytest.mark.parametrize(
    "text",
    [
        '<?xml version="1.0"?><scenario name="x"><send><![CDATA[INVITE sip:x SIP/2.0]]></send>',  # unclosed
        '<?xml version="1.0"?><scenario name="x"><send><![CDATA[INVITE]]></send></scenario>',  # no request line
    ],
    ids=["not-well-formed", "sipp-rejects"],
)
def test_broken_scenario_is_caught(procs: Processes, tmp_path: Path, text: str) -> None:
    broken = tmp_path / "broken.xml"
    broken.write_text(text)
    ok, _ = check_scenario_syntax(procs, broken)
    assert not ok


# (UAS-side scenario, UAC-side scenario, extra sipp args for the UAS, for the UAC)
CREDS_UAS = ["-set", "user", "alice", "-set", "password", "secret"]
CREDS_UAC = ["-s", "alice", "-au", "alice", "-ap", "secret"]
PAIRS = [
    ("uas_busy", "selfcheck_uac_expect_busy", [], []),
    ("uas_ring_no_answer", "selfcheck_uac_cancel", [], []),
    ("uas_200_487_race", "selfcheck_uac_cancel_race", [], []),
    ("selfcheck_uas_registrar", "uac_register_auth", CREDS_UAS, CREDS_UAC),
    ("selfcheck_uas_invite_auth", "uac_invite_auth", CREDS_UAS, CREDS_UAC),
    ("selfcheck_uas_hold", "uac_reinvite_hold", [], []),
    ("selfcheck_uas_retransmit", "uac_retransmit", ["-nr"], ["-nr"]),
]


@pytest.mark.parametrize(("uas_scenario", "uac_scenario", "uas_args", "uac_args"), PAIRS, ids=[p[0] for p in PAIRS])
def test_scenario_pair(
    procs: Processes, uas_scenario: str, uac_scenario: str, uas_args: list[str], uac_args: list[str]
) -> None:
    uas = start_sipp(procs, uas_scenario, calls=1, timeout=20, extra_args=uas_args)
    args = list(uac_args)
    if uac_scenario == "uac_invite_auth":
        args += ["-auth_uri", f"alice@{LOOPBACK}:{uas.port}"]
    uac = run_sipp(procs, uac_scenario, f"{LOOPBACK}:{uas.port}", calls=1, timeout=20, extra_args=args)
    server = uas.result()
    assert uac.ok and uac.successful == 1, uac.describe() + "\n" + server.describe()
    assert server.ok and server.successful == 1, server.describe()


def test_wrong_password_fails_registration(procs: Processes) -> None:
    uas = start_sipp(procs, "selfcheck_uas_registrar", calls=1, timeout=10, extra_args=CREDS_UAS)
    bad = ["-s", "alice", "-au", "alice", "-ap", "wrong"]
    uac = run_sipp(procs, "uac_register_auth", f"{LOOPBACK}:{uas.port}", calls=1, timeout=10, extra_args=bad)
    assert not uac.ok and uac.failed == 1, uac.describe()
    assert not uas.result().ok


def test_hold_scenario_fails_on_a_wrong_answer(procs: Processes, tmp_path: Path) -> None:
    """uac_reinvite_hold's SDP check can fail: a UAS answering hold with sendrecv is caught."""
    wrong = tmp_path / "uas_hold_sendrecv.xml"
    wrong.write_text((SCENARIOS / "selfcheck_uas_hold.xml").read_text().replace("a=recvonly", "a=sendrecv"))
    uas = start_sipp(procs, wrong, calls=1, timeout=10)
    uac = run_sipp(procs, "uac_reinvite_hold", f"{LOOPBACK}:{uas.port}", calls=1, timeout=10)
    assert not uac.ok and uac.failed == 1, uac.describe()


class MalformedResponder:
    """A stand-in UAS for uac_malformed.xml: 400 to everything but the final valid OPTIONS, 200 to that.

    It only proves the scenario's messages go out and the 400s are matched; judging what is
    malformed is our stack's job.
    """

    # The reason phrases the scenario's ereg checks expect, in the order its requests go out.
    PHRASES = (
        "Bad Request (missing via header)",
        "Bad Request (cseq 'abc OPTIONS' must be a number and a method)",
        "Bad Request (request line 'this is not a sip request line' is not 'METHOD URI SIP/2.0')",
        "Bad Request (content-length 500 is larger than the body)",
        "Bad Request (header line 'X-Broken-Header' has no 'Name:' part)",
        "Bad Request (bad Request-URI: empty user part)",
    )

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LOOPBACK, 0))
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.received: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            self.received.append(data)
            text = data.decode(errors="replace")
            copied = [ln for ln in text.split("\r\n") if re.match(r"(?i)(via|from|to|call-id|cseq)\s*:", ln)]
            valid = "branch=z9hG4bK-" in text and "-valid;" in text
            nth = len(self.received) - 1
            status = "200 OK" if valid else f"400 {self.PHRASES[min(nth, len(self.PHRASES) - 1)]}"
            reply = "\r\n".join([f"SIP/2.0 {status}", *copied, "Content-Length: 0", "", ""])
            self.sock.sendto(reply.encode(), addr)

    def __enter__(self) -> MalformedResponder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


def test_malformed_scenario_runs_against_a_stand_in(procs: Processes) -> None:
    with MalformedResponder() as responder:
        res = run_sipp(procs, "uac_malformed", f"{LOOPBACK}:{responder.port}", calls=1, timeout=20)
    assert res.ok and res.successful == 1, res.describe()
    assert len(responder.received) == 7
    starts = [m.split(b"\r\n", 1)[0] for m in responder.received]
    assert starts[2] == b"this is not a sip request line"
    assert starts[5].startswith(b"FROBNICATE sip:@")
    assert b"Via:" not in responder.received[0]
    assert b"Content-Length: 500" in responder.received[3]


# --------------------------------------------------------------------------- baresip


def test_baresip_registers_with_digest_to_sipp_registrar(procs: Processes, tmp_path: Path) -> None:
    registrar = start_sipp(
        procs,
        "selfcheck_uas_registrar",
        calls=1,
        timeout=20,
        extra_args=["-set", "user", "agent1", "-set", "password", "s3cret"],
    )
    phone = Baresip(procs, tmp_path / "baresip", user="agent1", password="s3cret", registrar=(LOOPBACK, registrar.port))
    with phone:
        ev = phone.wait_registered(timeout=10)
        assert ev["accountaor"] == f"sip:agent1@{LOOPBACK}:{registrar.port}"
    res = registrar.result()
    assert res.ok and res.successful == 1, res.describe()


def test_baresip_calls_baresip_with_tone_and_dtmf(procs: Processes, tmp_path: Path) -> None:
    tone = write_tone(tmp_path / "tone.wav", seconds=20.0)
    callee = Baresip(procs, tmp_path / "callee", user="bob", lifetime=40).start()
    caller = Baresip(procs, tmp_path / "caller", user="alice", source_wav=tone, lifetime=40).start()
    caller.dial(f"sip:bob@{LOOPBACK}:{callee.sip_port}")
    caller.wait_established()
    callee.wait_established()
    time.sleep(1.0)
    caller.send_dtmf("1234#")
    time.sleep(1.5)
    caller.hangup()
    callee.wait_closed()
    assert callee.received_dtmf() == "1234#"
    recordings = callee.recordings("dec")
    assert recordings, f"no sndfile dump in {callee.snd_dir}\n{callee.log()[-3000:]}"
    assert dominant_frequency(recordings[0]) == pytest.approx(1000.0, abs=20)
    assert active_seconds(recordings[0]) > 1.5


def test_sipp_uac_calls_baresip_auto_answer(procs: Processes, tmp_path: Path) -> None:
    phone = Baresip(procs, tmp_path / "baresip", user="agent1").start()
    res = run_sipp(procs, "uac", f"{LOOPBACK}:{phone.sip_port}", calls=1, timeout=20, extra_args=["-s", "agent1"])
    assert res.ok and res.successful == 1, res.describe() + "\n" + phone.log()[-3000:]
    phone.wait_established()


# --------------------------------------------------------------------------- pyVoIP


def test_pyvoip_registers_with_digest_to_sipp_registrar(procs: Processes) -> None:
    registrar = start_sipp(
        procs,
        "selfcheck_uas_registrar",
        calls=1,
        timeout=20,
        extra_args=["-set", "user", "pv", "-set", "password", "secret"],
    )
    phone = PyVoipPhone((LOOPBACK, registrar.port), "pv", "secret", register_timeout=5)
    try:
        phone.start()
        assert phone.registered
    finally:
        # pyVoIP unregisters on stop; the sipp registrar has finished its one call by then.
        phone.stop()
    res = registrar.result()
    assert res.ok and res.successful == 1, res.describe()


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()  # RFC 2069 digest, as pyVoIP sends it


class ScriptedRegistrarCaller:
    """Registrar and caller on one UDP socket, because pyVoIP answers calls only to its registrar.

    Challenges REGISTER with 401, checks pyVoIP's qop-less MD5 digest, answers 200; then sends
    an INVITE to the registered contact, ACKs the 200, and after ``talk`` seconds sends BYE.
    """

    def __init__(self, user: str, password: str) -> None:
        self.user, self.password = user, password
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LOOPBACK, 0))
        self.sock.settimeout(10)
        self.port = int(self.sock.getsockname()[1])
        self.log: list[str] = []
        self.digest_ok = False

    def _recv(self) -> tuple[str, tuple[str, int]]:
        data, addr = self.sock.recvfrom(65535)
        text = data.decode(errors="replace")
        self.log.append(text)
        return text, addr

    @staticmethod
    def _headers(text: str, *names: str) -> list[str]:
        return [ln for ln in text.split("\r\n") if ln.split(":", 1)[0].strip().lower() in names]

    def _reply(self, request: str, addr: tuple[str, int], status: str, *extra: str) -> None:
        copied = self._headers(request, "via", "from", "to", "call-id", "cseq")
        msg = "\r\n".join([f"SIP/2.0 {status}", *copied, *extra, "Content-Length: 0", "", ""])
        self.sock.sendto(msg.encode(), addr)

    def register(self) -> tuple[str, int]:
        """Serve one REGISTER with a 401 round; return pyVoIP's contact address."""
        req, addr = self._recv()
        assert req.startswith("REGISTER"), req
        self._reply(
            req, addr, "401 Unauthorized", 'WWW-Authenticate: Digest realm="selfcheck", nonce="n0nce", algorithm=MD5'
        )
        req, addr = self._recv()
        auth = dict(re.findall(r'(\w+)="([^"]*)"', self._headers(req, "authorization")[0]))
        ha1 = _md5(f"{self.user}:selfcheck:{self.password}")
        expected = _md5(f"{ha1}:n0nce:{_md5('REGISTER:' + auth['uri'])}")
        self.digest_ok = auth.get("response") == expected
        self._reply(req, addr, "200 OK" if self.digest_ok else "403 Forbidden", "Expires: 120")
        contact = re.search(r"Contact:\s*<sip:[^@]+@([\d.]+):(\d+)", req)
        assert contact, req
        return contact.group(1), int(contact.group(2))

    def call(self, contact: tuple[str, int], talk: float = 1.0) -> list[str]:
        """INVITE, ACK, BYE; returns the status lines received, in order."""
        rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtp.bind((LOOPBACK, 0))
        rtp_port = rtp.getsockname()[1]
        sdp = (
            f"v=0\r\no=x 1 1 IN IP4 {LOOPBACK}\r\ns=-\r\nc=IN IP4 {LOOPBACK}\r\nt=0 0\r\n"
            f"m=audio {rtp_port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
            "a=fmtp:101 0-15\r\na=sendrecv\r\n"
        )
        uri = f"sip:{self.user}@{contact[0]}:{contact[1]}"
        common = [
            f"From: <sip:caller@{LOOPBACK}:{self.port}>;tag=caller1",
            f"To: <{uri}>",
            "Call-ID: selfcheck-call-1",
        ]
        via = f"Via: SIP/2.0/UDP {LOOPBACK}:{self.port};branch=z9hG4bK-inv1;rport"
        invite = [
            f"INVITE {uri} SIP/2.0",
            via,
            *common,
            "CSeq: 1 INVITE",
            f"Contact: <sip:caller@{LOOPBACK}:{self.port}>",
            "Max-Forwards: 70",
            "Content-Type: application/sdp",
            f"Content-Length: {len(sdp)}",
            "",
            sdp,
        ]
        self.sock.sendto("\r\n".join(invite).encode(), contact)
        statuses: list[str] = []
        to_tag = ""
        try:
            while True:
                resp, _ = self._recv()
                statuses.append(resp.split("\r\n", 1)[0])
                if resp.startswith("SIP/2.0 200"):
                    m = re.search(r"(?im)^To:.*?;tag=([^;\s]+)", resp)
                    to_tag = f";tag={m.group(1)}" if m else ""
                    break
                if re.match(r"SIP/2.0 [3-6]\d\d", resp):
                    return statuses
            dialog = [common[0], f"To: <{uri}>{to_tag}", common[2], "Max-Forwards: 70", "Content-Length: 0", "", ""]
            ack = [
                f"ACK {uri} SIP/2.0",
                f"Via: SIP/2.0/UDP {LOOPBACK}:{self.port};branch=z9hG4bK-ack1",
                "CSeq: 1 ACK",
                *dialog,
            ]
            self.sock.sendto("\r\n".join(ack).encode(), contact)
            time.sleep(talk)
            bye = [
                f"BYE {uri} SIP/2.0",
                f"Via: SIP/2.0/UDP {LOOPBACK}:{self.port};branch=z9hG4bK-bye1",
                "CSeq: 2 BYE",
                *dialog,
            ]
            self.sock.sendto("\r\n".join(bye).encode(), contact)
            while True:
                resp, _ = self._recv()
                if "CSeq: 2 BYE" in resp:
                    statuses.append(resp.split("\r\n", 1)[0] + " (BYE)")
                    break
        finally:
            rtp.close()
        return statuses

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def scripted_registrar() -> Iterator[ScriptedRegistrarCaller]:
    peer = ScriptedRegistrarCaller("pv", "secret")
    try:
        yield peer
    finally:
        peer.close()


def test_pyvoip_answers_a_call_through_its_registrar(scripted_registrar: ScriptedRegistrarCaller) -> None:
    peer = scripted_registrar
    phone = PyVoipPhone((LOOPBACK, peer.port), "pv", "secret", register_timeout=3)
    contact: list[tuple[str, int]] = []
    registering = threading.Thread(target=lambda: contact.append(peer.register()), daemon=True)
    registering.start()
    try:
        phone.start()
        registering.join(5)
        assert peer.digest_ok, "pyVoIP's digest did not verify:\n" + "\n".join(peer.log)
        assert phone.registered
        statuses = peer.call(contact[0], talk=1.0)
        assert statuses[-1].startswith("SIP/2.0 200") and statuses[-1].endswith("(BYE)"), statuses
        assert any(s.startswith("SIP/2.0 180") for s in statuses), statuses
        assert phone.wait_answered(5) and phone.calls_answered == 1
        assert phone.wait_ended(5), "pyVoIP's call thread did not see the BYE"
        assert phone.errors == []
    finally:
        # The scripted registrar does not answer the unregister; bounded by register_timeout.
        phone.stop()
