"""The campaign runner and recordings, wired to the live ACD (used by `dialer run` and `dialer demo`).

The campaign runner (:class:`dialer.runner.RunnerService`, agents from the ACD through
:class:`dialer.runner_agents.AcdAgentPool`) and recordings (:class:`recordings.service.RecordingService`)
are fed by the calls themselves. :class:`RecordingHookup` is that feed:

- a campaign call is recorded through the runner's ``recorder`` hook, once the customer is
  bridged, under the campaign's recording policy; the recording's id and path go on the CDR;
- an inbound queue call is recorded when the ACD connects it to an agent, under the queue's
  policy (``[recordings.queues.<q>]``, else ``[recordings.default_policy]``);
- every recording stops when the customer's leg ends, and the service finishes the rest on stop;
- the agent's disposition (keyed in wrap-up, after the recording stopped) becomes its outcome;
- the agent's recording controls (``*7`` record now, ``*8`` pause/resume, the agent page's
  buttons) reach :meth:`RecordingHookup.agent_recording` through the ACD's ``recording_control``;
- the post-call survey's answer (the ACD asks it when the agent hangs up) is stored with
  ``recordings.qa.save_survey_answer`` through the ACD's ``on_survey`` hook.

Both record the bridge the ACD built (customer left, agent right), found through the ACD's
``on_bridged`` hook.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import structlog

from dialer.campaigns import CampaignSettings
from infra.bus import EventBus
from recordings.qa import save_survey_answer
from recordings.service import Policy, RecordingHandle, RecordingMeta, RecordingService, RecordingsRunner
from telephony import Call, CallDirection
from telephony.media.bridge import Bridge

if TYPE_CHECKING:
    from acd.service import AcdService, RecordingAction, SurveyAnswered
    from dialer.app import DialerApp, ServiceFactory
    from dialer.runner import RunnerService

__all__ = ["RecordingHookup", "recordings_factory", "runner_factory"]

log = structlog.get_logger(__name__)

CampaignLookup = Callable[[int], tuple[str, CampaignSettings] | None]


class RecordingHookup:
    """Starts and stops recordings of live calls; see the module docstring."""

    def __init__(self, service: RecordingService, bus: EventBus, campaigns: CampaignLookup) -> None:
        self.service = service
        self.bus = bus
        self.campaigns = campaigns
        self._bridges: dict[str, tuple[Call, Bridge]] = {}
        self._recording_of: dict[str, RecordingHandle] = {}  # call id -> its recording, for the disposition
        self._tasks: set[asyncio.Task[Any]] = set()
        self._removers: list[Callable[[], None]] = []
        self._acd: AcdService | None = None

    def attach(self, acd: AcdService) -> None:
        from acd import CallConnected
        from acd.service import DispositionSet

        self._acd = acd
        acd.on_bridged = self._on_bridged
        acd.on_survey = self._save_survey
        acd.recording_control = self
        self._removers = [
            self.bus.add_listener(self._on_connected, types=CallConnected),
            self.bus.add_listener(self._on_disposition, types=DispositionSet),
        ]

    def detach(self) -> None:
        for remove in self._removers:
            remove()
        self._removers = []
        if self._acd is not None:
            if self._acd.on_survey == self._save_survey:
                self._acd.on_survey = None
            if self._acd.recording_control is self:
                self._acd.recording_control = None
        self._acd = None

    async def agent_recording(
        self,
        action: RecordingAction,
        call: Call,
        bridge: Bridge | None,
        *,
        agent_id: str,
        queue: str | None,
        campaign_id: int | None,
        campaign: str | None,
    ) -> str:
        """The agent's ``*7``/``*8`` or recording buttons on its current call; ``recording`` or ``paused``."""
        handle = self.service.active(call.id)
        if action == "start":
            if handle is None:
                handle = await self._start_on_demand(call, bridge, agent_id, queue, campaign_id, campaign)
            elif handle.paused:
                handle.resume()
        elif handle is None:
            raise ValueError(f"call {call.id} is not being recorded; start recording first (*7 or the Record button)")
        elif action == "pause" or (action == "toggle" and not handle.paused):
            handle.pause("agent")
        else:
            handle.resume()
        return "paused" if handle.paused else "recording"

    async def _start_on_demand(
        self,
        call: Call,
        bridge: Bridge | None,
        agent_id: str,
        queue: str | None,
        campaign_id: int | None,
        campaign: str | None,
    ) -> RecordingHandle:
        found = self.campaigns(campaign_id) if campaign_id is not None else None
        policy = self.service.policy_for(campaign=found[1].recording if found else None, queue=queue)
        if policy.policy is Policy.NONE:
            where = f"campaign {found[0]!r}" if found else f"queue {queue!r}"
            raise ValueError(f"{where} records no calls (policy none); ask a manager to change its recording policy")
        if call.media is None or call.ended:
            raise ValueError(f"call {call.id} has ended; there is nothing to record")
        entry = self._bridges.get(call.id)
        if bridge is None and entry is not None and entry[0] is call:
            bridge = entry[1]
        meta = RecordingMeta(
            agent_id=agent_id, campaign_id=campaign_id, campaign=campaign or (found[0] if found else None), queue=queue
        )
        handle = await self.service.start_on_demand(call.id, call.media, bridge, meta)
        self._recording_of[call.id] = handle
        self._spawn(self._stop_when_ended(call, handle))
        return handle

    async def _save_survey(self, event: SurveyAnswered) -> None:
        sessionmaker = self.service.sessionmaker
        if sessionmaker is None:
            log.info("survey.not_stored", call_id=event.call_id, reason="recordings have no database")
            return
        await save_survey_answer(
            sessionmaker,
            event.call_id,
            event.answer,
            now=self.service.clock(),
            agent_id=event.agent_id,
            campaign_id=event.campaign_id,
            campaign=event.campaign,
            queue=event.queue,
        )

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_bridged(self, customer: Call, agent_leg: Call, bridge: Bridge) -> None:
        self._bridges[customer.id] = (customer, bridge)
        self._spawn(self._forget_when_ended(customer))

    async def _forget_when_ended(self, call: Call) -> None:
        await call.wait_ended()
        entry = self._bridges.get(call.id)
        if entry is not None and entry[0] is call:
            del self._bridges[call.id]

    def _on_connected(self, event: Any) -> None:
        entry = self._bridges.get(event.call_id)
        if entry is None or entry[0].direction is not CallDirection.INBOUND:
            return  # campaign calls are recorded through the runner's hook
        call, bridge = entry
        policy = self.service.policy_for(queue=event.queue)
        meta = RecordingMeta(agent_id=event.agent_id, queue=event.queue)
        self._spawn(self._record(call, bridge, meta, policy))

    def _on_disposition(self, event: Any) -> None:
        handle = self._recording_of.pop(event.call_id, None)
        if handle is not None:
            outcome = f"disposition {event.code}"
            handle.set_outcome(outcome)  # still recording: written at stop
            if handle.stopped:
                self._spawn(self._outcome_after_stop(handle, outcome))

    async def _outcome_after_stop(self, handle: RecordingHandle, outcome: str) -> None:
        await handle.stop()  # the row is complete before its outcome is changed
        await self.service.set_outcome(handle.id, outcome)

    async def _record(
        self, call: Call, bridge: Bridge | None, meta: RecordingMeta, policy: Any
    ) -> RecordingHandle | None:
        if call.media is None or call.ended:
            return None
        try:
            handle = await self.service.record_by_policy(call.id, call.media, bridge, meta, policy)
        except (OSError, ValueError, RuntimeError) as exc:  # a recording problem never breaks the call
            log.warning("demo.recording_failed", call_id=call.id, error=str(exc))
            return None
        if handle is not None:
            self._recording_of[call.id] = handle
            self._spawn(self._stop_when_ended(call, handle))
        return handle

    async def _stop_when_ended(self, call: Call, handle: RecordingHandle) -> None:
        await call.wait_ended()
        await handle.stop()

    async def __call__(self, call: Call, agent_id: str, campaign_id: int) -> tuple[str, str] | None:
        """The runner's ``recorder`` hook: record a bridged campaign call; (id, relative path) or None."""
        entry = self._bridges.get(call.id)
        bridge = entry[1] if entry is not None and entry[0] is call else None
        found = self.campaigns(campaign_id)
        name, settings = found if found is not None else (None, CampaignSettings())
        policy = self.service.policy_for(campaign=settings.recording)
        meta = RecordingMeta(agent_id=agent_id, campaign_id=campaign_id, campaign=name, queue=settings.queue)
        handle = await self._record(call, bridge, meta, policy)
        return (handle.id, handle.relpath) if handle is not None else None

    async def close(self) -> None:
        self.detach()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


