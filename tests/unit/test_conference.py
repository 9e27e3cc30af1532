"""The supervision mixer with fake legs and a fake clock: who hears whom, stream continuity,
jitter, cross-fades, DTMF relay, stalls and the hand-back to the bridge. No sockets, no sleeping."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable

import numpy as np
import pytest

from telephony.media.bridge import Bridge
from telephony.media.conference import FRAME_SECONDS, Conference
from telephony.media.leg import RtpHandler
from telephony.media.mixer import gain_matrix
from telephony.media.player import tone
from telephony.media.tap import Tap
from telephony.rtp import g711
from telephony.rtp.g711 import Pcm16
from telephony.rtp.packet import RtpPacket, build_rtp
from telephony.rtp.stream import RtpSender
from telephony.sdp import MediaParams

FREQ = {"customer": 500.0, "agent": 1100.0, "supervisor": 1750.0}
AMPLITUDE = 0.2  # of full scale: three tones together stay far from clipping
PRESENT = 0.5 * AMPLITUDE * 32767
ABSENT = 0.02 * AMPLITUDE * 32767  # G.711 intermodulation of the others stays well under this
T0 = 1000.0


class FakeTimer:
    def __init__(self, when: float, callback: Callable[[], object]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def __lt__(self, other: FakeTimer) -> bool:
        return self.when < other.when


class FakeClock:
    """An event loop's clock and ``call_at``; :meth:`advance_to` runs what falls due."""

    def __init__(self, now: float = T0) -> None:
        self.now = now
        self.timers: list[FakeTimer] = []
        self.deadlines: list[float] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], object]) -> FakeTimer:
        timer = FakeTimer(when, callback)
        heapq.heappush(self.timers, timer)
        self.deadlines.append(when)
        return timer

    def advance_to(self, t: float, *, late: float = 0.0, stalled: bool = False) -> None:
        """Run timers due by ``t``; each fires ``late`` seconds after its deadline, or at ``t``
        when the loop was ``stalled`` (blocked) until then."""
        if stalled:
            self.now = t
        while self.timers and self.timers[0].when + late <= t:
            timer = heapq.heappop(self.timers)
            if not timer.cancelled:
                self.now = max(self.now, timer.when + late)
                timer.callback()
        self.now = max(self.now, t)


class FakeLeg:
    def __init__(self, codec: str = "PCMU", ssrc: int = 0xAAAA, dtmf_pt: int | None = 101) -> None:
        pt = 0 if codec == "PCMU" else 8
        self.codec = codec
        self.params: MediaParams | None = MediaParams("192.0.2.1", 4000, pt, codec, dtmf_pt)
        self.sender = RtpSender(ssrc=ssrc, seq=1000, timestamp=50_000)
        self.sent: list[RtpPacket] = []
        self.handler: RtpHandler | None = None
        self.rtp_out = self.send_rtp

    def send_rtp(self, datagram: bytes) -> None:
        self.sent.append(RtpPacket.parse(datagram))

    def set_rtp_handler(self, handler: RtpHandler | None) -> None:
        self.handler = handler

    def receive(self, data: bytes, now: float) -> None:
        assert self.handler is not None
        self.handler(data, now)

    def audio(self, start: int = 0) -> Pcm16:
        """What this leg's phone would play: the decoded audio packets sent since ``start``."""
        packets = [p for p in self.sent[start:] if p.payload_type == self.params_pt]
        return g711.DECODE_TABLES[self.codec][np.frombuffer(b"".join(p.payload for p in packets), dtype=np.uint8)]

    @property
    def params_pt(self) -> int:
        assert self.params is not None
        return self.params.payload_type


class Talker:
    """A phone streaming one tone: 20 ms G.711 packets with its own seq/timestamp/SSRC."""

    def __init__(self, freq: float, codec: str = "PCMU", ssrc: int = 0x1000, amplitude: float = AMPLITUDE) -> None:
        pcm = tone(freq, 2.0, amplitude)  # whole periods: loops seamlessly
        self.codes = g711.ENCODE_TABLES[codec][pcm.view(np.uint16)].tobytes()
        self.pt = 0 if codec == "PCMU" else 8
        self.ssrc = ssrc
        self.k = 0

    def packet(self, k: int | None = None) -> bytes:
        k = self.k if k is None else k
        self.k = k + 1
        at = (k * 160) % len(self.codes)
        return build_rtp(
            self.pt, (7000 + k) & 0xFFFF, (123_456 + 160 * k) & 0xFFFFFFFF, self.ssrc, self.codes[at : at + 160]
        )


