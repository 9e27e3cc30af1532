"""Transaction timers and retransmission handling, driven by a fake clock (no sockets, no sleep)."""

from __future__ import annotations

from telephony.sip.builders import make_response, new_branch
from telephony.sip.message import Headers, Request, parse_message
from telephony.sip.transaction import (
    T1,
    T2,
    T4,
    AckReceived,
    Destination,
    RequestReceived,
    ResponseReceived,
    TransactionLayer,
    TransactionTimedOut,
    TxState,
)

UDP = Destination("udp", "127.0.0.1", 5070)
TCP = Destination("tcp", "127.0.0.1", 5070)


def make_request(method: str = "INVITE", branch: str | None = None, cseq: int = 1) -> Request:
    h = Headers()
    h.add("Via", f"SIP/2.0/UDP 127.0.0.1:5060;branch={branch or new_branch()}")
    h.add("From", "<sip:a@127.0.0.1>;tag=abc")
    h.add("To", "<sip:b@127.0.0.1>")
    h.add("Call-ID", "call-1@127.0.0.1")
    h.add("CSeq", f"{cseq} {method}")
    h.add("Max-Forwards", "70")
    return Request(method, "sip:b@127.0.0.1:5070", h)


def events(layer: TransactionLayer) -> list[object]:
    out = []
    while (ev := layer.next_event()) is not None:
        out.append(ev)
    return out


def step_until(layer: TransactionLayer, now: float, end: float) -> tuple[float, list[float]]:
    """Fire every timer up to ``end``; return the times at which a datagram was sent."""
    sent_at: list[float] = []
    while (t := layer.get_timer()) is not None and t <= end:
        now = t
        layer.handle_timer(now)
        sent_at += [now] * len(layer.datagrams_to_send())
    return now, sent_at


def test_timer_a_doubles_up_to_t2_then_timer_b_times_out() -> None:
    layer = TransactionLayer()
    tx = layer.send_request(make_request(), UDP, now=0.0)
    assert tx is not None and tx.state is TxState.CALLING
    assert len(layer.datagrams_to_send()) == 1
    assert layer.get_timer() == T1
    _, sent_at = step_until(layer, 0.0, 64 * T1)
    gaps = [b - a for a, b in zip([0.0, *sent_at], sent_at, strict=False)]
    assert gaps[:4] == [0.5, 1.0, 2.0, 4.0]
    assert all(g == T2 for g in gaps[3:]), gaps
    evs = events(layer)
    assert len(evs) == 1 and isinstance(evs[0], TransactionTimedOut) and evs[0].timer == "B"
    assert tx.terminated and layer.active == 0 and layer.get_timer() is None


def test_timer_f_times_out_non_invite_and_e_caps_at_t2() -> None:
    layer = TransactionLayer()
    layer.send_request(make_request("OPTIONS"), UDP, now=100.0)
    layer.datagrams_to_send()
    _, sent_at = step_until(layer, 100.0, 100.0 + 64 * T1)
    gaps = [round(b - a, 6) for a, b in zip([100.0, *sent_at], sent_at, strict=False)]
    assert gaps[:4] == [0.5, 1.0, 2.0, 4.0] and max(gaps) == T2
    (ev,) = events(layer)
    assert isinstance(ev, TransactionTimedOut) and ev.timer == "F"


def test_no_retransmissions_on_tcp() -> None:
    layer = TransactionLayer()
    layer.send_request(make_request(), TCP, now=0.0)
    layer.datagrams_to_send()
    assert layer.get_timer() == 64 * T1  # only Timer B


def test_timer_k_absorbs_response_retransmissions() -> None:
    layer = TransactionLayer()
    req = make_request("BYE")
    tx = layer.send_request(req, UDP, now=0.0)
    assert tx is not None
    ok = make_response(req.headers, 200, to_tag="x")
    layer.receive(parse_message(ok.to_bytes()), UDP, now=0.2)
    assert tx.state is TxState.COMPLETED
    assert [type(e) for e in events(layer)] == [ResponseReceived]
    layer.receive(parse_message(ok.to_bytes()), UDP, now=1.0)  # retransmitted 200
    assert events(layer) == []
    assert layer.get_timer() == 0.2 + T4
    layer.handle_timer(0.2 + T4)
    assert tx.terminated and layer.active == 0


