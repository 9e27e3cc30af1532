"""Post-call satisfaction survey: "press 1 for satisfied, 2 for average, 3 for unsatisfied".

Runs on the customer's leg after the agent hangs up. :class:`SurveyMachine` is the pure dialogue
(same events and steps as the menus, see :mod:`ivr.steps`): the question may be barged into, an
invalid digit or silence asks again up to ``attempts`` times in all, a valid answer is thanked.
:func:`run_survey` drives it on a call and returns the answer, or None when there was none.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum
from typing import Any

import structlog

from ivr.steps import (
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

__all__ = ["SurveyAnswer", "SurveyDone", "SurveyMachine", "run_survey"]

_log = structlog.get_logger(__name__)


class SurveyAnswer(IntEnum):
    SATISFIED = 1
    AVERAGE = 2
    UNSATISFIED = 3


@dataclass(frozen=True, slots=True)
class SurveyDone:
    """The survey is over: ``answer`` is None when the caller gave none (silence, hang-up, bad digits)."""

    answer: SurveyAnswer | None
    attempts: int


class SurveyMachine:
    """The pure survey dialogue; ``handle(event)`` returns PlayPrompt, WaitForDigit or SurveyDone."""

    def __init__(
        self,
        *,
        attempts: int = 3,
        timeout: float = 5.0,
        question: str = "survey_question",
        thanks: str = "survey_thanks",
        invalid: str = "invalid",
        log: Any = None,
    ) -> None:
        if attempts < 1 or timeout <= 0:
            raise ValueError(f"survey attempts={attempts} must be >= 1 and timeout={timeout} > 0 seconds")
        self.max_attempts = attempts
        self.timeout = timeout
        self.question, self.thanks, self.invalid = question, thanks, invalid
        self.log = log if log is not None else _log
        self.attempts = 0
        self.answer: SurveyAnswer | None = None
        self._queue: deque[PlayPrompt] = deque()
        self._done = False
        self._exhausted = False
        self._step: object = None

    def handle(self, event: Event) -> object:
        if self._done:
            return self._step
        if isinstance(event, CallEnded):
            self._queue.clear()
            return self._finish()
        if isinstance(event, Started):
            if self._step is None:
                self._ask()
                return self._next(event.now)
            return self._step
        if isinstance(event, PromptFinished):
            return self._next(event.now) if isinstance(self._step, PlayPrompt) else self._step
        if isinstance(event, DigitPressed):
            step = self._step
            if isinstance(step, WaitForDigit) or (isinstance(step, PlayPrompt) and step.interruptible):
                return self._on_digit(event.digit, event.now)
            return step
        if isinstance(event, InputTimedOut):
            if not isinstance(self._step, WaitForDigit):
                return self._step
            self.log.info("survey.no_input", attempt=self.attempts)
            self._failed()
            return self._next(event.now)
        raise TypeError(f"SurveyMachine cannot handle {event!r}")

    def _ask(self) -> None:
        self.attempts += 1
        self._queue.append(PlayPrompt(self.question))

    def _on_digit(self, digit: str, now: datetime) -> object:
        self._queue.clear()
        if digit in "123":
            self.answer = SurveyAnswer(int(digit))
            self._queue.append(PlayPrompt(self.thanks, interruptible=False))
        else:
            self.log.info("survey.invalid_digit", digit=digit, attempt=self.attempts)
            self._failed(self.invalid)
        return self._next(now)

    def _failed(self, prompt: str | None = None) -> None:
        if self.attempts >= self.max_attempts:
            self._exhausted = True
            return
        if prompt:
            self._queue.append(PlayPrompt(prompt))
        self._ask()

    def _next(self, now: datetime) -> object:
        if self._queue:
            self._step = self._queue.popleft()
            return self._step
        if self.answer is not None or self._exhausted:
            return self._finish()
        self._step = WaitForDigit(self.timeout, now + timedelta(seconds=self.timeout))
        return self._step

    def _finish(self) -> SurveyDone:
        self._done = True
        done = SurveyDone(self.answer, self.attempts)
        self._step = done
        self.log.info("survey.done", answer=None if self.answer is None else int(self.answer), attempts=self.attempts)
        return done


async def run_survey(
    call: CallLike,
    prompts: PromptSource,
    *,
    clock: Callable[[], datetime] = utc_now,
    attempts: int = 3,
    timeout: float = 5.0,
    hangup: bool = True,
    question: str = "survey_question",
    thanks: str = "survey_thanks",
    invalid: str = "invalid",
) -> SurveyAnswer | None:
    """Ask the survey on ``call``; hangs up afterwards unless ``hangup=False``.

    ``question``, ``thanks`` and ``invalid`` are prompt names (a queue's own wording, for example).
    """
    log = _log.bind(call_id=call.id)
    machine = SurveyMachine(
        attempts=attempts, timeout=timeout, question=question, thanks=thanks, invalid=invalid, log=log
    )
    done = await drive(call, machine, prompts, clock, log=log)
    assert isinstance(done, SurveyDone)
    if hangup and not call.ended:
        await call.hangup()
    return done.answer
