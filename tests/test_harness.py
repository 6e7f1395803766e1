"""The harness itself: tokens the official verifier accepts, and a server that leaves nothing."""

from __future__ import annotations

import os

import jwt
import pytest
from livekit import api

from harness import API_KEY, API_SECRET, Confinement, LiveKitServer, mint_token


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


@pytest.mark.e2e  # starts a real livekit-server
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
    stun_host, stun_port = server.stun_address
    assert stun_host == confinement.host
    assert rtc["stun_servers"] == [f"{confinement.host}:{stun_port}"]
    with server:
        pid = server.pid
        assert pid is not None and server.running()
        assert f'"bindAddresses": ["{confinement.host}"]' in server.log_path.read_text()
    assert not server.running()
    assert not os.path.exists(f"/proc/{pid}")  # stopped and reaped: no orphan, no zombie


@pytest.mark.timeout(30)
def test_stun_responder_answers_a_binding_request_with_the_mapped_address(
    confinement: Confinement,
) -> None:
    import socket

    from aioice import stun

    from harness.stun import StunResponder

    responder = StunResponder(confinement.host).start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(5)
            client.bind((confinement.host, 0))
            request = stun.Message(
                message_method=stun.Method.BINDING,
                message_class=stun.Class.REQUEST,
                transaction_id=b"0123456789ab",
            )
            client.sendto(bytes(request), responder.address)
            reply = stun.parse_message(client.recvfrom(2048)[0])
            assert reply.message_class == stun.Class.RESPONSE
            assert reply.transaction_id == b"0123456789ab"
            assert reply.attributes["XOR-MAPPED-ADDRESS"] == client.getsockname()
            client.sendto(b"not stun", responder.address)  # ignored, never crashes it
            client.sendto(bytes(request), responder.address)
            assert stun.parse_message(client.recvfrom(2048)[0]).transaction_id == b"0123456789ab"
    finally:
        responder.close()
    assert responder.answered == 2