def tone_amplitude(pcm: Pcm16, freq: float) -> float:
    """Amplitude (in sample units) of the component at ``freq``, from a Hann-windowed FFT."""
    window = np.hanning(len(pcm))
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64) * window))
    freqs = np.fft.rfftfreq(len(pcm), 1 / 8000)
    band = (freqs > freq - 15) & (freqs < freq + 15)
    return float(spectrum[band].max() * 2 / window.sum())


def heard(pcm: Pcm16) -> set[str]:
    """Which participants' tones are in ``pcm``; fails on anything between present and absent."""
    out = set()
    for who, freq in FREQ.items():
        level = tone_amplitude(pcm, freq)
        assert level > PRESENT or level < ABSENT, f"{who}'s tone at an ambiguous level {level:.0f}"
        if level > PRESENT:
            out.add(who)
    return out


class Rig:
    """Three fake legs, three talkers and a conference on a fake clock."""

    def __init__(self, mode: str = "listen", codecs: tuple[str, str, str] = ("PCMU", "PCMU", "PCMU")) -> None:
        self.clock = FakeClock()
        self.legs = {
            who: FakeLeg(codec, ssrc=0xC0 + i) for i, (who, codec) in enumerate(zip(FREQ, codecs, strict=True))
        }
        self.talkers = {
            who: Talker(FREQ[who], codec, ssrc=0x1000 + i)
            for i, (who, codec) in enumerate(zip(FREQ, codecs, strict=True))
        }
        self.tap_frames: list[tuple[Pcm16, Pcm16]] = []
        self.tap = Tap(lambda left, right: self.tap_frames.append((left, right)), now=T0, first_flush=1e9)
        self.conf = Conference(
            self.legs["customer"],
            self.legs["agent"],
            self.legs["supervisor"],
            mode=mode,
            clock=self.clock,
            tap=self.tap,
        )
        self.conf.start()
        self.t = T0

    def run(
        self, seconds: float, *, talkers: Iterable[str] = tuple(FREQ), jitter: float = 0.0, phase: float = 0.007
    ) -> None:
        """Each talker sends one packet every 20 ms (with up to ``jitter`` s of random delay)."""
        rng = np.random.default_rng(7)
        arrivals: list[tuple[float, str, bytes]] = []
        names = list(talkers)
        for k in range(round(seconds / FRAME_SECONDS)):
            for i, who in enumerate(names):
                at = self.t + k * FRAME_SECONDS + phase + 0.001 * i + float(rng.uniform(0, jitter))
                arrivals.append((at, who, self.talkers[who].packet()))
        arrivals.sort(key=lambda a: a[0])
        for at, who, data in arrivals:
            self.clock.advance_to(at)
            self.legs[who].receive(data, at)
        self.t += seconds
        self.clock.advance_to(self.t)

    def mark(self) -> dict[str, int]:
        return {who: len(leg.sent) for who, leg in self.legs.items()}

    def heard_since(self, mark: dict[str, int], skip_frames: int = 3) -> dict[str, set[str]]:
        """Who each participant heard since ``mark``, skipping the jitter buffer's fill-up."""
        return {who: heard(leg.audio(mark[who] + skip_frames)) for who, leg in self.legs.items()}


def test_who_hears_whom_in_each_mode() -> None:
    rig = Rig("listen")
    rig.run(0.1)
    mark = rig.mark()
    rig.run(1.0)
    assert rig.heard_since(mark) == {
        "customer": {"agent"},
        "agent": {"customer"},
        "supervisor": {"customer", "agent"},
    }
    rig.conf.set_mode("whisper")
    mark = rig.mark()
    rig.run(1.0)
    assert rig.heard_since(mark) == {
        "customer": {"agent"},
        "agent": {"customer", "supervisor"},
        "supervisor": {"customer", "agent"},
    }
    rig.conf.set_mode("barge")
    mark = rig.mark()
    rig.run(1.0)
    assert rig.heard_since(mark) == {
        "customer": {"agent", "supervisor"},
        "agent": {"customer", "supervisor"},
        "supervisor": {"customer", "agent"},
    }
    rig.conf.set_mode("listen")
    mark = rig.mark()
    rig.run(1.0)
    assert rig.heard_since(mark)["customer"] == {"agent"} and rig.heard_since(mark)["agent"] == {"customer"}
    assert rig.conf.stats()["customer_underruns"] <= 1


