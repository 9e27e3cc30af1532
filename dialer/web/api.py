"""The console's JSON API under ``/api``: sessions, wallboard and supervisor actions, the agent's
own page, campaigns, list upload, reports and users.

Every route has pydantic request and response models, so ``/openapi.json`` describes the API
completely. Every route needs a session (``POST /api/session`` logs in and returns the CSRF
token); every state-changing one also needs the ``X-CSRF-Token`` header. Errors are JSON
``{"detail": ..., "message": "<field>: <what is wrong and how to fix it>"}``.
"""

from __future__ import annotations

import shutil
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import structlog
from fastapi import APIRouter, Depends, File, Form, HTTPException, Query, Request, Response, UploadFile
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from acd import AgentState
from acd import reports as acd_reports
from dialer import reports
from dialer.campaigns import (
    CampaignError,
    CampaignSettings,
    get_campaign,
    lead_counts,
    list_campaigns,
    update_campaign_settings,
)
from dialer.lists.importer import ImportSummary, import_list
from dialer.lists.reader import ListFileError
from dialer.web.auth import WebSession, hash_password, verify_password
from dialer.web.backend import BackendError, CustomerView
from dialer.web.deps import (
    Forbidden,
    LoginRequired,
    WebContext,
    current_session,
    get_context,
    may_act_for_agent,
    require,
    set_session_cookie,
)
from dialer.web.events import SuperviseMode
from dialer.web.models import Role, User
from infra.db import utcnow

__all__ = ["report_now", "router", "run_upload", "upload_summary_out"]

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/api")
Ctx = Annotated[WebContext, Depends(get_context)]
AnyUser = Annotated[WebSession, Depends(require(Role.AGENT))]
AnyUserCsrf = Annotated[WebSession, Depends(require(Role.AGENT, csrf=True))]
Supervisor = Annotated[WebSession, Depends(require(Role.SUPERVISOR))]
SupervisorCsrf = Annotated[WebSession, Depends(require(Role.SUPERVISOR, csrf=True))]
Manager = Annotated[WebSession, Depends(require(Role.MANAGER))]
ManagerCsrf = Annotated[WebSession, Depends(require(Role.MANAGER, csrf=True))]
Admin = Annotated[WebSession, Depends(require(Role.ADMIN))]
AdminCsrf = Annotated[WebSession, Depends(require(Role.ADMIN, csrf=True))]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- models -----------------------------------------------------------------------------------


class LoginRequest(_In):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class SessionInfo(BaseModel):
    username: str
    role: Role
    agent_id: str | None
    csrf_token: str = Field(description="send it back in the X-CSRF-Token header of every POST, PUT and DELETE")


class Ok(BaseModel):
    ok: bool = True
    message: str = ""


class AgentOut(BaseModel):
    id: str
    name: str | None
    state: str
    reason: str
    since: int = Field(description="epoch milliseconds of the last state change")
    call_id: str | None
    queue: str | None
    supervisor: str | None
    supervise_mode: str | None
    last_disposition: str | None
    answered: int


class QueueOut(BaseModel):
    id: str
    waiting: int
    oldest: int | None = Field(description="epoch milliseconds the longest-waiting call entered")
    offered: int
    answered: int
    abandoned: int
    service_level: float | None
    service_level_s: float
    asa_s: float | None
    aht_s: float | None
    abandon_rate: float | None


class CampaignLiveOut(BaseModel):
    id: int
    name: str
    status: str
    mode: str | None
    dial_level: float | None
    lines_in_use: int
    max_lines: int | None
    agents_available: int | None
    abandon_rate_24h: float | None
    abandon_rate_30d: float | None
    effective_today: int
    target_today: int | None


class CallOut(BaseModel):
    id: str
    queue: str
    state: Literal["queued", "ringing", "talking"]
    since: int
    entered: int
    vip: bool
    agent_id: str | None
    position: int


class WallboardOut(BaseModel):
    type: Literal["snapshot"] = "snapshot"
    server_time: int
    agents: list[AgentOut]
    queues: list[QueueOut]
    campaigns: list[CampaignLiveOut]
    calls: list[CallOut]


