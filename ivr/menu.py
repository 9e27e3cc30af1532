"""DTMF menus from config: validated models, a pure clocked :class:`MenuMachine`, and :func:`run_menu`.

A menu plays a prompt and maps one DTMF digit (RFC 4733 events) to an action: go to another menu,
enter a queue, leave voicemail, request a callback, file a complaint (a queue with a callback SLA),
hang up, or repeat. Invalid digits and silence are retried ``max_retries`` times, then the menu's
``default`` action runs. A menu may have opening hours per weekday in a time zone, with public
holidays from the ``holidays`` package; outside them the caller hears the closed prompt and the
closed action runs.

Config, as TOML (actions are ``kind:argument`` strings or tables ``{action = "queue", queue = "sales"}``)::

    [ivr]
    entry = "main"
    [ivr.menus.main]
    greeting = "welcome"
    prompt = "menu_main"
    timeout = 5
    max_retries = 2
    default = "queue:support"
    options = { "1" = "queue:sales", "2" = "queue:support", "3" = "complaint:complaints",
                "4" = "callback:sales", "0" = "repeat", "9" = "goto:billing" }
    [ivr.menus.main.hours]
    timezone = "Europe/London"
    days = { "mon-fri" = "08:00-18:00", sat = "09:00-12:30" }
    holidays = "GB"
    closed_action = "voicemail"

The machine takes events carrying ``now`` (aware datetimes) and answers with steps
(:class:`~ivr.steps.PlayPrompt`, :class:`~ivr.steps.WaitForDigit`, or a :data:`MenuExit`); it never
touches asyncio, so navigation, retries and hours are tested with a fake clock.
"""

from __future__ import annotations

import functools
import re
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
import structlog
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    model_validator,
)

from ivr.steps import (
    DTMF_DIGITS,
    CallEnded,
    CallLike,
    DigitPressed,
    Event,
    InputTimedOut,
    PlayPrompt,
    PromptFinished,
    PromptSource,
    Started,
    WaitForDigit,
    drive,
    utc_now,
)

__all__ = [
    "Action",
    "CallbackAction",
    "CallerHungUp",
    "ComplaintAction",
    "GotoAction",
    "HangUp",
    "HangupAction",
    "Menu",
    "MenuConfigError",
    "MenuExit",
    "MenuMachine",
    "MenuResult",
    "MenuSet",
    "OpenHours",
    "QueueAction",
    "RepeatAction",
    "RequestCallback",
    "RouteToQueue",
    "RouteToVoicemail",
    "VoicemailAction",
    "check_prompts",
    "load_menus",
    "run_menu",
]

_log = structlog.get_logger(__name__)


class MenuConfigError(ValueError):
    """The IVR menu configuration is wrong; the message names the menu and option and the fix."""


