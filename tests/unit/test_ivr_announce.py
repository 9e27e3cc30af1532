"""Hold audio: the pure announcement schedule and wording, and play_hold on a fake call."""

from __future__ import annotations

import asyncio

import pytest

from ivr.announce import AnnouncementPolicy, HoldSchedule, announcement_prompts, play_hold
from ivr.testing import FakeCall, FakePrompts


def test_schedule_first_then_every_interval_after_the_announcement_ends():
    schedule = HoldSchedule(AnnouncementPolicy(first_after=10, interval=30), start=100.0)
    assert not schedule.due(109.9) and schedule.delay(104.0) == 6.0
    assert schedule.due(110.0)
    schedule.announced(114.0)  # a four-second announcement
    assert schedule.next_at == 144.0 and not schedule.due(143.0) and schedule.due(144.0)
    assert schedule.delay(150.0) == 0.0


@pytest.mark.parametrize(
    ("position", "ewt", "expected"),
    [
        (1, 30.0, ["position_1", "ewt_less_than_minute"]),
        (3, 89.0, ["position_3", "ewt_minutes_1"]),
        (3, 90.0, ["position_3", "ewt_minutes_2"]),
        (20, 1200.0, ["position_20", "ewt_minutes_20"]),
        (21, 1300.0, ["position_many", "ewt_long"]),
        (5, None, ["position_5"]),
        (0, None, []),
    ],
)
def test_announcement_wording(position, ewt, expected):
    assert announcement_prompts(position, ewt, AnnouncementPolicy()) == expected


def test_policy_switches_and_limits():
    assert announcement_prompts(4, 300.0, AnnouncementPolicy(position=False)) == ["ewt_minutes_5"]
    assert announcement_prompts(4, 300.0, AnnouncementPolicy(ewt=False, position_limit=3)) == ["position_many"]
    with pytest.raises(ValueError, match="interval"):
        AnnouncementPolicy(interval=0)
    with pytest.raises(ValueError, match="no prompts beyond"):
        AnnouncementPolicy(position_limit=50)


async def test_play_hold_interleaves_music_and_announcements():
    prompts = FakePrompts()
    call = FakeCall(prompts)
    figures = iter([(3, 150.0), (2, 70.0), (1, 20.0)])
    policy = AnnouncementPolicy(first_after=0.02, interval=0.02, intro="please_hold")
    task = asyncio.create_task(play_hold(call, prompts, lambda: next(figures), policy))
    while call.played.count("hold_music") < 4:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert call.played[:9] == [
        "please_hold",
        "hold_music",
        "position_3",
        "ewt_minutes_3",
        "hold_music",
        "position_2",
        "ewt_minutes_1",
        "hold_music",
        "position_1",
    ]
    music = [p for p in call.plays if p.prompt == "hold_music"]
    assert all(p.loop for p in music) and all(p.outcome == "stopped" for p in music)


async def test_play_hold_returns_when_the_caller_hangs_up():
    prompts = FakePrompts()
    call = FakeCall(prompts, reactions={"hold_music": "hangup"})
    await asyncio.wait_for(play_hold(call, prompts, lambda: (1, None), AnnouncementPolicy(first_after=30)), 5)
    assert call.played == ["hold_music"]
