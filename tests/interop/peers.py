"""Real SIP peers for interop tests: sipp, baresip, pyVoIP, and our own `dialer sip` CLI.

Every peer runs on 127.0.0.1 only, on ports picked free at start, with its stdout/stderr in
files under the test's tmp_path so a failure can show what the peer saw. Every run is bounded
in time twice: by the peer's own limit (sipp ``-timeout``, baresip ``-t``) and by a hard
deadline after which we kill the process. :class:`Processes` kills whatever is left on
teardown, even when the test failed half-way.

sipp exit codes (sipp 3.6.1 manual, "Exit codes"): 0 all calls succeeded, 1 at least one call
failed, 97 exit on internal command or global timeout, 99 normal exit without calls processed,
255 (-1) fatal error, 254 (-2) fatal error binding a socket.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import structlog

log = structlog.get_logger()

LOOPBACK = "127.0.0.1"
SCENARIOS = Path(__file__).parent / "scenarios"
REPO = Path(__file__).resolve().parents[2]
SIPP_EXIT = {
    0: "all calls succeeded",
    1: "at least one call failed",
    97: "exit on internal command or global timeout",
    99: "normal exit without calls processed",
    255: "fatal error (bad scenario or option)",
    254: "fatal error binding a socket",
}


class PeerError(RuntimeError):
    """A peer did not start, did not do what was asked in time, or died."""


# --------------------------------------------------------------------------- ports


def _bindable(port: int, *, tcp: bool = True) -> bool:
    kinds = [socket.SOCK_DGRAM, socket.SOCK_STREAM] if tcp else [socket.SOCK_DGRAM]
    for kind in kinds:
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind((LOOPBACK, port))
            except OSError:
                return False
    return True


_handed_out: set[int] = set()
_ports_lock = threading.Lock()


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (SIP uses both on one port).

    Ports handed out before are not handed out again in this process, so two peers started
    in the same test cannot be given the same port before either has bound it.
    """
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((LOOPBACK, 0))
            port = int(s.getsockname()[1])
        with _ports_lock:
            if port in _handed_out or not _bindable(port):
                continue
            _handed_out.add(port)
            return port
    raise PeerError("no free UDP+TCP port on 127.0.0.1 after 200 tries")


def free_port_range(count: int, *, start: int = 20000, stop: int = 60000, step: int = 2) -> int:
    """First port of ``count`` consecutive UDP ports all free on 127.0.0.1 (RTP ranges)."""
    import random

    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    for _ in range(200):
        base = rng.randrange(start, stop - count) // step * step
        ports = range(base, base + count)
        with _ports_lock:
            if any(p in _handed_out for p in ports):
                continue
            if all(_bindable(p, tcp=False) for p in ports):
                _handed_out.update(ports)
                return base
    raise PeerError(f"no {count} consecutive free UDP ports on 127.0.0.1")


def wait_port_bound(port: int, *, udp: bool = True, timeout: float = 5.0) -> None:
    """Wait until some process has bound ``port`` on 127.0.0.1 (so it is ready for traffic)."""
    deadline = time.monotonic() + timeout
    kind = socket.SOCK_DGRAM if udp else socket.SOCK_STREAM
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind((LOOPBACK, port))
            except OSError:
                return
        time.sleep(0.05)
    raise PeerError(f"nothing bound {'UDP' if udp else 'TCP'} port {port} within {timeout} s")


# --------------------------------------------------------------------------- processes


@dataclass
class Proc:
    """One child process with its output in files; ``stop()`` is idempotent."""

    name: str
    argv: list[str]
    popen: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path
    deadline: float

    def stop(self, grace: float = 3.0) -> int:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.terminate()
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                log.warning("peer.kill", peer=self.name, pid=self.popen.pid)
                self.popen.kill()
                self.popen.wait(5)
        return int(self.popen.returncode)

    def wait(self, timeout: float | None = None) -> int:
        """Wait for exit; past ``timeout`` (default: the hard deadline) kill and raise."""
        limit = timeout if timeout is not None else max(0.1, self.deadline - time.monotonic())
        try:
            return int(self.popen.wait(limit))
        except subprocess.TimeoutExpired:
            self.stop(grace=1.0)
            raise PeerError(
                f"{self.name} still running after {limit:.1f} s; killed it.\n{self.diagnostics()}"
            ) from None

    @property
    def running(self) -> bool:
        return self.popen.poll() is None

    def stdout(self) -> str:
        return _read_text(self.stdout_path)

    def stderr(self) -> str:
        return _read_text(self.stderr_path)

    def diagnostics(self, tail: int = 3000) -> str:
        return (
            f"--- {self.name}: {' '.join(self.argv)}\n"
            f"--- stdout ({self.stdout_path}):\n{self.stdout()[-tail:]}\n"
            f"--- stderr ({self.stderr_path}):\n{self.stderr()[-tail:]}"
        )