def test_invite_non2xx_is_acked_by_the_transaction_and_timer_d() -> None:
    layer = TransactionLayer()
    req = make_request()
    tx = layer.send_request(req, UDP, now=0.0)
    layer.datagrams_to_send()
    busy = make_response(req.headers, 486, to_tag="t")
    layer.receive(parse_message(busy.to_bytes()), UDP, now=0.1)
    ((ack_bytes, _),) = layer.datagrams_to_send()
    ack = parse_message(ack_bytes)
    assert isinstance(ack, Request) and ack.method == "ACK" and ack.top_via.branch == req.top_via.branch
    layer.receive(parse_message(busy.to_bytes()), UDP, now=0.3)  # retransmitted 486 -> ACK again
    assert len(layer.datagrams_to_send()) == 1
    assert tx is not None and tx.state is TxState.COMPLETED
    assert layer.get_timer() == 0.1 + 32.0


def test_server_absorbs_retransmitted_invite_and_bye() -> None:
    layer = TransactionLayer()
    inv = make_request()
    data = inv.to_bytes()
    layer.receive(parse_message(data), UDP, now=0.0)
    (ev,) = events(layer)
    assert isinstance(ev, RequestReceived)
    trying = make_response(inv.headers, 100)
    layer.respond(ev.transaction, trying, now=0.0)
    assert len(layer.datagrams_to_send()) == 1
    layer.receive(parse_message(data), UDP, now=0.5)  # retransmission: 100 resent, TU not told
    assert events(layer) == []
    assert len(layer.datagrams_to_send()) == 1
    ok = make_response(inv.headers, 200, to_tag="t")
    layer.respond(ev.transaction, ok, now=0.6)
    layer.datagrams_to_send()
    layer.receive(parse_message(data), UDP, now=0.7)  # absorbed in Accepted
    assert events(layer) == []

    bye = make_request("BYE", cseq=2)
    layer.receive(parse_message(bye.to_bytes()), UDP, now=1.0)
    (bev,) = events(layer)
    assert isinstance(bev, RequestReceived)
    layer.respond(bev.transaction, make_response(bye.headers, 200), now=1.0)
    layer.datagrams_to_send()
    layer.receive(parse_message(bye.to_bytes()), UDP, now=1.5)
    assert events(layer) == []
    ((resent, _),) = layer.datagrams_to_send()
    assert resent.startswith(b"SIP/2.0 200")


def test_2xx_retransmitted_until_ack_then_timer_l_ends_it() -> None:
    layer = TransactionLayer()
    inv = make_request()
    layer.receive(parse_message(inv.to_bytes()), UDP, now=0.0)
    (ev,) = events(layer)
    assert isinstance(ev, RequestReceived)
    layer.respond(ev.transaction, make_response(inv.headers, 200, to_tag="t"), now=0.0)
    layer.datagrams_to_send()
    _, sent_at = step_until(layer, 0.0, 3.6)
    assert sent_at == [0.5, 1.5, 3.5]
    # The ACK for a 2xx is a new transaction with a NEW branch (§17.1.1.3): it must still stop
    # the retransmissions, matched by Call-ID and CSeq; otherwise Timer L ends the call at 32 s.
    ack = make_request("ACK")
    assert ack.top_via.branch != inv.top_via.branch
    layer.receive(ack, UDP, now=3.6)
    assert [type(e) for e in events(layer)] == [AckReceived]
    _, sent_at = step_until(layer, 3.6, 100.0)
    assert sent_at == []
    assert events(layer) == []  # no TransactionTimedOut(L): the call is not hung up
    assert ev.transaction.terminated


