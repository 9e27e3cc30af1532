"""IVR menus: config validation, the pure MenuMachine on a fake clock, and run_menu on a fake call."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from structlog.testing import capture_logs

from ivr.menu import (
    CallerHungUp,
    HangUp,
    MenuConfigError,
    MenuMachine,
    OpenHours,
    RequestCallback,
    RouteToQueue,
    RouteToVoicemail,
    check_prompts,
    load_menus,
    run_menu,
)
from ivr.steps import CallEnded, DigitPressed, InputTimedOut, PlayPrompt, PromptFinished, Started, WaitForDigit
from ivr.testing import FakeCall, FakePrompts

# Wednesday 2025-06-11 10:00 in London (BST, UTC+1) -> 09:00 UTC.
OPEN = datetime(2025, 6, 11, 9, 0, tzinfo=UTC)
CONFIG = {
    "entry": "main",
    "menus": {
        "main": {
            "greeting": "welcome",
            "prompt": "menu_main",
            "timeout": 5,
            "max_retries": 2,
            "default": "queue:support",
            "options": {
                "1": "queue:sales",
                "2": "goto:billing",
                "3": "complaint:complaints",
                "4": {"action": "callback", "queue": "sales", "prompt": "callback_confirm"},
                "0": "repeat",
                "*": "hangup",
            },
            "hours": {
                "timezone": "Europe/London",
                "days": {"mon-fri": "08:00-18:00", "sat": "09:00-12:30"},
                "holidays": "GB",
                "closed_action": "voicemail:main",
            },
        },
        "billing": {"prompt": "menu_billing", "options": {"1": "queue:billing", "9": "goto:main"}},
    },
}


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@pytest.fixture
def menus():
    return load_menus(CONFIG)


def play_through(machine: MenuMachine, step: object, now: datetime) -> object:
    """Finish every prompt until the machine waits for input or exits; return that step."""
    while isinstance(step, PlayPrompt):
        step = machine.handle(PromptFinished(now))
    return step


# --------------------------------------------------------------------------- config
def test_shorthand_and_tables_parse(menus):
    main = menus.menus["main"]
    assert main.options["1"].action == "queue" and main.options["1"].queue == "sales"
    assert main.options["4"].prompt == "callback_confirm"
    assert main.options["3"].sla_hours == 12.0
    assert main.hours is not None and main.hours.closed_action.action == "voicemail"
    assert {"welcome", "menu_main", "menu_billing", "invalid", "closed", "goodbye"} <= menus.prompt_names()


def test_bad_goto_target_names_menu_and_option():
    bad = {"menus": {"main": {"prompt": "p", "options": {"5": "goto:nowhere"}}}}
    with pytest.raises(MenuConfigError, match=r"menu 'main' option '5': goto target 'nowhere' is not a menu"):
        load_menus(bad)


def test_unknown_action_and_bad_digit_are_reported_with_place():
    bad = {"menus": {"main": {"prompt": "p", "options": {"1": "dance:now", "12": "hangup"}}}}
    with pytest.raises(MenuConfigError) as err:
        load_menus(bad)
    text = str(err.value)
    assert "menu 'main' option '1'" in text and "unknown action 'dance:now'" in text
    assert "'12' is not a single DTMF digit" in text


def test_bad_hours_and_missing_entry():
    bad = {
        "entry": "start",
        "menus": {"main": {"prompt": "p", "hours": {"timezone": "Mars/Base", "days": {"mon": "9-5"}}}},
    }
    with pytest.raises(MenuConfigError) as err:
        load_menus(bad)
    assert "unknown time zone 'Mars/Base'" in str(err.value)
    with pytest.raises(MenuConfigError, match="entry menu 'start' is not defined"):
        load_menus({"entry": "start", "menus": {"main": {"prompt": "p"}}})
    with pytest.raises(ValueError, match="ends before it starts"):
        OpenHours(timezone="UTC", days={"mon": "22:00-02:00"})
    with pytest.raises(ValueError, match="no calendar for 'XX'"):
        OpenHours(timezone="UTC", holidays="XX")


def test_check_prompts_lists_missing(menus):
    with pytest.raises(MenuConfigError, match="menu_billing"):
        check_prompts(menus, lambda name: name != "menu_billing")
    check_prompts(menus, lambda name: True)


# --------------------------------------------------------------------------- hours
def test_open_hours_weekdays_zone_and_holiday(menus):
    hours = menus.menus["main"].hours
    assert hours is not None
    assert hours.is_open(OPEN)
    assert not hours.is_open(datetime(2025, 6, 11, 17, 0, tzinfo=UTC))  # 18:00 London: closed at the end
    assert hours.is_open(datetime(2025, 6, 11, 16, 59, tzinfo=UTC))
    assert hours.is_open(datetime(2025, 6, 14, 11, 0, tzinfo=UTC))  # Saturday 12:00 BST
    assert not hours.is_open(datetime(2025, 6, 15, 11, 0, tzinfo=UTC))  # Sunday
    assert not hours.is_open(datetime(2025, 12, 25, 10, 0, tzinfo=UTC))  # Christmas, a Thursday
    assert not hours.is_open(datetime(2025, 5, 26, 10, 0, tzinfo=UTC))  # Spring bank holiday, a Monday
    with pytest.raises(ValueError, match="naive"):
        hours.is_open(datetime(2025, 6, 11, 9, 0))


# --------------------------------------------------------------------------- machine
def test_navigation_to_a_queue(menus):
    m = MenuMachine(menus)
    assert m.handle(Started(OPEN)) == PlayPrompt("welcome")
    assert m.handle(PromptFinished(OPEN)) == PlayPrompt("menu_main")
    wait = m.handle(PromptFinished(OPEN))
    assert wait == WaitForDigit(5.0, OPEN + timedelta(seconds=5))
    assert m.handle(DigitPressed("2", OPEN)) == PlayPrompt("menu_billing")
    assert isinstance(m.handle(PromptFinished(OPEN)), WaitForDigit)
    assert m.handle(DigitPressed("1", OPEN)) == RouteToQueue("billing")
    assert m.result is not None
    assert m.result.path == ("main", "billing") and m.result.digits == ("2", "1") and not m.result.closed
    # After the exit nothing restarts the dialogue.
    assert m.handle(DigitPressed("9", OPEN)) == RouteToQueue("billing")


def test_invalid_digit_retries_then_default(menus):
    m = MenuMachine(menus)
    step = play_through(m, m.handle(Started(OPEN)), OPEN)
    with capture_logs() as logs:
        assert m.handle(DigitPressed("7", OPEN)) == PlayPrompt("invalid")
        assert m.handle(PromptFinished(OPEN)) == PlayPrompt("menu_main")
        assert isinstance(m.handle(PromptFinished(OPEN)), WaitForDigit)
        step = play_through(m, m.handle(DigitPressed("8", OPEN)), OPEN)
        assert isinstance(step, WaitForDigit) and m.retries == 2
        # Third failure with max_retries=2: the invalid prompt, then the default action.
        assert m.handle(DigitPressed("9", OPEN)) == PlayPrompt("invalid", interruptible=False)
        assert m.handle(PromptFinished(OPEN)) == RouteToQueue("support")
    assert [e["digit"] for e in logs if e["event"] == "ivr.invalid_digit"] == ["7", "8", "9"]


def test_no_input_timeout_then_default(menus):
    clock = Clock(OPEN)
    m = MenuMachine(menus)
    step = play_through(m, m.handle(Started(clock())), clock())
    for _ in range(2):
        assert isinstance(step, WaitForDigit)
        step = m.handle(InputTimedOut(clock.advance(step.timeout)))
        assert step == PlayPrompt("no_input")
        assert m.handle(PromptFinished(clock())) == PlayPrompt("menu_main")
        step = m.handle(PromptFinished(clock()))
    assert isinstance(step, WaitForDigit) and step.deadline == clock() + timedelta(seconds=5)
    assert m.handle(InputTimedOut(clock.advance(5))) == PlayPrompt("no_input", interruptible=False)
    assert m.handle(PromptFinished(clock())) == RouteToQueue("support")


def test_stale_timeout_while_playing_is_ignored(menus):
    m = MenuMachine(menus)
    assert m.handle(Started(OPEN)) == PlayPrompt("welcome")
    assert m.handle(InputTimedOut(OPEN)) == PlayPrompt("welcome")
    assert m.retries == 0


def test_valid_digit_resets_nothing_but_repeat_keeps_retries(menus):
    m = MenuMachine(menus)
    play_through(m, m.handle(Started(OPEN)), OPEN)
    play_through(m, m.handle(DigitPressed("5", OPEN)), OPEN)
    assert m.handle(DigitPressed("0", OPEN)) == PlayPrompt("menu_main")
    assert m.retries == 1


def test_barge_in_during_greeting_skips_the_rest(menus):
    m = MenuMachine(menus)
    assert m.handle(Started(OPEN)) == PlayPrompt("welcome")
    assert m.handle(DigitPressed("1", OPEN)) == RouteToQueue("sales")


def test_typeahead_during_uninterruptible_prompt(menus):
    m = MenuMachine(menus)
    play_through(m, m.handle(Started(OPEN)), OPEN)
    for d in "56":
        play_through(m, m.handle(DigitPressed(d, OPEN)), OPEN)
    assert m.handle(DigitPressed("7", OPEN)) == PlayPrompt("invalid", interruptible=False)
    assert m.handle(DigitPressed("1", OPEN)) == PlayPrompt("invalid", interruptible=False)  # kept, not acted on
    assert m.handle(PromptFinished(OPEN)) == RouteToQueue("support")


def test_complaint_sets_callback_sla(menus):
    m = MenuMachine(menus)
    play_through(m, m.handle(Started(OPEN)), OPEN)
    step = m.handle(DigitPressed("3", OPEN))
    assert step == RouteToQueue("complaints", complaint=True, callback_due=OPEN + timedelta(hours=12))
    assert m.result is not None and m.result.complaint


def test_callback_plays_confirmation_first(menus):
    m = MenuMachine(menus)
    play_through(m, m.handle(Started(OPEN)), OPEN)
    assert m.handle(DigitPressed("4", OPEN)) == PlayPrompt("callback_confirm", interruptible=False)
    assert m.handle(PromptFinished(OPEN)) == RequestCallback("sales")


def test_hangup_option_says_goodbye(menus):
    m = MenuMachine(menus)
    play_through(m, m.handle(Started(OPEN)), OPEN)
    assert m.handle(DigitPressed("*", OPEN)) == PlayPrompt("goodbye", interruptible=False)
    assert m.handle(PromptFinished(OPEN)) == HangUp("ivr")


@pytest.mark.parametrize(
    "when",
    [
        datetime(2025, 6, 11, 18, 0, tzinfo=UTC),  # 19:00 London, weekday evening
        datetime(2025, 12, 25, 10, 0, tzinfo=UTC),  # Christmas Day
    ],
)
def test_closed_branch(menus, when):
    m = MenuMachine(menus)
    assert m.handle(Started(when)) == PlayPrompt("closed", interruptible=False)
    assert m.handle(DigitPressed("1", when)) == PlayPrompt("closed", interruptible=False)  # no barge-in
    assert m.handle(PromptFinished(when)) == RouteToVoicemail("main")
    assert m.result is not None and m.result.closed


def test_closed_menus_pointing_at_each_other_do_not_loop():
    cfg = {
        "menus": {
            "main": {"prompt": "a", "hours": {"timezone": "UTC", "closed_action": "goto:other"}},
            "other": {"prompt": "b", "hours": {"timezone": "UTC", "closed_action": "goto:main"}},
        }
    }
    m = MenuMachine(load_menus(cfg))
    step = play_through(m, m.handle(Started(OPEN)), OPEN)
    assert step == HangUp("menu loop")


def test_caller_hangup_mid_menu(menus):
    m = MenuMachine(menus)
    m.handle(Started(OPEN))
    assert m.handle(CallEnded(OPEN + timedelta(seconds=3))) == CallerHungUp()
    assert m.result is not None and m.result.ended_at - m.result.started_at == timedelta(seconds=3)


# --------------------------------------------------------------------------- run_menu
async def test_run_menu_barge_in_stops_prompt(menus):
    prompts = FakePrompts()
    call = FakeCall(prompts, reactions={"menu_main": "1"}, durations={"menu_main": 30.0})
    with capture_logs() as logs:
        result = await asyncio.wait_for(run_menu(call, menus, Clock(OPEN), prompts=prompts), 5)
    assert result.exit == RouteToQueue("sales")
    assert [(p.prompt, p.outcome) for p in call.plays] == [("welcome", "finished"), ("menu_main", "stopped")]
    assert any(e["event"] == "ivr.exit" and e["call_id"] == "call-1" for e in logs)
    assert not call.ended  # the ACD takes it from here


async def test_run_menu_goodbye_and_hangup(menus):
    prompts = FakePrompts()
    call = FakeCall(prompts, reactions={"menu_main": "*"})
    result = await asyncio.wait_for(run_menu(call, menus, Clock(OPEN), prompts=prompts), 5)
    assert result.exit == HangUp("ivr")
    assert call.played == ["welcome", "menu_main", "goodbye"]
    assert call.hung_up_by == "local"


async def test_run_menu_timeout_goes_to_default():
    cfg = {"menus": {"main": {"prompt": "menu_main", "timeout": 0.01, "max_retries": 1, "default": "queue:any"}}}
    prompts = FakePrompts()
    call = FakeCall(prompts)
    result = await asyncio.wait_for(run_menu(call, load_menus(cfg), Clock(OPEN), prompts=prompts), 5)
    assert result.exit == RouteToQueue("any")
    assert call.played == ["menu_main", "no_input", "menu_main", "no_input"]


async def test_run_menu_caller_hangs_up(menus):
    prompts = FakePrompts()
    call = FakeCall(prompts, reactions={"menu_main": "hangup"}, durations={"menu_main": 30.0})
    result = await asyncio.wait_for(run_menu(call, menus, Clock(OPEN), prompts=prompts), 5)
    assert result.exit == CallerHungUp()
    assert call.hung_up_by == "remote"


async def test_run_menu_typeahead_survives_uninterruptible_prompt():
    cfg = {
        "menus": {
            "main": {"prompt": "menu_main", "options": {"1": {"action": "goto", "menu": "sub", "prompt": "notice"}}},
            "sub": {"prompt": "menu_sub", "options": {"2": "queue:two"}},
        }
    }
    prompts = FakePrompts()
    # "2" pressed during the uninterruptible notice is used by the next menu.
    call = FakeCall(
        prompts,
        reactions={"menu_main": "1", "notice": "2"},
        durations={"menu_main": 30.0, "notice": 0.05, "menu_sub": 30.0},
    )
    result = await asyncio.wait_for(run_menu(call, load_menus(cfg), Clock(OPEN), prompts=prompts), 5)
    assert result.exit == RouteToQueue("two")
    assert [(p.prompt, p.outcome) for p in call.plays] == [
        ("menu_main", "stopped"),
        ("notice", "finished"),
        ("menu_sub", "stopped"),
    ]
