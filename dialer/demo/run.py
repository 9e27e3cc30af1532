"""One demo run, start to finish: the real product on loopback with simulated people and carrier.

Order of a run:

1. voices for the simulated people are synthesised once (espeak-ng + sox, cached);
2. the simulated carrier opens its SIP port; the app starts on settings built from
   ``config/demo/demo.toml`` (SQLite in the data directory, embedded MQTT broker, SIP and RTP
   on loopback, the carrier as the trunk in peer mode) with the ACD, recordings, the campaign
   runner and the web console; a supervisor login for the console is created;
3. the DNC file is loaded, the campaign is created, the call list is imported by the real
   importer (rejects file in the data directory), and the calling window is chosen from the
   imported contacts' zones (:func:`dialer.demo.config.choose_window`);
4. the agents' softphones register and log in (nailed), the campaign is set active, and
   inbound customers start calling the DID;
5. the live view (or one summary line every few seconds) follows the bus until the time is up
   or Ctrl-C; then the campaign is paused, conversations in progress end and their dispositions
   are keyed (bounded; a second Ctrl-C skips it), and everything stops in order.

:func:`run_demo` returns a :class:`DemoResult`; the CLI then prints the reports from the data
directory with ``dialer report`` (see :mod:`dialer.commands.demo`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import secrets
import signal
import socket
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import structlog
from rich.console import Console
from rich.live import Live
from sqlalchemy import select

from dialer.demo.config import (
    DEFAULT_DEMO_FILE,
    ContactZones,
    DemoConfig,
    WindowChoice,
    build_settings,
    choose_window,
    load_demo_config,
)
from dialer.demo.people import DemoPeople
from dialer.demo.view import DemoFigures, render, summary_line
from infra.settings import Settings

__all__ = ["DemoError", "DemoOptions", "DemoResult", "run_demo"]

log = structlog.get_logger(__name__)


class DemoError(Exception):
    """The demo cannot run; the message says why and what to do."""


@dataclass(frozen=True)
class DemoOptions:
    minutes: float = 3.0
    agents: int = 8
    data_dir: Path | None = None
    seed: int = 1
    view: bool = True
    config_path: Path = DEFAULT_DEMO_FILE
    summary_every_s: float = 5.0
    #: after the time is up: longest wait for conversations to end and dispositions to be keyed
    drain_s: float = 50.0
    verbose: bool = False


@dataclass
class DemoResult:
    data_dir: Path
    config_file: Path
    campaign: str
    settings: Settings
    window: WindowChoice | None = None
    rejects_file: Path | None = None
    recordings_dir: Path | None = None
    log_file: Path | None = None
    effective: int = 0
    recordings: int = 0
    interrupted: bool = False
    notes: list[str] = field(default_factory=list)


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _prepare_data_dir(data_dir: Path | None) -> Path:
    if data_dir is None:
        return Path(tempfile.mkdtemp(prefix="dialer-demo-"))
    data_dir = data_dir.expanduser().resolve()
    if (data_dir / "dialer.db").exists():
        raise DemoError(
            f"{data_dir} already holds a demo run (dialer.db); pass an empty or new directory, or omit --data-dir"
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    return data_dir


def write_report_config(settings: Settings, path: Path) -> None:
    """A small config file so ``dialer report ... --config FILE`` reads this run's database."""
    path.write_text(
        "# Written by `dialer demo`: point `dialer report`, `dialer leads show` and `dialer recordings`\n"
        "# at this run's data with --config THIS_FILE.\n"
        "[site]\n"
        f'name = "{settings.site.name}"\n'
        f"data_dir = {json.dumps(str(settings.site.data_dir))}\n"
        f'timezone = "{settings.site.timezone}"\n'
        "\n[recordings]\n"
        f"dir = {json.dumps(str(settings.recordings.dir))}\n",
        encoding="utf-8",
    )


async def run_demo(options: DemoOptions, console: Console) -> DemoResult:
    """Run the demo; raises :class:`DemoError` or ``infra.settings.ConfigError`` when it cannot start."""
    if options.minutes <= 0:
        raise DemoError(f"--minutes {options.minutes:g}: give a positive number of minutes, e.g. 0.5 or 3")
    if not 1 <= options.agents <= 100:
        raise DemoError(f"--agents {options.agents}: give 1 to 100 agents")
    config = load_demo_config(options.config_path)
    data_dir = _prepare_data_dir(options.data_dir)
    log_file = data_dir / "demo.log"
    stream = log_file.open("a", encoding="utf-8")
    try:
        _configure_logging(options, stream)
        return await _run(options, config, data_dir, log_file, console)
    finally:
        stream.close()


