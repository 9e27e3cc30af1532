"""Digest authentication: RFC known answers, parser robustness, client/server round trips,
stale nonces, nc replay, user enumeration resistance and source lockout (fake clock)."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from telephony.sip.auth import (
    AuthError,
    DigestChallenge,
    DigestClient,
    DigestServer,
    InMemoryCredentials,
    digest_response,
    ha1,
    parse_challenge,
    parse_challenges,
    parse_credentials,
)

SECRET = b"0123456789abcdef0123456789abcdef"
REALM = "dialer.test"
URI = "sip:dialer.test"

# RFC 7616 §3.9.1
RFC7616_REALM = "http-auth@example.org"
RFC7616_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC7616_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
RFC7616_EXPECTED = {
    "SHA-256": "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
    "MD5": "8ca523f5e9506fed4657c9700eebdbec",
}


def rfc7616_challenge(algorithm: str) -> str:
    return (
        f'Digest realm="{RFC7616_REALM}", qop="auth, auth-int", algorithm={algorithm}, '
        f'nonce="{RFC7616_NONCE}", opaque="{RFC7616_OPAQUE}"'
    )


def make_server(
    *,
    nonce_ttl: float = 300.0,
    lockout_threshold: int = 5,
    lockout_window: float = 60.0,
    lockout_time: float = 300.0,
    max_tracked: int = 10_000,
) -> DigestServer:
    creds = InMemoryCredentials.from_passwords(REALM, {"alice": "wonderland", "bob": "builder"})
    return DigestServer(
        REALM,
        creds,
        secret=SECRET,
        nonce_ttl=nonce_ttl,
        lockout_threshold=lockout_threshold,
        lockout_window=lockout_window,
        lockout_time=lockout_time,
        max_tracked=max_tracked,
    )


# ----------------------------------------------------------------------------- vectors


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5"])
def test_rfc7616_known_answer(algorithm: str) -> None:
    key = ha1("Mufasa", RFC7616_REALM, "Circle of Life", algorithm)
    got = digest_response(
        algorithm=algorithm,
        ha1_value=key,
        nonce=RFC7616_NONCE,
        method="GET",
        uri="/dir/index.html",
        qop="auth",
        nc="00000001",
        cnonce=RFC7616_CNONCE,
    )
    assert got == RFC7616_EXPECTED[algorithm]


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5"])
def test_rfc7616_client_produces_the_example_authorization(algorithm: str) -> None:
    client = DigestClient("Mufasa", "Circle of Life", cnonce_factory=lambda: RFC7616_CNONCE)
    value = client.authorize([rfc7616_challenge(algorithm)], method="GET", uri="/dir/index.html")
    cred = parse_credentials(value)
    assert cred.response == RFC7616_EXPECTED[algorithm]
    assert cred.algorithm == algorithm
    assert cred.qop == "auth"  # auth preferred over auth-int when both are offered
    assert cred.nc == "00000001"
    assert cred.opaque == RFC7616_OPAQUE
    assert cred.realm == RFC7616_REALM
    assert cred.username == "Mufasa"


def test_rfc2617_known_answer() -> None:
    challenge = 'Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093"'
    client = DigestClient("Mufasa", "Circle Of Life", cnonce_factory=lambda: "0a4f113b")
    cred = parse_credentials(client.authorize([challenge], method="GET", uri="/dir/index.html"))
    assert cred.response == "6629fae49393a05397450978507c4ef1"


def test_rfc2069_challenge_without_qop_is_answered_legacy_style() -> None:
    client = DigestClient("carrier-user", "pw")
    value = client.authorize(['Digest realm="trunk", nonce="abc"'], method="REGISTER", uri="sip:trunk.example")
    cred = parse_credentials(value)
    assert cred.qop is None and cred.nc is None and cred.cnonce is None
    h1 = hashlib.md5(b"carrier-user:trunk:pw").hexdigest()
    h2 = hashlib.md5(b"REGISTER:sip:trunk.example").hexdigest()
    assert cred.response == hashlib.md5(f"{h1}:abc:{h2}".encode()).hexdigest()
    assert "qop" not in value and "nc=" not in value


def test_ha1_rejects_unknown_algorithm() -> None:
    with pytest.raises(AuthError, match="unsupported digest algorithm 'SHA-1'"):
        ha1("a", "b", "c", "SHA-1")


# ----------------------------------------------------------------------------- parser


def test_parser_handles_escapes_case_tokens_and_flags() -> None:
    ch = parse_challenge(
        'DIGEST REALM="a \\"quoted\\" realm\\\\", Nonce=abc123, QOP="auth,auth-int", '
        'ALGORITHM=sha-256, stale=TRUE, opaque=""'
    )
    assert ch.realm == 'a "quoted" realm\\'
    assert ch.nonce == "abc123"
    assert ch.qop == ("auth", "auth-int")
    assert ch.algorithm == "SHA-256"
    assert ch.stale is True
    assert ch.opaque == ""


def test_parser_tolerates_whitespace_and_folding_around_equals_and_commas() -> None:
    ch = parse_challenge('Digest realm = "r" ,\r\n nonce= "n",,  algorithm =MD5')
    assert (ch.realm, ch.nonce, ch.algorithm) == ("r", "n", "MD5")
    assert ch.stale is False and ch.qop == ()


def test_several_challenges_in_one_value() -> None:
    chs = parse_challenges('Digest realm="a", nonce="1", algorithm=MD5, Digest realm="a", nonce="2", algorithm=SHA-256')
    assert [(c.nonce, c.algorithm) for c in chs] == [("1", "MD5"), ("2", "SHA-256")]


def test_challenge_round_trips_through_its_header() -> None:
    ch = DigestChallenge(realm='r"x', nonce="n", algorithm="SHA-256", qop=("auth",), opaque="o", stale=True)
    again = parse_challenge(ch.to_header())
    assert (again.realm, again.nonce, again.algorithm, again.qop, again.opaque, again.stale) == (
        'r"x',
        "n",
        "SHA-256",
        ("auth",),
        "o",
        True,
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "empty header value"),
        ("Digest", "has no parameters"),
        ('Digest realm="unterminated', "unterminated quoted-string"),
        ('Digest realm="a", realm="b", nonce="n"', "appears twice"),
        ('Digest realm="a"', "required nonce="),
        ('Basic realm="a"', "only Digest"),
        ('Digest realm="a" nonce="n"', "expected ','"),
        ("Digest realm=, nonce=n", "empty value"),
        ('Digest realm "a"', "has no '='"),
        ('Digest realm="a", nonce="n", qop=""', "empty qop"),
        ("=x", "expected an auth scheme"),
    ],
)
def test_malformed_challenges_raise_clear_auth_errors(value: str, message: str) -> None:
    with pytest.raises(AuthError, match=message) as info:
        parse_challenge(value)
    assert info.value.status_hint == 400


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('Digest username="a", realm="r", nonce="n", uri="u"', "required response="),
        ('Digest username="a", realm="r", nonce="n", uri="u", response="zz"', "hexadecimal digest"),
        (
            'Digest username="a", realm="r", nonce="n", uri="u", response="ab", qop=auth, nc=1, cnonce="c"',
            "8 hexadecimal digits",
        ),
        ('Digest username="a", realm="r", nonce="n", uri="u", response="ab", qop=auth', "requires both nc= and cnonce"),
        ('Digest username="a", realm="r", nonce="n", uri="u", response="ab", qop=auth-conf', "not supported"),
        ('Digest username="a", realm="r", nonce="n", uri="u", response="ab", algorithm=SHA-1', "unsupported digest"),
    ],
)
def test_malformed_credentials_raise_clear_auth_errors(value: str, message: str) -> None:
    with pytest.raises(AuthError, match=message):
        parse_credentials(value)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=200))
def test_parsers_raise_only_auth_error_on_arbitrary_text(text: str) -> None:
    for parse in (parse_challenge, parse_challenges, parse_credentials):
        try:
            parse(text)
        except AuthError:
            pass


_ALPHABET = st.sampled_from(
    [
        "Digest ",
        "digest ",
        "realm",
        "nonce",
        "uri",
        "response",
        "username",
        "qop",
        "nc",
        "cnonce",
        "algorithm",
        "stale",
        "=",
        '"',
        "\\",
        ",",
        " ",
        "\t",
        "\r\n ",
        "auth",
        "auth-int",
        "MD5",
        "SHA-256",
        "-sess",
        "00000001",
        "abc",
        "0f",
        "TRUE",
        "Basic ",
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_ALPHABET, max_size=40).map("".join))
def test_parsers_and_verify_survive_near_valid_input(text: str) -> None:
    for parse in (parse_challenge, parse_challenges, parse_credentials):
        try:
            parse(text)
        except AuthError:
            pass
    client = DigestClient("alice", "pw")
    try:
        client.authorize([text], method="INVITE", uri=URI)
    except AuthError:
        pass
    result = make_server().verify(text, method="INVITE", source="192.0.2.9", now=10.0)
    assert result.outcome in {"challenge", "bad_request", "stale"}


# ----------------------------------------------------------------------------- client


def test_client_picks_sha256_over_md5_whatever_the_order() -> None:
    md5 = 'Digest realm="r", nonce="n1", algorithm=MD5, qop="auth"'
    sha = 'Digest realm="r", nonce="n2", algorithm=SHA-256, qop="auth"'
    client = DigestClient("u", "p")
    for order in ([md5, sha], [sha, md5]):
        cred = parse_credentials(client.authorize(order, method="INVITE", uri=URI))
        assert cred.algorithm == "SHA-256" and cred.nonce == "n2"


def test_client_skips_unusable_challenges_and_explains_when_none_is_left() -> None:
    client = DigestClient("u", "p")
    value = client.authorize(
        ['Basic realm="r"', 'Digest realm="r", nonce="x", algorithm=AKAv1-MD5', 'Digest realm="r", nonce="n"'],
        method="INVITE",
        uri=URI,
    )
    assert parse_credentials(value).nonce == "n"
    with pytest.raises(AuthError, match=r"no usable Digest challenge: .*AKAv1-MD5"):
        client.authorize(['Digest realm="r", nonce="x", algorithm=AKAv1-MD5'], method="INVITE", uri=URI)
    with pytest.raises(AuthError, match="no challenge header present"):
        client.authorize([], method="INVITE", uri=URI)


def test_client_counts_nc_per_nonce_with_fresh_cnonce() -> None:
    client = DigestClient("u", "p")
    a = 'Digest realm="r", nonce="A", qop="auth"'
    b = 'Digest realm="r", nonce="B", qop="auth"'
    creds = [parse_credentials(client.authorize([ch], method="INVITE", uri=URI)) for ch in (a, a, b, a)]
    assert [c.nc for c in creds] == ["00000001", "00000002", "00000001", "00000003"]
    assert len({c.cnonce for c in creds}) == 4


def test_client_uses_auth_int_when_only_that_is_offered() -> None:
    client = DigestClient("u", "p", cnonce_factory=lambda: "c")
    body = b"v=0\r\n"
    cred = parse_credentials(
        client.authorize(['Digest realm="r", nonce="n", qop="auth-int"'], method="INVITE", uri=URI, body=body)
    )
    assert cred.qop == "auth-int"
    expected = digest_response(
        algorithm="MD5",
        ha1_value=ha1("u", "r", "p"),
        nonce="n",
        method="INVITE",
        uri=URI,
        qop="auth-int",
        nc="00000001",
        cnonce="c",
        body=body,
    )
    assert cred.response == expected


def test_client_with_stored_ha1_answers_only_its_algorithm() -> None:
    key = ha1("u", "r", "p", "SHA-256")
    client = DigestClient("u", ha1=key, ha1_algorithm="SHA-256", cnonce_factory=lambda: "c")
    md5 = 'Digest realm="r", nonce="n", algorithm=MD5, qop="auth"'
    sha = 'Digest realm="r", nonce="n", algorithm=SHA-256, qop="auth"'
    by_password = DigestClient("u", "p", cnonce_factory=lambda: "c").authorize([sha], method="INVITE", uri=URI)
    assert client.authorize([md5, sha], method="INVITE", uri=URI) == by_password
    with pytest.raises(AuthError):
        client.authorize([md5], method="INVITE", uri=URI)
    with pytest.raises(ValueError, match="exactly one of password= or ha1="):
        DigestClient("u")


def test_stale_detection_and_retry_guard() -> None:
    client = DigestClient("u", "p")
    fresh = ['Digest realm="r", nonce="n1", qop="auth"']
    stale = ['Digest realm="r", nonce="n2", qop="auth", stale=true']
    assert client.is_stale(stale) and not client.is_stale(fresh)
    assert not client.is_stale(["garbage"])
    # First challenge of a request: always answer.
    assert client.should_retry(fresh, sent_credentials=False)
    client.authorize(fresh, method="REGISTER", uri=URI)
    # Challenged again after sending credentials, not stale: they were refused.
    assert not client.should_retry(fresh, sent_credentials=True)
    # Stale: retry, but not forever.
    assert client.should_retry(stale, sent_credentials=True)
    client.authorize(stale, method="REGISTER", uri=URI)
    assert client.should_retry(stale, sent_credentials=True)
    client.authorize(stale, method="REGISTER", uri=URI)
    assert not client.should_retry(stale, sent_credentials=True)
    # A non-stale answer resets the streak.
    client.authorize(fresh, method="REGISTER", uri=URI)
    assert client.should_retry(stale, sent_credentials=True)


# ----------------------------------------------------------------------------- server


def test_server_challenge_offers_sha256_first_then_md5_with_qop_and_opaque() -> None:
    server = make_server()
    values = server.challenge(100.0)
    chs = [parse_challenge(v) for v in values]
    assert [c.algorithm for c in chs] == ["SHA-256", "MD5"]
    for c in chs:
        assert c.realm == REALM and c.qop == ("auth",) and c.opaque and not c.stale
    assert all(parse_challenge(v).stale for v in server.challenge(100.0, stale=True))
    assert chs[0].nonce != parse_challenge(server.challenge(100.0)[0]).nonce  # salted per challenge


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5", "SHA-256-sess", "MD5-sess"])
def test_round_trip_each_algorithm(algorithm: str) -> None:
    server = make_server()
    nonce = parse_challenge(server.challenge(0.0)[0]).nonce
    offered = DigestChallenge(realm=REALM, nonce=nonce, algorithm=algorithm, qop=("auth",), opaque=server.opaque)
    client = DigestClient("alice", "wonderland")
    value = client.authorize([offered.to_header()], method="INVITE", uri=URI)
    assert parse_credentials(value).algorithm == algorithm
    result = server.verify(value, method="INVITE", source="192.0.2.1", now=1.0, request_uri=URI)
    assert result.outcome == "ok" and result.username == "alice" and result.ok


def test_round_trip_picks_sha256_from_the_servers_challenges() -> None:
    server = make_server()
    client = DigestClient("bob", "builder")
    challenges = server.challenge(0.0)
    value = client.authorize(challenges, method="REGISTER", uri=URI)
    assert parse_credentials(value).algorithm == "SHA-256"
    assert server.verify(value, method="REGISTER", source="192.0.2.1", now=2.0).outcome == "ok"
    # The same nonce may be reused with a higher nc.
    again = client.authorize(challenges, method="REGISTER", uri=URI)
    assert parse_credentials(again).nc == "00000002"
    assert server.verify(again, method="REGISTER", source="192.0.2.1", now=3.0).outcome == "ok"


def test_md5_only_server_round_trip() -> None:
    server = DigestServer(
        REALM, InMemoryCredentials.from_passwords(REALM, [("alice", "wonderland")]), secret=SECRET, algorithms=("MD5",)
    )
    challenges = server.challenge(0.0)
    assert len(challenges) == 1
    value = DigestClient("alice", "wonderland").authorize(challenges, method="INVITE", uri=URI)
    assert parse_credentials(value).algorithm == "MD5"
    assert server.verify(value, method="INVITE", source="192.0.2.1", now=1.0).outcome == "ok"
    sha = DigestChallenge(realm=REALM, nonce=parse_challenge(challenges[0]).nonce, algorithm="SHA-256", qop=("auth",))
    value = DigestClient("alice", "wonderland").authorize([sha.to_header()], method="INVITE", uri=URI)
    result = server.verify(value, method="INVITE", source="192.0.2.1", now=1.0)
    assert result.outcome == "bad_request" and "not offered" in result.reason


def test_expired_nonce_with_right_password_is_stale_and_wrong_password_is_not() -> None:
    server = make_server(nonce_ttl=300.0)
    challenges = server.challenge(0.0)
    good = DigestClient("alice", "wonderland").authorize(challenges, method="INVITE", uri=URI)
    bad = DigestClient("alice", "nope").authorize(challenges, method="INVITE", uri=URI)
    assert server.verify(good, method="INVITE", source="192.0.2.1", now=300.0).outcome == "ok"
    late = server.verify(good, method="INVITE", source="192.0.2.2", now=301.0)
    assert late.outcome == "stale" and "expired" in late.reason
    assert server.verify(bad, method="INVITE", source="192.0.2.3", now=301.0).outcome == "challenge"


def test_nc_replay_is_rejected_and_higher_nc_accepted() -> None:
    server = make_server()
    client = DigestClient("alice", "wonderland")
    challenges = server.challenge(0.0)
    first = client.authorize(challenges, method="INVITE", uri=URI)
    assert server.verify(first, method="INVITE", source="192.0.2.1", now=1.0).outcome == "ok"
    replay = server.verify(first, method="INVITE", source="192.0.2.1", now=2.0)
    assert replay.outcome == "stale" and "replayed" in replay.reason
    second = client.authorize(challenges, method="INVITE", uri=URI)
    assert parse_credentials(second).nc == "00000002"
    assert server.verify(second, method="INVITE", source="192.0.2.1", now=3.0).outcome == "ok"
    assert server.verify(first, method="INVITE", source="192.0.2.1", now=4.0).outcome == "stale"


def test_unknown_user_and_wrong_password_look_the_same_to_the_peer() -> None:
    server = make_server()
    challenges = server.challenge(0.0)
    wrong = DigestClient("alice", "guess").authorize(challenges, method="INVITE", uri=URI)
    ghost = DigestClient("mallory", "guess").authorize(challenges, method="INVITE", uri=URI)
    r1 = server.verify(wrong, method="INVITE", source="192.0.2.1", now=1.0)
    r2 = server.verify(ghost, method="INVITE", source="192.0.2.2", now=1.0)
    assert r1.outcome == r2.outcome == "challenge"

    def shape(values: list[str]) -> list[tuple[tuple[str, ...], str, tuple[str, ...], bool]]:
        out = []
        for v in values:
            c = parse_challenge(v)
            out.append((tuple(sorted(c.params)), c.algorithm, c.qop, c.stale))
        return out

    assert shape(server.challenge(1.0)) == shape(server.challenge(1.0))
    # Both count toward the same lockout.
    for _ in range(4):
        server.verify(ghost, method="INVITE", source="192.0.2.2", now=2.0)
    assert server.verify(wrong, method="INVITE", source="192.0.2.2", now=2.0).outcome == "locked_out"


def test_lockout_after_threshold_then_release() -> None:
    server = make_server(lockout_threshold=5, lockout_window=60.0, lockout_time=300.0)
    src = "198.51.100.7"
    bad = DigestClient("alice", "guess").authorize(server.challenge(0.0), method="INVITE", uri=URI)
    with capture_logs() as logs:
        outcomes = [server.verify(bad, method="INVITE", source=src, now=10.0 + i).outcome for i in range(5)]
    assert outcomes == ["challenge"] * 4 + ["locked_out"]
    lockouts = [e for e in logs if e["event"] == "auth.lockout"]
    assert lockouts == [
        {"event": "auth.lockout", "log_level": "warning", "source": src, "until": 314.0, "failures": 5, "realm": REALM}
    ]
    good = DigestClient("alice", "wonderland").authorize(server.challenge(100.0), method="INVITE", uri=URI)
    assert server.verify(good, method="INVITE", source=src, now=100.0).outcome == "locked_out"
    assert server.verify(None, method="INVITE", source=src, now=313.9).outcome == "locked_out"
    # Another source is unaffected.
    assert server.verify(good, method="INVITE", source="198.51.100.8", now=101.0).outcome == "ok"
    later = DigestClient("alice", "wonderland").authorize(server.challenge(314.0), method="INVITE", uri=URI)
    assert server.verify(later, method="INVITE", source=src, now=314.0).outcome == "ok"


def test_failures_outside_the_window_do_not_add_up() -> None:
    server = make_server(lockout_threshold=3, lockout_window=60.0)
    src = "198.51.100.9"
    client = DigestClient("alice", "guess")
    for t in (0.0, 40.0, 80.0, 120.0, 160.0):
        value = client.authorize(server.challenge(t), method="INVITE", uri=URI)
        assert server.verify(value, method="INVITE", source=src, now=t + 1).outcome == "challenge"


def test_memory_for_sources_and_nonces_is_bounded() -> None:
    server = make_server(max_tracked=50)
    bad = DigestClient("alice", "guess").authorize(server.challenge(0.0), method="INVITE", uri=URI)
    for i in range(2000):
        server.verify(bad, method="INVITE", source=f"10.0.{i // 256}.{i % 256}", now=1.0)
    assert server.tracked_sources() <= 100
    client = DigestClient("alice", "wonderland")
    first = client.authorize(server.challenge(2.0), method="INVITE", uri=URI)
    assert server.verify(first, method="INVITE", source="192.0.2.1", now=2.5).outcome == "ok"
    for i in range(200):
        t = 3.0 + i / 100
        value = client.authorize(server.challenge(t), method="INVITE", uri=URI)
        assert server.verify(value, method="INVITE", source="192.0.2.1", now=t).outcome == "ok"
    assert len(server._nc) <= 50
    # The first nonce fell out of the replay table: a replay of it must not be trusted.
    assert server.verify(first, method="INVITE", source="192.0.2.1", now=6.0).outcome == "stale"


def test_verify_rejects_bad_realm_uri_opaque_and_forged_nonce() -> None:
    server = make_server()
    client = DigestClient("alice", "wonderland")
    value = client.authorize(server.challenge(0.0), method="INVITE", uri="sip:Bob@DIALER.test;transport=udp")
    assert server.verify(value, method="INVITE", source="s", now=1.0, request_uri="sip:Bob@dialer.test").ok
    other = client.authorize(server.challenge(0.0), method="INVITE", uri="sip:carol@dialer.test")
    mismatch = server.verify(other, method="INVITE", source="s", now=1.0, request_uri="sip:bob@dialer.test")
    assert mismatch.outcome == "bad_request" and "does not match" in mismatch.reason

    foreign = DigestChallenge(realm="elsewhere", nonce=server.make_nonce(0.0), qop=("auth",)).to_header()
    assert (
        server.verify(
            client.authorize([foreign], method="INVITE", uri=URI), method="INVITE", source="s", now=1.0
        ).outcome
        == "challenge"
    )

    forged = DigestChallenge(realm=REALM, nonce="1.2.3", qop=("auth",)).to_header()
    r = server.verify(client.authorize([forged], method="INVITE", uri=URI), method="INVITE", source="s", now=1.0)
    assert r.outcome == "challenge" and "not issued by us" in r.reason

    bad_opaque = DigestChallenge(realm=REALM, nonce=server.make_nonce(0.0), qop=("auth",), opaque="x").to_header()
    r = server.verify(client.authorize([bad_opaque], method="INVITE", uri=URI), method="INVITE", source="s", now=1.0)
    assert r.outcome == "challenge" and "opaque" in r.reason

    future = DigestChallenge(realm=REALM, nonce=server.make_nonce(100.0), qop=("auth",)).to_header()
    r = server.verify(client.authorize([future], method="INVITE", uri=URI), method="INVITE", source="s", now=1.0)
    assert r.outcome == "challenge" and "future" in r.reason


def test_verify_missing_and_malformed_and_legacy_credentials() -> None:
    server = make_server()
    assert server.verify(None, method="INVITE", source="s", now=0.0).outcome == "challenge"
    r = server.verify("Digest username=", method="INVITE", source="s", now=0.0)
    assert r.outcome == "bad_request" and r.reason.startswith("malformed Authorization")
    legacy = DigestChallenge(realm=REALM, nonce=server.make_nonce(0.0)).to_header()
    value = DigestClient("alice", "wonderland").authorize([legacy], method="INVITE", uri=URI)
    r = server.verify(value, method="INVITE", source="s", now=1.0)
    assert r.outcome == "bad_request" and "qop" in r.reason


def test_auth_int_verified_when_the_body_is_given() -> None:
    server = make_server()
    offer = DigestChallenge(realm=REALM, nonce=server.make_nonce(0.0), qop=("auth-int",)).to_header()
    value = DigestClient("alice", "wonderland").authorize([offer], method="INVITE", uri=URI, body=b"sdp")
    assert server.verify(value, method="INVITE", source="s", now=1.0).outcome == "bad_request"
    assert server.verify(value, method="INVITE", source="s", now=1.0, body=b"sdp").outcome == "ok"


def test_credential_store_keeps_no_plain_password() -> None:
    store = InMemoryCredentials.from_passwords(REALM, {"alice": "super-secret-password"})
    dumped = repr(vars(store))
    assert "super-secret-password" not in dumped
    assert store.lookup_ha1("alice", "MD5") == ha1("alice", REALM, "super-secret-password", "MD5")
    assert store.lookup_ha1("alice", "SHA-256") == ha1("alice", REALM, "super-secret-password", "SHA-256")
    assert store.lookup_ha1("nobody", "MD5") is None
    assert "alice" in store
    store.remove("alice")
    assert "alice" not in store


def test_server_refuses_a_weak_secret() -> None:
    with pytest.raises(ValueError, match="at least 16 random bytes"):
        DigestServer(REALM, InMemoryCredentials(REALM), secret=b"short")


# ----------------------------------------------------------------------------- legacy and interop


def test_rfc2069_answers_accepted_once_per_nonce_when_allowed() -> None:
    creds = InMemoryCredentials.from_passwords(REALM, {"alice": "wonderland"})
    strict = DigestServer(REALM, creds, secret=SECRET)
    legacy = DigestServer(REALM, creds, secret=SECRET, allow_rfc2069=True)
    offer = DigestChallenge(realm=REALM, nonce=legacy.make_nonce(0.0)).to_header()
    value = DigestClient("alice", "wonderland").authorize([offer], method="REGISTER", uri=URI)
    assert strict.verify(value, method="REGISTER", source="s", now=1.0).outcome == "bad_request"
    assert legacy.verify(value, method="REGISTER", source="s", now=1.0).outcome == "ok"
    assert legacy.verify(value, method="REGISTER", source="s", now=2.0).outcome == "stale"  # no nc: one use
    wrong = DigestClient("alice", "nope").authorize([offer], method="REGISTER", uri=URI)
    assert legacy.verify(wrong, method="REGISTER", source="s", now=1.0).outcome == "challenge"


def test_sess_algorithm_without_cnonce_is_a_bad_request_not_a_crash() -> None:
    server = make_server()
    value = (
        f'Digest username="alice", realm="{REALM}", nonce="{server.make_nonce(0.0)}", uri="{URI}", '
        'response="00", algorithm=MD5-sess'
    )
    result = server.verify(value, method="INVITE", source="s", now=1.0)
    assert result.outcome == "bad_request" and "requires cnonce" in result.reason


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5"])
def test_httpx_digest_auth_is_accepted_by_our_server(algorithm: str) -> None:
    """httpx's DigestAuth is an independent RFC 7616 client; drive it with a mock transport."""
    import httpx

    creds = InMemoryCredentials.from_passwords(REALM, {"alice": "wonderland"})
    server = DigestServer(REALM, creds, secret=SECRET, algorithms=(algorithm,))
    results = []

    def handler(request: httpx.Request) -> httpx.Response:
        result = server.verify(request.headers.get("authorization"), method=request.method, source="s", now=1.0)
        results.append(result)
        if result.ok:
            return httpx.Response(200)
        return httpx.Response(401, headers=[("WWW-Authenticate", v) for v in server.challenge(0.0)])

    with httpx.Client(transport=httpx.MockTransport(handler), auth=httpx.DigestAuth("alice", "wonderland")) as http:
        response = http.get("http://dialer.test/dir/index.html")
    assert response.status_code == 200
    assert [r.outcome for r in results] == ["challenge", "ok"]


