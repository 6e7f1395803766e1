"""The MemoryRoom's small parts: token reading, link faults, the scheduler, SDP ufrags."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from lkproto import Channel
from lkproto.testing import Link, ice_ufrag
from lkproto.testing._schedule import Scheduler
from lkproto.testing._tokens import Grants, TokenError, read_token
from lkproto.tokens import VideoGrants, mint_token

KEY, SECRET = "key", "secret-0123456789abcdef0123456789"
NOW = 1_700_000_000


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: object, claims: object, secret: str = SECRET) -> str:
    head, body = b64(json.dumps(header).encode()), b64(json.dumps(claims).encode())
    sig = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


def read(token: str, unix_time: float = NOW) -> Grants:
    return read_token(token, api_key=KEY, api_secret=SECRET, unix_time=unix_time)


def test_grants_and_their_defaults() -> None:
    token = mint_token(
        KEY,
        SECRET,
        now=NOW,
        grants=VideoGrants(room="r", room_join=True, can_publish=False, hidden=True),
        identity="alice",
        name="Alice",
        metadata="m",
        attributes={"k": "v"},
        kind="sip",
    )
    assert read(token) == Grants(
        identity="alice",
        room="r",
        room_join=True,
        name="Alice",
        metadata="m",
        attributes={"k": "v"},
        kind=3,
        can_publish=False,
        can_subscribe=True,
        can_publish_data=False,  # defaults to canPublish
        can_update_metadata=False,
        hidden=True,
    )
    bare = read(forge({"alg": "HS256"}, {"iss": KEY, "attributes": ["x"], "video": "x"}))
    assert bare == Grants(identity="", room="", room_join=False)


@pytest.mark.parametrize(
    ("token", "why"),
    [
        ("only.two", "malformed token: not enough values to unpack (expected 3, got 2)"),
        ("YQ.YQ.YQ", "malformed token: Expecting value: line 1 column 1 (char 0)"),
        (forge({"alg": "none"}, {"iss": KEY}), "unsupported signing algorithm (HS256 only)"),
        (forge(["HS256"], {"iss": KEY}), "unsupported signing algorithm (HS256 only)"),
        (forge({"alg": "HS256"}, ["claims"]), "the payload is not a JSON object"),
        (forge({"alg": "HS256"}, {"iss": "other"}), "invalid API key: other"),
        (forge({"alg": "HS256"}, {"iss": KEY}, secret="wrong"), "signature is invalid"),
        (forge({"alg": "HS256"}, {"iss": KEY, "nbf": NOW + 1}), "token is not valid yet"),
        (forge({"alg": "HS256"}, {"iss": KEY, "exp": NOW}), "token is expired"),
    ],
)
def test_refused_tokens(token: str, why: str) -> None:
    with pytest.raises(TokenError) as info:
        read(token)
    assert str(info.value) == why


def test_link_faults_and_their_validation() -> None:
    link = Link()
    assert link.plan(Channel.RELIABLE, 1.0) == (1, 1.0)
    link.drop_next(1, channel=Channel.LOSSY).duplicate_next(2).delay(0.5, channel=Channel.LOSSY)
    assert link.plan(Channel.RELIABLE, 1.0) == (2, 1.0)  # shared duplicate credit
    assert link.plan(Channel.LOSSY, 1.0) == (0, 1.0)  # the lossy drop comes first
    assert link.plan(Channel.LOSSY, 1.0) == (2, 1.5)
    assert link.plan(Channel.LOSSY, 1.0) == (1, 1.5)
    link.delay(3.0)
    assert link.plan(Channel.RELIABLE, 1.0) == (1, 4.0)
    link.delay(0.0)
    assert link.plan(Channel.RELIABLE, 2.0) == (1, 4.0)  # never before the one sent earlier
    assert link.plan(Channel.RELIABLE, 5.0) == (1, 5.0)
    link.down()
    assert link.plan(Channel.LOSSY, 5.0) == (0, 5.0)
    link.up()
    assert link.plan(Channel.LOSSY, 5.0) == (1, 5.5)
    with pytest.raises(ValueError, match="non-negative number of seconds, not -1"):
        link.delay(-1)
    with pytest.raises(ValueError, match="non-negative number of seconds, not nan"):
        link.delay(float("nan"))
    with pytest.raises(ValueError, match="non-negative int, not -1"):
        link.drop_next(-1)
    with pytest.raises(ValueError, match=r"non-negative int, not 1\.5"):
        link.duplicate_next(1.5)  # type: ignore[arg-type]


def test_the_scheduler_orders_by_time_then_by_scheduling() -> None:
    clock = Scheduler(10.0)
    ran: list[str] = []
    clock.call_at(12.0, lambda: ran.append("b"))
    clock.call_at(11.0, lambda: ran.append("a"))
    clock.call_at(12.0, lambda: ran.append("c"))
    late = clock.call_at(5.0, lambda: ran.append("past means now"))
    cancelled = clock.call_soon(lambda: ran.append("never"))
    cancelled.cancel()
    assert late.when == 10.0
    assert clock.next_time() == 10.0
    assert clock.pop_due(9.0) is None
    while (action := clock.pop_due(11.5)) is not None:
        action()
    assert (ran, clock.now) == (["past means now", "a"], 11.0)
    while (action := clock.pop_due(20.0)) is not None:
        action()
    assert (ran, clock.now, clock.next_time()) == (["past means now", "a", "b", "c"], 12.0, None)


def test_ice_ufrag() -> None:
    assert ice_ufrag("v=0\r\na=ice-ufrag: abc \r\n") == "abc"
    assert ice_ufrag("v=0\r\n") is None
