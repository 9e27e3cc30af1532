"""`dialer sip serve` and `dialer sip call`: the operator's trunk and phone diagnostics.

Both are scriptable: `serve` prints one JSON object per line on stdout for every event
(registrations, calls, DTMF, call ends) and `call` prints exactly one JSON line with the
outcome. Logs go to stderr. `call` exits 0 only when the call was answered; otherwise
its exit status names the outcome (see ``EXIT_CODES``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from telephony.aio.ua import Call, UAConfig, UserAgent
from telephony.media.bridge import Bridge
from telephony.sip.dialog import CallOutcome
from telephony.sip.uri import SipSyntaxError, SipURI

app = typer.Typer(help="SIP diagnostics: a standalone UA/registrar, and one test call.", no_args_is_help=True)

EXIT_CODES: dict[str, int] = {
    CallOutcome.ANSWERED: 0,
    CallOutcome.BUSY: 2,
    CallOutcome.NO_ANSWER: 3,
    CallOutcome.REJECTED: 4,
    CallOutcome.UNAVAILABLE: 5,
    CallOutcome.NOT_FOUND: 6,
    CallOutcome.FAILED: 7,
    CallOutcome.CANCELLED: 8,
}


# `serve` prints several lines per call: one flush (a write system call) per line cost about
# 5% of a call at 500 calls/s. While serving, lines are flushed together at most this late.
_FLUSH_DELAY_S = 0.01
_flush_pending: asyncio.TimerHandle | None = None
_batching = False


def _emit(obj: dict[str, object]) -> None:
    global _flush_pending
    sys.stdout.write(json.dumps(obj, separators=(",", ":"), default=str) + "\n")
    if not _batching:
        sys.stdout.flush()
    elif _flush_pending is None:
        _flush_pending = asyncio.get_running_loop().call_later(_FLUSH_DELAY_S, _flush)


def _flush() -> None:
    global _flush_pending
    _flush_pending = None
    with contextlib.suppress(OSError, ValueError):  # a reader that went away must not stop the server
        sys.stdout.flush()


def _parse_listen(value: str) -> tuple[str, int]:
    """'127.0.0.1:5060', '[::1]:5060' or '::1' -> host, port."""
    v = value.strip()
    if v.startswith("["):
        host, _, rest = v[1:].partition("]")
        port = rest.lstrip(":") or "5060"
    elif v.count(":") == 1:
        host, port = v.split(":")
    elif v.count(":") > 1:
        host, port = v, "5060"
    else:
        host, port = v, "5060"
    if not port.isdigit() or not 0 <= int(port) < 65536:
        raise typer.BadParameter(f"--listen {value!r}: the port must be 0-65535, e.g. 127.0.0.1:5060")
    return host, int(port)


def _parse_users(users: list[str]) -> dict[str, str]:
    accounts: dict[str, str] = {}
    for u in users:
        name, sep, password = u.partition(":")
        if not sep or not name or not password:
            raise typer.BadParameter(f"--user {u!r}: expected NAME:PASSWORD, e.g. --user agent1:secret")
        accounts[name] = password
    return accounts


def _setup_logging(verbose: bool) -> None:
    import logging

    import structlog

    from infra.logging import configure_logging

    level = logging.DEBUG if verbose else logging.WARNING
    configure_logging(level=logging.getLevelName(level).lower(), stream=sys.stderr)
    # Filter by level in the bound logger itself: a filtered call is then a no-op method,
    # where the stdlib-style logger would build the event and run processors to drop it.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(level), cache_logger_on_first_use=True)


def _install_loop() -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


@app.command()
def serve(
    listen: Annotated[
        str, typer.Option(help="Address to listen on (UDP and TCP), e.g. 127.0.0.1:5060 or [::1]:5060")
    ] = ("127.0.0.1:5060"),
    user: Annotated[
        list[str] | None, typer.Option(help="NAME:PASSWORD; repeat. Challenges REGISTER and INVITE.")
    ] = None,
    echo: Annotated[bool, typer.Option(help="Echo the caller's audio back")] = False,
    play: Annotated[Path | None, typer.Option(help="WAV file (8 kHz mono PCM16 or G.711) to play to callers")] = None,
    duration: Annotated[float, typer.Option(help="Stop after this many seconds (0: run until Ctrl-C)")] = 0.0,
    answer_after: Annotated[float, typer.Option(help="Ring this many seconds before answering")] = 0.0,
    auth_algorithms: Annotated[
        str, typer.Option(help="Digest algorithms challenged with, e.g. SHA-256,MD5 (many phones know only MD5)")
    ] = "MD5",
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logs on stderr")] = False,
) -> None:
    """Run a standalone UA and registrar that answers every INVITE."""
    if echo and play:
        raise typer.BadParameter("--echo and --play are exclusive: pick one")
    if play is not None and not play.is_file():
        raise typer.BadParameter(f"--play {play}: no such file")
    host, port = _parse_listen(listen)
    accounts = _parse_users(user or [])
    algorithms = tuple(a.strip().upper() for a in auth_algorithms.split(",") if a.strip())
    if not algorithms or any(a not in ("MD5", "SHA-256") for a in algorithms):
        raise typer.BadParameter(f"--auth-algorithms {auth_algorithms!r}: use MD5 and/or SHA-256, e.g. SHA-256,MD5")
    _setup_logging(verbose)
    _install_loop()
    config = UAConfig(host=host, port=port, accounts=accounts, user="serve", auth_algorithms=algorithms)
    asyncio.run(_serve(config, echo, play, duration, answer_after))


async def _serve(config: UAConfig, echo: bool, play: Path | None, duration: float, answer_after: float) -> None:
    global _batching
    ua = UserAgent(config)
    await ua.start()
    _emit({"event": "listening", "host": config.host, "port": ua.port, "users": sorted(config.accounts)})
    _batching = True
    # Everything allocated so far (the CLI, typer, SQLAlchemy models...) lives as long as the
    # process: move it out of the collector's sight, so full collections only walk what calls
    # allocate (they took 200 ms at 300 calls/s, longer than a SIP retransmission interval).
    gc.collect()
    gc.freeze()
    # Young collections every 10,000 net allocations instead of 700: each call allocates a
    # few hundred short-lived objects, and collecting that often promotes them half-built.
    gc.set_threshold(10_000, 10, 10)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    digits: dict[str, list[str]] = {}

    def ended(call: Call) -> None:
        _emit({"event": "call_ended", **call.as_dict(), "dtmf": "".join(digits.pop(call.id, []))})

    ua.on_call_ended = ended

    async def handle(call: Call) -> None:
        _emit({"event": "call_incoming", "call_id": call.id, "from": call.remote})
        digits[call.id] = []

        def got(d: str) -> None:
            digits.setdefault(call.id, []).append(d)
            _emit({"event": "dtmf", "call_id": call.id, "digit": d, "digits": "".join(digits[call.id])})

        call.on_dtmf = got
        user = call.request_uri.user if call.request_uri is not None else None
        if user and ua.registered(user):
            await _route_to_binding(ua, call, user)
            return
        try:
            if answer_after > 0:
                await call.ring()
                await asyncio.sleep(answer_after)
                if call.ended:
                    return
            await call.answer()
        except Exception as exc:  # report any failure as an event and keep serving
            _emit({"event": "answer_failed", "call_id": call.id, "error": str(exc)})
            return
        _emit({"event": "call_answered", "call_id": call.id})
        if echo and call.media is not None:
            call.media.start_echo()
        elif play is not None:
            await call.play(play, loop=True)

    tasks: set[asyncio.Task[None]] = set()

    def incoming(call: Call) -> None:
        t = loop.create_task(handle(call))
        tasks.add(t)
        t.add_done_callback(tasks.discard)

    ua.on_incoming = incoming
    try:
        if duration > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), duration)
        else:
            await stop.wait()
    finally:
        await ua.close()
        _batching = False
        _emit({"event": "stopped", **ua.stats})


async def _route_to_binding(ua: UserAgent, inbound: Call, user: str) -> None:
    """B2BUA: a call for a registered user rings that user's phone through its binding;
    when it answers, the caller is answered and the two legs' media are bridged."""
    _emit({"event": "call_routed", "call_id": inbound.id, "to": user})
    out = await ua.call(f"sip:{user}@{ua.config.realm}", from_user=inbound.remote.split(":", 1)[-1].split("@")[0])
    await inbound.ring()
    answered = asyncio.ensure_future(out.wait_answered())
    caller_left = asyncio.ensure_future(inbound.wait_ended())
    await asyncio.wait({answered, caller_left}, return_when=asyncio.FIRST_COMPLETED)
    if caller_left.done():
        answered.cancel()
        await out.hangup()
        return
    caller_left.cancel()
    outcome = answered.result()
    if outcome.outcome is not CallOutcome.ANSWERED:
        await inbound.reject(outcome.sip_status or 480)
        return
    await inbound.answer()
    assert inbound.media is not None and out.media is not None
    bridge = Bridge(inbound.media, out.media)
    ends = [asyncio.ensure_future(inbound.wait_ended()), asyncio.ensure_future(out.wait_ended())]
    await asyncio.wait(ends, return_when=asyncio.FIRST_COMPLETED)
    for t in ends:
        t.cancel()
    bridge.stop()
    await inbound.hangup()
    await out.hangup()


