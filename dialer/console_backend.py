"""The web console's backend inside `dialer run`: live operations go to the real services.

Agent state, log-out and forced assignment go to the ACD service, so the console can only
do what the ACD's state machine allows (a paused agent is not offered a call, an agent on
a call is never given another). Database-side operations (dispositions on the CDR,
callbacks, the customer view, campaign pause and resume) share their implementation with
the console's development backend, which already writes them correctly.

Supervision: the console user's name is the supervisor account's id (``[acd.options.supervisors]``,
``id = "<console username>"``); ``supervise`` rings that account's registered softphone and
the ACD starts listen, whisper or barge when it is answered (or switches mode when the user
already supervises that agent). The ACD's supervision events are mirrored as the console's
own ``SupervisionStarted``/``SupervisionEnded`` so the wallboard shows who listens to whom.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from acd import AcdError, UnknownAgentError, UnknownError
from acd.supervision import SupervisionRefused
from dialer.models import Contact, Lead
from dialer.web import events as web_events
from dialer.web.backend import (
    BackendError,
    Conflict,
    ConsoleBackend,
    CustomerView,
    LocalBackend,
    NotFound,
    PreviewLead,
    RecordingCommand,
)
from dialer.web.events import SuperviseMode
from telephony.aio import supervision as acd_supervision

if TYPE_CHECKING:
    from acd.service import AcdService
    from dialer.app import DialerApp

__all__ = ["AppBackend", "NotASupervisor"]


class NotASupervisor(BackendError):
    """The console user has no supervisor account to supervise with (HTTP 403)."""

    status = 403


class AppBackend(ConsoleBackend):
    def __init__(self, app: DialerApp) -> None:
        assert app.sessionmaker is not None
        self.app = app
        self._db = LocalBackend(app.bus, app.sessionmaker)
        self._remove_relay = app.bus.add_listener(
            self._relay_supervision,
            types=(
                acd_supervision.SupervisionStarted,
                acd_supervision.SupervisionModeChanged,
                acd_supervision.SupervisionEnded,
            ),
        )

    def close(self) -> None:
        self._remove_relay()
        self._db.close()

    def _relay_supervision(self, event: object) -> None:
        bus = self.app.bus
        if isinstance(event, acd_supervision.SupervisionStarted | acd_supervision.SupervisionModeChanged):
            bus.publish(
                web_events.SupervisionStarted(
                    agent_id=event.agent,
                    supervisor=event.supervisor,
                    mode=event.mode.value,
                    call_id=event.call_id,
                    at=time.monotonic(),
                )
            )
        elif isinstance(event, acd_supervision.SupervisionEnded):
            bus.publish(
                web_events.SupervisionEnded(agent_id=event.agent, supervisor=event.supervisor, at=time.monotonic())
            )

    @property
    def _acd(self) -> AcdService:
        acd: Any = self.app.acd
        if acd is None:
            raise Conflict("the ACD is not running: configure [acd.queues] and [acd.agents] and restart")
        return acd  # type: ignore[no-any-return]

    async def agent_set_state(self, agent_id: str, state: Any, reason: str, *, by: str) -> None:
        with _acd_errors():
            if str(getattr(state, "value", state)) == "ready":
                await self._acd.agent_ready(agent_id)
            else:
                await self._acd.force_pause(agent_id, reason or f"paused by {by}")

    async def agent_logout(self, agent_id: str, *, by: str) -> None:
        with _acd_errors():
            await self._acd.force_logout(agent_id)

    async def assign_call(self, call_id: str, agent_id: str, *, by: str) -> None:
        with _acd_errors():
            await self._acd.assign_call(call_id, agent_id)

    async def supervise(self, supervisor: str, agent_id: str, mode: SuperviseMode) -> None:
        """Ring ``supervisor``'s softphone (the account with the console user's name) into the call."""
        try:
            await self._acd.supervise(supervisor, agent_id, mode)
        except UnknownAgentError as exc:
            raise NotFound(str(exc)) from exc
        except SupervisionRefused as exc:
            if exc.kind == "not_supervisor":
                raise NotASupervisor(str(exc)) from exc
            raise Conflict(str(exc)) from exc
        except (AcdError, ValueError) as exc:
            raise Conflict(str(exc)) from exc

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

    # -- the agent's call controls on the ACD ---------------------------------------------------

    async def hangup_customer(self, agent_id: str) -> None:
        with _acd_errors():
            await self._acd.hangup_customer(agent_id)

    async def acd_callback(self, agent_id: str, number: str, at: datetime, queue: str | None) -> str:
        if at.tzinfo is None:
            raise BackendError(f"callback time {at.isoformat()} has no time zone; give an offset or a zone")
        if at < datetime.now(UTC) - timedelta(minutes=1):
            raise BackendError(f"callback time {at.isoformat()} is in the past; pick a later time")
        with _acd_errors():
            callback_id: str = await self._acd.schedule_callback(agent_id, at, number=number, queue=queue)
        return callback_id

    async def agent_recording(self, agent_id: str, action: RecordingCommand) -> str:
        with _acd_errors():
            state: str = await self._acd.agent_recording(agent_id, action)
        return state

    # -- preview dialling, through the campaign runner service ------------------------------------

    def _runner_service(self) -> Any:
        from dialer.runner import RunnerService

        for service in self.app.services:
            if isinstance(service, RunnerService):
                return service
        raise Conflict("the campaign runner is not running: configure [acd] queues and a [trunk] host, then restart")

    async def preview_next(self, agent_id: str) -> PreviewLead | None:
        from dialer.runner_store import RunnerStoreError

        try:
            found = await self._runner_service().preview_next(agent_id)
        except RunnerStoreError as exc:
            raise Conflict(str(exc)) from exc
        if found is None:
            return None
        runner, lead = found
        assert self.app.sessionmaker is not None
        async with self.app.sessionmaker() as session:
            contact = await session.get(Contact, lead.contact_id)
            row = await session.get(Lead, lead.lead_id)
        return PreviewLead(
            lead_id=lead.lead_id,
            campaign_id=runner.campaign_id,
            campaign=runner.name,
            number=lead.number,
            name=contact.name if contact is not None else None,
            timezones=lead.timezones,
            attempts=lead.attempts,
            callback_at=lead.callback_at,
            reason=row.next_attempt_reason if row is not None else None,
        )

    async def preview_dial(self, agent_id: str, lead_id: int) -> str:
        from dialer.runner_store import RunnerStoreError

        try:
            call_id: str = await self._runner_service().preview_dial(agent_id, lead_id)
        except RunnerStoreError as exc:
            raise Conflict(str(exc)) from exc
        return call_id

    async def preview_skip(self, agent_id: str, lead_id: int) -> datetime:
        from dialer.runner_store import RunnerStoreError

        try:
            at: datetime = await self._runner_service().preview_skip(agent_id, lead_id)
        except RunnerStoreError as exc:
            raise Conflict(str(exc)) from exc
        return at


@contextlib.contextmanager
def _acd_errors() -> Iterator[None]:
    """The ACD's refusals as console errors: unknown agent/queue 404, the rest 409 with the ACD's reason."""
    try:
        yield
    except UnknownError as exc:
        raise NotFound(str(exc)) from exc
    except (AcdError, ValueError, RuntimeError, OSError) as exc:
        raise Conflict(str(exc)) from exc
