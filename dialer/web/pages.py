"""The console's HTML pages: login, wallboard, agent page, and the campaign manager's pages.

Pages are server-rendered Jinja2 templates that work as plain HTML forms (each carrying the
session's CSRF token); small scripts add live updates (the wallboard and agent page follow a
WebSocket) and the supervisor's buttons, which call the JSON API. Forms post back to the page
routes here and redirect (POST-redirect-GET) with a flash message.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import structlog
from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from markupsafe import Markup
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from acd import AgentState
from dialer import reports as dialer_reports
from dialer.campaigns import (
    CampaignError,
    CampaignSettings,
    campaign_settings,
    get_campaign,
    lead_counts,
    list_campaigns,
    merge_settings,
    update_campaign_settings,
)
from dialer.lists.reader import ListFileError
from dialer.models import CampaignStatus
from dialer.web import charts
from dialer.web.api import (
    authenticate,
    customer_out,
    rejects_path,
    report_now,
    run_upload,
    start_session,
    upload_summary_out,
)
from dialer.web.auth import CSRF_FIELD, WebSession, hash_password
from dialer.web.backend import BackendError
from dialer.web.deps import (
    LoginRequired,
    WebContext,
    current_session,
    get_context,
    require,
    set_session_cookie,
    template_context,
)
from dialer.web.models import ROLE_RANK, Role, User
from infra.db import utcnow
from recordings.qa import survey_report

__all__ = ["CAMPAIGN_FORM_FIELDS", "router"]

log = structlog.get_logger(__name__)

router = APIRouter(include_in_schema=False)
Ctx = Annotated[WebContext, Depends(get_context)]
AnyUser = Annotated[WebSession, Depends(require(Role.AGENT))]
AnyUserCsrf = Annotated[WebSession, Depends(require(Role.AGENT, csrf=True))]
Supervisor = Annotated[WebSession, Depends(require(Role.SUPERVISOR))]
Manager = Annotated[WebSession, Depends(require(Role.MANAGER))]
ManagerCsrf = Annotated[WebSession, Depends(require(Role.MANAGER, csrf=True))]
Admin = Annotated[WebSession, Depends(require(Role.ADMIN))]
AdminCsrf = Annotated[WebSession, Depends(require(Role.ADMIN, csrf=True))]


def render(
    ctx: WebContext, request: Request, template: str, session: WebSession | None, status: int = 200, **values: Any
) -> HTMLResponse:
    flashes = list(session.flash) if session is not None else []
    if session is not None:
        session.flash.clear()
    return ctx.templates.TemplateResponse(
        request, template, template_context(request, session, flashes=flashes, **values), status_code=status
    )


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _home_for(session: WebSession) -> str:
    if session.role == Role.AGENT:
        return "/agent"
    if session.role in (Role.SUPERVISOR, Role.MANAGER, Role.ADMIN):
        return "/wallboard"
    return "/login"


def _safe_next(value: str | None) -> str | None:
    # Only same-site paths: "//evil.example" and "/\\evil" are other sites to a browser.
    if value and value.startswith("/") and not value.startswith(("//", "/\\")):
        return value
    return None


# -- login --------------------------------------------------------------------------------------


@router.get("/login")
async def login_page(request: Request, ctx: Ctx, next: str | None = None) -> Response:
    session = current_session(request)
    if session is not None and session.authenticated:
        return redirect(_safe_next(next) or _home_for(session))
    if session is None:
        session = ctx.sessions.create()
    response = render(ctx, request, "login.html", session, next=_safe_next(next) or "", error=None)
    set_session_cookie(response, request, session)
    return response


@router.post("/login")
async def login_submit(
    request: Request,
    ctx: Ctx,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=1024)],
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "",
) -> Response:
    session = current_session(request)
    if session is None or not session.csrf_ok(csrf_token):
        fresh = ctx.sessions.create()
        response = render(
            ctx, request, "login.html", fresh, status=403, next=_safe_next(next) or "",
            error="The login form expired. Please try again.",
        )  # fmt: skip
        set_session_cookie(response, request, fresh)
        return response
    try:
        user = await authenticate(ctx, username.strip(), password)
    except LoginRequired as exc:
        return render(
            ctx, request, "login.html", session, status=401, next=_safe_next(next) or "", error=str(exc) or ""
        )
    done = redirect("/")
    new = start_session(ctx, request, done, user)
    done.headers["location"] = _safe_next(next) or _home_for(new)
    return done


@router.post("/logout")
async def logout_submit(request: Request, session: AnyUserCsrf, ctx: Ctx) -> Response:
    ctx.sessions.end(session)
    response = redirect("/login")
    response.delete_cookie("dialer_session", path="/")
    log.info("console.logout", username=session.username)
    return response


@router.get("/")
async def home(session: AnyUser) -> Response:
    return redirect(_home_for(session))


# -- wallboard ----------------------------------------------------------------------------------


@router.get("/wallboard")
async def wallboard(request: Request, session: Supervisor, ctx: Ctx) -> Response:
    return render(ctx, request, "wallboard.html", session, page="wallboard")


# -- agent page ---------------------------------------------------------------------------------


@router.get("/agent")
async def agent_page(request: Request, session: AnyUser, ctx: Ctx) -> Response:
    agent_id = session.agent_id
    agent = ctx.live.agent(agent_id) if agent_id else None
    customer = customer_out(await ctx.backend.current_customer(agent_id)) if agent_id else None
    tz = (customer.timezone if customer else None) or ctx.settings.site.timezone
    tomorrow = datetime.now(ZoneInfo(tz)).replace(second=0, microsecond=0) + timedelta(days=1)
    return render(
        ctx, request, "agent.html", session, page="agent", agent_id=agent_id, agent=agent, customer=customer,
        callback_default=tomorrow.strftime("%Y-%m-%dT%H:%M"), callback_tz=tz,
    )  # fmt: skip


def _own(session: WebSession) -> str:
    if session.agent_id is None:
        raise BackendError(f"user {session.username} is not linked to an agent; ask an admin to set its agent id")
    return session.agent_id


@router.post("/agent/state")
async def agent_state_submit(
    session: AnyUserCsrf, ctx: Ctx, state: Annotated[str, Form()], reason: Annotated[str, Form(max_length=100)] = ""
) -> Response:
    try:
        agent_id = _own(session)
        if state == "logged_out":
            await ctx.backend.agent_logout(agent_id, by=session.username or "")
        elif state in ("ready", "paused"):
            await ctx.backend.agent_set_state(agent_id, AgentState(state), reason, by=session.username or "")
        else:
            raise BackendError(f"state {state!r}: choose ready, paused or logged_out")
        session.flash.append(f"You are now {state.replace('_', ' ')}.")
    except BackendError as exc:
        session.flash.append(f"Error: {exc}")
    return redirect("/agent")


@router.post("/agent/disposition")
async def disposition_submit(
    session: AnyUserCsrf,
    ctx: Ctx,
    call_id: Annotated[str, Form(max_length=128)],
    code: Annotated[str, Form(max_length=32)],
    notes: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    try:
        await ctx.backend.set_disposition(call_id, code, notes, agent_id=_own(session))
        session.flash.append(f"Disposition {code.upper()} saved.")
    except BackendError as exc:
        session.flash.append(f"Error: {exc}")
    return redirect("/agent")


@router.post("/agent/callback")
async def callback_submit(
    session: AnyUserCsrf,
    ctx: Ctx,
    lead_id: Annotated[int, Form()],
    at_local: Annotated[str, Form(max_length=32)],
    timezone: Annotated[str, Form(max_length=64)],
    shared: Annotated[bool, Form()] = False,
) -> Response:
    try:
        agent_id = _own(session)
        try:
            when = datetime.fromisoformat(at_local)
        except ValueError:
            raise BackendError(f"callback time {at_local!r}: write it as YYYY-MM-DD HH:MM") from None
        due = await ctx.backend.schedule_callback(lead_id, when, timezone, None if shared else agent_id)
        session.flash.append(f"Callback set for {when:%Y-%m-%d %H:%M} {timezone} ({due:%H:%M} UTC).")
    except BackendError as exc:
        session.flash.append(f"Error: {exc}")
    return redirect("/agent")


# -- call lists ---------------------------------------------------------------------------------


async def _campaign_names(ctx: WebContext) -> list[str]:
    async with ctx.sessionmaker() as s:
        return [c.name for c in await list_campaigns(s)]


@router.get("/manager/lists/upload")
async def upload_page(request: Request, session: Manager, ctx: Ctx) -> Response:
    return render(
        ctx,
        request,
        "upload.html",
        session,
        page="upload",
        campaigns=await _campaign_names(ctx),
        summary=None,
        error=None,
        form={},
    )


@router.post("/manager/lists/upload")
async def upload_submit(
    request: Request,
    session: ManagerCsrf,
    ctx: Ctx,
    file: Annotated[UploadFile, File()],
    campaign: Annotated[str, Form(max_length=100)],
    list_name: Annotated[str, Form(max_length=200)] = "",
    region: Annotated[str, Form(max_length=2)] = "",
    mapping: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    form = {"campaign": campaign, "list_name": list_name, "region": region, "mapping": mapping}
    maps = [m.strip() for m in mapping.replace("\n", ",").split(",") if m.strip()]
    error = None
    summary = None
    try:
        if not file.filename:
            raise ListFileError("no file chosen: pick a CSV or XLSX call list")
        result, token = await run_upload(ctx, file, campaign, list_name, maps, region)
        summary = upload_summary_out(result, token)
    except (ListFileError, CampaignError) as exc:
        error = str(exc)
    return render(
        ctx, request, "upload.html", session, status=200 if error is None else 400, page="upload",
        campaigns=await _campaign_names(ctx), summary=summary, error=error, form=form,
    )  # fmt: skip


@router.get("/manager/lists/rejects/{token}")
async def rejects_download(token: str, _: Manager, ctx: Ctx) -> FileResponse:
    path = rejects_path(ctx, token)
    return FileResponse(path, media_type="text/csv", filename=path.name)


# -- campaigns ----------------------------------------------------------------------------------

#: (dotted field, label, kind, choices or help) of the settings form.
CAMPAIGN_FORM_FIELDS: list[tuple[str, str, str, Any]] = [
    ("description", "Description", "text", None),
    ("region", "Default region for national numbers", "text", "ISO 3166 code such as CN, US, GB"),
    ("timezone", "Fallback time zone", "text", "IANA zone such as Asia/Shanghai"),
    ("window.default", "Calling window (callee's local time)", "text", "HH:MM-HH:MM"),
    ("window.quiet_hours", "Quiet hours", "list", "comma-separated ranges, e.g. 12:00-14:00"),
    ("window.holidays", "No calls on public holidays", "bool", None),
    ("pacing.mode", "Pacing mode", "choice", ["preview", "progressive", "power", "predictive", "vicidial_adapt"]),
    ("pacing.target_abandon_rate", "Target abandon rate", "number", "a fraction, at most 0.03"),
    ("pacing.max_lines", "Maximum lines", "number", None),
    ("pacing.lines_per_agent", "Lines per agent (power mode)", "number", None),
    ("pacing.calls_per_second", "Calls per second", "number", None),
    ("pacing.ring_timeout_seconds", "Ring timeout (s)", "number", "at least 15"),
    ("retry.max_attempts", "Max attempts per lead", "number", None),
    ("retry.max_attempts_per_number", "Max attempts per number", "number", None),
    ("retry.reach_deadline_hours", "Reach deadline (h, 0 = none)", "number", None),
    ("dayparts", "Day-parts", "map", "one per line: name = HH:MM-HH:MM"),
    ("caller_id", "Caller ID", "text", "E.164, e.g. +861012345678"),
    ("amd", "Answering-machine detection", "bool", None),
    ("queue", "Agent queue", "text", None),
    ("effective_call_seconds", "Effective call: minimum talk (s)", "number", None),
    ("daily_target", "Daily target of effective calls per agent", "number", None),
    ("recording.policy", "Recording", "choice", ["all", "none", "on_demand", "sample"]),
    ("recording.sample_percent", "Sample (% of calls)", "number", None),
    (
        "dispositions",
        "Disposition codes",
        "dispositions",
        "one per line: CODE | Label | flags (contact effective success callback dnc final)",
    ),
]
_OPTIONAL_TEXT = {"region", "timezone", "caller_id", "queue"}
_FLAGS = ("contact", "effective", "success", "callback", "dnc", "final")


def _get(data: dict[str, Any], dotted: str) -> Any:
    value: Any = data
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    for part in parts[:-1]:
        data = data.setdefault(part, {})
    data[parts[-1]] = value


def settings_form_values(settings: dict[str, Any]) -> dict[str, str]:
    """The form's text for each field, from a settings dict."""
    out: dict[str, str] = {}
    for name, _label, kind, _extra in CAMPAIGN_FORM_FIELDS:
        value = _get(settings, name)
        if kind == "bool":
            out[name] = "on" if value else ""
        elif kind == "list":
            out[name] = ", ".join(value or [])
        elif kind == "map":
            out[name] = "\n".join(f"{k} = {v}" for k, v in (value or {}).items())
        elif kind == "dispositions":
            lines = []
            for d in value or []:
                flags = " ".join(f for f in _FLAGS if d.get(f))
                lines.append(f"{d.get('code', '')} | {d.get('label', '')} | {flags}".rstrip(" |"))
            out[name] = "\n".join(lines)
        else:
            out[name] = "" if value is None else str(value)
    return out