def _configure_logging(options: DemoOptions, stream: TextIO) -> None:
    from infra.logging import configure_logging

    if options.verbose:
        configure_logging(level="info")
    else:
        configure_logging(level="info", stream=stream, fmt="json")


async def _run(
    options: DemoOptions, config: DemoConfig, data_dir: Path, log_file: Path, console: Console
) -> DemoResult:
    from dialer.sim import SimAudio, SimAudioError

    console.print(f"[bold]dialer demo[/]: data directory [cyan]{data_dir}[/] (SQLite, recordings, rejects, log)")
    agent_specs = build_settings(
        config, data_dir=data_dir, agents=options.agents, trunk_port=9, mqtt_port=1883
    ).acd.agents
    names = [str(spec.get("name") or agent_id) for agent_id, spec in agent_specs.items()]
    audio = SimAudio()
    console.print(f"Synthesising the simulated people's voices (espeak-ng + sox, cached in {audio.cache_dir}) ...")
    try:
        await asyncio.to_thread(audio.prepare, names)
    except SimAudioError as exc:
        raise DemoError(str(exc)) from None

    people = DemoPeople(config.demo, audio, seed=options.seed)
    carrier_port = await people.start_carrier()
    settings = build_settings(
        config,
        data_dir=data_dir,
        agents=options.agents,
        trunk_port=carrier_port,
        mqtt_port=free_tcp_port(),
    )
    config_file = data_dir / "dialer.toml"
    write_report_config(settings, config_file)
    result = DemoResult(
        data_dir=data_dir,
        config_file=config_file,
        campaign=config.demo.campaign,
        settings=settings,
        log_file=log_file,
        recordings_dir=settings.recordings.root(data_dir),
    )
    app = _make_app(settings)
    try:
        try:
            await app.start()
        except (OSError, ValueError) as exc:
            raise DemoError(f"the dialer could not start: {exc}") from None
        await _session(app, people, config, options, result, console)
    finally:
        with contextlib.suppress(Exception):
            await app.stop()
        await people.close()
    _count_outputs(result)
    return result


def _make_app(settings: Settings) -> Any:
    from dialer.app import DialerApp
    from dialer.console_backend import AppBackend
    from dialer.runner import RunnerTimers
    from dialer.services import acd_service
    from dialer.web.server import console_service_factory
    from dialer.wiring import recordings_factory, runner_factory
    from ivr.prompts import SHIPPED_PROMPTS_DIR, PromptLibrary

    holder: dict[str, Any] = {}
    prompts = PromptLibrary(settings.site.data_dir / "prompts", SHIPPED_PROMPTS_DIR)
    runner_options = {"abandon_audio": prompts.load("abandon_message")}
    factories = [
        acd_service,
        recordings_factory(holder),
        runner_factory(holder, runner_options, timers=RunnerTimers(drain_s=10.0)),
        console_service_factory(AppBackend),
    ]
    return DialerApp(settings, service_factories=factories)


async def _session(
    app: Any, people: DemoPeople, config: DemoConfig, options: DemoOptions, result: DemoResult, console: Console
) -> None:
    from dialer.web.events import CampaignStatusChanged

    loop = asyncio.get_running_loop()
    settings: Settings = app.settings
    sm = app.sessionmaker
    sip_port = app.ua.port
    web = next((s for s in app.services if s.name == "web"), None)
    password = secrets.token_urlsafe(9)
    await _create_supervisor(sm, "supervisor", password)
    console.print(
        f"SIP on udp 127.0.0.1:{sip_port}, simulated carrier (trunk, peer mode) on 127.0.0.1:{people.carrier.port}, "
        f"MQTT broker {app.broker.url if app.broker else settings.mqtt.url}"
    )
    if web is not None and web.server is not None:
        console.print(
            f"Wallboard: [bold cyan]http://127.0.0.1:{web.server.port}/wallboard[/]  "
            f"(log in as [bold]supervisor[/] / [bold]{password}[/])"
        )

    campaign_id, window = await _prepare_campaign(app, config, options, result, console)
    result.window = window

    registrar = f"sip:127.0.0.1:{sip_port}"
    people.deliver_to(registrar)
    people.follow(app.bus)
    await people.start_agents(registrar, settings.acd.agents)
    console.print(f"{len(people.agents)} agents registered with digest auth and logged in nailed (dialled *55)")

    figures = DemoFigures(effective_threshold_s=_effective_threshold(config))
    for agent_id, agent in people.agents.items():
        figures.add_agent(agent_id, agent.name)
    remove = app.bus.add_listener(lambda event: figures.apply(event, loop.time()))
    people.on_inbound = lambda handle: figures.note_inbound(handle.call_id)
    try:
        await _set_status(app, config.demo.campaign, "active")
        app.bus.publish(
            CampaignStatusChanged(
                campaign_id=campaign_id, name=config.demo.campaign, status="active", by="demo", at=time.time()
            )
        )
        people.start_inbound(config.demo.inbound_did, await _caller_numbers(sm, campaign_id))
        console.print(
            f"Campaign [bold]{config.demo.campaign}[/] active (predictive); inbound customers call "
            f"{config.demo.inbound_did} (IVR: 1 sales, 2 support). Running {options.minutes:g} min."
        )
        result.interrupted = await _watch(app, people, figures, options, console, config.demo.campaign)
    finally:
        remove()
    result.effective = len(figures.effective)


