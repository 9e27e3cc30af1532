"""Registrar bindings (RFC 3261 §10.3) driven by a fake clock: contacts, refresh, expiry,
unregister, wildcard, 423, out-of-order CSeq, q ordering, NAT flow, AOR normalisation."""

from __future__ import annotations

import pytest

from telephony.sip.registrar import Binding, ContactSpec, RegisterResult, Registrar, normalise_aor

AOR = "sip:alice@dialer.test"
PHONE = ("192.0.2.10", 5060)
LAPTOP = ("198.51.100.20", 40123)


def reg(
    r: Registrar,
    contacts: list[ContactSpec] | str,
    *,
    now: float,
    cseq: int = 1,
    call_id: str = "cid-1",
    expires: int | None = None,
    source: tuple[str, int] = PHONE,
    transport: str = "UDP",
    aor: str = AOR,
) -> RegisterResult:
    return r.register(
        aor,
        contacts,
        call_id=call_id,
        cseq=cseq,
        expires_header=expires,
        source=source,
        transport=transport,
        now=now,
    )


def uris(bindings: list[Binding] | tuple[Binding, ...]) -> list[str]:
    return [b.uri for b in bindings]


def test_register_binds_contact_with_source_flow_and_answers_with_remaining_expires() -> None:
    r = Registrar()
    res = reg(r, [ContactSpec("<sip:alice@10.0.0.5:5060;transport=udp>")], now=1000.0, expires=600)
    assert (res.status, res.reason, res.ok) == (200, "OK", True)
    assert res.headers == (("Contact", "<sip:alice@10.0.0.5:5060;transport=udp>;expires=600"),)
    [b] = r.lookup(AOR, 1000.0)
    assert b.uri == "sip:alice@10.0.0.5:5060;transport=udp"
    assert b.source == PHONE and b.transport == "udp"
    assert b.expires_at == 1600.0
    assert b.remaining(1250.0) == 350
    assert r.next_deadline() == 1600.0


def test_several_contacts_per_aor_and_refresh_updates_in_place() -> None:
    r = Registrar()
    reg(r, [ContactSpec("sip:alice@10.0.0.5")], now=0.0, expires=600, source=PHONE)
    reg(r, [ContactSpec("sip:alice@10.0.0.9:5080")], now=10.0, expires=600, call_id="cid-2", source=LAPTOP)
    assert sorted(uris(r.lookup(AOR, 20.0))) == ["sip:alice@10.0.0.5", "sip:alice@10.0.0.9:5080"]
    # Refresh the first one with the same Call-ID and a higher CSeq, from a new NAT port.
    res = reg(r, [ContactSpec("sip:alice@10.0.0.5")], now=300.0, cseq=2, expires=600, source=("192.0.2.10", 6000))
    assert res.status == 200 and len(res.headers) == 2
    assert len(r) == 2
    first = next(b for b in r.lookup(AOR, 300.0) if b.uri == "sip:alice@10.0.0.5")
    assert first.expires_at == 900.0 and first.source == ("192.0.2.10", 6000) and first.cseq == 2
    # The 200 lists every binding with its own remaining time.
    assert dict(res.headers).keys() == {"Contact"}
    assert sorted(v for _, v in res.headers) == [
        "<sip:alice@10.0.0.5>;expires=600",
        "<sip:alice@10.0.0.9:5080>;expires=310",
    ]


def test_contact_comparison_follows_rfc3261_uri_rules() -> None:
    r = Registrar()
    reg(r, [ContactSpec("sip:alice@PHONE.example;transport=UDP;ob")], now=0.0)
    # Host and param case differ, an extra param present on one side only: same contact.
    reg(r, [ContactSpec("<sip:alice@phone.example;transport=udp;rinstance=7>")], now=1.0, cseq=2)
    assert len(r) == 1
    # transport must be present on both sides or neither: a different contact.
    reg(r, [ContactSpec("sip:alice@phone.example")], now=2.0, cseq=3)
    # The user part is case-sensitive.
    reg(r, [ContactSpec("sip:ALICE@phone.example;transport=udp")], now=3.0, cseq=4)
    assert len(r) == 3