def parse_settings_form(form: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Raw settings (strings for pydantic to coerce) and per-field syntax errors."""
    data: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, _label, kind, _extra in CAMPAIGN_FORM_FIELDS:
        raw = form.get(name, "")
        if kind == "bool":
            _set(data, name, raw in ("on", "true", "1", "yes"))
        elif kind == "list":
            _set(data, name, [p.strip() for p in raw.split(",") if p.strip()])
        elif kind == "map":
            table: dict[str, str] = {}
            for n, line in enumerate(raw.splitlines(), 1):
                if not line.strip():
                    continue
                key, sep, value = line.partition("=")
                if not sep or not key.strip():
                    errors[name] = f"line {n} {line.strip()!r}: write name = HH:MM-HH:MM"
                    break
                table[key.strip()] = value.strip()
            _set(data, name, table)
        elif kind == "dispositions":
            codes: list[dict[str, Any]] = []
            for n, line in enumerate(raw.splitlines(), 1):
                if not line.strip():
                    continue
                cells = [c.strip() for c in line.split("|")]
                if len(cells) < 2 or not cells[0] or not cells[1]:
                    errors[name] = f"line {n} {line.strip()!r}: write CODE | Label | flags"
                    break
                flags = cells[2].lower().replace(",", " ").split() if len(cells) > 2 else []
                unknown = [f for f in flags if f not in _FLAGS]
                if unknown:
                    errors[name] = f"line {n}: unknown flag {unknown[0]!r}; flags are {', '.join(_FLAGS)}"
                    break
                codes.append({"code": cells[0], "label": cells[1], **dict.fromkeys(flags, True)})
            _set(data, name, codes)
        elif name in _OPTIONAL_TEXT and not raw.strip():
            _set(data, name, None)
        else:
            _set(data, name, raw.strip())
    return data, errors


def _field_of(loc: tuple[Any, ...]) -> str:
    dotted = ".".join(str(p) for p in loc)
    best = ""
    for name, *_ in CAMPAIGN_FORM_FIELDS:
        if (dotted == name or dotted.startswith(name + ".")) and len(name) > len(best):
            best = name
    return best or (str(loc[0]) if loc else "")


def validation_errors_by_field(exc: ValidationError) -> dict[str, str]:
    errors: dict[str, str] = {}
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        field = _field_of(loc)
        msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        detail = ".".join(str(p) for p in loc[len(field.split(".")) :]) if field else ""
        text = f"{detail}: {msg}" if detail else msg
        errors.setdefault(field, text)
    return errors


@router.get("/manager/campaigns")
async def campaigns_page(request: Request, session: Manager, ctx: Ctx) -> Response:
    rows = []
    async with ctx.sessionmaker() as s:
        for c in await list_campaigns(s, include_archived=True):
            settings = campaign_settings(c)
            rows.append(
                {
                    "name": c.name,
                    "status": c.status,
                    "mode": settings.pacing.mode,
                    "leads": await lead_counts(s, c.id),
                    "target": settings.daily_target,
                }
            )
    return render(ctx, request, "campaigns.html", session, page="campaigns", campaigns=rows)


@router.post("/manager/campaigns/{name}/status")
async def campaign_status_submit(name: str, session: ManagerCsrf, ctx: Ctx, action: Annotated[str, Form()]) -> Response:
    try:
        if action == "pause":
            await ctx.backend.campaign_pause(name, by=session.username or "")
        elif action == "resume":
            await ctx.backend.campaign_resume(name, by=session.username or "")
        else:
            raise BackendError(f"action {action!r}: choose pause or resume")
        session.flash.append(f"Campaign {name} {'paused' if action == 'pause' else 'resumed'}.")
    except BackendError as exc:
        session.flash.append(f"Error: {exc}")
    return redirect("/manager/campaigns")


@router.get("/manager/campaigns/{name}")
async def campaign_edit_page(name: str, request: Request, session: Manager, ctx: Ctx) -> Response:
    async with ctx.sessionmaker() as s:
        try:
            campaign = await get_campaign(s, name)
        except CampaignError as exc:
            session.flash.append(f"Error: {exc}")
            return redirect("/manager/campaigns")
        values = settings_form_values(campaign_settings(campaign).model_dump(mode="json"))
        status = campaign.status
    return render(
        ctx, request, "campaign_edit.html", session, page="campaigns", name=name, campaign_status=status,
        fields=CAMPAIGN_FORM_FIELDS, values=values, errors={},
    )  # fmt: skip


@router.post("/manager/campaigns/{name}")
async def campaign_edit_submit(name: str, request: Request, session: ManagerCsrf, ctx: Ctx) -> Response:
    form = await request.form()
    values = {k: v for k, v in form.items() if isinstance(v, str) and k != CSRF_FIELD}
    data, errors = parse_settings_form(values)
    async with ctx.sessionmaker() as s:
        try:
            campaign = await get_campaign(s, name)
        except CampaignError as exc:
            session.flash.append(f"Error: {exc}")
            return redirect("/manager/campaigns")
        status = campaign.status
        if not errors:
            try:
                settings = CampaignSettings.model_validate(merge_settings(campaign.settings or {}, data))
            except ValidationError as exc:
                errors = validation_errors_by_field(exc)
            else:
                try:
                    await update_campaign_settings(s, name, settings)
                    await s.commit()
                except CampaignError as exc:
                    errors = {"": str(exc)}
                else:
                    session.flash.append(f"Settings of {name} saved.")
                    log.info("console.campaign_settings", campaign=name, by=session.username)
                    return redirect(f"/manager/campaigns/{quote(name, safe='')}")
    return render(
        ctx, request, "campaign_edit.html", session, status=422, page="campaigns", name=name, campaign_status=status,
        fields=CAMPAIGN_FORM_FIELDS, values=values, errors=errors,
    )  # fmt: skip


# -- reports ----------------------------------------------------------------------------------


@router.get("/manager/reports")
async def reports_page(
    request: Request,
    session: Manager,
    ctx: Ctx,
    day: date | None = None,
    days: int = 30,
    campaign: str = "",
) -> Response:
    """The manager's figures from dialer.reports, the functions behind `dialer report agents/campaign`."""
    tz = ctx.settings.site.timezone
    now = report_now(ctx)
    day = day or now.astimezone(ZoneInfo(tz)).date()
    days = max(1, min(days, 366))
    async with ctx.sessionmaker() as s:
        all_campaigns = await list_campaigns(s, include_archived=True)
        names = [c.name for c in all_campaigns]
        error = None
        if campaign and campaign not in names:
            error = f"Error: no campaign named {campaign!r}; pick one from the list."
            campaign = ""
        camp = campaign or None
        shown = [camp] if camp else [c.name for c in all_campaigns if c.status != CampaignStatus.ARCHIVED]
        agents = await dialer_reports.agent_day_report(s, day, tz, campaign=camp, now=now)
        campaign_reports = [await dialer_reports.campaign_report(s, n, now=now, site_tz=tz, day=day) for n in shown]
        abandon = await dialer_reports.abandon_by_day(s, day, days, tz, campaign=camp, now=now)
        # At the report's as_of, as its at-risk count: for a past day, the leads at risk then.
        at_risk = await dialer_reports.leads_at_risk(s, camp, now=campaign_reports[0].as_of, site_tz=tz) if camp else []
        since, _ = dialer_reports.day_bounds(day - timedelta(days=days - 1), tz)
        _, until = dialer_reports.day_bounds(day, tz)
        surveys_by_agent = await survey_report(s, by="agent", since=since, until=until, campaign=camp)
        surveys_by_campaign = await survey_report(s, by="campaign", since=since, until=until, campaign=camp)
    return render(
        ctx, request, "reports.html", session, page="reports", day=day, days=days, campaign=campaign,
        campaigns=names, tz=tz, error=error, agents=agents, campaign_reports=campaign_reports, abandon=abandon,
        at_risk=at_risk, surveys_by_agent=surveys_by_agent, surveys_by_campaign=surveys_by_campaign,
        effective_chart=_effective_chart(agents, day), abandon_chart=_abandon_chart(abandon, days),
        hours_chart=_hours_chart(campaign_reports),
    )  # fmt: skip


def _effective_chart(agents: list[dialer_reports.AgentDayRow], day: date) -> Markup:
    dialled = [a for a in agents if a.daily_target]
    targets = {a.daily_target for a in dialled}
    labels = [a.agent_id for a in dialled]
    if len(targets) <= 1:
        target = float(targets.pop()) if targets else None
        return charts.bar_chart(
            labels, [float(a.effective) for a in dialled], title=f"Effective calls per agent on {day}",
            target=target, target_label="daily target", highlight_below=target,
        )  # fmt: skip
    # Agents in several campaigns answer to the sum of their targets: compare each with its own.
    return charts.bar_chart(
        labels, [a.target_reached or 0.0 for a in dialled], title=f"Effective calls per agent on {day}, of target",
        target=1.0, target_label="daily target", percent=True, highlight_below=1.0,
    )  # fmt: skip


def _abandon_chart(abandon: list[dialer_reports.AbandonDay], days: int) -> Markup:
    return charts.line_chart(
        [d.day.isoformat() for d in abandon], [d.rate for d in abandon],
        title=f"Abandon rate per day, last {days} days", limit=0.03, limit_label="legal limit",
    )  # fmt: skip


def _hours_chart(campaign_reports: list[dialer_reports.CampaignReport]) -> Markup:
    attempts, contacts = [0] * 24, [0] * 24
    for r in campaign_reports:
        for h in r.hours:
            attempts[h.hour] += h.attempts
            contacts[h.hour] += h.contacts
    if not any(attempts):
        return charts.bar_chart([], [], title="Contact rate by hour of day")
    return charts.bar_chart(
        [f"{h:02d}" for h in range(24)], [contacts[h] / attempts[h] if attempts[h] else 0.0 for h in range(24)],
        title="Contact rate by the callee's local hour of day", percent=True,
    )  # fmt: skip


# -- QA --------------------------------------------------------------------------------------


@router.get("/qa")
async def qa_page(request: Request, session: Supervisor, ctx: Ctx) -> Response:
    """Recordings search, playback and QA scoring in the console's frame, on recordings.web's JSON API.

    recordings.web serves its own /qa page too, but with an inline script and style that the
    console's Content-Security-Policy blocks; this route is registered first and replaces it.
    """
    return render(
        ctx, request, "qa.html", session, page="qa",
        search_url=request.url_for("recordings_search").path, form_url=request.url_for("qa_form").path,
        report_url=request.url_for("qa_report").path,
        score_url=request.url_for("qa_score", recording_id="RECORDING_ID").path,
    )  # fmt: skip


# -- users (admin) ------------------------------------------------------------------------------


@router.get("/admin/users")
async def users_page(request: Request, session: Admin, ctx: Ctx) -> Response:
    async with ctx.sessionmaker() as s:
        users = list((await s.execute(select(User).order_by(User.username))).scalars())
    return render(
        ctx, request, "users.html", session, page="users", users=users, roles=[r.value for r in ROLE_RANK], error=None
    )


@router.post("/admin/users")
async def users_submit(
    session: AdminCsrf,
    ctx: Ctx,
    username: Annotated[str, Form(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")],
    password: Annotated[str, Form(min_length=8, max_length=1024)],
    role: Annotated[Role, Form()],
    agent_id: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    user = User(
        username=username, password_hash=hash_password(password), role=role.value,
        agent_id=agent_id.strip() or None, created_at=utcnow(),
    )  # fmt: skip
    async with ctx.sessionmaker() as s:
        s.add(user)
        try:
            await s.commit()
            session.flash.append(f"User {username} ({role.value}) created.")
        except IntegrityError:
            session.flash.append(f"Error: username {username!r} or agent id {agent_id!r} is already taken.")
    if user.agent_id:
        ctx.live.set_agent_names({user.agent_id: username})
    return redirect("/admin/users")
