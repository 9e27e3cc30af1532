"""The ACD's exceptions. Every message names what was wrong and what to do about it.

::

    AcdError
     ├── AcdConfigError (also ValueError)   a queue/agent/ACD setting is invalid
     ├── AcdStateError                      a command is illegal in the agent's (or callback's)
     │                                      current state; h11's LocalProtocolError analogue:
     │                                      the caller broke the rules, the core is unchanged
     ├── AssignmentError                    a supervisor's forced assignment was refused
     ├── AcdClockError                      ``now`` went backwards
     └── UnknownError (also LookupError)
          ├── UnknownAgentError
          ├── UnknownQueueError
          └── UnknownCallError
"""

from __future__ import annotations

__all__ = [
    "AcdClockError",
    "AcdConfigError",
    "AcdError",
    "AcdStateError",
    "AssignmentError",
    "UnknownAgentError",
    "UnknownCallError",
    "UnknownError",
    "UnknownQueueError",
]


class AcdError(Exception):
    """Base class of every error raised by the ACD core."""


class AcdConfigError(AcdError, ValueError):
    """A setting is invalid; the message names the setting and a valid example."""


class AcdStateError(AcdError):
    """A command is not allowed in the current state. Nothing was changed.

    ``subject`` is the agent (or callback) id, ``state`` its state and ``command`` what was tried.
    """

    def __init__(self, message: str, *, subject: str, state: str, command: str) -> None:
        super().__init__(message)
        self.subject = subject
        self.state = state
        self.command = command


class AssignmentError(AcdError):
    """A supervisor's forced assignment was refused; the message says why and what to do."""


class AcdClockError(AcdError):
    """``now`` was earlier than a time already seen; the ACD needs one monotonic clock."""


class UnknownError(AcdError, LookupError):
    """An id that the ACD does not know."""


class UnknownAgentError(UnknownError):
    pass


class UnknownQueueError(UnknownError):
    pass


class UnknownCallError(UnknownError):
    pass