def _effective_threshold(config: DemoConfig) -> float:
    from dialer.campaigns import CampaignSettings

    return float(CampaignSettings.model_validate(config.campaign_table()).effective_call_seconds)


async def _create_supervisor(sm: Any, username: str, password: str) -> None:
    from dialer.web.auth import hash_password
    from dialer.web.models import User

    password_hash = await asyncio.to_thread(hash_password, password)
    async with sm() as session, session.begin():
        session.add(User(username=username, password_hash=password_hash, role="supervisor"))


async def _prepare_campaign(
    app: Any, config: DemoConfig, options: DemoOptions, result: DemoResult, console: Console
) -> tuple[int, WindowChoice]:
    from dialer.campaigns import CampaignSettings, create_campaign, update_campaign_settings
    from dialer.dnc import import_dnc
    from dialer.lists import import_list

    sm = app.sessionmaker
    name = config.demo.campaign
    if config.dnc_file is not None:
        dnc = await import_dnc(sm, config.dnc_file)
        console.print(f"DNC list: {dnc.added} number(s) from {config.dnc_file.name}")
    settings = CampaignSettings.model_validate(config.campaign_table())
    lines = max(1, math.ceil(options.agents * config.demo.max_lines_per_agent))
    settings = settings.model_copy(update={"pacing": settings.pacing.model_copy(update={"max_lines": lines})})
    async with sm() as session, session.begin():
        campaign = await create_campaign(session, name, settings)
        campaign_id = int(campaign.id)
    rejects = result.data_dir / "contacts.rejects.csv"
    summary = await import_list(sm, config.contacts_file, campaign=name, rejects_path=rejects)
    result.rejects_file = Path(summary.rejects_file) if summary.rejects_file else None
    console.print(
        f"Imported {config.contacts_file.name}: read {summary.read} = imported {summary.imported} + merged "
        f"{summary.merged} + rejected {summary.rejected} + DNC-suppressed {summary.dnc_suppressed}"
        + (f"; rejects with reasons: {summary.rejects_file}" if summary.rejects_file else "")
    )
    contacts = await _contact_zones(sm, campaign_id)
    now = datetime.now(UTC)
    window = choose_window(
        contacts,
        config.demo.window,
        start=now,
        minutes=options.minutes,
        agents=options.agents,
        holidays=settings.window.holidays,
    )
    settings = settings.model_copy(update={"window": window.apply(settings.window)})
    async with sm() as session, session.begin():
        await update_campaign_settings(session, name, settings)
    quiet = f", quiet hours {', '.join(window.quiet_hours)}" if window.quiet_hours else ""
    console.print(
        f"Calling window {window.default} in each callee's local time{quiet}"
        f"{', no calls on public holidays' if window.holidays else ''}: {window.callable} of {len(contacts)} "
        f"leads callable now, {len(window.outside)} outside the window (never dialled in this run)"
    )
    for note in window.notes:
        console.print(f"  [dim]note:[/] {note}")
    run_file = result.data_dir / "demo-run.json"
    run_file.write_text(
        json.dumps(
            {
                "campaign": name,
                "campaign_id": campaign_id,
                "started_at": now.isoformat(),
                "minutes": options.minutes,
                "agents": options.agents,
                "seed": options.seed,
                "window": {
                    "default": window.default,
                    "quiet_hours": list(window.quiet_hours),
                    "holidays": window.holidays,
                },
                "outside_window_contacts": list(window.outside),
                "rejects_file": summary.rejects_file,
                "import": summary.as_dict(),
            },
            indent=2,
            default=str,
        ),
        encoding="utf-8",
    )
    return campaign_id, window