@app.command()
def call(
    uri: Annotated[str, typer.Argument(help="Who to call, e.g. sip:1000@127.0.0.1:5070")],
    user: Annotated[str | None, typer.Option(help="NAME:PASSWORD for digest auth if challenged")] = None,
    play: Annotated[Path | None, typer.Option(help="WAV file to play once answered")] = None,
    record: Annotated[Path | None, typer.Option(help="Write the received audio to this WAV")] = None,
    duration: Annotated[
        float | None, typer.Option(help="Seconds to stay connected (default: the --play length, else 5)")
    ] = None,
    ring_timeout: Annotated[float, typer.Option(help="Seconds to ring before cancelling (outcome no_answer)")] = 25.0,
    dtmf: Annotated[str | None, typer.Option(help="DTMF digits to send once answered (RFC 4733)")] = None,
    listen: Annotated[
        str | None, typer.Option(help="Local address, default an ephemeral port on the target's family")
    ] = None,
    from_user: Annotated[str, typer.Option(help="User part of our From URI")] = "dialer",
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logs on stderr")] = False,
) -> None:
    """Place one call and print its outcome and SIP status as one JSON line."""
    try:
        target = SipURI.parse(uri)
    except SipSyntaxError as exc:
        raise typer.BadParameter(f"{exc}. Example: sip:1000@127.0.0.1:5070") from None
    if play is not None and not play.is_file():
        raise typer.BadParameter(f"--play {play}: no such file")
    if dtmf is not None and any(c not in "0123456789*#ABCDabcd" for c in dtmf):
        raise typer.BadParameter(f"--dtmf {dtmf!r}: digits are 0-9, *, # and A-D")
    if ring_timeout <= 0:
        raise typer.BadParameter("--ring-timeout must be positive")
    auth = None
    if user:
        auth = next(iter(_parse_users([user]).items()))
    if listen:
        host, port = _parse_listen(listen)
    else:
        loopback = "::1" if ":" in target.host else "127.0.0.1"
        host, port = (loopback if _is_loopback(target.host) else "0.0.0.0"), 0
    _setup_logging(verbose)
    _install_loop()
    code = asyncio.run(_call(uri, host, port, auth, play, record, duration, ring_timeout, dtmf, from_user))
    raise typer.Exit(code)