def test_same_instance_id_replaces_binding_even_when_the_uri_changes() -> None:
    r = Registrar()
    inst = '"<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>"'
    reg(r, [ContactSpec("sip:alice@10.0.0.5", instance=inst)], now=0.0)
    res = reg(r, [ContactSpec("sip:alice@172.16.0.7", instance=inst)], now=5.0, call_id="cid-new")
    assert uris(r.lookup(AOR, 5.0)) == ["sip:alice@172.16.0.7"]
    assert res.headers[0][1].endswith(';+sip.instance="<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>"')


def test_expiry_by_time_and_next_deadline() -> None:
    r = Registrar(min_expires=60)
    reg(r, [ContactSpec("sip:alice@10.0.0.5")], now=0.0, expires=60)
    reg(r, [ContactSpec("sip:bob@10.0.0.6")], now=0.0, expires=120, aor="sip:bob@dialer.test", call_id="b")
    assert r.next_deadline() == 60.0
    assert r.expire(59.9) == []
    assert len(r.lookup(AOR, 59.9)) == 1
    assert r.lookup(AOR, 60.0) == []  # lookup never returns a lapsed binding
    gone = r.expire(60.0)
    assert uris(gone) == ["sip:alice@10.0.0.5"]
    assert r.next_deadline() == 120.0
    assert uris(r.expire(500.0)) == ["sip:bob@10.0.0.6"]
    assert r.next_deadline() is None and len(r) == 0 and r.aors() == []


def test_refresh_moves_the_deadline_and_leaves_no_phantom_expiry() -> None:
    r = Registrar(min_expires=60)
    reg(r, [ContactSpec("sip:alice@10.0.0.5")], now=0.0, expires=100)
    reg(r, [ContactSpec("sip:alice@10.0.0.5")], now=50.0, cseq=2, expires=100)
    assert r.next_deadline() == 150.0
    assert r.expire(100.0) == []
    assert len(r.lookup(AOR, 100.0)) == 1


def test_unregister_single_contact_with_expires_zero() -> None:
    r = Registrar()
    reg(r, [ContactSpec("sip:alice@10.0.0.5"), ContactSpec("sip:alice@10.0.0.6")], now=0.0)
    res = reg(r, [ContactSpec("sip:alice@10.0.0.5", expires=0)], now=5.0, cseq=2, expires=3600)
    assert res.status == 200
    assert uris(res.removed) == ["sip:alice@10.0.0.5"]
    assert uris(r.lookup(AOR, 5.0)) == ["sip:alice@10.0.0.6"]
    # Expires header 0 applies to contacts without their own expires.
    res = reg(r, [ContactSpec("sip:alice@10.0.0.6")], now=6.0, cseq=3, expires=0)
    assert res.status == 200 and res.headers == () and r.lookup(AOR, 6.0) == []
    # Removing an unknown contact is not an error.
    assert reg(r, [ContactSpec("sip:alice@10.9.9.9")], now=7.0, cseq=4, expires=0).status == 200


def test_wildcard_removes_all_bindings() -> None:
    r = Registrar()
    reg(r, [ContactSpec("sip:alice@10.0.0.5")], now=0.0)
    reg(r, [ContactSpec("sip:alice@10.0.0.6")], now=0.0, call_id="other")
    res = reg(r, "*", now=1.0, cseq=2, expires=0)
    assert res.status == 200 and res.headers == ()
    assert sorted(uris(res.removed)) == ["sip:alice@10.0.0.5", "sip:alice@10.0.0.6"]
    assert r.lookup(AOR, 1.0) == [] and r.next_deadline() is None


