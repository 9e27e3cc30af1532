"""Pure media processors with fake legs and a fake clock: bridge rewrite, tap alignment, player pacing, mixer."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from telephony.media.bridge import Bridge
from telephony.media.leg import RtpHandler
from telephony.media.mixer import SupervisionMode, hears, mix
from telephony.media.player import Playout, load_source, tone
from telephony.media.tap import Tap
from telephony.media.wav import WavError, WavSink, read_wav
from telephony.rtp import g711
from telephony.rtp.dtmf import TelephoneEvent
from telephony.rtp.packet import RtpPacket, build_rtp
from telephony.rtp.stream import RtpSender
from telephony.sdp import MediaParams


class FakeLeg:
    def __init__(self, codec: str = "PCMU", dtmf_pt: int | None = 101, ssrc: int = 0xAAAA) -> None:
        pt = 0 if codec == "PCMU" else 8
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


def test_bridge_rewrites_onto_the_outgoing_stream_and_keeps_gaps() -> None:
    a, b = FakeLeg(ssrc=1), FakeLeg(ssrc=2)
    bridge = Bridge(a, b)
    for k in (0, 1, 3):  # packet 2 lost on the way in
        a.receive(build_rtp(0, 7000 + k, 900 + 160 * k, 0x1234, bytes([k]) * 160), 10.0 + 0.02 * k)
    seqs = [p.sequence_number for p in b.sent]
    assert seqs == [1000, 1001, 1003]
    assert [p.timestamp for p in b.sent] == [50_000, 50_160, 50_480]
    assert {p.ssrc for p in b.sent} == {2} and [p.marker for p in b.sent] == [True, False, False]
    assert b.sent[2].payload == bytes([3]) * 160
    # Re-bridge: a new source on leg a continues b's stream with a new talkspurt.
    a.receive(build_rtp(0, 5, 777, 0x9999, b"\x01" * 160), 11.0)
    last = b.sent[-1]
    assert last.sequence_number == 1004 and last.marker
    assert last.timestamp == (50_480 + round((11.0 - 10.06) * 8000)) & 0xFFFFFFFF
    bridge.stop()
    assert a.handler is None and b.handler is None


def test_bridge_transcodes_and_relays_dtmf_with_the_far_pt() -> None:
    a, b = FakeLeg("PCMU", dtmf_pt=101), FakeLeg("PCMA", dtmf_pt=96)
    Bridge(a, b)
    pcm = tone(440, 0.02, 0.5)
    a.receive(build_rtp(0, 1, 0, 5, g711.ulaw_encode(pcm)), 1.0)
    dtmf = TelephoneEvent(5, duration=160).to_bytes()
    a.receive(build_rtp(101, 2, 160, 5, dtmf), 1.02)
    a.receive(build_rtp(13, 3, 320, 5, b"\x40"), 1.04)  # comfort noise: dropped
    assert [p.payload_type for p in b.sent] == [8, 96]
    decoded = g711.alaw_decode(b.sent[0].payload).astype(int)
    assert np.abs(decoded - pcm).max() < 700
    assert b.sent[1].payload == dtmf
    b.receive(build_rtp(8, 1, 0, 6, g711.alaw_encode(pcm)), 1.0)
    assert a.sent[0].payload_type == 0 and len(a.sent[0].payload) == 160


def test_bridge_follows_renegotiated_codec() -> None:
    a, b = FakeLeg("PCMU"), FakeLeg("PCMU")
    Bridge(a, b)
    a.receive(build_rtp(0, 1, 0, 5, b"\xff" * 160), 1.0)
    b.params = MediaParams("192.0.2.1", 4000, 8, "PCMA", None)
    a.receive(build_rtp(0, 2, 160, 5, b"\xff" * 160), 1.02)
    assert b.sent[1].payload_type == 8 and b.sent[1].payload == b"\xd5" * 160


class Collector:
    def __init__(self) -> None:
        self.left: list[np.ndarray] = []
        self.right: list[np.ndarray] = []

    def __call__(self, left: np.ndarray, right: np.ndarray) -> None:
        assert len(left) == len(right) and len(left) % 160 == 0
        self.left.append(left)
        self.right.append(right)

    @property
    def left_all(self) -> np.ndarray:
        return np.concatenate(self.left)

    @property
    def right_all(self) -> np.ndarray:
        return np.concatenate(self.right)


def frame(value: int, codec: str = "PCMU") -> bytes:
    samples = np.full(160, value, dtype=np.int16)
    return g711.ulaw_encode(samples) if codec == "PCMU" else g711.alaw_encode(samples)


def test_tap_aligns_two_directions_and_fills_gaps_with_silence() -> None:
    out = Collector()
    tap = Tap(out, now=0.0, flush_interval=0.5, delay=0.1)
    for k in range(50):  # one second of both directions
        now = 0.02 * k + 0.001
        if k != 10:  # one lost packet on the left
            tap.feed(0, 1000 + 160 * k, 1, frame(1000), "PCMU", now)
        # The right side starts 200 ms later, sends A-law, and arrives reordered.
        if k >= 10:
            j = k - 10 if k < 12 else (k - 10) ^ 1
            tap.feed(1, 160 * j, 2, frame(-2000, "PCMA"), "PCMA", now)
    tap.close(1.0)
    left, right = out.left_all, out.right_all
    assert len(left) == len(right) == 8000
    assert np.all(left[1600:1760] == 0)  # the lost packet is silence, in its place
    assert np.all(left[:1600] == g711.ULAW_DECODE[frame(1000)[0]])
    assert np.all(right[:1600] == 0)
    assert np.all(right[1600:] == g711.ALAW_DECODE[frame(-2000, "PCMA")[0]])
    tap.feed(0, 0, 1, frame(5), "PCMU", 2.0)  # closed: ignored, nothing emitted
    assert sum(len(x) for x in out.left) == 8000


def test_tap_flushes_periodically_and_drops_very_late_packets() -> None:
    out = Collector()
    tap = Tap(out, now=100.0, flush_interval=0.5, delay=0.1, first_flush=100.5)
    for k in range(40):
        tap.feed(0, 160 * k, 1, frame(100), "PCMU", 100.0 + 0.02 * k)
    assert sum(len(x) for x in out.left) == 3200  # flushed at t=0.5 up to 0.4 s
    tap.feed(0, 160 * 3, 1, frame(100), "PCMU", 100.8)  # 0.74 s late: re-anchors instead of rewriting history
    tap.close(101.0)
    assert len(out.left_all) == len(out.right_all) and len(out.left_all) % 160 == 0


def test_taps_made_before_their_audio_flows_keep_their_flushes_spread() -> None:
    # 200 calls set up their taps together, and the audio starts 10 s later on all of them
    # (the same 20 ms cadence). Each tap must keep its own phase, not all flush on the first
    # packet and then in the same instant every interval.
    now = 0.0
    flushes: list[float] = []

    def consumer(left: object, right: object) -> None:
        flushes.append(now)

    taps = [Tap(consumer, now=0.0, flush_interval=0.5, delay=0.1) for _ in range(200)]
    for k in range(150):  # 3 s of audio from t = 10 s
        now = 10.0 + 0.02 * k
        for tap in taps:
            tap.feed(0, 160 * k, 1, frame(100), "PCMU", now)
    assert len(flushes) >= 200 * 5
    per_slot = Counter(round(t / 0.02) for t in flushes)
    # Spread evenly, a 20 ms slot holds 200 * 0.02 / 0.5 = 8 flushes; all in one would be 200.
    assert max(per_slot.values()) <= 40, sorted(per_slot.values())[-5:]


def test_tap_keeps_each_packets_codec_across_a_renegotiation() -> None:
    out = Collector()
    tap = Tap(out, now=0.0, flush_interval=10.0, delay=0.2)
    ulaw, alaw = frame(1000), frame(1000, "PCMA")
    for k in range(20):  # 400 ms of u-law, then A-law; the last u-law packet arrives after the switch
        if k != 9:
            tap.feed(0, 160 * k, 1, ulaw if k < 10 else alaw, "PCMU" if k < 10 else "PCMA", 0.02 * k)
    tap.feed(0, 160 * 9, 1, ulaw, "PCMU", 0.34)  # 160 ms late: within the 200 ms delay
    tap.close(0.4)
    left = out.left_all
    assert len(left) == 3200
    assert np.all(left[:1600] == g711.ULAW_DECODE[ulaw[0]])
    assert np.all(left[1600:] == g711.ALAW_DECODE[alaw[0]])


def test_tap_places_irregular_packets_like_regular_ones() -> None:
    """Packets of 10, 20 and 30 ms, some reordered: each sample lands in place."""
    out = Collector()
    tap = Tap(out, now=0.0, flush_interval=0.1, delay=0.1, first_flush=0.1)  # nothing arrives late
    rng = np.random.default_rng(7)
    pos, packets = 0, []
    while pos < 3500:
        size = int(rng.choice([80, 160, 240]))
        packets.append((pos, rng.integers(0, 256, size, dtype=np.uint8).tobytes()))
        pos += size + int(rng.choice([0, 0, 0, 160]))  # and a lost 20 ms now and then
    expected = np.zeros(4000, dtype=np.int16)
    for pos, codes in packets:
        expected[pos : pos + len(codes)] = g711.ULAW_DECODE[np.frombuffer(codes, dtype=np.uint8)]
    order = list(range(len(packets)))
    for i in range(1, len(order) - 1, 5):
        order[i], order[i + 1] = order[i + 1], order[i]
    for i in order:
        pos, codes = packets[i]
        tap.feed(0, 1000 + pos, 1, codes, "PCMU", pos / 8000 + 0.01)
    tap.close(0.5)
    assert np.array_equal(out.left_all, expected)


def test_bridge_tap_follows_attach_and_detach() -> None:
    a, b = FakeLeg(), FakeLeg()
    bridge = Bridge(a, b)
    out = Collector()
    tap = Tap(out, now=0.0, flush_interval=10.0, delay=0.0)
    bridge.attach_tap(tap)
    assert bridge.tap is tap
    a.receive(build_rtp(0, 1, 0, 5, frame(100)), 0.0)
    b.receive(build_rtp(0, 1, 0, 6, frame(-100)), 0.0)
    bridge.attach_tap(None)
    a.receive(build_rtp(0, 2, 160, 5, frame(100)), 0.02)  # not tapped any more
    tap.close(0.04)
    assert np.all(out.left_all[:160] == g711.ULAW_DECODE[frame(100)[0]]) and np.all(out.left_all[160:] == 0)
    assert np.all(out.right_all[:160] == g711.ULAW_DECODE[frame(-100)[0]])
    assert len(b.sent) == 2 and len(a.sent) == 1


def test_player_pacing_timestamps_marker_and_loop() -> None:
    pcm = tone(1000, 0.05)  # 400 samples -> 3 frames, the last padded with silence
    playout = Playout(pcm, "PCMA", start=10.0, timestamp=1000, loop=False)
    assert len(playout.frames) == 3 and playout.frames[2][80:] == b"\xd5" * 80
    assert playout.next_deadline == 10.0
    first = playout.due(10.0)
    assert [(ts, m) for _, ts, m in first] == [(1000, True)]
    assert playout.due(10.019) == []
    assert playout.next_deadline == pytest.approx(10.02)
    rest = playout.due(10.5)
    assert [(ts, m) for _, ts, m in rest] == [(1160, False), (1320, False)]
    assert playout.finished and playout.next_deadline is None

    looping = Playout(pcm, "PCMU", start=0.0, timestamp=0, loop=True, max_burst=5)
    burst = looping.due(1.0)  # a 1 s stall: at most 5 frames, then the schedule shifts
    assert [ts for _, ts, _ in burst] == [0, 160, 320, 480, 640]
    assert burst[3][0] == looping.frames[0]
    assert looping.next_deadline == pytest.approx(1.02)
    looping.stop()
    assert looping.due(5.0) == [] and looping.finished


def test_tone_and_sources(tmp_path: Path) -> None:
    beep = tone(400, 1.0, 0.5)
    assert beep.dtype == np.int16 and len(beep) == 8000
    assert abs(int(beep.max()) - 16384) < 10
    spectrum = np.abs(np.fft.rfft(beep))
    assert int(np.argmax(spectrum)) == 400  # 1 Hz bins over one second
    with pytest.raises(ValueError, match="fraction"):
        tone(400, 1, amplitude=2)
    with pytest.raises(TypeError, match="int16"):
        load_source(np.zeros(10, dtype=np.float64))


def test_wav_read_pcm_ulaw_alaw_and_sink(tmp_path: Path) -> None:
    import wave

    pcm = tone(600, 0.1, 0.4)
    path = tmp_path / "p.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(pcm.tobytes())
    assert np.array_equal(read_wav(path), pcm)
    # A hand-made u-law WAV (format tag 7), as sox -e u-law writes it.
    codes = g711.ulaw_encode(pcm)
    fmt = (7).to_bytes(2, "little") + (1).to_bytes(2, "little") + (8000).to_bytes(4, "little")
    fmt += (8000).to_bytes(4, "little") + (1).to_bytes(2, "little") + (8).to_bytes(2, "little")
    body = b"WAVE" + b"fmt " + len(fmt).to_bytes(4, "little") + fmt + b"data" + len(codes).to_bytes(4, "little") + codes
    ulaw_path = tmp_path / "u.wav"
    ulaw_path.write_bytes(b"RIFF" + len(body).to_bytes(4, "little") + body)
    assert np.array_equal(read_wav(ulaw_path), g711.ulaw_decode(codes))
    alaw_path = tmp_path / "a.wav"
    alaw_path.write_bytes(ulaw_path.read_bytes().replace(b"\x07\x00\x01\x00", b"\x06\x00\x01\x00", 1))
    assert np.array_equal(read_wav(alaw_path), g711.alaw_decode(codes))
    with wave.open(str(tmp_path / "s.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(pcm.tobytes())
    with pytest.raises(WavError, match="sox"):
        read_wav(tmp_path / "s.wav")

    sink = WavSink(tmp_path / "rec.wav")
    sink(pcm[:160], -pcm[:160])
    sink.close()
    with wave.open(str(tmp_path / "rec.wav"), "rb") as w:
        assert (w.getnchannels(), w.getframerate(), w.getnframes()) == (2, 8000, 160)
        stereo = np.frombuffer(w.readframes(160), dtype=np.int16).reshape(-1, 2)
    assert np.array_equal(stereo[:, 0], pcm[:160]) and np.array_equal(stereo[:, 1], -pcm[:160])


def test_mixer_rules() -> None:
    assert hears("listen", "customer") == {"agent"}
    assert "supervisor" not in hears("listen", "agent")
    assert hears("whisper", "agent") == {"customer", "supervisor"}
    assert "supervisor" not in hears("whisper", "customer")
    assert hears(SupervisionMode.BARGE, "customer") == {"agent", "supervisor"}
    with pytest.raises(ValueError, match="listen, whisper, barge"):
        hears("spy", "agent")


def test_mix_sums_with_saturation_and_treats_missing_as_silence() -> None:
    c = np.full(160, 30000, dtype=np.int16)
    a = np.full(160, 10000, dtype=np.int16)
    s = np.full(160, -500, dtype=np.int16)
    out = mix({"customer": c, "agent": a, "supervisor": s}, "barge")
    assert np.all(out["customer"] == 9500)
    assert np.all(out["agent"] == 29500)
    assert np.all(out["supervisor"] == 32767)  # 40000 clipped, not wrapped
    whisper = mix({"customer": c, "agent": None, "supervisor": s}, "whisper")
    assert np.all(whisper["customer"] == 0) and np.all(whisper["agent"] == 29500)
    listen = mix({"customer": -c, "agent": -c, "supervisor": s}, "listen")
    assert np.all(listen["supervisor"] == -32768) and np.all(listen["agent"] == -30000)
