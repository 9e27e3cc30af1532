"""HTTP API and the QA page for recordings, as a FastAPI router the web console mounts.

The console owns logins, roles and CSRF; this router only declares what each route needs through
the ``require_role(role, write=...)`` callable it is given (a FastAPI dependency per call), so it
does not import the console. The console mounts it with, for example::

    from recordings.web import make_router
    app.include_router(make_router(
        ctx.sessionmaker,
        lambda role, write=False: require(Role(role), csrf=write),
        root=settings.recordings.root(settings.site.data_dir),
        forms=QaForms.from_config(settings.recordings.qa_forms),
    ))

Routes: ``GET /api/recordings`` (search), ``GET /api/recordings/{id}``, ``GET
/api/recordings/{id}/audio`` (the WAV; HTTP range requests, RFC 9110 §14, so an ``<audio>``
element can seek), ``GET /api/qa/form``, ``POST /api/recordings/{id}/qa`` (a score; 422 naming
the field when it does not fit the form), ``GET /api/qa/report`` (per agent), ``GET
/api/surveys/report`` (per agent or campaign), and the page ``GET /qa``.
"""

import asyncio
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infra.db import utcnow
from recordings.models import QaScore, Recording
from recordings.qa import QaError, QaForm, QaForms, ScoreError, qa_report, submit_score, survey_report
from recordings.service import RecordingQuery, search_recordings

__all__ = ["RequireRole", "make_router"]

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"


class RequireRole(Protocol):
    """``require_role("supervisor")`` -> a FastAPI dependency; ``write=True`` also checks CSRF."""

    def __call__(self, role: str, /, *, write: bool = False) -> Callable[..., Any]: ...


# -- response and request bodies (they make the OpenAPI document) ---------------------------------


class GapOut(BaseModel):
    start_s: float
    end_s: float
    reason: str


class RecordingOut(BaseModel):
    id: str
    call_id: str
    agent_id: str | None
    campaign_id: int | None
    campaign: str | None
    queue: str | None
    started_at: datetime
    ended_at: datetime | None
    duration: float | None
    size: int | None
    sha256: str | None
    gaps: list[GapOut]
    trigger: str
    outcome: str | None
    status: str
    deleted: bool
    audio_url: str


class QaScoreIn(BaseModel):
    scores: dict[str, Any] = Field(description="criterion name -> value on the form's scale")
    comments: str | None = Field(default=None, max_length=5000)


class QaScoreOut(BaseModel):
    id: int
    recording_id: str
    agent_id: str | None
    form: str
    scorer: str
    scores: dict[str, float]
    total: float
    comments: str | None
    created_at: datetime


class RecordingDetail(RecordingOut):
    scores: list[QaScoreOut]


class CriterionOut(BaseModel):
    name: str
    label: str
    weight: float
    description: str


class QaFormOut(BaseModel):
    name: str
    scale_min: int
    scale_max: int
    criteria: list[CriterionOut]


class AgentQaOut(BaseModel):
    agent_id: str | None
    count: int
    average: float
    lowest: float
    highest: float


class SurveyOut(BaseModel):
    key: str | None
    answers: int
    satisfied: int
    average: int
    unsatisfied: int
    satisfied_rate: float
    mean: float


def _score_out(row: QaScore) -> QaScoreOut:
    return QaScoreOut(
        id=row.id,
        recording_id=row.recording_id,
        agent_id=row.agent_id,
        form=row.form,
        scorer=row.scorer,
        scores=row.scores,
        total=row.total,
        comments=row.comments,
        created_at=row.created_at,
    )


def _form_out(name: str, form: QaForm) -> QaFormOut:
    return QaFormOut(
        name=name,
        scale_min=form.scale_min,
        scale_max=form.scale_max,
        criteria=[CriterionOut(**c.model_dump()) for c in form.criteria],
    )


def _default_user_name(user: Any) -> str:
    name = getattr(user, "username", None)
    return str(name) if name else str(user)


