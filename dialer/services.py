"""The services `dialer run` starts on top of the core, in order.

Each entry is a factory taking the :class:`~dialer.app.DialerApp` (for its settings,
database, bus and user agent) and returning a :class:`~dialer.app.Service` to start, or
None when the configuration does not ask for it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import structlog
from pydantic import ValidationError

from dialer.app import DialerApp, Service, ServiceFactory
from infra.settings import Settings

if TYPE_CHECKING:
    from acd.service import AcdService, AcdServiceConfig

log = structlog.get_logger(__name__)


def acd_config(app: DialerApp) -> AcdServiceConfig | None:
    """The ACD service's config for this app (trunk addresses are trusted), or None."""
    trusted = sorted(app.ua.config.trusted_sources) if app.ua is not None else []
    return acd_config_from_settings(app.settings, trusted_sources=trusted)


def _queues_as_table(spec: Any) -> Any:
    if isinstance(spec, Mapping) and isinstance(spec.get("queues"), list):
        queues = spec["queues"]
        if all(isinstance(q, str) for q in queues):
            return {**spec, "queues": dict.fromkeys(queues, 0)}
    return spec


def _acd_place(raw: Mapping[str, Any], loc: Sequence[int | str]) -> str:
    """``[acd.queues.sales] strategy`` for the validator's ``("queues", 0, "strategy")``: the
    tables keyed by id are validated as lists, so the index is mapped back to the id the file uses."""
    parts = list(loc)
    if len(parts) >= 2 and isinstance(parts[1], int) and isinstance(raw.get(str(parts[0])), Mapping):
        keys = list(raw[str(parts[0])])
        if parts[1] < len(keys):
            rest = ".".join(str(p) for p in parts[2:])
            return f"[acd.{parts[0]}.{keys[parts[1]]}]" + (f" {rest}" if rest else "")
    return "[acd] " + ".".join(str(p) for p in parts)


def acd_config_from_settings(s: Settings, *, trusted_sources: list[str] | None = None) -> AcdServiceConfig | None:
    """The ACD service's config from `[acd]`, or None when no queue is configured.

    Raises ValueError with one line naming the key and the problem (also used by
    `dialer config check`).
    """
    from acd.service import AcdServiceConfig

    a = s.acd
    if not a.queues:
        if a.agents or a.dids:
            what = "agents" if a.agents else "DIDs"
            raise ValueError(f"[acd] {what} are configured but no queue; add an [acd.queues.<id>] table or remove them")
        return None
    defaults: dict[str, Any] = {"wrapup_s": a.wrapup_seconds, "ring_timeout_s": a.ring_timeout_seconds}
    raw: dict[str, Any] = {
        "queues": {qid: {**defaults, **q} for qid, q in a.queues.items()},
        # ``queues = ["sales", "support"]`` is short for ``queues = { sales = 0, support = 0 }`` (penalty 0).
        "agents": {aid: _queues_as_table(spec) for aid, spec in a.agents.items()},
        "dids": a.dids,
        "login_code": a.login_code,
        "timezone": s.site.timezone,
        "voicemail_dir": str(s.site.data_dir / "voicemail"),
        **a.options,
    }
    if a.menus:
        raw["menus"] = a.menus
    if trusted_sources:
        raw.setdefault("trusted_sources", trusted_sources)
    if s.trunk.host:
        raw.setdefault("callback_uri", f"sip:{{number}}@{s.trunk.host}:{s.trunk.port}")
    try:
        config = AcdServiceConfig.from_mapping(raw)
        for q in config.queues:  # the pure core's own checks (skill levels, destinations...)
            q.core()
        for agent in config.agents:
            agent.core()
        return config
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ValueError(f"{_acd_place(raw, first['loc'])}: {first['msg']} (input {first.get('input')!r})") from None
    except ValueError as exc:  # menus and destinations raise plain ValueErrors naming the place
        raise ValueError(f"[acd] {' '.join(str(exc).split())}") from None


class _AcdAdapter:
    name = "acd"

    def __init__(self, service: AcdService) -> None:
        self.service = service

    async def start(self) -> None:
        await self.service.start()

    async def stop(self) -> None:
        await self.service.stop()


async def acd_service(app: DialerApp) -> Service | None:
    from acd.service import AcdService
    from ivr.prompts import SHIPPED_PROMPTS_DIR, PromptLibrary

    config = acd_config(app)
    if config is None:
        log.info("acd.disabled", reason="no [acd.queues] configured")
        return None
    assert app.ua is not None
    prompts = PromptLibrary(app.settings.site.data_dir / "prompts", SHIPPED_PROMPTS_DIR)
    service = AcdService(config, app.ua, app.bus, app.sessionmaker, prompts=prompts)
    app.acd = service
    return _AcdAdapter(service)


def _console_backend(app: DialerApp) -> Any:
    from dialer.console_backend import AppBackend

    return AppBackend(app)


def default_services() -> list[ServiceFactory]:
    """ACD, recordings (fed by the ACD's bridges and the runner), the campaign runner and the console."""
    from dialer.web.server import console_service_factory
    from dialer.wiring import recordings_factory, runner_factory

    holder: dict[str, Any] = {}
    # The runner connects answered calls through the ACD, and recordings attach to its bridges.
    return [acd_service, recordings_factory(holder), runner_factory(holder), console_service_factory(_console_backend)]
