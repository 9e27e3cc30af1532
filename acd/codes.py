"""Agent DTMF codes: what an agent keys on the phone during a session, parsed into commands.

The scheme (every code starts with ``*``; ``#`` ends the variable-length ones)::

    *1                 ready (unpause, or end wrap-up early)
    *2<d>              pause with reason digit d (see PAUSE_REASONS; *20 is a plain "pause")
    *0                 hang up the customer (the agent's own leg stays up in nailed mode)
    *5<code>#          disposition code for the current or last call, 1-6 digits
    *6<YYMMDDHHMM>#    schedule a callback to the last customer at that local time
    *7                 record this call now (recording policy "on_demand"; resumes a paused one)
    *8                 pause the call's recording, or resume it (e.g. while a card number is read)
    *9                 log out (a nailed agent's leg is hung up too)
    *55                (dialled, not keyed in a call) log in; see ``LOGIN_CODE``

The parser is pure and clocked (h11 style): :meth:`CodeParser.feed` takes one digit and ``now``
(seconds) and returns a command, an :class:`InvalidCode` explaining what was wrong, or ``None``
while a code is incomplete. Digits that do not start with ``*`` are ignored (the agent talking to
the customer may press keys for an IVR on the far side). A code not finished within
``timeout_s`` of its last digit is dropped as invalid on the next digit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Final

__all__ = [
    "LOGIN_CODE",
    "PAUSE_REASONS",
    "AgentCommand",
    "CodeParser",
    "Disposition",
    "HangupCustomer",
    "InvalidCode",
    "Logout",
    "Pause",
    "Ready",
    "RecordingToggle",
    "ScheduleCallback",
    "StartRecording",
]

LOGIN_CODE: Final = "*55"

#: Pause reason by digit after ``*2``.
PAUSE_REASONS: Final[dict[str, str]] = {
    "0": "pause",
    "1": "break",
    "2": "lunch",
    "3": "training",
    "4": "meeting",
    "5": "coaching",
    "6": "admin",
    "7": "technical",
    "8": "personal",
    "9": "other",
}

_MAX_DISPOSITION = 6
_STAMP_LEN = 10  # YYMMDDHHMM


@dataclass(frozen=True, slots=True)
class Ready:
    """``*1``."""


@dataclass(frozen=True, slots=True)
class Pause:
    """``*2<d>``: pause with ``reason``."""

    reason: str


@dataclass(frozen=True, slots=True)
class HangupCustomer:
    """``*0``."""


@dataclass(frozen=True, slots=True)
class Disposition:
    """``*5<code>#``."""

    code: str


@dataclass(frozen=True, slots=True)
class ScheduleCallback:
    """``*6<YYMMDDHHMM>#``: ``at`` is timezone-aware (the parser's zone)."""

    at: datetime


@dataclass(frozen=True, slots=True)
class StartRecording:
    """``*7``."""


@dataclass(frozen=True, slots=True)
class RecordingToggle:
    """``*8``: pause the recording if it runs, resume it if it is paused."""


@dataclass(frozen=True, slots=True)
class Logout:
    """``*9``."""


@dataclass(frozen=True, slots=True)
class InvalidCode:
    """The keyed sequence is not a code; ``why`` says what is expected instead."""

    keyed: str
    why: str


AgentCommand = (
    Ready | Pause | HangupCustomer | Disposition | ScheduleCallback | StartRecording | RecordingToggle | Logout
)


class CodeParser:
    """Collects one agent's digits into commands; one parser per agent session."""

    def __init__(self, zone: tzinfo, *, timeout_s: float = 5.0) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s={timeout_s} must be > 0 seconds")
        self.zone = zone
        self.timeout_s = timeout_s
        self._buf = ""
        self._last = 0.0

    @property
    def pending(self) -> str:
        """Digits of an unfinished code."""
        return self._buf

    def feed(self, digit: str, now: float) -> AgentCommand | InvalidCode | None:
        """One digit in; a command or an InvalidCode when a code is complete, else None."""
        if len(digit) != 1 or digit not in "0123456789*#ABCD":
            raise ValueError(f"{digit!r} is not a DTMF digit (0-9, *, #, A-D)")
        stale = None
        if self._buf and now - self._last > self.timeout_s:
            stale = InvalidCode(self._buf, f"code not finished within {self.timeout_s:g} s; start again with *")
            self._buf = ""
        self._last = now
        if not self._buf:
            if digit == "*":
                self._buf = "*"
            return stale
        self._buf += digit
        result = self._parse(self._buf)
        if result is not None:
            self._buf = ""
        return result

    def _parse(self, buf: str) -> AgentCommand | InvalidCode | None:
        if len(buf) < 2:
            return None
        op, rest = buf[1], buf[2:]
        if op == "1" and not rest:
            return Ready()
        if op == "0" and not rest:
            return HangupCustomer()
        if op == "9" and not rest:
            return Logout()
        if op == "7" and not rest:
            return StartRecording()
        if op == "8" and not rest:
            return RecordingToggle()
        if op == "2":
            if not rest:
                return None
            reason = PAUSE_REASONS.get(rest)
            if reason is None:
                return InvalidCode(buf, "pause needs a reason digit 0-9 after *2, e.g. *21 for a break")
            return Pause(reason)
        if op in "56" and not rest:
            return None
        if op == "5":
            return self._disposition(buf, rest)
        if op == "6":
            return self._callback(buf, rest)
        return InvalidCode(
            buf,
            "unknown code; use *1 ready, *2<d> pause, *0 hang up, *5<code># disposition, "
            "*6<YYMMDDHHMM># callback, *7 record, *8 pause/resume recording, *9 log out",
        )

    @staticmethod
    def _disposition(buf: str, rest: str) -> AgentCommand | InvalidCode | None:
        if not rest.endswith("#"):
            if not rest.isdigit():
                return InvalidCode(buf, "a disposition code is digits ended by #, e.g. *542#")
            if len(rest) > _MAX_DISPOSITION:
                return InvalidCode(buf, f"a disposition code has at most {_MAX_DISPOSITION} digits, then #")
            return None
        code = rest[:-1]
        if not code.isdigit():
            return InvalidCode(buf, "a disposition code is digits ended by #, e.g. *542#")
        return Disposition(code)

    def _callback(self, buf: str, rest: str) -> AgentCommand | InvalidCode | None:
        if not rest.endswith("#"):
            if not rest.isdigit() or len(rest) > _STAMP_LEN:
                return InvalidCode(buf, "a callback time is YYMMDDHHMM then #, e.g. *62611231430# (23 Nov 2026 14:30)")
            return None
        stamp = rest[:-1]
        if len(stamp) != _STAMP_LEN or not stamp.isdigit():
            return InvalidCode(buf, "a callback time is YYMMDDHHMM (10 digits) then #, e.g. *62611231430#")
        try:
            at = datetime.strptime(stamp, "%y%m%d%H%M").replace(tzinfo=self.zone)
        except ValueError:
            return InvalidCode(buf, f"{stamp} is not a valid date and time (YYMMDDHHMM)")
        return ScheduleCallback(at)
