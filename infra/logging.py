"""structlog, configured once for the whole process, the way pypi's warehouse does it.

Modules only call ``structlog.get_logger()``. :func:`configure_logging` installs shared
processors, renders JSON lines when the stream is not a terminal (services, CI, files) and
readable coloured lines on a terminal, and routes the standard library's ``logging`` (used
by SQLAlchemy, Alembic, asyncio) through the same renderer. Context such as ``call_id``,
``campaign_id`` and ``agent_id`` is bound per asyncio task with :func:`bound_contextvars`
(a task copies the context of its creator, so bindings never leak between calls).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Awaitable
from typing import Literal, TextIO, TypeVar

import structlog
from structlog.contextvars import bind_contextvars, bound_contextvars, clear_contextvars, unbind_contextvars
from structlog.typing import Processor

__all__ = [
    "bind_contextvars",
    "bound_contextvars",
    "clear_contextvars",
    "configure_logging",
    "in_log_context",
    "unbind_contextvars",
]

_T = TypeVar("_T")


async def in_log_context(coro: Awaitable[_T], **context: object) -> _T:
    """Await ``coro`` with ``context`` (None values left out) bound for every log line it writes.

    Meant as the body of a task (``create_task(in_log_context(work(), call_id=...))``): the task
    has its own copy of the context, so the binding ends with it and never reaches other calls.
    """
    with bound_contextvars(**{k: v for k, v in context.items() if v is not None}):
        return await coro


_HANDLER_NAME = "dialer-structlog"

LogFormat = Literal["auto", "json", "console"]


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.stdlib.PositionalArgumentsFormatter(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]


def configure_logging(level: str = "info", stream: TextIO | None = None, fmt: LogFormat = "auto") -> None:
    """Configure structlog and stdlib logging; calling it again replaces the configuration."""
    out = stream if stream is not None else sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not (hasattr(out, "isatty") and out.isatty()))
    renderer: Processor
    if use_json:
        renderer = structlog.processors.JSONRenderer(ensure_ascii=False)
        exc_processors: list[Processor] = [
            structlog.processors.ExceptionRenderer(structlog.tracebacks.ExceptionDictTransformer(show_locals=False))
        ]
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=hasattr(out, "isatty") and out.isatty())
        exc_processors = []
    shared = _shared_processors()

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *exc_processors, renderer],
    )
    handler = logging.StreamHandler(out)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)

    root = logging.getLogger()
    for existing in list(root.handlers):
        if existing.get_name() == _HANDLER_NAME:
            root.removeHandler(existing)
    root.addHandler(handler)
    numeric = logging.getLevelName(level.upper())
    root.setLevel(numeric if isinstance(numeric, int) else logging.INFO)
    # SQLAlchemy's and aiosqlite's debug chatter is only useful when asked for explicitly.
    for noisy in ("aiosqlite", "asyncio", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(max(logging.INFO, root.level))

    processors: list[Processor] = [
        structlog.stdlib.filter_by_level,
        *shared,
        structlog.processors.UnicodeDecoder(),
        structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
    ]
    structlog.configure(
        processors=processors,
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