def test_mixed_codecs_are_decoded_and_encoded_per_leg() -> None:
    rig = Rig("barge", codecs=("PCMA", "PCMU", "PCMA"))
    rig.run(0.1)
    mark = rig.mark()
    rig.run(1.0)
    assert rig.heard_since(mark) == {
        "customer": {"agent", "supervisor"},
        "agent": {"customer", "supervisor"},
        "supervisor": {"customer", "agent"},
    }
    assert {p.payload_type for p in rig.legs["customer"].sent} == {8}
    assert {p.payload_type for p in rig.legs["agent"].sent} == {0}


def test_a_single_source_passes_through_bit_exact() -> None:
    # Decoding and re-encoding one G.711 source is lossless, so listen mode costs no quality.
    rig = Rig("listen")
    rig.run(0.5, talkers=["agent"])
    sent = b"".join(p.payload for p in rig.legs["customer"].sent)
    agent_codes = rig.talkers["agent"].codes
    start = sent.index(agent_codes[:160])
    assert sent[start:] == agent_codes[: len(sent) - start]


def test_outgoing_streams_stay_continuous_across_mode_switches() -> None:
    rig = Rig("listen")
    rig.run(0.3)
    rig.conf.set_mode("whisper")
    rig.run(0.3)
    rig.conf.set_mode("barge")
    rig.conf.set_mode("listen")  # two switches within one frame: one fade, from what was heard last
    rig.run(0.3)
    for who, leg in rig.legs.items():
        packets = leg.sent
        assert len(packets) == 45, who  # exactly one frame per 20 ms
        assert {p.ssrc for p in packets} == {leg.sender.ssrc}
        assert [p.sequence_number for p in packets] == list(range(1000, 1045))
        assert [p.timestamp for p in packets] == [50_000 + 160 * k for k in range(45)]
        assert [p.marker for p in packets] == [True] + [False] * 44
    # The frame clock is armed at start + n * 20 ms, never accumulated from the last firing.
    assert rig.clock.deadlines[:45] == [T0 + n * FRAME_SECONDS for n in range(45)]


def test_frames_keep_their_schedule_when_the_timer_fires_late() -> None:
    rig = Rig("listen")
    clock = rig.clock
    for k in range(20):
        clock.advance_to(T0 + 0.02 * k, late=0.013)  # every callback 13 ms late
    sent = rig.legs["supervisor"].sent
    assert [p.timestamp - 50_000 for p in sent] == [160 * k for k in range(len(sent))]
    assert clock.deadlines[: len(sent)] == [T0 + n * FRAME_SECONDS for n in range(len(sent))]


def test_a_timer_run_early_still_produces_its_frame() -> None:
    rig = Rig("listen")
    clock = rig.clock
    for k in range(10):
        clock.advance_to(T0 + 0.02 * k, late=-0.0005)  # the loop rounds deadlines by its resolution
    assert len(rig.legs["agent"].sent) == 10
    assert clock.deadlines[:11] == [T0 + n * FRAME_SECONDS for n in range(11)]


def test_a_stalled_loop_catches_up_a_little_and_skips_the_rest() -> None:
    rig = Rig("listen")
    rig.run(0.1)
    before = len(rig.legs["agent"].sent)
    rig.clock.advance_to(rig.t + 0.3, stalled=True)  # the loop was blocked for 300 ms
    burst = rig.legs["agent"].sent[before:]
    assert len(burst) == 5  # the newest frames, not a 15-packet flood
    assert rig.conf.skipped == 10
    # Timestamps still follow the wall clock: the skipped 200 ms show as a jump in the
    # timestamp with a new talkspurt, sequence numbers stay contiguous.
    assert burst[0].timestamp - rig.legs["agent"].sent[before - 1].timestamp == 160 * 11
    assert burst[0].marker and [p.sequence_number for p in burst] == list(
        range(burst[0].sequence_number, burst[0].sequence_number + 5)
    )