def _read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


class Processes:
    """Owns every peer process of one test; ``close()`` stops them all (fixture teardown)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[Proc] = []
        self._closers: list[Callable[[], object]] = []

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        max_seconds: float,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        stdin: int | None = subprocess.DEVNULL,
        stdout_pipe: bool = False,
    ) -> Proc:
        """Start ``argv`` with output to ``<workdir>/<name>.out|.err``; it is killed after ``max_seconds``."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        n = sum(1 for p in self.procs if p.name.split("#")[0] == name)
        tag = f"{name}#{n}" if n else name
        out = self.workdir / f"{tag.replace('#', '-')}.out"
        err = self.workdir / f"{tag.replace('#', '-')}.err"
        out_f: IO[bytes] | int = subprocess.PIPE if stdout_pipe else out.open("wb")
        with err.open("wb") as err_f:
            popen = subprocess.Popen(
                list(argv),
                cwd=cwd or self.workdir,
                env=env,
                stdin=stdin,
                stdout=out_f,
                stderr=err_f,
                start_new_session=True,
            )
        if not isinstance(out_f, int):
            out_f.close()
        proc = Proc(tag, list(argv), popen, out, err, time.monotonic() + max_seconds)
        self.procs.append(proc)
        log.info("peer.start", peer=tag, pid=popen.pid, argv=" ".join(argv))
        return proc

    def on_close(self, fn: Callable[[], object]) -> None:
        self._closers.append(fn)

    def close(self) -> None:
        for fn in reversed(self._closers):
            try:
                fn()
            except Exception as exc:  # teardown must reach every process
                log.warning("peer.close_failed", error=repr(exc))
        for p in self.procs:
            p.stop(grace=2.0)

    def diagnostics(self) -> str:
        return "\n".join(p.diagnostics() for p in self.procs)


# --------------------------------------------------------------------------- sipp