def test_pyvoip_register_credentials_are_accepted_in_rfc2069_mode() -> None:
    """pyVoIP 1.6.8 reads the first WWW-Authenticate and answers MD5 without qop."""
    import importlib
    import warnings
    from types import SimpleNamespace
    from typing import Any

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # pyVoIP imports audioop
        importlib.import_module("pyVoIP.VoIP")  # importing pyVoIP.SIP first hits its import cycle
        from pyVoIP.SIP import SIPClient, SIPMessage

    creds = InMemoryCredentials.from_passwords(REALM, {"alice": "wonderland"})
    server = DigestServer(REALM, creds, secret=SECRET, allow_rfc2069=True)
    headers = "".join(f"WWW-Authenticate: {v}\r\n" for v in server.challenge(0.0))
    raw = (
        "SIP/2.0 401 Unauthorized\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKx\r\n"
        "From: <sip:alice@127.0.0.1>;tag=1\r\nTo: <sip:alice@127.0.0.1>;tag=2\r\nCall-ID: c\r\n"
        f"CSeq: 1 REGISTER\r\n{headers}Content-Length: 0\r\n\r\n"
    ).encode()
    message = SIPMessage(raw)
    phone: Any = SimpleNamespace(username="alice", password="wonderland", server="127.0.0.1")
    response = SIPClient.gen_authorization(phone, message).decode()
    # The header exactly as pyVoIP's register() writes it.
    value = (
        f'Digest username="alice",realm="{message.authentication["realm"]}",'
        f'nonce="{message.authentication["nonce"]}",uri="sip:127.0.0.1;transport=UDP",'
        f'response="{response}",algorithm=MD5'
    )
    result = server.verify(value, method="REGISTER", source="127.0.0.1", now=1.0, request_uri="sip:127.0.0.1")
    assert result.outcome == "ok" and result.username == "alice"