class AgentStateRequest(_In):
    state: Literal["ready", "paused"] = Field(description="ready, or paused with a reason")
    reason: str = Field(default="", max_length=100)


class AssignRequest(_In):
    agent_id: str = Field(min_length=1, max_length=64)


class SuperviseRequest(_In):
    mode: SuperviseMode


class DispositionRequest(_In):
    call_id: str = Field(min_length=1, max_length=128)
    code: str = Field(pattern=r"^[A-Za-z0-9_]{1,32}$", description="one of the campaign's disposition codes")
    notes: str = Field(default="", max_length=2000)


class CallbackRequest(_In):
    lead_id: int = Field(ge=1)
    at_local: datetime = Field(description="the customer's local wall time, e.g. 2026-11-23T15:30 (no offset)")
    timezone: str | None = Field(default=None, description="IANA zone; defaults to the customer's zone")
    shared: bool = Field(default=False, description="any agent may take it; otherwise it is offered to you first")


class CallbackOut(BaseModel):
    lead_id: int
    due_at_utc: datetime
    timezone: str
    owner: str | None


class DispositionOptionOut(BaseModel):
    code: str
    label: str
    callback: bool
    final: bool


class HistoryOut(BaseModel):
    dialled_at: datetime
    outcome: str | None
    disposition: str | None
    agent_id: str | None
    talk_seconds: float | None
    note: str | None


class CustomerOut(BaseModel):
    call_id: str
    contact_id: int | None
    lead_id: int | None
    name: str | None
    phone: str
    timezone: str | None
    segment: str | None
    vip: bool
    attributes: dict[str, Any]
    campaign: str | None
    dispositions: list[DispositionOptionOut]
    history: list[HistoryOut]


class AgentPageOut(BaseModel):
    agent: AgentOut | None
    customer: CustomerOut | None


class CampaignOut(BaseModel):
    id: int
    name: str
    status: str
    leads: dict[str, int]
    settings: dict[str, Any]


class ImportSummaryOut(BaseModel):
    file: str
    campaign: str
    list_name: str
    read: int
    imported: int
    merged: int
    rejected: int
    dnc_suppressed: int
    contacts_created: int
    contacts_updated: int
    list_id: int | None
    encoding: str | None
    delimiter: str | None
    columns: dict[str, str]
    warnings: list[str]
    seconds: float
    rejects_url: str | None = Field(description="download of the rejected rows with their reasons")


