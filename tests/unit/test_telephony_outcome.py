"""Final responses map to typed outcomes (telephony.sip.dialog.outcome_for_status)."""

from __future__ import annotations

import pytest

from telephony.sip.dialog import CallOutcome, outcome_for_status
from telephony.sip.message import Headers, Response


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (200, CallOutcome.ANSWERED),
        (486, CallOutcome.BUSY),
        (600, CallOutcome.BUSY),
        (603, CallOutcome.REJECTED),
        (488, CallOutcome.REJECTED),
        (480, CallOutcome.UNAVAILABLE),
        (408, CallOutcome.UNAVAILABLE),  # the far end's timeout, not our ring timeout (no_answer)
        (503, CallOutcome.UNAVAILABLE),
        (504, CallOutcome.UNAVAILABLE),
        (404, CallOutcome.NOT_FOUND),
        (487, CallOutcome.CANCELLED),
        (401, CallOutcome.FAILED),
        (500, CallOutcome.FAILED),
    ],
)
def test_status_maps_to_outcome(status: int, kind: CallOutcome) -> None:
    assert outcome_for_status(Response(status)).outcome is kind


def test_no_response_maps_to_no_answer() -> None:
    """no_answer is only ever ours: no status code produces it."""
    assert all(outcome_for_status(Response(s)).outcome is not CallOutcome.NO_ANSWER for s in range(200, 700))


def test_every_reason_value_is_kept_in_order() -> None:
    h = Headers()
    h.add("Reason", 'Q.850;cause=17;text="User busy, really"')
    h.add("Reason", "SIP;cause=486")
    out = outcome_for_status(Response(486, headers=h))
    assert out.reason_header == 'Q.850;cause=17;text="User busy, really", SIP;cause=486'
    assert outcome_for_status(Response(486)).reason_header is None
