"""The agent DTMF code parser, driven digit by digit with a fake clock."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from acd.codes import (
    CodeParser,
    Disposition,
    HangupCustomer,
    InvalidCode,
    Logout,
    Pause,
    Ready,
    RecordingToggle,
    ScheduleCallback,
    StartRecording,
)

PARIS = ZoneInfo("Europe/Paris")


def keyed(parser: CodeParser, digits: str, now: float = 0.0) -> list[object]:
    out: list[object] = []
    for d in digits:
        r = parser.feed(d, now)
        if r is not None:
            out.append(r)
    return out


@pytest.mark.parametrize(
    ("digits", "expected"),
    [
        ("*1", Ready()),
        ("*21", Pause("break")),
        ("*20", Pause("pause")),
        ("*0", HangupCustomer()),
        ("*9", Logout()),
        ("*7", StartRecording()),
        ("*8", RecordingToggle()),
        ("*542#", Disposition("42")),
        ("*5123456#", Disposition("123456")),
        ("*62612011030#", ScheduleCallback(datetime(2026, 12, 1, 10, 30, tzinfo=PARIS))),
    ],
)
def test_codes(digits: str, expected: object) -> None:
    assert keyed(CodeParser(PARIS), digits) == [expected]


def test_digits_outside_codes_are_ignored_and_codes_follow_each_other() -> None:
    p = CodeParser(PARIS)
    assert keyed(p, "123#*1*22") == [Ready(), Pause("lunch")]
    assert p.pending == ""


@pytest.mark.parametrize(
    ("digits", "why"),
    [
        ("*4", "unknown code"),
        ("*3", "*7 record, *8 pause/resume recording"),
        ("*5#", "digits ended by #"),
        ("*51234567", "at most 6"),
        ("*6261301#", "10 digits"),
        ("*62613011030#", "not a valid date"),
        ("*2#", "reason digit"),
    ],
)
def test_invalid_codes_say_what_is_expected(digits: str, why: str) -> None:
    out = keyed(CodeParser(PARIS), digits)
    assert len(out) == 1 and isinstance(out[0], InvalidCode) and why in out[0].why


def test_unfinished_code_times_out() -> None:
    p = CodeParser(PARIS, timeout_s=2.0)
    assert p.feed("*", 0.0) is None and p.feed("5", 1.0) is None
    stale = p.feed("*", 3.5)
    assert isinstance(stale, InvalidCode) and stale.keyed == "*5"
    assert p.feed("1", 3.6) == Ready()


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="not a DTMF digit"):
        CodeParser(PARIS).feed("x", 0.0)
    with pytest.raises(ValueError, match="timeout_s"):
        CodeParser(PARIS, timeout_s=0)