def test_sums_saturate_instead_of_wrapping() -> None:
    rig = Rig("barge")
    loud = g711.ulaw_encode(np.full(160, 30000, dtype=np.int16))
    t = rig.t
    for k in range(10):
        rig.clock.advance_to(t + 0.02 * k + 0.007)
        for who in ("customer", "supervisor"):
            rig.legs[who].receive(build_rtp(0, k, 160 * k, 0x70 + len(who), loud), rig.clock.now)
    audio = rig.legs["agent"].audio()
    assert audio.max() == g711.ULAW_DECODE.max() and audio.min() >= 0  # 60000 clipped, not wrapped negative


def test_mode_switch_fades_instead_of_clicking() -> None:
    rig = Rig("listen")
    # The supervisor holds a loud constant; the agent hears nothing until whisper fades it in.
    loud = g711.ulaw_encode(np.full(160, 12000, dtype=np.int16))
    leg = rig.legs["supervisor"]
    t = rig.t
    for k in range(30):
        rig.clock.advance_to(t + 0.02 * k + 0.007)
        leg.receive(build_rtp(0, k, 160 * k, 0x77, loud), rig.clock.now)
        if k == 15:
            rig.conf.set_mode("whisper")
    audio = rig.legs["agent"].audio().astype(np.int32)
    onset = int(np.flatnonzero(audio)[0])
    ramp = audio[onset - 1 : onset + 160]
    # Without the fade this would be one 0 -> 12000 step; with it, G.711-sized steps only.
    assert np.all(np.diff(ramp) >= 0) and np.abs(np.diff(ramp)).max() <= 512
    assert ramp[-1] > 11000 and audio[onset + 160 :].min() > 11000


def test_jitter_and_reordering_within_20_ms_lose_nothing() -> None:
    rig = Rig("listen")
    rig.run(2.0, talkers=["customer", "agent"], jitter=0.018)
    stats = rig.conf.stats()
    assert stats["customer_underruns"] == 0 and stats["agent_underruns"] == 0
    assert rig.heard_since(dict.fromkeys(FREQ, 0))["supervisor"] == {"customer", "agent"}


def test_lost_packet_is_silence_at_its_place() -> None:
    rig = Rig("listen")
    agent = rig.talkers["agent"]
    leg = rig.legs["agent"]
    t = rig.t
    for k in range(20):
        rig.clock.advance_to(t + 0.02 * k + 0.005)
        data = agent.packet(k)
        if k != 10:
            leg.receive(data, rig.clock.now)
    rig.clock.advance_to(t + 0.5)
    frames = [p.payload for p in rig.legs["customer"].sent]
    silent = [i for i, f in enumerate(frames) if f == bytes([0xFF]) * 160]
    # One frame of margin, then packets 0..9, the lost 10th as silence, then 11.. in order.
    first = frames.index(agent.codes[:160])
    assert frames[first : first + 10] == [agent.codes[160 * k : 160 * k + 160] for k in range(10)]
    assert first + 10 in silent
    assert frames[first + 11] == agent.codes[160 * 11 : 160 * 12]


def test_a_restarted_source_and_a_slower_sender_resynchronise() -> None:
    rig = Rig("listen")
    rig.run(0.5, talkers=["agent"])
    # The agent's phone restarts its stream (new SSRC, timestamps elsewhere): no gap in output.
    rig.talkers["agent"].ssrc = 0x5555
    rig.talkers["agent"].k = 90_000
    mark = rig.mark()
    rig.run(0.5, talkers=["agent"])
    assert rig.heard_since(mark)["customer"] == {"agent"}
    assert rig.conf.stats()["agent_resyncs"] == 2


def test_dtmf_between_customer_and_agent_is_relayed_supervisor_digits_are_not() -> None:
    rig = Rig("barge")
    rig.run(0.1)
    event = bytes([5, 0x0A, 0x01, 0x40])  # digit 5, duration 320
    end = bytes([5, 0x8A, 0x02, 0x80])
    mark = rig.mark()
    for i, payload in enumerate([event, end, end, end]):
        rig.legs["customer"].receive(build_rtp(101, 9000 + i, 777_000, 0x1001, payload, marker=i == 0), rig.t)
        rig.legs["supervisor"].receive(build_rtp(101, 100 + i, 5_000, 0x1003, payload), rig.t)
    relayed = [p for p in rig.legs["agent"].sent[mark["agent"] :] if p.payload_type == 101]
    assert [p.payload for p in relayed] == [event, end, end, end]
    assert len({p.timestamp for p in relayed}) == 1 and relayed[0].marker and not relayed[1].marker
    assert {p.ssrc for p in relayed} == {rig.legs["agent"].sender.ssrc}
    assert not [p for p in rig.legs["customer"].sent if p.payload_type == 101]
    rig.run(0.1)
    seqs = [p.sequence_number for p in rig.legs["agent"].sent]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # events share the stream's sequence