def _is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


async def _call(
    uri: str,
    host: str,
    port: int,
    auth: tuple[str, str] | None,
    play: Path | None,
    record: Path | None,
    duration: float | None,
    ring_timeout: float,
    dtmf: str | None,
    from_user: str,
) -> int:
    """Place the call and print its one JSON line; a failure to even place it (the local
    address cannot be bound, the host does not resolve, no media port) is reported as
    outcome ``failed`` with a ``detail``, never as a traceback."""
    ua = UserAgent(UAConfig(host=host, port=port, registrar=False, user=from_user))
    started = time.monotonic()
    c: Call | None = None
    try:
        try:
            await ua.start()
        except OSError as exc:
            return _failed(uri, started, f"cannot listen on {host}:{port}: {exc.strerror or exc}")
        try:
            c = await ua.call(uri, auth=auth, ring_timeout=ring_timeout, from_user=from_user)
        except socket.gaierror as exc:
            target = SipURI.parse(uri).host
            return _failed(uri, started, f"cannot resolve {target!r}: {exc.strerror or exc}")
        except Exception as exc:  # the CLI boundary: one JSON line, whatever went wrong
            return _failed(uri, started, f"cannot place the call: {type(exc).__name__}: {exc}")
        return await _talk(c, started, play, record, duration, dtmf)
    except Exception as exc:
        if c is None:
            return _failed(uri, started, f"{type(exc).__name__}: {exc}")
        with contextlib.suppress(Exception):
            await c.hangup()
        result = c.as_dict()
        result["detail"] = f"{type(exc).__name__}: {exc}"
        result["elapsed"] = round(time.monotonic() - started, 3)
        _emit(result)
        return EXIT_CODES.get(c.outcome.outcome if c.outcome else CallOutcome.FAILED, EXIT_CODES[CallOutcome.FAILED])
    finally:
        with contextlib.suppress(Exception):
            await ua.close()