class _RecordingsService:
    name = "recordings"

    def __init__(self, runner: RecordingsRunner, hookup: RecordingHookup, app: DialerApp) -> None:
        self.runner = runner
        self.hookup = hookup
        self.app = app

    async def start(self) -> None:
        if self.app.acd is not None:
            self.hookup.attach(self.app.acd)
        await self.runner.start()

    async def stop(self) -> None:
        await self.hookup.close()
        await self.runner.stop()


def recordings_factory(holder: dict[str, Any]) -> ServiceFactory:
    """Recordings for the app: retention, finishing open files on stop, and :class:`RecordingHookup`
    (kept in ``holder["hookup"]`` for the runner's factory)."""

    async def factory(app: DialerApp) -> _RecordingsService:
        service = RecordingService.from_settings(app.settings, app.sessionmaker, bus=app.bus)

        def campaigns(campaign_id: int) -> tuple[str, CampaignSettings] | None:
            runner_service: RunnerService | None = holder.get("runner")
            runner = runner_service.runners.get(campaign_id) if runner_service is not None else None
            return (runner.name, runner.settings) if runner is not None else None

        hookup = RecordingHookup(service, app.bus, campaigns)
        holder["hookup"] = hookup
        interval = app.settings.recordings.retention_check_minutes * 60.0
        return _RecordingsService(RecordingsRunner(service, interval=interval), hookup, app)

    return factory