def test_tap_records_what_the_customer_says_and_hears() -> None:
    rig = Rig("barge")
    rig.run(1.0)
    rig.tap.close(rig.t)
    left = np.concatenate([f[0] for f in rig.tap_frames])
    right = np.concatenate([f[1] for f in rig.tap_frames])
    assert heard(left[800:]) == {"customer"}
    assert heard(right[800:]) == {"agent", "supervisor"}


def test_stop_hands_the_legs_back_and_the_bridge_continues_the_streams() -> None:
    rig = Rig("listen")
    customer, agent = rig.legs["customer"], rig.legs["agent"]
    rig.run(0.3)
    rig.conf.stop()
    assert all(leg.handler is None for leg in rig.legs.values())
    bridge = Bridge(customer, agent)
    last = agent.sent[-1]
    rig.t += 0.013
    customer.receive(rig.talkers["customer"].packet(), rig.t)
    first = agent.sent[-1]
    assert first.sequence_number == (last.sequence_number + 1) & 0xFFFF
    # The last frame went out at T0 + 0.3 s, 13 ms before: the timestamp follows that time.
    assert len(agent.sent) == 17 and first.timestamp - last.timestamp == round(0.013 * 8000)
    assert first.marker
    bridge.stop()
    rig.clock.advance_to(rig.t + 1)
    assert agent.sent[-1] is first  # the conference's clock is really stopped


def test_gain_matrix_matches_the_table() -> None:
    assert gain_matrix("listen").tolist() == [[0, 1, 0], [1, 0, 0], [1, 1, 0]]
    assert gain_matrix("whisper").tolist() == [[0, 1, 0], [1, 0, 1], [1, 1, 0]]
    assert gain_matrix("barge").tolist() == [[0, 1, 1], [1, 0, 1], [1, 1, 0]]


def test_bad_mode_and_shared_legs_are_refused() -> None:
    rig = Rig()
    with pytest.raises(ValueError, match="'spy' is not one of listen, whisper, barge"):
        rig.conf.set_mode("spy")
    leg = FakeLeg()
    with pytest.raises(ValueError, match="three different legs"):
        Conference(leg, leg, FakeLeg(), clock=FakeClock())


def test_reordered_packets_land_at_their_place() -> None:
    rig = Rig("listen")
    agent = rig.talkers["agent"]
    leg = rig.legs["agent"]
    order = [0, 2, 1, 4, 3, 6, 5, 8, 7, 9, 10, 11]
    t = rig.t
    for slot, k in enumerate(order):
        rig.clock.advance_to(t + 0.02 * slot + 0.005)
        leg.receive(agent.packet(k), rig.clock.now)
    rig.clock.advance_to(t + 0.4)
    frames = [p.payload for p in rig.legs["customer"].sent]
    first = frames.index(agent.codes[:160])
    assert frames[first : first + 12] == [agent.codes[160 * k : 160 * k + 160] for k in range(12)]
    assert rig.conf.stats()["agent_late"] == 0


def test_a_reinvite_that_changes_codec_or_holds_is_followed() -> None:
    rig = Rig("listen")
    rig.run(0.2)
    supervisor = rig.legs["supervisor"]
    # The supervisor's phone re-negotiates to PCMA: its stream continues, now A-law.
    supervisor.params = MediaParams("192.0.2.1", 4000, 8, "PCMA", 101)
    supervisor.codec = "PCMA"
    mark = rig.mark()
    rig.run(1.0, talkers=["customer", "agent"])
    after = supervisor.sent[mark["supervisor"] :]
    assert {p.payload_type for p in after} == {8}
    assert after[0].sequence_number == (supervisor.sent[mark["supervisor"] - 1].sequence_number + 1) & 0xFFFF
    assert heard(supervisor.audio(mark["supervisor"] + 3)) == {"customer", "agent"}
    # A leg without negotiated media (e.g. mid re-INVITE) is skipped, the others go on.
    supervisor.params = None
    mark = rig.mark()
    rig.run(0.2, talkers=["customer", "agent"])
    assert len(supervisor.sent) == mark["supervisor"] and len(rig.legs["agent"].sent) == mark["agent"] + 10