async def _contact_zones(sm: Any, campaign_id: int) -> list[ContactZones]:
    from dialer.models import Contact, Lead, LeadStatus

    async with sm() as session:
        rows = await session.execute(
            select(Contact.id, Contact.timezones, Contact.country)
            .join(Lead, Lead.contact_id == Contact.id)
            .where(Lead.campaign_id == campaign_id, Lead.status == LeadStatus.READY)
        )
        return [ContactZones(int(cid), tuple(zones or ("UTC",)), country) for cid, zones, country in rows]


async def _caller_numbers(sm: Any, campaign_id: int) -> list[str]:
    from dialer.models import Contact, Lead

    async with sm() as session:
        rows = await session.execute(
            select(Contact.phone).join(Lead, Lead.contact_id == Contact.id).where(Lead.campaign_id == campaign_id)
        )
        return [str(phone) for (phone,) in rows]


async def _set_status(app: Any, name: str, status: str) -> None:
    from dialer.campaigns import set_campaign_status
    from dialer.models import CampaignStatus

    async with app.sessionmaker() as session, session.begin():
        await set_campaign_status(session, name, CampaignStatus(status))


async def _watch(
    app: Any, people: DemoPeople, figures: DemoFigures, options: DemoOptions, console: Console, campaign: str
) -> bool:
    """Follow the run until the time is up or Ctrl-C, then drain; True when interrupted."""
    from dialer.web.events import CampaignStatusChanged

    loop = asyncio.get_running_loop()
    stop, force = asyncio.Event(), asyncio.Event()

    def on_signal() -> None:
        if stop.is_set():
            force.set()
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    started = loop.time()
    end = started + options.minutes * 60.0
    interrupted = False
    try:
        with _Display(options, console, figures, started, end) as display:
            while not stop.is_set() and loop.time() < end:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), min(0.5, max(0.01, end - loop.time())))
                display.update()
            interrupted = stop.is_set()
            display.phase = "stopping: campaign paused, finishing the conversations in progress"
            display.update(force=True)
            runner = next((s for s in app.services if s.name == "campaign-runner"), None)
            await _set_status(app, campaign, "paused")
            for r in list(getattr(runner, "runners", {}).values()):
                r.pause()
                app.bus.publish(
                    CampaignStatusChanged(
                        campaign_id=r.campaign_id, name=r.name, status="paused", by="demo", at=time.time()
                    )
                )
            await people.stop_inbound()
            drain_end = loop.time() + options.drain_s
            while loop.time() < drain_end and not force.is_set():
                live_calls = sum(len(r.live) for r in getattr(runner, "runners", {}).values())
                if not live_calls and not people.busy():
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(force.wait(), 0.5)
                display.update()
            # The last dispositions travel ACD -> bus -> runner -> database.
            await asyncio.sleep(1.0)
            display.update(force=True)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return interrupted


class _Display:
    """The rich live view, or one summary line every ``summary_every_s`` (``--no-view``)."""

    def __init__(self, options: DemoOptions, console: Console, figures: DemoFigures, started: float, end: float):
        self.options = options
        self.console = console
        self.figures = figures
        self.started = started
        self.end = end
        self.phase = "running"
        self._live: Live | None = None
        self._next_line = 0.0

    def _renderable(self) -> Any:
        loop = asyncio.get_running_loop()
        now = loop.time()
        title = "dialer demo" if self.phase == "running" else f"dialer demo ({self.phase})"
        return render(self.figures, now=now, elapsed_s=now - self.started, remaining_s=self.end - now, title=title)

    def __enter__(self) -> _Display:
        if self.options.view:
            self._live = Live(self._renderable(), console=self.console, refresh_per_second=2, transient=False)
            self._live.__enter__()
        return self

    def update(self, *, force: bool = False) -> None:
        now = asyncio.get_running_loop().time()
        if self._live is not None:
            self._live.update(self._renderable())
            return
        if force or now >= self._next_line:
            self._next_line = now + self.options.summary_every_s
            prefix = "" if self.phase == "running" else f"[{self.phase.split(':')[0]}] "
            self.console.print(prefix + summary_line(self.figures, now - self.started), highlight=False, soft_wrap=True)

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)


def _count_outputs(result: DemoResult) -> None:
    if result.recordings_dir is not None and result.recordings_dir.exists():
        result.recordings = sum(1 for _ in result.recordings_dir.rglob("*.wav"))