def test_unacknowledged_2xx_reports_timeout() -> None:
    layer = TransactionLayer()
    inv = make_request()
    layer.receive(parse_message(inv.to_bytes()), UDP, now=0.0)
    (ev,) = events(layer)
    assert isinstance(ev, RequestReceived)
    layer.respond(ev.transaction, make_response(inv.headers, 200, to_tag="t"), now=0.0)
    step_until(layer, 0.0, 64 * T1)
    evs = events(layer)
    assert len(evs) == 1 and isinstance(evs[0], TransactionTimedOut) and evs[0].timer == "L"


def test_non2xx_waits_for_ack_timer_g_h() -> None:
    layer = TransactionLayer()
    inv = make_request()
    layer.receive(parse_message(inv.to_bytes()), UDP, now=0.0)
    (ev,) = events(layer)
    assert isinstance(ev, RequestReceived)
    layer.respond(ev.transaction, make_response(inv.headers, 486, to_tag="t"), now=0.0)
    layer.datagrams_to_send()
    _, sent_at = step_until(layer, 0.0, 8.0)
    assert sent_at[:4] == [0.5, 1.5, 3.5, 7.5]
    ack = make_request("ACK", branch=inv.top_via.branch)
    layer.receive(ack, UDP, now=8.0)
    assert ev.transaction.state is TxState.CONFIRMED
    assert events(layer) == []  # ACK for non-2xx is absorbed by the transaction
    layer.handle_timer(8.0 + T4)
    assert ev.transaction.terminated


def test_invite_server_sends_100_only_if_tu_is_slow() -> None:
    layer = TransactionLayer()
    fast = make_request()
    layer.receive(parse_message(fast.to_bytes()), UDP, now=0.0)
    (ev,) = events(layer)
    assert isinstance(ev, RequestReceived)
    layer.respond(ev.transaction, make_response(fast.headers, 200, to_tag="t"), now=0.1)
    sent = [d for d, _ in layer.datagrams_to_send()]
    assert [d[:12] for d in sent] == [b"SIP/2.0 200 "]  # answered within 200 ms: no 100 (§17.2.1)

    layer = TransactionLayer()
    slow = make_request()
    layer.receive(parse_message(slow.to_bytes()), UDP, now=1.0)
    (ev2,) = events(layer)
    assert isinstance(ev2, RequestReceived)
    layer.handle_timer(1.2)
    ((trying, _),) = layer.datagrams_to_send()
    assert trying.startswith(b"SIP/2.0 100 Trying")
    layer.receive(parse_message(slow.to_bytes()), UDP, now=1.5)  # retransmission: the 100 again
    ((again, _),) = layer.datagrams_to_send()
    assert again.startswith(b"SIP/2.0 100")


def test_timer_h_ends_a_server_invite_whose_non2xx_is_never_acked() -> None:
    layer = TransactionLayer()
    inv = make_request()
    layer.receive(parse_message(inv.to_bytes()), UDP, now=10.0)
    (ev,) = events(layer)
    assert isinstance(ev, RequestReceived)
    layer.respond(ev.transaction, make_response(inv.headers, 486, to_tag="t"), now=10.0)
    layer.datagrams_to_send()
    _, sent_at = step_until(layer, 10.0, 10.0 + 64 * T1 - 0.001)
    assert len(sent_at) > 5 and not ev.transaction.terminated  # Timer G keeps resending the 486
    assert events(layer) == []
    layer.handle_timer(10.0 + 64 * T1)
    (timeout,) = events(layer)
    assert isinstance(timeout, TransactionTimedOut) and timeout.timer == "H"
    assert timeout.transaction is ev.transaction and ev.transaction.terminated
    assert layer.active == 0 and layer.get_timer() is None


