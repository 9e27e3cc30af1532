"""Post-call survey: the pure SurveyMachine and run_survey on a fake call."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from structlog.testing import capture_logs

from ivr.steps import (
    CallEnded,
    DigitPressed,
    InputTimedOut,
    PlayPrompt,
    PromptFinished,
    Started,
    WaitForDigit,
    digit_reader,
)
from ivr.survey import SurveyAnswer, SurveyDone, SurveyMachine, run_survey
from ivr.testing import FakeCall, FakePrompts

NOW = datetime(2025, 6, 11, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize("digit", ["1", "2", "3"])
def test_each_answer(digit):
    m = SurveyMachine()
    assert m.handle(Started(NOW)) == PlayPrompt("survey_question")
    assert m.handle(PromptFinished(NOW)) == WaitForDigit(5.0, NOW + timedelta(seconds=5))
    assert m.handle(DigitPressed(digit, NOW)) == PlayPrompt("survey_thanks", interruptible=False)
    assert m.handle(PromptFinished(NOW)) == SurveyDone(SurveyAnswer(int(digit)), 1)


def test_invalid_then_valid_and_barge_in():
    m = SurveyMachine()
    m.handle(Started(NOW))
    assert m.handle(DigitPressed("7", NOW)) == PlayPrompt("invalid")  # barge-in on the question
    assert m.handle(PromptFinished(NOW)) == PlayPrompt("survey_question")
    assert m.handle(DigitPressed("2", NOW)) == PlayPrompt("survey_thanks", interruptible=False)
    assert m.handle(PromptFinished(NOW)) == SurveyDone(SurveyAnswer.AVERAGE, 2)


def test_silence_retries_then_no_answer():
    m = SurveyMachine(attempts=2, timeout=4)
    m.handle(Started(NOW))
    assert isinstance(m.handle(PromptFinished(NOW)), WaitForDigit)
    assert m.handle(InputTimedOut(NOW + timedelta(seconds=4))) == PlayPrompt("survey_question")
    assert isinstance(m.handle(PromptFinished(NOW)), WaitForDigit)
    assert m.handle(InputTimedOut(NOW + timedelta(seconds=8))) == SurveyDone(None, 2)


def test_bad_digits_exhaust_attempts():
    m = SurveyMachine(attempts=1)
    m.handle(Started(NOW))
    m.handle(PromptFinished(NOW))
    assert m.handle(DigitPressed("9", NOW)) == SurveyDone(None, 1)


def test_hangup_keeps_an_answer_already_given():
    m = SurveyMachine()
    m.handle(Started(NOW))
    m.handle(DigitPressed("3", NOW))
    assert m.handle(CallEnded(NOW)) == SurveyDone(SurveyAnswer.UNSATISFIED, 1)
    assert m.handle(DigitPressed("1", NOW)) == SurveyDone(SurveyAnswer.UNSATISFIED, 1)


async def test_run_survey_answer_and_hangup():
    prompts = FakePrompts()
    call = FakeCall(prompts, id="c-9", reactions={"survey_question": ["5", "1"]}, durations={"survey_question": 30})
    with capture_logs() as logs:
        answer = await asyncio.wait_for(run_survey(call, prompts), 5)
    assert answer is SurveyAnswer.SATISFIED
    assert call.played == ["survey_question", "invalid", "survey_question", "survey_thanks"]
    assert call.hung_up_by == "local"
    assert {"event": "survey.done", "answer": 1, "attempts": 2, "call_id": "c-9", "log_level": "info"} in logs


async def test_run_survey_silence_returns_none():
    prompts = FakePrompts()
    call = FakeCall(prompts)
    assert await asyncio.wait_for(run_survey(call, prompts, attempts=2, timeout=0.01), 5) is None
    assert call.played == ["survey_question", "survey_question"]


async def test_digits_pressed_between_stages_are_not_answers():
    prompts = FakePrompts()
    call = FakeCall(prompts, reactions={"survey_question": "2"}, durations={"survey_question": 30})
    first = asyncio.create_task(run_survey(call, prompts, hangup=False))
    assert await asyncio.wait_for(first, 5) is SurveyAnswer.AVERAGE
    call.press("1")  # pressed while nobody asks anything (e.g. during the conversation)
    while digit_reader(call).queue.empty():
        await asyncio.sleep(0)
    call.durations = {}
    second = await asyncio.wait_for(run_survey(call, prompts, attempts=1, timeout=0.01), 5)
    assert second is None


async def test_run_survey_with_a_queue_s_own_prompts():
    prompts = FakePrompts()
    call = FakeCall(prompts, reactions={"sales_survey": ["9", "3"]}, durations={"sales_survey": 30})
    answer = await asyncio.wait_for(
        run_survey(call, prompts, question="sales_survey", thanks="sales_thanks", invalid="sales_invalid"), 5
    )
    assert answer is SurveyAnswer.UNSATISFIED
    assert call.played == ["sales_survey", "sales_invalid", "sales_survey", "sales_thanks"]