@pytest.mark.parametrize(
    ("contacts", "expires", "why"),
    [
        ("*", 3600, "requires Expires: 0"),
        ("*", None, "requires Expires: 0"),
        ([ContactSpec("*"), ContactSpec("sip:alice@10.0.0.5")], 0, "must be the only Contact"),
        ("junk", 0, "neither '\\*'"),
    ],
)
def test_wildcard_misuse_is_400_and_changes_nothing(
    contacts: list[ContactSpec] | str, expires: int | None, why: str
) -> None:
    r = Registrar()
    reg(r, [ContactSpec("sip:alice@10.0.0.5")], now=0.0)
    res = reg(r, contacts, now=1.0, cseq=2, expires=expires)
    assert res.status == 400
    assert why.replace("\\", "") in res.reason
    assert len(r.lookup(AOR, 1.0)) == 1


def test_wildcard_as_contact_spec_with_expires_param_zero_is_accepted() -> None:
    r = Registrar()
    reg(r, [ContactSpec("sip:alice@10.0.0.5")], now=0.0)
    assert reg(r, [ContactSpec("*", expires=0)], now=1.0, cseq=2).status == 200
    assert len(r) == 0


def test_interval_too_brief_is_423_with_min_expires_and_atomic() -> None:
    r = Registrar(min_expires=60)
    reg(r, [ContactSpec("sip:alice@10.0.0.5")], now=0.0, expires=600)
    res = reg(
        r,
        [ContactSpec("sip:alice@10.0.0.5", expires=0), ContactSpec("sip:alice@10.0.0.6", expires=30)],
        now=1.0,
        cseq=2,
    )
    assert (res.status, res.reason, res.min_expires) == (423, "Interval Too Brief", 60)
    assert res.headers == (("Min-Expires", "60"),)
    # Nothing was applied: the first contact is still bound.
    assert uris(r.lookup(AOR, 1.0)) == ["sip:alice@10.0.0.5"]
    # Expires header too brief as well; zero never is.
    assert reg(r, [ContactSpec("sip:alice@10.0.0.7")], now=2.0, cseq=3, expires=59).status == 423
    assert reg(r, [ContactSpec("sip:alice@10.0.0.5")], now=2.0, cseq=4, expires=0).status == 200


def test_expires_clamped_to_max_and_default_applied() -> None:
    r = Registrar(min_expires=60, max_expires=3600, default_expires=1800)
    res = reg(r, [ContactSpec("sip:alice@10.0.0.5", expires=86400)], now=0.0)
    assert res.headers[0][1].endswith(";expires=3600")
    res = reg(r, [ContactSpec("sip:alice@10.0.0.6")], now=0.0, call_id="c2")
    assert any(v == "<sip:alice@10.0.0.6>;expires=1800" for _, v in res.headers)


def test_out_of_order_cseq_with_same_call_id_is_refused_atomically() -> None:
    r = Registrar()
    reg(r, [ContactSpec("sip:alice@10.0.0.5")], now=0.0, cseq=5, expires=600)
    for stale_cseq in (5, 4):
        res = reg(r, [ContactSpec("sip:alice@10.0.0.5", expires=0)], now=1.0, cseq=stale_cseq)
        assert res.status == 500 and "out-of-order" in res.reason
        assert len(r.lookup(AOR, 1.0)) == 1
    assert reg(r, "*", now=1.0, cseq=5, expires=0).status == 500
    assert len(r.lookup(AOR, 1.0)) == 1
    # A different Call-ID (the phone rebooted) may use any CSeq.
    res = reg(r, [ContactSpec("sip:alice@10.0.0.5")], now=2.0, cseq=1, call_id="after-reboot", expires=600)
    assert res.status == 200 and r.lookup(AOR, 2.0)[0].call_id == "after-reboot"


