"""Three-party mixing for supervision: who hears whom in listen, whisper and barge modes.

The rules are a table (:data:`HEARS`), as h11 keeps its transitions: in *listen* the
supervisor hears customer and agent and nobody hears the supervisor; in *whisper* the agent
also hears the supervisor, the customer does not; in *barge* everyone hears everyone.
:func:`mix` gives each participant the saturating int16 sum of the 20 ms frames it may
hear, and :func:`gain_matrix` the same table as a listener x source matrix for mixing all
listeners with one matrix product. Pure; pacing and decoding live with the caller.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from telephony.rtp.g711 import Pcm16

__all__ = [
    "HEARS",
    "PARTICIPANTS",
    "Participant",
    "SupervisionMode",
    "gain_matrix",
    "hears",
    "mix",
    "saturating_sum",
]

Participant = Literal["customer", "agent", "supervisor"]
PARTICIPANTS: Final[tuple[Participant, ...]] = ("customer", "agent", "supervisor")


class SupervisionMode(StrEnum):
    LISTEN = "listen"
    WHISPER = "whisper"
    BARGE = "barge"


HEARS: Final[dict[SupervisionMode, dict[Participant, frozenset[Participant]]]] = {
    SupervisionMode.LISTEN: {
        "customer": frozenset({"agent"}),
        "agent": frozenset({"customer"}),
        "supervisor": frozenset({"customer", "agent"}),
    },
    SupervisionMode.WHISPER: {
        "customer": frozenset({"agent"}),
        "agent": frozenset({"customer", "supervisor"}),
        "supervisor": frozenset({"customer", "agent"}),
    },
    SupervisionMode.BARGE: {
        "customer": frozenset({"agent", "supervisor"}),
        "agent": frozenset({"customer", "supervisor"}),
        "supervisor": frozenset({"customer", "agent"}),
    },
}


def hears(mode: SupervisionMode | str, listener: Participant) -> frozenset[Participant]:
    try:
        return HEARS[SupervisionMode(mode)][listener]
    except ValueError as exc:
        raise ValueError(f"supervision mode {mode!r} is not one of listen, whisper, barge") from exc


def gain_matrix(mode: SupervisionMode | str) -> npt.NDArray[np.float32]:
    """:data:`HEARS` for ``mode`` as a 3x3 matrix: row = listener, column = source, both in
    :data:`PARTICIPANTS` order; ``gain_matrix(mode) @ frames`` mixes every listener at once."""
    matrix = np.zeros((len(PARTICIPANTS), len(PARTICIPANTS)), dtype=np.float32)
    for row, listener in enumerate(PARTICIPANTS):
        for source in hears(mode, listener):
            matrix[row, PARTICIPANTS.index(source)] = 1.0
    return matrix


def saturating_sum(frames: list[Pcm16], samples: int) -> Pcm16:
    """Sum int16 frames in int32 and clip back to int16 (no wrap-around clicks)."""
    if not frames:
        return np.zeros(samples, dtype=np.int16)
    if len(frames) == 1:
        return frames[0]
    total = frames[0].astype(np.int32)
    for frame in frames[1:]:
        total += frame
    return np.clip(total, -32768, 32767).astype(np.int16)


def mix(
    frames: Mapping[Participant, Pcm16 | None], mode: SupervisionMode | str, *, samples: int = 160
) -> dict[Participant, Pcm16]:
    """What each participant hears this frame; a missing or None frame is silence."""
    result: dict[Participant, Pcm16] = {}
    for listener in PARTICIPANTS:
        sources = [f for who in hears(mode, listener) if (f := frames.get(who)) is not None]
        result[listener] = saturating_sum(sources, samples)
    return result
