"""The harness itself: tokens the official verifier accepts, and a server that leaves nothing."""

from __future__ import annotations

import os

import jwt
import pytest
from harness import API_KEY, API_SECRET, Confinement, LiveKitServer, mint_token
from livekit import api


def test_token_is_hs256_and_carries_grants_identity_name_and_attributes() -> None:
    token = mint_token(
        "agent-7",
        "room-a",
        name="Agent Seven",
        metadata='{"role":"agent"}',
        attributes={"lk.agent.state": "idle"},
        can_publish_data=False,
        can_update_own_metadata=True,
        hidden=True,
        now=1_700_000_000,
        ttl=600,
    )
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT"}
    claims = jwt.decode(token, API_SECRET, algorithms=["HS256"], options={"verify_exp": False,
                        "verify_nbf": False})  # fmt: skip
    assert claims == {
        "iss": API_KEY,
        "sub": "agent-7",
        "nbf": 1_699_999_990,
        "exp": 1_700_000_600,
        "name": "Agent Seven",
        "metadata": '{"role":"agent"}',
        "attributes": {"lk.agent.state": "idle"},
        "video": {
            "roomJoin": True,
            "room": "room-a",
            "canPublishData": False,
            "canUpdateOwnMetadata": True,
            "hidden": True,
        },
    }


def test_official_verifier_accepts_our_token() -> None:
    token = mint_token("bob", "room-b", name="Bob", attributes={"k": "v"}, can_publish=True)
    claims = api.TokenVerifier(API_KEY, API_SECRET).verify(token)
    assert (claims.identity, claims.name, claims.attributes) == ("bob", "Bob", {"k": "v"})
    assert claims.video is not None
    assert (claims.video.room_join, claims.video.room, claims.video.can_publish) == (
        True,
        "room-b",
        True,
    )


def test_official_verifier_rejects_a_token_signed_with_another_secret() -> None:
    token = mint_token("mallory", "room-c", api_secret="x" * 40)
    with pytest.raises(Exception, match=r"[Ss]ignature"):
        api.TokenVerifier(API_KEY, API_SECRET).verify(token)


@pytest.mark.timeout(60)
def test_server_starts_confined_and_stops_without_orphans(confinement: Confinement) -> None:
    server = LiveKitServer(confinement)
    config = server.config()
    assert config["bind_addresses"] == [confinement.host]
    rtc = config["rtc"]
    assert isinstance(rtc, dict)
    assert rtc["node_ip"] == confinement.host
    assert rtc["use_external_ip"] is False
    assert rtc["ips"] == {"includes": [f"{confinement.host}/32"]}
    assert rtc["stun_servers"] == [f"{confinement.host}:{server.rtc_udp_port}"]
    with server:
        pid = server.pid
        assert pid is not None and server.running()
        assert f'"bindAddresses": ["{confinement.host}"]' in server.log_path.read_text()
    assert not server.running()
    assert not os.path.exists(f"/proc/{pid}")  # stopped and reaped: no orphan, no zombie