def test_lookup_orders_by_q_then_most_recent() -> None:
    r = Registrar()
    reg(r, [ContactSpec("sip:a@10.0.0.1", q=0.5)], now=0.0, call_id="1")
    reg(r, [ContactSpec("sip:b@10.0.0.2")], now=1.0, call_id="2")  # no q ranks as 1.0
    reg(r, [ContactSpec("sip:c@10.0.0.3", q=0.5)], now=2.0, call_id="3")
    reg(r, [ContactSpec("sip:d@10.0.0.4", q=0.9)], now=3.0, call_id="4")
    reg(r, [ContactSpec("sip:e@10.0.0.5", q=1.0)], now=0.5, call_id="5")
    assert uris(r.lookup(AOR, 4.0)) == [
        "sip:b@10.0.0.2",
        "sip:e@10.0.0.5",
        "sip:d@10.0.0.4",
        "sip:c@10.0.0.3",
        "sip:a@10.0.0.1",
    ]
    res = reg(r, [], now=4.0, call_id="query")  # a query changes nothing and lists all
    assert res.status == 200 and len(res.headers) == 5
    assert res.headers[2][1] == "<sip:d@10.0.0.4>;expires=3599;q=0.9"


def test_aor_normalisation() -> None:
    assert normalise_aor("sip:Alice@HOST;transport=udp") == "sip:Alice@host"
    assert normalise_aor('"Alice" <SIP:Alice@Host.Example:5070;lr>') == "sip:Alice@host.example:5070"
    assert normalise_aor("sip:+4930123;phone-context=x@gw") == "sip:+4930123;phone-context=x@gw"
    r = Registrar()
    reg(r, [ContactSpec("sip:alice@10.0.0.5")], now=0.0, aor="sip:Alice@HOST;transport=udp")
    assert len(r.lookup("sip:Alice@host", 0.0)) == 1
    assert r.lookup("sip:alice@host", 0.0) == []  # user part is case-sensitive
    for bad, why in [("alice@host", "sip: or sips:"), ("sip:", "no host"), ("sip:@host", "empty user")]:
        with pytest.raises(ValueError, match=why):
            normalise_aor(bad)
    res = reg(r, [ContactSpec("sip:alice@10.0.0.5")], now=0.0, aor="mailto:alice@host")
    assert res.status == 400 and "sip: or sips:" in res.reason


@pytest.mark.parametrize(
    ("spec", "expires", "why"),
    [
        (ContactSpec("sip:alice@10.0.0.5", q=1.5), None, "outside 0..1"),
        (ContactSpec("sip:alice@10.0.0.5", q=float("nan")), None, "outside 0..1"),
        (ContactSpec("sip:alice@10.0.0.5", expires=-1), None, "negative"),
        (ContactSpec("sip:alice@10.0.0.5"), -5, "negative"),
        (ContactSpec("<>"), None, "is not a URI"),
    ],
)
def test_bad_contacts_are_400(spec: ContactSpec, expires: int | None, why: str) -> None:
    r = Registrar()
    res = reg(r, [spec], now=0.0, expires=expires)
    assert res.status == 400 and why in res.reason and len(r) == 0


def test_contacts_per_aor_are_bounded_by_evicting_the_oldest() -> None:
    r = Registrar(max_contacts=3)
    for i in range(5):
        res = reg(r, [ContactSpec(f"sip:alice@10.0.0.{i}")], now=float(i), call_id=f"c{i}")
        assert res.status == 200
    assert sorted(uris(r.lookup(AOR, 5.0))) == ["sip:alice@10.0.0.2", "sip:alice@10.0.0.3", "sip:alice@10.0.0.4"]
    assert uris(res.removed) == ["sip:alice@10.0.0.1"]
    assert len(r) == 3
    reg(r, "*", now=6.0, call_id="wipe", expires=0)
    assert len(r) == 0 and r.aors() == []


def test_heap_stays_bounded_under_many_refreshes() -> None:
    r = Registrar(min_expires=60)
    for i in range(5000):
        reg(r, [ContactSpec("sip:alice@10.0.0.5")], now=float(i), cseq=i + 1, expires=600)
    assert len(r._heap) <= 2 * len(r) + 65
    assert r.next_deadline() == 4999.0 + 600


def test_invalid_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="min_expires"):
        Registrar(min_expires=600, default_expires=60)