class UserCreate(_In):
    username: str = Field(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")
    password: str = Field(min_length=8, max_length=1024)
    role: Role
    agent_id: str | None = Field(default=None, max_length=64)


class UserOut(BaseModel):
    id: int
    username: str
    role: Role
    agent_id: str | None
    disabled: bool
    created_at: datetime
    last_login_at: datetime | None


# -- helpers ----------------------------------------------------------------------------------


def _backend_error(exc: BackendError) -> HTTPException:
    return HTTPException(status_code=exc.status, detail=str(exc))


def customer_out(view: CustomerView | None) -> CustomerOut | None:
    if view is None:
        return None
    return CustomerOut(
        call_id=view.call_id,
        contact_id=view.contact_id,
        lead_id=view.lead_id,
        name=view.name,
        phone=view.phone,
        timezone=view.timezone,
        segment=view.segment,
        vip=view.vip,
        attributes=view.attributes,
        campaign=view.campaign,
        dispositions=[
            DispositionOptionOut(code=d.code, label=d.label, callback=d.callback, final=d.final)
            for d in view.dispositions
        ],
        history=[
            HistoryOut(
                dialled_at=h.dialled_at,
                outcome=h.outcome,
                disposition=h.disposition,
                agent_id=h.agent_id,
                talk_seconds=h.talk_seconds,
                note=h.note,
            )
            for h in view.history
        ],
    )


async def authenticate(ctx: WebContext, username: str, password: str) -> User:
    """The enabled user with this password; raises LoginRequired with the reason otherwise."""
    locked = ctx.throttle.locked_for(username)
    if locked > 0:
        raise LoginRequired(f"too many failed logins for {username!r}: try again in {int(locked) + 1} s")
    async with ctx.sessionmaker() as session:
        user = (await session.execute(select(User).where(User.username == username))).scalar_one_or_none()
        ok, rehash = await verify_password(user.password_hash if user is not None else None, password)
        if user is None or not ok or user.disabled:
            ctx.throttle.failed(username)
            raise LoginRequired("wrong username or password")
        ctx.throttle.succeeded(username)
        if rehash:
            user.password_hash = hash_password(password)
        user.last_login_at = utcnow()
        await session.commit()
        return user


def start_session(ctx: WebContext, request: Request, response: Response, user: User) -> WebSession:
    web_session = ctx.sessions.login(
        current_session(request), user_id=user.id, username=user.username, role=user.role, agent_id=user.agent_id
    )
    request.state.session = web_session
    set_session_cookie(response, request, web_session)
    log.info("console.login", username=user.username, role=user.role)
    return web_session


# -- session ----------------------------------------------------------------------------------


@router.post("/session", response_model=SessionInfo, tags=["session"])
async def login(body: LoginRequest, request: Request, response: Response, ctx: Ctx) -> SessionInfo:
    """Log in with username and password; sets the session cookie and returns the CSRF token."""
    user = await authenticate(ctx, body.username, body.password)
    s = start_session(ctx, request, response, user)
    return SessionInfo(username=user.username, role=Role(user.role), agent_id=user.agent_id, csrf_token=s.csrf)


@router.get("/session", response_model=SessionInfo, tags=["session"])
async def session_info(session: AnyUser) -> SessionInfo:
    assert session.username is not None and session.role is not None
    return SessionInfo(
        username=session.username, role=Role(session.role), agent_id=session.agent_id, csrf_token=session.csrf
    )


@router.delete("/session", response_model=Ok, tags=["session"])
async def logout(session: AnyUserCsrf, ctx: Ctx, response: Response) -> Ok:
    ctx.sessions.end(session)
    response.delete_cookie("dialer_session", path="/")
    return Ok(message="logged out")


# -- wallboard and supervisor actions -------------------------------------------------------------


@router.get("/wallboard", response_model=WallboardOut, tags=["wallboard"])
async def wallboard(_: Supervisor, ctx: Ctx) -> dict[str, Any]:
    """The same snapshot the /ws/wallboard WebSocket sends first."""
    return ctx.live.snapshot()


@router.post("/agents/{agent_id}/state", response_model=Ok, tags=["supervisor"])
async def set_agent_state(agent_id: str, body: AgentStateRequest, session: AnyUserCsrf, ctx: Ctx) -> Ok:
    """Make an agent ready or pause them. Agents may do this for themselves only."""
    if not may_act_for_agent(session, agent_id):
        raise Forbidden(f"you may change your own state only (agent {session.agent_id})")
    try:
        await ctx.backend.agent_set_state(agent_id, AgentState(body.state), body.reason, by=session.username or "")
    except BackendError as exc:
        raise _backend_error(exc) from None
    return Ok(message=f"agent {agent_id} {body.state}")


@router.post("/agents/{agent_id}/logout", response_model=Ok, tags=["supervisor"])
async def logout_agent(agent_id: str, session: SupervisorCsrf, ctx: Ctx) -> Ok:
    try:
        await ctx.backend.agent_logout(agent_id, by=session.username or "")
    except BackendError as exc:
        raise _backend_error(exc) from None
    return Ok(message=f"agent {agent_id} logged out")


@router.post("/agents/{agent_id}/supervise", response_model=Ok, tags=["supervisor"])
async def supervise(agent_id: str, body: SuperviseRequest, session: SupervisorCsrf, ctx: Ctx) -> Ok:
    """Ring your softphone into the agent's call to listen, whisper or barge."""
    try:
        await ctx.backend.supervise(session.username or "", agent_id, body.mode)
    except BackendError as exc:
        raise _backend_error(exc) from None
    return Ok(message=f"{body.mode} on agent {agent_id}: answer your softphone")


@router.post("/calls/{call_id}/assign", response_model=Ok, tags=["supervisor"])
async def assign_call(call_id: str, body: AssignRequest, session: SupervisorCsrf, ctx: Ctx) -> Ok:
    try:
        await ctx.backend.assign_call(call_id, body.agent_id, by=session.username or "")
    except BackendError as exc:
        raise _backend_error(exc) from None
    return Ok(message=f"call {call_id} assigned to agent {body.agent_id}")


@router.post("/campaigns/{name}/pause", response_model=Ok, tags=["campaigns"])
async def pause_campaign(name: str, session: SupervisorCsrf, ctx: Ctx) -> Ok:
    try:
        await ctx.backend.campaign_pause(name, by=session.username or "")
    except BackendError as exc:
        raise _backend_error(exc) from None
    return Ok(message=f"campaign {name} paused")


@router.post("/campaigns/{name}/resume", response_model=Ok, tags=["campaigns"])
async def resume_campaign(name: str, session: SupervisorCsrf, ctx: Ctx) -> Ok:
    try:
        await ctx.backend.campaign_resume(name, by=session.username or "")
    except BackendError as exc:
        raise _backend_error(exc) from None
    return Ok(message=f"campaign {name} resumed")


# -- the agent's own page ---------------------------------------------------------------------


def _own_agent(session: WebSession) -> str:
    if session.agent_id is None:
        raise Forbidden(f"user {session.username} is not linked to an agent; ask an admin to set its agent id")
    return session.agent_id


@router.get("/agent", response_model=AgentPageOut, tags=["agent"])
async def agent_page(session: AnyUser, ctx: Ctx) -> AgentPageOut:
    """Your state and the customer on your current call."""
    agent_id = _own_agent(session)
    agent = ctx.live.agent(agent_id)
    customer = customer_out(await ctx.backend.current_customer(agent_id))
    return AgentPageOut(agent=AgentOut(**agent) if agent else None, customer=customer)


@router.post("/agent/disposition", response_model=Ok, tags=["agent"])
async def set_disposition(body: DispositionRequest, session: AnyUserCsrf, ctx: Ctx) -> Ok:
    agent_id = _own_agent(session)
    try:
        await ctx.backend.set_disposition(body.call_id, body.code, body.notes, agent_id=agent_id)
    except BackendError as exc:
        raise _backend_error(exc) from None
    return Ok(message=f"disposition {body.code.upper()} saved")


@router.post("/agent/callback", response_model=CallbackOut, tags=["agent"])
async def schedule_callback(body: CallbackRequest, session: AnyUserCsrf, ctx: Ctx) -> CallbackOut:
    """Schedule a callback at the customer's local time; it is yours unless ``shared``."""
    agent_id = _own_agent(session)
    tz = body.timezone
    if tz is None:
        view = await ctx.backend.current_customer(agent_id)
        tz = (
            view.timezone if view is not None and view.lead_id == body.lead_id else None
        ) or ctx.settings.site.timezone
    owner = None if body.shared else agent_id
    try:
        due = await ctx.backend.schedule_callback(body.lead_id, body.at_local, tz, owner)
    except BackendError as exc:
        raise _backend_error(exc) from None
    return CallbackOut(lead_id=body.lead_id, due_at_utc=due, timezone=tz, owner=owner)


# -- the agent's call controls on the ACD (hang up, ACD callback, recording) ------------------------


class AcdCallbackRequest(_In):
    number: str = Field(pattern=r"^\+?[0-9]{3,20}$", description="the number the ACD dials back")
    at: datetime = Field(description="when to call; without an offset it is the site's local time")
    queue: str | None = Field(default=None, max_length=64, description="default: the queue of your last call")


class AcdCallbackOut(BaseModel):
    callback_id: str
    number: str
    at_utc: datetime
    queue: str | None


class RecordingStateOut(BaseModel):
    state: Literal["recording", "paused"]


@router.post("/agent/hangup", response_model=Ok, tags=["agent"])
async def hangup_customer(session: AnyUserCsrf, ctx: Ctx) -> Ok:
    """Hang up the customer on your call (the phone's ``*0``); wrap-up follows."""
    agent_id = _own_agent(session)
    try:
        await ctx.backend.hangup_customer(agent_id)
    except BackendError as exc:
        raise _backend_error(exc) from None
    return Ok(message="customer hung up")


@router.post("/agent/acd-callback", response_model=AcdCallbackOut, tags=["agent"])
async def acd_callback(body: AcdCallbackRequest, session: AnyUserCsrf, ctx: Ctx) -> AcdCallbackOut:
    """Have the ACD call a number back at a time, through a queue; it is offered to you first."""
    agent_id = _own_agent(session)
    at = body.at if body.at.tzinfo is not None else body.at.replace(tzinfo=ZoneInfo(ctx.settings.site.timezone))
    try:
        callback_id = await ctx.backend.acd_callback(agent_id, body.number, at, body.queue)
    except BackendError as exc:
        raise _backend_error(exc) from None
    return AcdCallbackOut(callback_id=callback_id, number=body.number, at_utc=at.astimezone(UTC), queue=body.queue)


@router.post("/agent/recording/{action}", response_model=RecordingStateOut, tags=["agent"])
async def agent_recording(
    action: Literal["start", "pause", "resume"], session: AnyUserCsrf, ctx: Ctx
) -> RecordingStateOut:
    """Record your call now (policy ``on_demand``), or pause and resume its recording."""
    agent_id = _own_agent(session)
    try:
        state = await ctx.backend.agent_recording(agent_id, action)
    except BackendError as exc:
        raise _backend_error(exc) from None
    return RecordingStateOut(state="paused" if state == "paused" else "recording")


# -- the agent's preview dialling (campaigns in preview mode) ---------------------------------------


class PreviewLeadOut(BaseModel):
    lead_id: int
    campaign_id: int
    campaign: str
    number: str
    name: str | None
    timezones: list[str]
    attempts: int
    callback_at: datetime | None
    reason: str | None = Field(default=None, description="why the lead is due now (its last scheduling)")


class PreviewOut(BaseModel):
    lead: PreviewLeadOut | None = Field(description="null when no preview campaign has a lead due for you")


class PreviewLeadRequest(_In):
    lead_id: int = Field(ge=1)


class PreviewDialOut(BaseModel):
    lead_id: int
    call_id: str


class PreviewSkipOut(BaseModel):
    lead_id: int
    next_attempt_at_utc: datetime


@router.get("/agent/preview", response_model=PreviewOut, tags=["agent"])
async def preview_next(session: AnyUser, ctx: Ctx) -> PreviewOut:
    """The lead to look at before you call it; it is held for you until you dial or skip it."""
    agent_id = _own_agent(session)
    try:
        lead = await ctx.backend.preview_next(agent_id)
    except BackendError as exc:
        raise _backend_error(exc) from None
    if lead is None:
        return PreviewOut(lead=None)
    return PreviewOut(
        lead=PreviewLeadOut(
            lead_id=lead.lead_id,
            campaign_id=lead.campaign_id,
            campaign=lead.campaign,
            number=lead.number,
            name=lead.name,
            timezones=list(lead.timezones),
            attempts=lead.attempts,
            callback_at=lead.callback_at,
            reason=lead.reason,
        )
    )


@router.post("/agent/preview/dial", response_model=PreviewDialOut, tags=["agent"])
async def preview_dial(body: PreviewLeadRequest, session: AnyUserCsrf, ctx: Ctx) -> PreviewDialOut:
    """Call the lead you are previewing; the customer is connected to you when they answer."""
    agent_id = _own_agent(session)
    try:
        call_id = await ctx.backend.preview_dial(agent_id, body.lead_id)
    except BackendError as exc:
        raise _backend_error(exc) from None
    return PreviewDialOut(lead_id=body.lead_id, call_id=call_id)


@router.post("/agent/preview/skip", response_model=PreviewSkipOut, tags=["agent"])
async def preview_skip(body: PreviewLeadRequest, session: AnyUserCsrf, ctx: Ctx) -> PreviewSkipOut:
    """Do not call the lead you are previewing now; it comes back later and the next preview is another."""
    agent_id = _own_agent(session)
    try:
        at = await ctx.backend.preview_skip(agent_id, body.lead_id)
    except BackendError as exc:
        raise _backend_error(exc) from None
    return PreviewSkipOut(lead_id=body.lead_id, next_attempt_at_utc=at)


# -- campaigns ----------------------------------------------------------------------------------


async def _campaign_out(ctx: WebContext, name: str | None = None) -> list[CampaignOut]:
    async with ctx.sessionmaker() as session:
        campaigns = [await get_campaign(session, name)] if name else await list_campaigns(session)
        return [
            CampaignOut(
                id=c.id, name=c.name, status=c.status, leads=await lead_counts(session, c.id), settings=c.settings
            )
            for c in campaigns
        ]


@router.get("/campaigns", response_model=list[CampaignOut], tags=["campaigns"])
async def campaigns(_: Supervisor, ctx: Ctx) -> list[CampaignOut]:
    return await _campaign_out(ctx)


@router.get("/campaigns/{name}", response_model=CampaignOut, tags=["campaigns"])
async def campaign(name: str, _: Supervisor, ctx: Ctx) -> CampaignOut:
    try:
        return (await _campaign_out(ctx, name))[0]
    except CampaignError as exc:
        raise HTTPException(404, str(exc)) from None


@router.put("/campaigns/{name}/settings", response_model=CampaignOut, tags=["campaigns"])
async def put_campaign_settings(name: str, body: CampaignSettings, _: ManagerCsrf, ctx: Ctx) -> CampaignOut:
    """Replace a campaign's settings (the whole model; GET it first and change what you need)."""
    async with ctx.sessionmaker() as session:
        try:
            await update_campaign_settings(session, name, body)
        except CampaignError as exc:
            raise HTTPException(404 if "no campaign named" in str(exc) else 409, str(exc)) from None
        await session.commit()
    return (await _campaign_out(ctx, name))[0]


# -- call lists ---------------------------------------------------------------------------------


def upload_summary_out(summary: ImportSummary, token: str) -> ImportSummaryOut:
    return ImportSummaryOut(
        file=Path(summary.file).name,
        campaign=summary.campaign,
        list_name=summary.list_name,
        read=summary.read,
        imported=summary.imported,
        merged=summary.merged,
        rejected=summary.rejected,
        dnc_suppressed=summary.dnc_suppressed,
        contacts_created=summary.contacts_created,
        contacts_updated=summary.contacts_updated,
        list_id=summary.list_id,
        encoding=summary.encoding,
        delimiter=summary.delimiter,
        columns=summary.columns,
        warnings=summary.warnings,
        seconds=round(summary.seconds, 3),
        rejects_url=f"/manager/lists/rejects/{token}" if summary.rejects_file else None,
    )


def _safe_name(filename: str | None) -> str:
    name = Path(filename or "upload.csv").name.strip().replace("\x00", "")
    return name if name and not name.startswith(".") else "upload.csv"


async def run_upload(
    ctx: WebContext, file: UploadFile, campaign: str, list_name: str | None, mapping: list[str], region: str | None
) -> tuple[ImportSummary, str]:
    """Store the upload under data_dir/uploads/<token>/ and import it with the CLI's importer."""
    token = uuid.uuid4().hex
    folder = ctx.uploads_dir / token
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / _safe_name(file.filename)
    limit = ctx.settings.http.max_upload_mb * 1024 * 1024
    size = 0
    with path.open("wb") as out:
        while chunk := await file.read(1024 * 1024):
            size += len(chunk)
            if size > limit:
                out.close()
                shutil.rmtree(folder, ignore_errors=True)
                raise ListFileError(
                    f"{path.name}: larger than {ctx.settings.http.max_upload_mb} MB; split the file or raise "
                    "[http] max_upload_mb"
                )
            out.write(chunk)
    try:
        summary = await import_list(
            ctx.sessionmaker,
            path,
            campaign=campaign,
            list_name=list_name or None,
            mapping=mapping,
            region=region or None,
        )
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return summary, token


def rejects_path(ctx: WebContext, token: str) -> Path:
    if not token.isalnum() or len(token) != 32:
        raise HTTPException(404, "no such upload")
    folder = ctx.uploads_dir / token
    files = sorted(folder.glob("*.rejects.csv")) if folder.is_dir() else []
    if not files:
        raise HTTPException(404, "this upload has no rejects file")
    return files[0]


@router.post("/lists/upload", response_model=ImportSummaryOut, tags=["lists"])
async def upload_list(
    _: ManagerCsrf,
    ctx: Ctx,
    file: Annotated[UploadFile, File(description="CSV or XLSX call list")],
    campaign: Annotated[str, Form(min_length=1, max_length=100)],
    list_name: Annotated[str | None, Form(max_length=200)] = None,
    region: Annotated[str | None, Form(max_length=2)] = None,
    map: Annotated[list[str] | None, Form(description="FIELD=COLUMN, as `dialer list import --map`")] = None,
) -> ImportSummaryOut:
    """Import a call list into a campaign with the CLI's importer; same summary, same rejects file."""
    try:
        summary, token = await run_upload(ctx, file, campaign, list_name, map or [], region)
    except ListFileError as exc:
        raise HTTPException(400, str(exc)) from None
    except CampaignError as exc:
        raise HTTPException(404 if "no campaign named" in str(exc) else 409, str(exc)) from None
    return upload_summary_out(summary, token)


@router.get("/lists/rejects/{token}", response_class=FileResponse, tags=["lists"])
async def download_rejects(token: str, _: Manager, ctx: Ctx) -> FileResponse:
    path = rejects_path(ctx, token)
    return FileResponse(path, media_type="text/csv", filename=path.name)


# -- reports ----------------------------------------------------------------------------------
# The CLI's report functions (dialer.reports), so the console and `dialer report ...` agree to
# the call; their frozen dataclasses are the response models.


def report_now(ctx: WebContext) -> datetime:
    """The console's clock as an aware UTC instant (tests drive it; reports never read the wall clock)."""
    return datetime.fromtimestamp(ctx.clock(), UTC)


def _today(ctx: WebContext) -> date:
    return report_now(ctx).astimezone(ZoneInfo(ctx.settings.site.timezone)).date()


def _report_error(exc: Exception) -> HTTPException:
    if isinstance(exc, CampaignError):
        return HTTPException(404 if "no campaign named" in str(exc) else 409, str(exc))
    return HTTPException(422, str(exc))


@router.get("/reports/agents", response_model=list[reports.AgentDayRow], tags=["reports"])
async def report_agents(
    _: Manager, ctx: Ctx, day: date | None = None, campaign: str | None = None
) -> list[reports.AgentDayRow]:
    """Per agent for one local day, as `dialer report agents`: effective calls against the target, occupancy."""
    try:
        async with ctx.sessionmaker() as session:
            return await reports.agent_day_report(
                session, day or _today(ctx), ctx.settings.site.timezone, campaign=campaign or None, now=report_now(ctx)
            )
    except (CampaignError, reports.ReportError) as exc:
        raise _report_error(exc) from None


@router.get("/reports/campaigns/{name}", response_model=reports.CampaignReport, tags=["reports"])
async def report_campaign(name: str, _: Manager, ctx: Ctx, day: date | None = None) -> reports.CampaignReport:
    """The campaign's figures as `dialer report campaign`, with 24 rows of contact rate by local hour."""
    try:
        async with ctx.sessionmaker() as session:
            return await reports.campaign_report(
                session, name, now=report_now(ctx), site_tz=ctx.settings.site.timezone, day=day
            )
    except (CampaignError, reports.ReportError) as exc:
        raise _report_error(exc) from None


@router.get("/reports/campaigns/{name}/leads-at-risk", response_model=list[reports.LeadAtRisk], tags=["reports"])
async def report_leads_at_risk(
    name: str,
    _: Manager,
    ctx: Ctx,
    within_hours: Annotated[float, Query(gt=0, le=24 * 366)] = 12.0,
) -> list[reports.LeadAtRisk]:
    """Open leads not yet contacted whose reach deadline falls within the hours given (or has passed)."""
    try:
        async with ctx.sessionmaker() as session:
            return await reports.leads_at_risk(
                session, name, now=report_now(ctx), within=timedelta(hours=within_hours),
                site_tz=ctx.settings.site.timezone,
            )  # fmt: skip
    except (CampaignError, reports.ReportError) as exc:
        raise _report_error(exc) from None


@router.get("/reports/abandon", response_model=list[reports.AbandonDay], tags=["reports"])
async def report_abandon(
    _: Manager,
    ctx: Ctx,
    end: date | None = None,
    days: Annotated[int, Query(ge=1, le=366)] = 30,
    campaign: str | None = None,
) -> list[reports.AbandonDay]:
    """Abandoned / human-answered per local day (the campaign's zone when one is given)."""
    try:
        async with ctx.sessionmaker() as session:
            return await reports.abandon_by_day(
                session, end or _today(ctx), days, ctx.settings.site.timezone, campaign=campaign or None,
                now=report_now(ctx),
            )  # fmt: skip
    except (CampaignError, reports.ReportError) as exc:
        raise _report_error(exc) from None


# -- ACD queue reports -------------------------------------------------------------------------
# acd.reports over the queue_log, as `dialer report queues`: each queue's own service-level
# threshold from [acd.queues.<id>] unless ``service_level_s`` overrides it.


@router.get("/reports/queues", response_model=list[acd_reports.QueueReport], tags=["reports"])
async def report_queues(
    _: Manager,
    ctx: Ctx,
    since: Annotated[datetime | None, Query(description="start of the window (default: 24 h before until)")] = None,
    until: Annotated[datetime | None, Query(description="end of the window, exclusive (default: now)")] = None,
    queue: Annotated[list[str] | None, Query(description="only these queues (repeatable)")] = None,
    service_level_s: Annotated[float | None, Query(ge=0, description="one threshold T for every queue")] = None,
) -> list[acd_reports.QueueReport]:
    """Per queue: offered, answered, abandoned, service level (abandons included), ASA, AHT (talk +
    hold + wrap-up), abandon rate, occupancy and the longest wait, from the queue log."""
    zone = ZoneInfo(ctx.settings.site.timezone)
    end = until or report_now(ctx)
    end = end if end.tzinfo is not None else end.replace(tzinfo=zone)
    start = since or end - timedelta(days=1)
    start = start if start.tzinfo is not None else start.replace(tzinfo=zone)
    if start >= end:
        raise HTTPException(422, f"since ({start.isoformat()}) must be before until ({end.isoformat()})")
    try:
        levels = acd_reports.service_levels(ctx.settings.acd.queues) if service_level_s is None else service_level_s
    except ValueError as exc:
        raise HTTPException(409, str(exc)) from None
    return await acd_reports.queue_report(
        ctx.sessionmaker, start.astimezone(UTC), end.astimezone(UTC), queues=queue or (), service_level_s=levels
    )


# -- users ------------------------------------------------------------------------------------


def _user_out(u: User) -> UserOut:
    return UserOut(
        id=u.id,
        username=u.username,
        role=Role(u.role),
        agent_id=u.agent_id,
        disabled=u.disabled,
        created_at=u.created_at,
        last_login_at=u.last_login_at,
    )


@router.get("/users", response_model=list[UserOut], tags=["users"])
async def users(_: Admin, ctx: Ctx) -> list[UserOut]:
    async with ctx.sessionmaker() as session:
        return [_user_out(u) for u in (await session.execute(select(User).order_by(User.username))).scalars()]


@router.post("/users", response_model=UserOut, status_code=201, tags=["users"])
async def create_user(body: UserCreate, _: AdminCsrf, ctx: Ctx) -> UserOut:
    user = User(
        username=body.username,
        password_hash=hash_password(body.password),
        role=body.role.value,
        agent_id=body.agent_id,
        created_at=utcnow(),
    )
    async with ctx.sessionmaker() as session:
        session.add(user)
        try:
            await session.commit()
        except IntegrityError:
            raise HTTPException(
                409, f"username {body.username!r} or agent id {body.agent_id!r} is already taken; pick another"
            ) from None
    ctx.live.set_agent_names({body.agent_id: body.username} if body.agent_id else {})
    return _user_out(user)