def runner_factory(
    holder: dict[str, Any], runner_options: dict[str, Any] | None = None, *, timers: Any = None
) -> ServiceFactory:
    """The campaign runner on the app's UA and trunk, agents from the ACD's queues.

    Each campaign's abandon and machine messages come from the prompt library given here (site
    prompts over the shipped ones): composed from its ``company_name`` and ``callback_number``
    unless the site recorded them (see :func:`dialer.runner.campaign_messages`); the machine
    message is left after the beep when the campaign sets ``on_machine = "message"``.
    """

    async def factory(app: DialerApp) -> RunnerService | None:
        from dialer.runner import DEFAULT_TRUNK, RunnerService, TrunkLines, TrunkRoute, default_node
        from dialer.runner_agents import AcdAgentPool
        from dialer.runner_store import CampaignRow
        from ivr.prompts import SHIPPED_PROMPTS_DIR, PromptLibrary

        s = app.settings
        if app.acd is None or app.ua is None or app.sessionmaker is None or not s.trunk.host:
            log.info("runner.disabled", reason="the runner needs [acd] queues, the SIP stack and a [trunk] host")
            return None
        acd = app.acd
        default_queue = acd.queue_ids[0]

        def pool_for(row: CampaignRow) -> AcdAgentPool:
            queue = row.settings.queue or default_queue
            return AcdAgentPool(
                acd, lambda _campaign_id: queue, bus=app.bus, survey=row.settings.survey, campaign=row.name
            )

        options: dict[str, Any] = {
            "prompts": PromptLibrary(s.site.data_dir / "prompts", SHIPPED_PROMPTS_DIR),
            **(runner_options or {}),
        }
        hookup = holder.get("hookup")
        if hookup is not None:
            options.setdefault("recorder", hookup)
        transport = ";transport=tcp" if s.trunk.transport == "tcp" else ""
        # The one [trunk] of the settings is the trunk named "default"; a campaign naming another
        # one is refused at start with an error naming its `trunk` setting.
        route = TrunkRoute(
            uri=f"sip:{{number}}@{s.trunk.host}:{s.trunk.port}{transport}",
            lines=TrunkLines(s.trunk.max_channels),
            from_host=s.trunk.from_domain,
        )
        service = RunnerService(
            sessionmaker=app.sessionmaker,
            ua=app.ua,
            pool_for=pool_for,
            trunks={DEFAULT_TRUNK: route},
            bus=app.bus,
            # Unique per process (host, pid, random): two `dialer run` on one host keep their claims apart.
            node=default_node(s.site.name),
            timers=timers,
            runner_options=options,
        )
        holder["runner"] = service
        return service

    return factory