def _failed(uri: str, started: float, detail: str) -> int:
    _emit(
        {
            "call_id": None,
            "direction": "outbound",
            "remote": uri,
            "outcome": CallOutcome.FAILED.value,
            "sip_status": None,
            "sip_reason": None,
            "reason_header": None,
            "detail": detail,
            "elapsed": round(time.monotonic() - started, 3),
        }
    )
    return EXIT_CODES[CallOutcome.FAILED]


async def _talk(
    c: Call, started: float, play: Path | None, record: Path | None, duration: float | None, dtmf: str | None
) -> int:
    outcome = await c.wait_answered()
    talk = 0.0
    if outcome.outcome is CallOutcome.ANSWERED and not c.ended:
        if record is not None and c.media is not None:
            c.media.record_to(record)
        hold = duration if duration is not None else (_wav_seconds(play) if play else 5.0)
        t0 = time.monotonic()

        async def talk_task() -> None:
            if dtmf:
                await c.send_dtmf(dtmf)
            if play is not None:
                await c.play(play)
            await asyncio.sleep(max(0.0, hold - (time.monotonic() - t0)))

        tt = asyncio.ensure_future(talk_task())
        ended = asyncio.ensure_future(c.wait_ended())
        await asyncio.wait({tt, ended}, timeout=hold + 10.0, return_when=asyncio.FIRST_COMPLETED)
        tt.cancel()
        ended.cancel()
        error = tt.exception() if tt.done() and not tt.cancelled() else None
        if error is not None:
            raise error
        talk = time.monotonic() - t0
        await c.hangup()
    else:
        await c.wait_ended()
    result = c.as_dict()
    result["talk_seconds"] = round(talk, 3)
    result["elapsed"] = round(time.monotonic() - started, 3)
    if c.media is not None:
        result["media"] = c.media.stats
    _emit(result)
    return EXIT_CODES.get(c.outcome.outcome if c.outcome else CallOutcome.FAILED, EXIT_CODES[CallOutcome.FAILED])


def _wav_seconds(path: Path) -> float:
    import wave

    with wave.open(str(path), "rb") as w:
        return w.getnframes() / float(w.getframerate() or 8000)
