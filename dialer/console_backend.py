"""The web console's backend inside `dialer run`: live operations go to the real services.

Agent state, log-out and forced assignment go to the ACD service, so the console can only
do what the ACD's state machine allows (a paused agent is not offered a call, an agent on
a call is never given another). Database-side operations (dispositions on the CDR,
callbacks, the customer view, campaign pause and resume) share their implementation with
the console's development backend, which already writes them correctly.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from acd import AcdError
from dialer.web.backend import Conflict, ConsoleBackend, CustomerView, LocalBackend, NotFound
from dialer.web.events import SuperviseMode

if TYPE_CHECKING:
    from acd.service import AcdService
    from dialer.app import DialerApp

__all__ = ["AppBackend"]


class AppBackend(ConsoleBackend):
    def __init__(self, app: DialerApp) -> None:
        assert app.sessionmaker is not None
        self.app = app
        self._db = LocalBackend(app.bus, app.sessionmaker)

    @property
    def _acd(self) -> AcdService:
        acd: Any = self.app.acd
        if acd is None:
            raise Conflict("the ACD is not running: configure [acd.queues] and [acd.agents] and restart")
        return acd  # type: ignore[no-any-return]

    async def agent_set_state(self, agent_id: str, state: Any, reason: str, *, by: str) -> None:
        try:
            if str(getattr(state, "value", state)) == "ready":
                await self._acd.agent_ready(agent_id)
            else:
                await self._acd.force_pause(agent_id, reason or f"paused by {by}")
        except KeyError as exc:
            raise NotFound(f"agent {agent_id} is not configured") from exc
        except AcdError as exc:
            raise Conflict(str(exc)) from exc

    async def agent_logout(self, agent_id: str, *, by: str) -> None:
        try:
            await self._acd.force_logout(agent_id)
        except KeyError as exc:
            raise NotFound(f"agent {agent_id} is not configured") from exc
        except AcdError as exc:
            raise Conflict(str(exc)) from exc

    async def assign_call(self, call_id: str, agent_id: str, *, by: str) -> None:
        try:
            await self._acd.assign_call(call_id, agent_id)
        except KeyError as exc:
            raise NotFound(str(exc)) from exc
        except AcdError as exc:
            raise Conflict(str(exc)) from exc

    async def supervise(self, supervisor: str, agent_id: str, mode: SuperviseMode) -> None:
        raise Conflict(
            "starting supervision from the console is not wired yet; dial *22<extension> (listen), "
            "*23 (whisper) or *24 (barge) from the supervisor's phone"
        )

    async def set_disposition(self, call_id: str, code: str, notes: str, *, agent_id: str) -> None:
        acd: Any = self.app.acd
        if acd is not None:
            try:  # the ACD counts effective calls from dispositions
                await acd.set_disposition(agent_id, code, call_id=call_id)
            except (KeyError, ValueError, AcdError):
                pass  # not an ACD call (e.g. preview dialling): the CDR write below still applies
        await self._db.set_disposition(call_id, code, notes, agent_id=agent_id)

    async def schedule_callback(self, lead_id: int, at_local: datetime, tz: str, owner: str | None) -> datetime:
        return await self._db.schedule_callback(lead_id, at_local, tz, owner)

    async def current_customer(self, agent_id: str) -> CustomerView | None:
        return await self._db.current_customer(agent_id)

    async def campaign_pause(self, name: str, *, by: str) -> None:
        await self._db.campaign_pause(name, by=by)

    async def campaign_resume(self, name: str, *, by: str) -> None:
        await self._db.campaign_resume(name, by=by)