def _unprocessable(loc: list[str | int], message: str, kind: str = "value_error") -> HTTPException:
    # The shape of FastAPI's own validation errors, so clients handle both alike.
    return HTTPException(422, detail=[{"loc": loc, "msg": message, "type": kind}])


def make_router(
    sessionmaker: async_sessionmaker[AsyncSession],
    require_role: RequireRole,
    *,
    root: str | Path,
    forms: QaForms | None = None,
    timezone: str = "UTC",
    clock: Callable[[], datetime] = utcnow,
    qa_role: str = "supervisor",
    user_name: Callable[[Any], str] = _default_user_name,
    prefix: str = "",
) -> APIRouter:
    """The recordings/QA router; ``require_role`` is the console's role (and CSRF) dependency factory."""
    base = Path(root)
    qa_forms = forms or QaForms()
    zone = ZoneInfo(timezone)
    templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
    router = APIRouter(prefix=prefix, tags=["recordings"])
    Reader = Annotated[Any, Depends(require_role(qa_role))]
    Writer = Annotated[Any, Depends(require_role(qa_role, write=True))]

    def to_out(request: Request, row: Recording) -> RecordingOut:
        return RecordingOut(
            id=row.id,
            call_id=row.call_id,
            agent_id=row.agent_id,
            campaign_id=row.campaign_id,
            campaign=row.campaign,
            queue=row.queue,
            started_at=row.started_at,
            ended_at=row.ended_at,
            duration=row.duration,
            size=row.size,
            sha256=row.sha256,
            gaps=[GapOut(start_s=g["start_s"], end_s=g["end_s"], reason=g["reason"]) for g in row.gaps],
            trigger=row.trigger,
            outcome=row.outcome,
            status=row.status,
            deleted=row.deleted_at is not None,
            audio_url=str(request.url_for("recording_audio", recording_id=row.id)),
        )

    def day_bounds(since: date | None, until: date | None) -> tuple[datetime | None, datetime | None]:
        if since is not None and until is not None and until < since:
            raise _unprocessable(["query", "until"], f"until={until} is before since={since}")
        start = datetime.combine(since, time(), zone) if since else None
        end = datetime.combine(until + timedelta(days=1), time(), zone) if until else None
        return start, end

    async def load(session: AsyncSession, recording_id: str) -> Recording:
        row = await session.get(Recording, recording_id)
        if row is None:
            raise HTTPException(404, detail=f"no recording {recording_id!r}; search for it first")
        return row

    @router.get("/api/recordings", name="recordings_search", response_model=list[RecordingOut])
    async def search(
        request: Request,
        _user: Reader,
        agent: Annotated[str | None, Query(description="Agent id")] = None,
        campaign: Annotated[str | None, Query(description="Campaign name or id")] = None,
        queue: str | None = None,
        outcome: str | None = None,
        since: Annotated[date | None, Query(description="First day (site time zone)")] = None,
        until: Annotated[date | None, Query(description="Last day, inclusive (site time zone)")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> list[RecordingOut]:
        start, end = day_bounds(since, until)
        query = RecordingQuery(
            agent_id=agent or None,
            campaign=campaign or None,
            queue=queue or None,
            outcome=outcome or None,
            since=start,
            until=end,
            limit=limit,
            offset=offset,
        )
        async with sessionmaker() as session:
            rows = await search_recordings(session, query)
        return [to_out(request, r) for r in rows]

    @router.get("/api/recordings/{recording_id}", name="recording_detail", response_model=RecordingDetail)
    async def detail(request: Request, recording_id: str, _user: Reader) -> RecordingDetail:
        async with sessionmaker() as session:
            row = await load(session, recording_id)
            scores = list(
                (
                    await session.execute(
                        select(QaScore).where(QaScore.recording_id == row.id).order_by(QaScore.created_at)
                    )
                ).scalars()
            )
        return RecordingDetail(**to_out(request, row).model_dump(), scores=[_score_out(s) for s in scores])

    @router.get(
        "/api/recordings/{recording_id}/audio",
        name="recording_audio",
        response_class=FileResponse,
        responses={206: {"description": "The requested byte range"}, 416: {"description": "Range not satisfiable"}},
    )
    async def audio(recording_id: str, _user: Reader) -> FileResponse:
        async with sessionmaker() as session:
            row = await load(session, recording_id)
        if row.deleted_at is not None:
            raise HTTPException(410, detail=f"recording {row.id} was deleted by retention on {row.deleted_at.date()}")
        relative = Path(row.path)
        path = base / relative
        if relative.is_absolute() or ".." in relative.parts or not await asyncio.to_thread(path.is_file):
            raise HTTPException(
                404, detail=f"the file of recording {row.id} is missing; run `dialer recordings verify`"
            )
        # Starlette answers Range / If-Range itself (206 with Content-Range, 416 when unsatisfiable).
        return FileResponse(path, media_type="audio/wav", filename=f"{row.id}.wav", content_disposition_type="inline")

    @router.get("/api/qa/form", name="qa_form", response_model=QaFormOut)
    async def form(_user: Reader, campaign: str | None = None) -> QaFormOut:
        return _form_out(qa_forms.form_name(campaign), qa_forms.form_for(campaign))

    @router.post("/api/recordings/{recording_id}/qa", name="qa_score", status_code=201, response_model=QaScoreOut)
    async def score(recording_id: str, body: QaScoreIn, user: Writer) -> QaScoreOut:
        try:
            async with sessionmaker() as session, session.begin():
                row = await submit_score(
                    session,
                    recording_id,
                    scorer=user_name(user),
                    scores=body.scores,
                    forms=qa_forms,
                    now=clock(),
                    comments=body.comments,
                )
        except ScoreError as exc:
            raise _unprocessable(["body", *exc.field.split(".")], str(exc)) from None
        except QaError as exc:
            raise HTTPException(404, detail=str(exc)) from None
        return _score_out(row)

    @router.get("/api/qa/report", name="qa_report", response_model=list[AgentQaOut])
    async def report(
        _user: Reader,
        campaign: str | None = None,
        agent: str | None = None,
        since: date | None = None,
        until: date | None = None,
    ) -> list[AgentQaOut]:
        start, end = day_bounds(since, until)
        async with sessionmaker() as session:
            rows = await qa_report(session, since=start, until=end, campaign=campaign or None, agent_id=agent or None)
        return [
            AgentQaOut(agent_id=r.agent_id, count=r.count, average=r.average, lowest=r.lowest, highest=r.highest)
            for r in rows
        ]

    @router.get("/api/surveys/report", name="survey_report", response_model=list[SurveyOut])
    async def surveys(
        _user: Reader,
        by: Literal["agent", "campaign"] = "agent",
        campaign: str | None = None,
        since: date | None = None,
        until: date | None = None,
    ) -> list[SurveyOut]:
        start, end = day_bounds(since, until)
        async with sessionmaker() as session:
            rows = await survey_report(session, by=by, since=start, until=end, campaign=campaign or None)
        return [
            SurveyOut(
                key=r.key,
                answers=r.answers,
                satisfied=r.satisfied,
                average=r.average,
                unsatisfied=r.unsatisfied,
                satisfied_rate=round(r.satisfied_rate, 4),
                mean=round(r.mean, 4),
            )
            for r in rows
        ]

    @router.get("/qa", name="qa_page", response_class=HTMLResponse, include_in_schema=False)
    async def page(request: Request, user: Reader) -> HTMLResponse:
        return templates.TemplateResponse(
            request,
            "qa.html",
            {
                "user_name": user_name(user),
                "csrf_token": getattr(user, "csrf", ""),
                "search_url": str(request.url_for("recordings_search")),
                "form_url": str(request.url_for("qa_form")),
                "report_url": str(request.url_for("qa_report")),
                "score_url": str(request.url_for("qa_score", recording_id="RECORDING_ID")),
            },
        )

    return router