def require(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        raise PeerError(
            f"{binary} is not installed: apt-get install sip-tester baresip-core (scripts/setup --test does it)"
        )
    return path


@dataclass
class SippResult:
    """What one sipp run did, from its exit code and its final ``-trace_stat`` row."""

    returncode: int
    successful: int
    failed: int
    created: int
    retransmissions: int
    unexpected: int
    timeouts_on_recv: int
    out_of_call: int
    dead_call: int
    stats: dict[str, str]
    workdir: Path
    name: str
    argv: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.failed == 0

    def file(self, kind: str) -> Path:
        return self.workdir / f"{self.name}.{kind}"

    def describe(self, tail: int = 4000) -> str:
        """Everything useful for an assertion message: exit code meaning, counts, error log, screen."""
        parts = [
            f"sipp {self.name}: exit {self.returncode} ({SIPP_EXIT.get(self.returncode, 'unknown')}), "
            f"created={self.created} successful={self.successful} failed={self.failed} "
            f"unexpected={self.unexpected} recv_timeouts={self.timeouts_on_recv} "
            f"retransmissions={self.retransmissions} out_of_call={self.out_of_call} dead_call={self.dead_call}",
            "argv: " + " ".join(self.argv),
        ]
        for kind in ("errors.log", "screen.log", "err", "messages.log"):
            text = _read_text(self.file(kind)).strip()
            if text:
                parts.append(f"--- {self.file(kind)}:\n{text[-tail:]}")
        return "\n".join(parts)


def _last_stat_row(path: Path) -> dict[str, str]:
    text = _read_text(path)
    rows = [r for r in csv.reader(text.splitlines(), delimiter=";") if r]
    if len(rows) < 2:
        return {}
    header, last = rows[0], rows[-1]
    return dict(zip(header, last, strict=False))


def _stat(stats: dict[str, str], key: str) -> int:
    try:
        return int(stats.get(f"{key}(C)", "0") or 0)
    except ValueError:
        return 0


@dataclass
class SippProcess:
    """A running sipp; ``result()`` waits for it and parses its statistics."""

    proc: Proc
    name: str
    workdir: Path
    port: int
    media_port: int

    def result(self, timeout: float | None = None) -> SippResult:
        rc = self.proc.wait(timeout)
        stats = _last_stat_row(self.workdir / f"{self.name}.stat.csv")
        res = SippResult(
            returncode=rc,
            successful=_stat(stats, "SuccessfulCall"),
            failed=_stat(stats, "FailedCall"),
            created=int(stats.get("TotalCallCreated", "0") or 0),
            retransmissions=_stat(stats, "Retransmissions"),
            unexpected=_stat(stats, "FailedUnexpectedMessage"),
            timeouts_on_recv=_stat(stats, "FailedTimeoutOnRecv"),
            out_of_call=_stat(stats, "OutOfCallMsgs"),
            dead_call=_stat(stats, "DeadCallMsgs"),
            stats=stats,
            workdir=self.workdir,
            name=self.name,
            argv=self.proc.argv,
        )
        log.info("sipp.result", name=self.name, rc=rc, ok=res.successful, failed=res.failed)
        return res

    def stop(self) -> None:
        self.proc.stop()


def scenario_path(scenario: str | Path) -> Path:
    p = Path(scenario)
    if not p.suffix:
        p = p.with_suffix(".xml")
    if not p.is_absolute() and not p.exists():
        p = SCENARIOS / p
    if not p.is_file():
        raise PeerError(f"sipp scenario {scenario} not found (looked in {SCENARIOS})")
    return p


def start_sipp(
    procs: Processes,
    scenario: str | Path,
    target: str | None = None,
    *,
    port: int | None = None,
    calls: int = 1,
    rate: float = 10.0,
    timeout: float = 30.0,
    extra_args: Sequence[str] = (),
    trace_messages: bool = True,
    name: str | None = None,
) -> SippProcess:
    """Start sipp in the background with ``scenario`` = builtin "uac"/"uas" or an XML file.

    ``target`` is "127.0.0.1:PORT" (UAC side; None for a UAS waiting for calls). ``calls`` is
    ``-m``: sipp exits after that many calls. ``timeout`` is sipp's global ``-timeout`` with
    ``-timeout_error`` (exit non-zero when hit); we kill it 15 s after that regardless.
    """
    require("sipp")
    if target is not None:
        host = target.rsplit(":", 1)[0].strip("[]")
        if host not in (LOOPBACK, "localhost"):
            raise PeerError(f"sipp target {target}: tests only talk to 127.0.0.1")
    port = port or free_port()
    media_port = free_port_range(4)
    if scenario in ("uac", "uas"):
        scen_args = ["-sn", str(scenario)]
        base = str(scenario)
    else:
        path = scenario_path(scenario)
        scen_args = ["-sf", str(path)]
        base = path.stem
    run_name = name or f"sipp-{base}-{port}"
    workdir = procs.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    argv = [
        "sipp",
        *scen_args,
        *([target] if target else []),
        "-i",
        LOOPBACK,
        "-mi",
        LOOPBACK,
        "-bind_local",
        "-p",
        str(port),
        "-mp",
        str(media_port),
        "-m",
        str(calls),
        "-r",
        f"{rate:g}",
        "-rp",
        "1000",
        "-timeout",
        f"{max(1, round(timeout))}s",
        "-timeout_error",
        "-nostdin",
        "-trace_stat",
        "-stf",
        str(workdir / f"{run_name}.stat.csv"),
        "-fd",
        "1",
        "-trace_err",
        "-error_file",
        str(workdir / f"{run_name}.errors.log"),
        "-trace_screen",
        "-screen_file",
        str(workdir / f"{run_name}.screen.log"),
    ]
    if trace_messages:
        argv += ["-trace_msg", "-message_file", str(workdir / f"{run_name}.messages.log")]
    argv += list(extra_args)
    proc = procs.start(run_name, argv, max_seconds=timeout + 15.0)
    return SippProcess(proc, run_name, workdir, port, media_port)


def run_sipp(
    procs: Processes,
    scenario: str | Path,
    target: str | None = None,
    *,
    port: int | None = None,
    calls: int = 1,
    rate: float = 10.0,
    timeout: float = 30.0,
    extra_args: Sequence[str] = (),
    trace_messages: bool = True,
    name: str | None = None,
) -> SippResult:
    """Run sipp to completion (see :func:`start_sipp`) and return its counts."""
    sp = start_sipp(
        procs,
        scenario,
        target,
        port=port,
        calls=calls,
        rate=rate,
        timeout=timeout,
        extra_args=extra_args,
        trace_messages=trace_messages,
        name=name,
    )
    return sp.result()


def check_scenario_syntax(procs: Processes, scenario: str | Path) -> tuple[bool, str]:
    """Does sipp accept the scenario? Checked without talking to any peer.

    Two checks, because sipp's own XML reader is lenient (it runs a file with an unclosed
    <scenario>): the file must be well-formed XML, and sipp, loading it and making one call
    to the discard port, must print nothing on stderr but its "Resolving remote host" line
    (scenario errors such as a keyword in the method are reported there, whatever the exit code).
    """
    import xml.etree.ElementTree as ET

    path = scenario_path(scenario)
    try:
        ET.parse(path)
    except ET.ParseError as exc:
        return False, f"{path}: not well-formed XML: {exc}"
    port = free_port()
    name = f"syntax-{path.stem}"
    # A bound socket that never answers: no ICMP "port unreachable" noise on sipp's stderr.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind((LOOPBACK, 0))
        argv = [
            "sipp", "-sf", str(path), f"{LOOPBACK}:{sink.getsockname()[1]}", "-i", LOOPBACK, "-bind_local",
            "-p", str(port), "-m", "1", "-r", "1", "-timeout", "1s", "-nostdin", "-nr", "-recv_timeout", "200",
        ]  # fmt: skip
        proc = procs.start(name, argv, max_seconds=15.0)
        rc = proc.wait()
    runtime = ("Resolving remote host", "Unable to send", "Connection refused", "timed out", "timeout")
    complaints = [ln for ln in proc.stderr().splitlines() if ln.strip() and not any(r in ln for r in runtime)]
    bad = rc in (254, 255) or bool(complaints)
    return (not bad), f"exit {rc}\n" + "\n".join(complaints)[-2000:]


# --------------------------------------------------------------------------- JSON-line CLIs (our dialer)


def dialer_argv(*args: str) -> list[str]:
    """``dialer`` from the project's virtualenv (the console script), else ``python -m dialer.cli``."""
    exe = REPO / ".venv" / "bin" / "dialer"
    if exe.exists():
        return [str(exe), *args]
    return [sys.executable, "-m", "dialer.cli", *args]


class JsonLines:
    """Reads one JSON object per stdout line of a process in a thread; lets tests wait for events."""

    def __init__(self, proc: Proc) -> None:
        if proc.popen.stdout is None:
            raise PeerError(f"{proc.name}: started without stdout_pipe=True")
        self.proc = proc
        self.events: list[dict[str, Any]] = []
        self.raw_lines: list[str] = []
        self._cond = threading.Condition()
        self._stream = proc.popen.stdout
        self._thread = threading.Thread(target=self._pump, name=f"jsonlines-{proc.name}", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        with self.proc.stdout_path.open("ab") as copy:
            for line in iter(self._stream.readline, b""):
                copy.write(line)
                copy.flush()
                text = line.decode(errors="replace").strip()
                with self._cond:
                    self.raw_lines.append(text)
                    try:
                        obj = json.loads(text)
                    except ValueError:
                        obj = None
                    if isinstance(obj, dict):
                        self.events.append(obj)
                    self._cond.notify_all()
        self._stream.close()
        with self._cond:
            self._cond.notify_all()

    def wait_for(
        self,
        event: str | None = None,
        *,
        timeout: float = 10.0,
        where: Callable[[dict[str, Any]], bool] | None = None,
        after: int = 0,
    ) -> dict[str, Any]:
        """First JSON line (index >= ``after``) with ``event`` that satisfies ``where``; raises after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for obj in self.events[after:]:
                    if (event is None or obj.get("event") == event) and (where is None or where(obj)):
                        return obj
                left = deadline - time.monotonic()
                if left <= 0 or (not self.proc.running and not self._thread.is_alive()):
                    break
                self._cond.wait(min(left, 0.2))
        raise PeerError(
            f"{self.proc.name}: no {event or 'JSON'} line within {timeout} s "
            f"(exit={self.proc.popen.poll()}); lines so far:\n"
            + "\n".join(self.raw_lines[-30:])
            + "\n"
            + self.proc.diagnostics()
        )

    def matching(self, event: str) -> list[dict[str, Any]]:
        with self._cond:
            return [e for e in self.events if e.get("event") == event]

    def close(self) -> None:
        self._thread.join(timeout=5)


@dataclass
class DialerServe:
    """A running ``dialer sip serve``: its port and its JSON event lines."""

    proc: Proc
    port: int
    lines: JsonLines

    @property
    def target(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def wait_event(
        self,
        event: str,
        *,
        timeout: float = 10.0,
        where: Callable[[dict[str, Any]], bool] | None = None,
    ) -> dict[str, Any]:
        return self.lines.wait_for(event, timeout=timeout, where=where)

    def stop(self) -> int:
        rc = self.proc.stop()
        self.lines.close()
        return rc


def start_dialer_serve(
    procs: Processes,
    *,
    users: Sequence[str] = (),
    extra_args: Sequence[str] = (),
    max_seconds: float = 120.0,
    port: int | None = None,
) -> DialerServe:
    """Start ``dialer sip serve --listen 127.0.0.1:PORT`` and wait for its ``listening`` line."""
    port = port or free_port()
    argv = dialer_argv("sip", "serve", "--listen", f"{LOOPBACK}:{port}")
    for u in users:
        argv += ["--user", u]
    argv += list(extra_args)
    proc = procs.start("dialer-serve", argv, max_seconds=max_seconds, cwd=REPO, stdout_pipe=True)
    lines = JsonLines(proc)

    def close() -> None:
        proc.stop()
        lines.close()

    procs.on_close(close)
    lines.wait_for("listening", timeout=15.0)
    return DialerServe(proc, port, lines)


@dataclass
class DialerCallResult:
    returncode: int
    outcome: dict[str, Any]
    proc: Proc

    def describe(self) -> str:
        return f"dialer sip call exit {self.returncode}, outcome {self.outcome}\n{self.proc.diagnostics()}"


def start_dialer_call(procs: Processes, uri: str, *args: str, max_seconds: float = 60.0) -> Proc:
    if "127.0.0.1" not in uri and "localhost" not in uri:
        raise PeerError(f"{uri}: tests only call 127.0.0.1")
    argv = dialer_argv("sip", "call", uri, *args)
    return procs.start("dialer-call", argv, max_seconds=max_seconds, cwd=REPO)


def finish_dialer_call(proc: Proc, timeout: float | None = None) -> DialerCallResult:
    """Wait for ``dialer sip call`` and parse its single JSON outcome line."""
    rc = proc.wait(timeout)
    lines = [ln for ln in proc.stdout().splitlines() if ln.strip()]
    outcome: dict[str, Any] = {}
    for ln in reversed(lines):
        with contextlib.suppress(ValueError):
            obj = json.loads(ln)
            if isinstance(obj, dict):
                outcome = obj
                break
    return DialerCallResult(rc, outcome, proc)


def run_dialer_call(procs: Processes, uri: str, *args: str, max_seconds: float = 60.0) -> DialerCallResult:
    return finish_dialer_call(start_dialer_call(procs, uri, *args, max_seconds=max_seconds))


# --------------------------------------------------------------------------- baresip


def _netstring(payload: bytes) -> bytes:
    return str(len(payload)).encode() + b":" + payload + b","


class Baresip:
    """baresip 1.0.0 as an agent softphone, driven over its ``ctrl_tcp`` JSON/netstring socket.

    Config written to ``workdir``: loopback-only ``sip_listen``, ``net_interface 127.0.0.1``
    (baresip 1.0.0 does not accept ``lo`` there), G.711 only, no video/STUN/ICE, audio source
    ``aufile`` playing ``source_wav``, ALSA's ``null`` device as player, and the ``sndfile``
    filter dumping what it sends and receives to ``<workdir>/snd/dump-*-{enc,dec}.wav``.
    baresip hangs up when the aufile source reaches end of file, so the source WAV must be
    longer than the call (default: 30 s of silence).
    """

    def __init__(
        self,
        procs: Processes,
        workdir: Path,
        *,
        user: str = "agent1",
        password: str | None = None,
        registrar: tuple[str, int] | None = None,
        source_wav: Path | None = None,
        answer_mode: str = "auto",
        lifetime: float = 60.0,
        sip_trace: bool = True,
    ) -> None:
        require("baresip")
        self.procs = procs
        self.workdir = workdir
        self.user = user
        self.password = password
        self.registrar = registrar
        self.source_wav = source_wav
        self.answer_mode = answer_mode
        self.lifetime = lifetime
        self.sip_trace = sip_trace
        self.sip_port = free_port()
        self.ctrl_port = free_port()
        self.rtp_base = free_port_range(20)
        self.snd_dir = workdir / "snd"
        self.proc: Proc | None = None
        self.events: list[dict[str, Any]] = []
        self.responses: dict[str, dict[str, Any]] = {}
        self._cond = threading.Condition()
        self._sock: socket.socket | None = None
        self._reader: threading.Thread | None = None
        self._token = 0

    @property
    def aor(self) -> str:
        host, port = self.registrar or (LOOPBACK, self.sip_port)
        return f"sip:{self.user}@{host}:{port}"

    def write_config(self) -> None:
        from tests.interop.audio import write_silence

        self.workdir.mkdir(parents=True, exist_ok=True)
        self.snd_dir.mkdir(exist_ok=True)
        source = self.source_wav or write_silence(self.workdir / "silence.wav", seconds=max(30.0, self.lifetime))
        config = f"""\
# written by tests/interop/peers.py: loopback only, G.711, no video, no NAT traversal
poll_method		epoll
sip_listen		{LOOPBACK}:{self.sip_port}
net_interface		{LOOPBACK}
call_local_timeout	60
call_max_calls		4
audio_player		alsa,null
audio_alert		alsa,null
audio_source		aufile,{source}
ausrc_srate		8000
auplay_srate		8000
ausrc_channels		1
auplay_channels		1
rtp_ports		{self.rtp_base}-{self.rtp_base + 19}
rtp_timeout		0
jitter_buffer_delay	2-10
module_path		/usr/lib/baresip/modules
module			g711.so
module			aufile.so
module			sndfile.so
module			alsa.so
module_app		account.so
module_app		menu.so
module_app		ctrl_tcp.so
ctrl_tcp_listen		{LOOPBACK}:{self.ctrl_port}
snd_path		{self.snd_dir}
"""
        (self.workdir / "config").write_text(config)
        params = [f"answermode={self.answer_mode}", "audio_codecs=PCMU,PCMA", "medianat=", "mediaenc="]
        if self.registrar is None:
            params.append("regint=0")
        else:
            params.append("regint=60")
        if self.password is not None:
            params.append(f"auth_pass={self.password}")
        (self.workdir / "accounts").write_text(f"<{self.aor}>;" + ";".join(params) + "\n")
        (self.workdir / "contacts").write_text("")

    def start(self) -> Baresip:
        self.write_config()
        argv = ["baresip", "-f", str(self.workdir), "-t", str(max(1, round(self.lifetime)))]
        if self.sip_trace:
            argv.append("-s")
        self.proc = self.procs.start(f"baresip-{self.user}", argv, max_seconds=self.lifetime + 10.0)
        self.procs.on_close(self.stop)
        deadline = time.monotonic() + 10.0
        while True:
            try:
                self._sock = socket.create_connection((LOOPBACK, self.ctrl_port), timeout=1.0)
                break
            except OSError:
                if not self.proc.running or time.monotonic() > deadline:
                    raise PeerError(
                        f"baresip ctrl_tcp did not come up on {self.ctrl_port}\n{self.proc.diagnostics()}"
                    ) from None
                time.sleep(0.1)
        self._sock.settimeout(None)
        self._reader = threading.Thread(target=self._read_loop, name=f"baresip-ctrl-{self.user}", daemon=True)
        self._reader.start()
        return self

    def __enter__(self) -> Baresip:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _read_loop(self) -> None:
        assert self._sock is not None
        buf = b""
        with self._sock.makefile("rb") as f:
            while True:
                try:
                    chunk = f.read1(4096)
                except OSError:
                    break
                if not chunk:
                    break
                buf += chunk
                while True:
                    length, sep, rest = buf.partition(b":")
                    if not sep or not length.isdigit() or len(rest) < int(length) + 1:
                        break
                    n = int(length)
                    payload, buf = rest[:n], rest[n + 1 :]
                    try:
                        obj = json.loads(payload)
                    except ValueError:
                        continue
                    with self._cond:
                        if obj.get("response"):
                            self.responses[str(obj.get("token"))] = obj
                        else:
                            self.events.append(obj)
                        self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def command(self, command: str, params: str = "", *, timeout: float = 5.0) -> dict[str, Any]:
        """Send a menu command (``dial``, ``hangup``, ``sndcode``, ``quit``...) and wait for its response."""
        if self._sock is None:
            raise PeerError("baresip is not started")
        self._token += 1
        token = f"t{self._token}"
        self._sock.sendall(_netstring(json.dumps({"command": command, "params": params, "token": token}).encode()))
        deadline = time.monotonic() + timeout
        with self._cond:
            while token not in self.responses:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise PeerError(
                        f"baresip: no response to {command} {params!r} in {timeout} s\n{self.log()[-3000:]}"
                    )
                self._cond.wait(left)
            resp = self.responses.pop(token)
        if not resp.get("ok", False):
            raise PeerError(f"baresip: {command} {params!r} failed: {resp}")
        return resp

    def wait_event(
        self,
        *types: str,
        timeout: float = 10.0,
        where: Callable[[dict[str, Any]], bool] | None = None,
    ) -> dict[str, Any]:
        """First ctrl_tcp event whose ``type`` is one of ``types`` (e.g. REGISTER_OK, CALL_ESTABLISHED)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for ev in self.events:
                    if ev.get("type") in types and (where is None or where(ev)):
                        return ev
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(min(left, 0.2))
        raise PeerError(
            f"baresip {self.user}: no {'/'.join(types)} event in {timeout} s; events: "
            f"{[e.get('type') for e in self.events]}\n{self.log()[-4000:]}"
        )

    def wait_registered(self, timeout: float = 10.0) -> dict[str, Any]:
        """Wait until the account is registered; returns the REGISTER_OK event (or an equivalent).

        baresip often registers before our ctrl_tcp connection is up, so the REGISTER_OK event
        is lost; ``reginfo`` is polled as well ("OK" or "ERR" next to the AOR).
        """
        deadline = time.monotonic() + timeout
        while True:
            with self._cond:
                for ev in self.events:
                    if ev.get("type") == "REGISTER_OK":
                        return ev
                    if ev.get("type") == "REGISTER_FAIL":
                        raise PeerError(f"baresip {self.user}: registration failed: {ev}\n{self.log()[-4000:]}")
            info = re.sub(r"\x1b\[[0-9;]*m", "", str(self.command("reginfo").get("data", "")))
            for line in info.splitlines():
                if self.aor in line and re.search(r"\bOK\b", line):
                    return {"type": "REGISTER_OK", "accountaor": self.aor, "param": line.strip(), "source": "reginfo"}
                if self.aor in line and re.search(r"\bERR\b", line):
                    raise PeerError(f"baresip {self.user}: registration failed: {line.strip()}\n{self.log()[-4000:]}")
            if time.monotonic() > deadline:
                raise PeerError(f"baresip {self.user}: not registered after {timeout} s: {info}\n{self.log()[-4000:]}")
            time.sleep(0.2)

    def dial(self, uri: str) -> None:
        if LOOPBACK not in uri:
            raise PeerError(f"{uri}: tests only call 127.0.0.1")
        self.command("dial", uri)

    def wait_established(self, timeout: float = 10.0) -> dict[str, Any]:
        return self.wait_event("CALL_ESTABLISHED", timeout=timeout)

    def wait_closed(self, timeout: float = 10.0) -> dict[str, Any]:
        return self.wait_event("CALL_CLOSED", timeout=timeout)

    def send_dtmf(self, digits: str, *, gap: float = 0.25) -> None:
        """Send RFC 4733 events one digit at a time (``sndcode``: key press, then release)."""
        for d in digits:
            self.command("sndcode", d)
            time.sleep(gap)

    def hangup(self) -> None:
        self.command("hangup")

    def received_dtmf(self) -> str:
        """Digits baresip received so far (RFC 4733 events it reported as CALL_DTMF_START)."""
        with self._cond:
            return "".join(str(e.get("param", "")) for e in self.events if e.get("type") == "CALL_DTMF_START")

    def recordings(self, direction: str = "dec") -> list[Path]:
        """sndfile dumps: ``dec`` = audio baresip received (decoded), ``enc`` = what it sent."""
        return sorted(self.snd_dir.glob(f"dump-*-{direction}.wav"))

    def log(self) -> str:
        return self.proc.stdout() + self.proc.stderr() if self.proc else ""

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.running and self._sock is not None:
            with contextlib.suppress(OSError, PeerError):
                self._sock.sendall(_netstring(json.dumps({"command": "quit", "params": "", "token": "quit"}).encode()))
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.popen.wait(3)
        self.proc.stop()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None
        if self._reader is not None:
            self._reader.join(timeout=2)


# --------------------------------------------------------------------------- pyVoIP


class PyVoipPhone:
    """pyVoIP 1.6.8 as an independent softphone registered to a registrar on 127.0.0.1.

    Quirks of 1.6.8 this wrapper works around or documents:
    - it binds its own SIP port (``sipPort``) and must be given ``myIP="127.0.0.1"``, else
      its Via/Contact/SDP say 0.0.0.0;
    - ``start()`` registers synchronously, waiting up to ``register_timeout`` (30 s by
      default, lowered here) per response; it answers a 401 with MD5 digest *without qop*
      (RFC 2069 form), computes HA2 over ``uri="sip:<server>;transport=UDP"`` (no port) and
      always says ``algorithm=MD5``; with several WWW-Authenticate headers the last one wins;
    - it sends every response for an incoming call (180, 200) to the registrar's
      address (server, port), not to the Via of the INVITE: calls must come through the
      registrar's own socket;
    - it sends 180 at once and runs the call callback in a Timer thread 1 s later;
    - ``stop()`` unregisters (Expires: 0) and may wait ``register_timeout`` for the answer.
    """

    def __init__(
        self,
        registrar: tuple[str, int],
        username: str,
        password: str,
        *,
        record_to: Path | None = None,
        answer: bool = True,
        register_timeout: int = 5,
    ) -> None:
        from pyVoIP.VoIP import VoIPPhone

        host, port = registrar
        if host != LOOPBACK:
            raise PeerError(f"registrar {host}: tests only talk to 127.0.0.1")
        self.sip_port = free_port()
        rtp_low = free_port_range(20)
        self.record_to = record_to
        self.answer = answer
        self.calls_answered = 0
        self.calls_ended = 0
        self.received_audio = bytearray()
        self.errors: list[str] = []
        self._threads: list[threading.Thread] = []
        self._answered = threading.Event()
        self._ended = threading.Event()
        self._stopping = threading.Event()
        self.phone = VoIPPhone(
            host,
            port,
            username,
            password,
            myIP=LOOPBACK,
            callCallback=self._on_call,
            sipPort=self.sip_port,
            rtpPortLow=rtp_low,
            rtpPortHigh=rtp_low + 19,
        )
        self.phone.sip.register_timeout = register_timeout

    def _on_call(self, call: Any) -> None:
        from pyVoIP.VoIP import CallState, InvalidStateError

        try:
            if not self.answer:
                call.deny()
                return
            call.answer()
            self.calls_answered += 1
            self._answered.set()
            # pyVoIP's RTP client needs the call's audio drained or its buffer grows; read until BYE.
            while call.state == CallState.ANSWERED and not self._stopping.is_set():
                data = call.read_audio(160, blocking=False)
                if self.record_to is not None:
                    self.received_audio += data
                time.sleep(0.02)
        except InvalidStateError as exc:
            self.errors.append(repr(exc))
        except Exception as exc:  # a callback-thread error must reach the test, not vanish
            self.errors.append(repr(exc))
        finally:
            self.calls_ended += 1
            self._ended.set()

    def start(self) -> PyVoipPhone:
        """Register (blocking); raises pyVoIP's error if the registrar refuses or does not answer."""
        self.phone.start()
        return self

    @property
    def registered(self) -> bool:
        from pyVoIP.VoIP import PhoneStatus

        return bool(self.phone.get_status() == PhoneStatus.REGISTERED)

    def wait_answered(self, timeout: float = 10.0) -> bool:
        return self._answered.wait(timeout)

    def wait_ended(self, timeout: float = 10.0) -> bool:
        return self._ended.wait(timeout)

    def save_recording(self) -> Path | None:
        """Write received audio (pyVoIP hands out 8-bit unsigned linear) as PCM16 WAV."""
        if self.record_to is None:
            return None
        import wave

        import numpy as np

        pcm8 = np.frombuffer(bytes(self.received_audio), dtype=np.uint8)
        pcm16 = ((pcm8.astype(np.int16) - 128) << 8).astype("<i2")
        with wave.open(str(self.record_to), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(8000)
            w.writeframes(pcm16.tobytes())
        return self.record_to

    def stop(self) -> None:
        self._stopping.set()
        # pyVoIP's stop() unregisters; a registrar that is already gone costs register_timeout.
        stopper = threading.Thread(target=self._stop_phone, name="pyvoip-stop", daemon=True)
        stopper.start()
        stopper.join(timeout=self.phone.sip.register_timeout * 2 + 2)

    def _stop_phone(self) -> None:
        try:
            self.phone.stop()
        except Exception as exc:  # unregister failing at teardown is not the test's concern
            self.errors.append(f"stop: {exc!r}")

    def __enter__(self) -> PyVoipPhone:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def processes(workdir: Path) -> Iterator[Processes]:
    procs = Processes(workdir)
    try:
        yield procs
    finally:
        procs.close()


# --------------------------------------------------------------------------- raw UDP


def udp_exchange(port: int, payload: bytes, *, timeout: float = 2.0) -> bytes | None:
    """Send one datagram to 127.0.0.1:port and return the first reply (None on timeout)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((LOOPBACK, 0))
        s.settimeout(timeout)
        s.sendto(payload, (LOOPBACK, port))
        try:
            data, _ = s.recvfrom(65535)
        except TimeoutError:
            return None
        return data