# --------------------------------------------------------------------------- actions
class _Action(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: str | None = None
    """Played (not interruptible) before the action, e.g. ``callback_confirm``."""


class GotoAction(_Action):
    action: Literal["goto"] = "goto"
    menu: str


class QueueAction(_Action):
    action: Literal["queue"] = "queue"
    queue: str


class VoicemailAction(_Action):
    action: Literal["voicemail"] = "voicemail"
    box: str | None = None


class CallbackAction(_Action):
    action: Literal["callback"] = "callback"
    queue: str


class ComplaintAction(_Action):
    action: Literal["complaint"] = "complaint"
    queue: str
    sla_hours: float = Field(default=12.0, gt=0, le=24 * 30)


class HangupAction(_Action):
    action: Literal["hangup"] = "hangup"
    prompt: str | None = "goodbye"


class RepeatAction(_Action):
    action: Literal["repeat"] = "repeat"


_SHORTHAND: dict[str, tuple[str, str | None]] = {
    "goto": ("goto", "menu"),
    "menu": ("goto", "menu"),
    "queue": ("queue", "queue"),
    "voicemail": ("voicemail", "box"),
    "callback": ("callback", "queue"),
    "complaint": ("complaint", "queue"),
    "hangup": ("hangup", None),
    "repeat": ("repeat", None),
}
_SHORTHAND_HELP = "goto:MENU, queue:NAME, voicemail[:BOX], callback:QUEUE, complaint:QUEUE, hangup, repeat"


def _parse_action(value: object) -> object:
    """Turn the ``"queue:sales"`` shorthand into the table form; leave tables to the models."""
    if not isinstance(value, str):
        return value
    kind, _, argument = value.strip().partition(":")
    if kind not in _SHORTHAND:
        raise ValueError(f"unknown action {value!r}: use one of {_SHORTHAND_HELP}")
    action, field_name = _SHORTHAND[kind]
    if field_name is None:
        if argument:
            raise ValueError(f"action {kind!r} takes no argument (got {value!r})")
        return {"action": action}
    if not argument and action != "voicemail":
        raise ValueError(f"action {kind!r} needs an argument: {kind}:{field_name.upper()}")
    return {"action": action, field_name: argument} if argument else {"action": action}


# The shorthand is parsed outside the tagged union, which looks at the tag before anything else.
Action = Annotated[
    Annotated[
        GotoAction | QueueAction | VoicemailAction | CallbackAction | ComplaintAction | HangupAction | RepeatAction,
        Field(discriminator="action"),
    ],
    BeforeValidator(_parse_action),
]


# --------------------------------------------------------------------------- hours
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RANGE = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")


def _day_keys(key: str) -> list[int]:
    start, sep, end = key.strip().lower().partition("-")
    if start not in _WEEKDAYS or (sep and end not in _WEEKDAYS):
        raise ValueError(f"bad day {key!r} in hours.days: use mon..sun or a span such as 'mon-fri'")
    first, last = _WEEKDAYS.index(start), _WEEKDAYS.index(end) if sep else _WEEKDAYS.index(start)
    if last < first:
        raise ValueError(
            f"day span {key!r} runs backwards: write it as two entries, e.g. 'fri-sun' -> 'fri', 'sat-sun'"
        )
    return list(range(first, last + 1))


def _ranges(spec: str, key: str) -> tuple[tuple[int, int], ...]:
    if spec.strip().lower() == "closed":
        return ()
    out: list[tuple[int, int]] = []
    for part in spec.split(","):
        m = _RANGE.match(part.strip())
        if not m:
            raise ValueError(f"bad hours {part.strip()!r} for {key!r}: use 'HH:MM-HH:MM[, HH:MM-HH:MM]' or 'closed'")
        h1, m1, h2, m2 = (int(g) for g in m.groups())
        start, end = h1 * 3600 + m1 * 60, h2 * 3600 + m2 * 60
        if h1 > 23 or m1 > 59 or m2 > 59 or end > 24 * 3600:
            raise ValueError(f"bad time in {part.strip()!r} for {key!r}: hours 00-23 (24:00 allowed as an end)")
        if end <= start:
            raise ValueError(
                f"{part.strip()!r} for {key!r} ends before it starts: a range crossing midnight is two ranges, "
                "e.g. '22:00-24:00' on one day and '00:00-02:00' on the next"
            )
        out.append((start, end))
    return tuple(sorted(out))


@functools.lru_cache(maxsize=256)
def _holiday_calendar(country: str, subdivision: str | None, year: int) -> holidays.HolidayBase:
    return holidays.country_holidays(country, subdiv=subdivision, years=year)


class OpenHours(BaseModel):
    """Opening hours per weekday in ``timezone``; public holidays and listed dates are closed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: str
    days: dict[str, str] = Field(default_factory=dict)
    holidays: str | None = None
    """ISO 3166-1 country code whose public holidays are closed days, e.g. ``"GB"``."""
    holiday_subdivision: str | None = None
    closed_dates: list[date] = Field(default_factory=list)
    closed_prompt: str = "closed"
    closed_action: Action = Field(default_factory=lambda: HangupAction(prompt=None))

    _week: dict[int, tuple[tuple[int, int], ...]] = PrivateAttr(default_factory=dict)
    _zone: ZoneInfo | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _compile(self) -> OpenHours:
        try:
            self._zone = ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {self.timezone!r}: use an IANA name such as 'Europe/London'") from exc
        week: dict[int, tuple[tuple[int, int], ...]] = {}
        for key, spec in self.days.items():
            ranges = _ranges(spec, key)
            for day in _day_keys(key):
                if day in week:
                    raise ValueError(f"{_WEEKDAYS[day]} is given twice in hours.days (check {key!r})")
                week[day] = ranges
        self._week = week
        if self.holidays is not None:
            try:
                _holiday_calendar(self.holidays.upper(), self.holiday_subdivision, 2000)
            except NotImplementedError as exc:
                raise ValueError(
                    f"the holidays package has no calendar for {self.holidays!r}"
                    + (f" subdivision {self.holiday_subdivision!r}" if self.holiday_subdivision else "")
                    + ": use an ISO 3166-1 alpha-2 code such as 'GB', 'US', 'DE'"
                ) from exc
        if isinstance(self.closed_action, RepeatAction):
            raise ValueError("closed_action cannot be 'repeat': nothing is open to repeat; use voicemail or hangup")
        return self

    def is_open(self, now: datetime) -> bool:
        """Whether ``now`` (an aware instant) falls inside the opening hours."""
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError(f"now={now.isoformat()} is naive; pass an aware instant such as datetime.now(UTC)")
        assert self._zone is not None
        local = now.astimezone(self._zone)
        today = local.date()
        if today in self.closed_dates:
            return False
        if self.holidays is not None and today in _holiday_calendar(
            self.holidays.upper(), self.holiday_subdivision, today.year
        ):
            return False
        seconds = local.hour * 3600 + local.minute * 60 + local.second
        return any(start <= seconds < end for start, end in self._week.get(local.weekday(), ()))


# --------------------------------------------------------------------------- menus
def _check_digit(key: str) -> str:
    if len(key) != 1 or key not in DTMF_DIGITS:
        raise ValueError(f"{key!r} is not a single DTMF digit: use 0-9, *, # or A-D (quote it in TOML)")
    return key


Digit = Annotated[str, AfterValidator(_check_digit)]


class Menu(BaseModel):
    """One DTMF menu."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: str
    greeting: str | None = None
    options: dict[Digit, Action] = Field(default_factory=dict)
    timeout: float = Field(default=5.0, gt=0, le=120)
    max_retries: int = Field(default=2, ge=0, le=10)
    """Failures (invalid digit or no input) retried; the next one runs ``default``."""
    invalid_prompt: str | None = "invalid"
    no_input_prompt: str | None = "no_input"
    default: Action = Field(default_factory=HangupAction)
    hours: OpenHours | None = None

    @model_validator(mode="after")
    def _default_not_repeat(self) -> Menu:
        if isinstance(self.default, RepeatAction):
            raise ValueError("default cannot be 'repeat': after the last retry something else must happen")
        return self


class MenuSet(BaseModel):
    """All menus of an IVR and the one a call enters first."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    entry: str = "main"
    menus: dict[str, Menu]

    @model_validator(mode="after")
    def _references(self) -> MenuSet:
        problems: list[str] = []
        if self.entry not in self.menus:
            problems.append(f"entry menu {self.entry!r} is not defined; known menus: {', '.join(sorted(self.menus))}")
        for name, menu in self.menus.items():
            targets: list[tuple[str, Any]] = [(f"option {d!r}", a) for d, a in menu.options.items()]
            targets.append(("default", menu.default))
            if menu.hours is not None:
                targets.append(("hours.closed_action", menu.hours.closed_action))
                if isinstance(menu.hours.closed_action, GotoAction) and menu.hours.closed_action.menu == name:
                    problems.append(f"menu {name!r} hours.closed_action goes to itself; that would loop while closed")
            for where, action in targets:
                if isinstance(action, GotoAction) and action.menu not in self.menus:
                    problems.append(
                        f"menu {name!r} {where}: goto target {action.menu!r} is not a menu; "
                        f"known menus: {', '.join(sorted(self.menus))}"
                    )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def prompt_names(self) -> set[str]:
        """Every prompt the menus may play, to check against a prompt library at start-up."""
        names: set[str] = set()
        for menu in self.menus.values():
            names.update(n for n in (menu.prompt, menu.greeting, menu.invalid_prompt, menu.no_input_prompt) if n)
            actions = [*menu.options.values(), menu.default]
            if menu.hours is not None:
                names.add(menu.hours.closed_prompt)
                actions.append(menu.hours.closed_action)
            names.update(a.prompt for a in actions if a.prompt)
        return names


def _describe(loc: tuple[int | str, ...]) -> str:
    tags = {cls.model_fields["action"].default for cls in _ACTION_CLASSES}
    parts: list[str] = []
    items = list(loc)
    action_slot = False  # pydantic puts the union tag right after the place of an action
    while items:
        head = items.pop(0)
        if head == "[key]" or (action_slot and head in tags):
            action_slot = False
            continue
        if head == "menus" and items:
            parts.append(f"menu {items.pop(0)!r}")
        elif head == "options" and items:
            parts.append(f"option {items.pop(0)!r}")
            action_slot = True
            continue
        else:
            parts.append(str(head))
        action_slot = head in {"default", "closed_action"}
    return " ".join(parts) or "ivr"


def load_menus(data: Mapping[str, Any]) -> MenuSet:
    """Validate the ``[ivr]`` config table; :class:`MenuConfigError` lists every problem with its place."""
    try:
        return MenuSet.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            msg = str(err["msg"]).removeprefix("Value error, ")
            lines.append(f"{_describe(tuple(err['loc']))}: {msg}")
        raise MenuConfigError("invalid IVR menu config:\n  " + "\n  ".join(lines)) from None


def check_prompts(menus: MenuSet, has_prompt: Callable[[str], bool]) -> None:
    """Refuse to start with menus that name prompts the library does not have."""
    missing = sorted(n for n in menus.prompt_names() if not has_prompt(n))
    if missing:
        raise MenuConfigError(
            f"IVR menus use prompts that do not exist: {', '.join(missing)}; record them as 8 kHz mono WAV "
            "files in the prompt directory or add their text to the prompt generation"
        )


_ACTION_CLASSES = (
    GotoAction,
    QueueAction,
    VoicemailAction,
    CallbackAction,
    ComplaintAction,
    HangupAction,
    RepeatAction,
)


# --------------------------------------------------------------------------- exits
@dataclass(frozen=True, slots=True)
class RouteToQueue:
    """Put the caller in queue ``queue``; complaints carry the time the callback is due (SLA)."""

    queue: str
    complaint: bool = False
    callback_due: datetime | None = None


@dataclass(frozen=True, slots=True)
class RouteToVoicemail:
    box: str | None = None


@dataclass(frozen=True, slots=True)
class RequestCallback:
    """The caller asked to be called back by ``queue`` (keeping their place in line)."""

    queue: str


@dataclass(frozen=True, slots=True)
class HangUp:
    """The IVR ends the call (after its goodbye prompt)."""

    reason: str


@dataclass(frozen=True, slots=True)
class CallerHungUp:
    """The caller hung up inside the IVR."""


MenuExit = RouteToQueue | RouteToVoicemail | RequestCallback | HangUp | CallerHungUp


@dataclass(frozen=True, slots=True)
class MenuResult:
    """How a call left the IVR, and the way it went through it."""

    exit: MenuExit
    path: tuple[str, ...]
    digits: tuple[str, ...]
    closed: bool
    started_at: datetime
    ended_at: datetime

    @property
    def complaint(self) -> bool:
        return isinstance(self.exit, RouteToQueue) and self.exit.complaint


# --------------------------------------------------------------------------- machine
class MenuMachine:
    """The pure menu dialogue: events in (with ``now``), the next step out.

    Theory of operation: the machine keeps a queue of prompts to play and what comes after
    them: waiting for a digit, or an exit. ``PromptFinished`` plays the next queued prompt; a
    digit during an interruptible prompt drops the queue (barge-in) and is acted upon; a digit
    during a non-interruptible prompt waits as type-ahead. After an exit every event returns
    that exit again, so a late timer or digit cannot restart the dialogue.
    """

    def __init__(self, menus: MenuSet, *, log: Any = None) -> None:
        self.menus = menus
        self.log = log if log is not None else _log
        self.menu: str | None = None
        self.retries = 0
        self.result: MenuResult | None = None
        self._phase: Literal["idle", "playing", "waiting", "done"] = "idle"
        self._queue: deque[PlayPrompt] = deque()
        self._then: MenuExit | None = None
        self._typeahead: deque[str] = deque()
        self._step: object = None
        self._path: list[str] = []
        self._digits: list[str] = []
        self._closed = False
        self._hops = 0
        self._started_at: datetime | None = None

    @property
    def current(self) -> Menu:
        assert self.menu is not None, "the machine has not started"
        return self.menus.menus[self.menu]

    def handle(self, event: Event) -> object:
        """Feed one event; returns a PlayPrompt, a WaitForDigit, or a :data:`MenuExit`."""
        if self._phase == "done":
            return self._step
        if isinstance(event, CallEnded):
            self._queue.clear()
            self._then = CallerHungUp()
            return self._finish(event.now)
        if isinstance(event, Started):
            if self._phase != "idle":
                return self._step
            self._started_at = event.now
            self._enter(self.menus.entry, event.now)
            return self._next(event.now)
        if isinstance(event, PromptFinished):
            return self._next(event.now) if self._phase == "playing" else self._step
        if isinstance(event, DigitPressed):
            if self._phase == "waiting" or (
                self._phase == "playing" and isinstance(self._step, PlayPrompt) and self._step.interruptible
            ):
                return self._on_digit(event.digit, event.now)
            if self._phase == "playing":
                self._typeahead.append(event.digit)
            return self._step
        if isinstance(event, InputTimedOut):
            if self._phase != "waiting":
                return self._step  # a stale timer
            self.log.info("ivr.no_input", menu=self.menu, retries=self.retries + 1)
            self._fail(self.current.no_input_prompt, event.now)
            return self._next(event.now)
        raise TypeError(f"MenuMachine cannot handle {event!r}")

    # internals --------------------------------------------------------------------------
    def _next(self, now: datetime) -> object:
        if self._queue:
            self._phase = "playing"
            self._step = self._queue.popleft()
            return self._step
        if self._then is not None:
            return self._finish(now)
        if self._typeahead:
            return self._on_digit(self._typeahead.popleft(), now)
        self._phase = "waiting"
        timeout = self.current.timeout
        self._step = WaitForDigit(timeout, now + timedelta(seconds=timeout))
        return self._step

    def _on_digit(self, digit: str, now: datetime) -> object:
        self._queue.clear()
        self._digits.append(digit)
        self._hops = 0
        action = self.current.options.get(digit)
        if action is None:
            self.log.info("ivr.invalid_digit", menu=self.menu, digit=digit, retries=self.retries + 1)
            self._fail(self.current.invalid_prompt, now)
        else:
            self.log.info("ivr.option", menu=self.menu, digit=digit, action=action.action)
            self._perform(action, now)
        return self._next(now)

    def _fail(self, prompt: str | None, now: datetime) -> None:
        self.retries += 1
        menu = self.current
        if self.retries > menu.max_retries:
            self.log.info("ivr.retries_exhausted", menu=self.menu, default=menu.default.action)
            if prompt:
                self._queue.append(PlayPrompt(prompt, interruptible=False))
            self._perform(menu.default, now)
            return
        if prompt:
            self._queue.append(PlayPrompt(prompt))
        self._queue.append(PlayPrompt(menu.prompt))

    def _perform(self, action: Any, now: datetime) -> None:
        if action.prompt:
            self._queue.append(PlayPrompt(action.prompt, interruptible=False))
        if isinstance(action, GotoAction):
            self._enter(action.menu, now)
        elif isinstance(action, RepeatAction):
            self._queue.append(PlayPrompt(self.current.prompt))
        elif isinstance(action, QueueAction):
            self._then = RouteToQueue(action.queue)
        elif isinstance(action, ComplaintAction):
            due = now + timedelta(hours=action.sla_hours)
            self._then = RouteToQueue(action.queue, complaint=True, callback_due=due)
        elif isinstance(action, CallbackAction):
            self._then = RequestCallback(action.queue)
        elif isinstance(action, VoicemailAction):
            self._then = RouteToVoicemail(action.box)
        elif isinstance(action, HangupAction):
            self._then = HangUp("ivr")
        else:  # pragma: no cover - the config models admit nothing else
            raise TypeError(f"unknown menu action {action!r}")

    def _enter(self, name: str, now: datetime) -> None:
        self._hops += 1
        if self._hops > len(self.menus.menus) + 1:
            # Closed menus sending callers to each other without any input: never loop forever.
            self.log.error("ivr.menu_loop", menu=name, path=self._path[-self._hops :])
            self._queue.clear()
            self._then = HangUp("menu loop")
            return
        self.menu = name
        self.retries = 0
        self._then = None
        self._path.append(name)
        menu = self.current
        if menu.hours is not None and not menu.hours.is_open(now):
            self._closed = True
            self.log.info("ivr.closed", menu=name, at=now.isoformat())
            self._queue.append(PlayPrompt(menu.hours.closed_prompt, interruptible=False))
            self._perform(menu.hours.closed_action, now)
            return
        self.log.info("ivr.menu", menu=name)
        if menu.greeting:
            self._queue.append(PlayPrompt(menu.greeting))
        self._queue.append(PlayPrompt(menu.prompt))

    def _finish(self, now: datetime) -> object:
        assert self._then is not None
        self._phase = "done"
        self._step = self._then
        self.result = MenuResult(
            exit=self._then,
            path=tuple(self._path),
            digits=tuple(self._digits),
            closed=self._closed,
            started_at=self._started_at or now,
            ended_at=now,
        )
        self.log.info("ivr.exit", exit=type(self._then).__name__, path=self._path, digits="".join(self._digits))
        return self._step


# --------------------------------------------------------------------------- runner
async def run_menu(
    call: CallLike,
    menus: MenuSet,
    clock: Callable[[], datetime] = utc_now,
    *,
    prompts: PromptSource,
) -> MenuResult:
    """Run the IVR on an answered call; returns how the caller left it.

    A :class:`HangUp` exit hangs the call up here (after its goodbye prompt); the other exits
    are for the caller of this function (the ACD) to carry out.
    """
    log = _log.bind(call_id=call.id)
    machine = MenuMachine(menus, log=log)
    exit_step = await drive(call, machine, prompts, clock, log=log)
    if isinstance(exit_step, HangUp) and not call.ended:
        await call.hangup()
    assert machine.result is not None
    return machine.result
