"""lkproto.tokens: exact claims, a verifiable signature, and no secret in the output."""

from __future__ import annotations

import jwt
import pytest

from lkproto.tokens import VideoGrants, mint_token

SECRET = "s" * 40


def test_claims_are_exact_and_the_signature_verifies() -> None:
    token = mint_token(
        "key",
        SECRET,
        now=1_700_000_000,
        identity="alice",
        name="Alice",
        metadata="m",
        attributes={"a": "1"},
        kind="agent",
        ttl=60,
        grants=VideoGrants(room="r", room_join=True, can_publish_data=False, hidden=True),
    )
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], options={"verify_exp": False})
    assert claims == {
        "iss": "key",
        "sub": "alice",
        "nbf": 1_699_999_990,
        "exp": 1_700_000_060,
        "name": "Alice",
        "metadata": "m",
        "attributes": {"a": "1"},
        "kind": "agent",
        "video": {"room": "r", "roomJoin": True, "canPublishData": False, "hidden": True},
    }
    assert SECRET not in token


def test_the_same_arguments_give_the_same_bytes() -> None:
    grants = VideoGrants(room_admin=True, room_record=True, room_list=True, room_create=True)
    a = mint_token("key", SECRET, now=5, grants=grants)
    assert a == mint_token("key", SECRET, now=5, grants=grants)
    assert a.split(".")[0] == "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    claims = jwt.decode(a, SECRET, algorithms=["HS256"], options={"verify_exp": False})
    assert claims == {
        "iss": "key",
        "nbf": -5,
        "exp": 21605,
        "video": {"roomCreate": True, "roomList": True, "roomAdmin": True, "roomRecord": True},
    }


@pytest.mark.parametrize(
    ("key", "secret", "ttl", "message"),
    [
        ("", SECRET, 60, "an API key and an API secret are required"),
        ("key", "", 60, "an API key and an API secret are required"),
        ("key", SECRET, 0, "ttl must be positive, got 0"),
    ],
)
def test_bad_arguments_raise_clear_errors(key: str, secret: str, ttl: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        mint_token(key, secret, now=0, ttl=ttl, grants=VideoGrants())