def test_timer_h_on_tcp_without_retransmissions() -> None:
    layer = TransactionLayer()
    inv = make_request()
    layer.receive(parse_message(inv.to_bytes()), TCP, now=0.0)
    (ev,) = events(layer)
    assert isinstance(ev, RequestReceived)
    layer.respond(ev.transaction, make_response(inv.headers, 603, to_tag="t"), now=0.0)
    layer.datagrams_to_send()
    assert layer.get_timer() == 64 * T1  # Timer H only: no Timer G on a reliable transport
    _, sent_at = step_until(layer, 0.0, 64 * T1)
    assert sent_at == []
    (timeout,) = events(layer)
    assert isinstance(timeout, TransactionTimedOut) and timeout.timer == "H"


def test_timer_j_absorbs_non_invite_retransmissions_for_64_t1_on_udp() -> None:
    layer = TransactionLayer()
    opt = make_request("OPTIONS")
    data = opt.to_bytes()
    layer.receive(parse_message(data), UDP, now=0.0)
    (ev,) = events(layer)
    assert isinstance(ev, RequestReceived)
    layer.respond(ev.transaction, make_response(opt.headers, 200), now=1.0)
    layer.datagrams_to_send()
    assert ev.transaction.state is TxState.COMPLETED
    assert layer.get_timer() == 1.0 + 64 * T1
    layer.receive(parse_message(data), UDP, now=1.0 + 64 * T1 - 0.1)  # late retransmission
    assert events(layer) == []  # absorbed: the TU is not asked again
    ((resent, _),) = layer.datagrams_to_send()
    assert resent.startswith(b"SIP/2.0 200")
    layer.handle_timer(1.0 + 64 * T1)
    assert ev.transaction.terminated and layer.active == 0
    assert events(layer) == []  # Timer J is silent
    layer.receive(parse_message(data), UDP, now=1.0 + 64 * T1 + 0.1)  # after J: a new request
    assert [type(e) for e in events(layer)] == [RequestReceived]


def test_timer_j_is_zero_on_tcp() -> None:
    layer = TransactionLayer()
    opt = make_request("OPTIONS")
    layer.receive(parse_message(opt.to_bytes()), TCP, now=5.0)
    (ev,) = events(layer)
    assert isinstance(ev, RequestReceived)
    layer.respond(ev.transaction, make_response(opt.headers, 200), now=5.0)
    assert layer.get_timer() == 5.0
    layer.handle_timer(5.0)
    assert ev.transaction.terminated and layer.active == 0 and layer.get_timer() is None


def test_timer_d_terminates_the_client_invite_after_a_non2xx() -> None:
    layer = TransactionLayer()
    req = make_request()
    tx = layer.send_request(req, UDP, now=0.0)
    assert tx is not None
    layer.datagrams_to_send()
    busy = make_response(req.headers, 486, to_tag="t")
    layer.receive(parse_message(busy.to_bytes()), UDP, now=1.0)
    assert [type(e) for e in events(layer)] == [ResponseReceived]
    layer.datagrams_to_send()  # the ACK
    assert layer.get_timer() == 1.0 + 32.0  # Timer D: at least 32 s on UDP (§17.1.1.2)
    layer.handle_timer(1.0 + 31.9)
    assert tx.state is TxState.COMPLETED
    layer.handle_timer(1.0 + 32.0)
    assert tx.terminated and layer.active == 0 and layer.get_timer() is None
    assert events(layer) == []  # Timer D is silent: the TU already has the 486
    layer.receive(parse_message(busy.to_bytes()), UDP, now=34.0)  # too late: no transaction, no ACK
    assert layer.datagrams_to_send() == [] and events(layer) == []


def test_timer_d_is_zero_on_tcp() -> None:
    layer = TransactionLayer()
    req = make_request()
    tx = layer.send_request(req, TCP, now=0.0)
    assert tx is not None
    layer.receive(parse_message(make_response(req.headers, 404, to_tag="t").to_bytes()), TCP, now=0.5)
    assert tx.state is TxState.COMPLETED and layer.get_timer() == 0.5
    layer.handle_timer(0.5)
    assert tx.terminated and layer.active == 0
