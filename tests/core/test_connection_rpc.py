"""RPC through `Connection`: two (or three) connections relayed by an in-memory SFU.

Literal times throughout (T0 = 100.0). "alice" calls "bob"; ids come from per-connection
counters ("alice-1", "bob-1", ...). Every connection advertises what its `Config` says, and
the relay stamps sender identity and SID as the server does (protocol-reference A.5).
"""

from __future__ import annotations

import pytest
from fake_sfu import FakeSfu
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from sfu_relay import T0, Sfu, events, packets

from lkproto import Channel, Config, Connection, LocalProtocolError
from lkproto import commands as cmd
from lkproto import events as ev
from lkproto._pb import data_pb2 as dpb
from lkproto.rpc import (
    ATTR_METHOD,
    ATTR_REQUEST_ID,
    ATTR_RESPONSE_TIMEOUT_MS,
    ATTR_VERSION,
    RpcError,
    RpcErrorCode,
    RpcInvocationData,
)

E = RpcErrorCode
LEGACY = Config(client_protocol=0, capabilities=())  # an RPC v1, plain-stream client
UNIX0 = 1_700_000_000_000


def pair(
    alice: Config | None = None, bob: Config | None = None, **alice_kwargs: object
) -> tuple[Sfu, Connection, Connection]:
    sfu = Sfu()
    b = sfu.join("bob", bob)
    b.register_rpc_method("greet")
    a = sfu.join("alice", alice, **alice_kwargs)  # type: ignore[arg-type]
    return sfu, a, b


def invoked(
    request_id: str = "alice-1", payload: str = "hi", timeout: float = 15.0, method: str = "greet"
) -> ev.RpcInvoked:
    return ev.RpcInvoked(
        invocation=RpcInvocationData(
            request_id=request_id,
            caller_identity="alice",
            payload=payload,
            response_timeout=timeout,
            method=method,
        )
    )


def built_in(code: RpcErrorCode, data: str | None = None) -> RpcError:
    return RpcError.built_in(code, data)


def rpc_attrs(request_id: str = "alice-1", timeout_ms: str = "15000") -> dict[str, str]:
    return {
        ATTR_REQUEST_ID: request_id,
        ATTR_METHOD: "greet",
        ATTR_RESPONSE_TIMEOUT_MS: timeout_ms,
        ATTR_VERSION: "2",
    }


# -- round trips ----------------------------------------------------------------------------------


def test_v2_round_trip_with_exact_wire_and_events() -> None:
    sfu, alice, bob = pair()
    request_id = alice.perform_rpc(destination_identity="bob", method="greet", payload="hi", now=T0)
    assert request_id == "alice-1"
    (request,) = sfu.deliver("alice", now=T0 + 0.1)
    # v2: a text stream on lk.rpc_request, inline (bob advertises client_protocol 2).
    expected = dpb.DataPacket(
        kind=dpb.DataPacket.RELIABLE,
        sequence=1,
        destination_identities=["bob"],
        stream_header=dpb.DataStream.Header(
            stream_id="alice-2",
            timestamp=UNIX0,
            topic="lk.rpc_request",
            mime_type="text/plain",
            total_length=2,
            attributes=rpc_attrs(),
            text_header=dpb.DataStream.TextHeader(),
            inline_content=b"hi",
        ),
    )
    assert request == expected
    assert events(bob) == [invoked()]
    assert events(alice) == []
    # The ack went out when the header arrived, before the handler ran.
    (ack,) = sfu.deliver("bob", now=T0 + 0.2)
    assert ack == dpb.DataPacket(
        kind=dpb.DataPacket.RELIABLE,
        sequence=1,
        destination_identities=["alice"],
        rpc_ack=dpb.RpcAck(request_id="alice-1"),
    )
    assert alice.get_timer() == T0 + 15.0  # the ack cancelled the 7 s deadline
    bob.respond_rpc("alice-1", "hello 👋", now=T0 + 1.0)
    (response,) = sfu.deliver("bob", now=T0 + 1.1)
    assert response.stream_header.topic == "lk.rpc_response"
    assert dict(response.stream_header.attributes) == {ATTR_REQUEST_ID: "alice-1"}
    assert response.stream_header.inline_content == "hello 👋".encode()
    assert events(alice) == [ev.RpcSucceeded(request_id="alice-1", payload="hello 👋")]
    assert events(bob) == []
    assert alice.get_timer() is None and bob.get_timer() is None
    assert alice.buffered_stream_bytes == 0 and bob.buffered_stream_bytes == 0


@pytest.mark.parametrize("legacy", ["caller", "callee"])
def test_v1_round_trip_when_either_side_is_legacy(legacy: str) -> None:
    configs = {"alice": LEGACY} if legacy == "caller" else {"bob": LEGACY}
    sfu, alice, bob = pair(configs.get("alice"), configs.get("bob"))
    alice.perform_rpc(
        destination_identity="bob", method="greet", payload="hi", now=T0, response_timeout=20.0
    )
    (request,) = sfu.deliver("alice", now=T0)
    assert request.rpc_request == dpb.RpcRequest(
        id="alice-1", method="greet", payload="hi", response_timeout_ms=20000, version=1
    )
    assert events(bob) == [invoked(timeout=20.0)]
    bob.respond_rpc("alice-1", None, now=T0 + 1)
    ack, response = sfu.deliver("bob", now=T0 + 1)
    assert ack.rpc_ack.request_id == "alice-1"
    assert response.rpc_response == dpb.RpcResponse(request_id="alice-1", payload="")
    assert events(alice) == [ev.RpcSucceeded(request_id="alice-1", payload="")]


def test_a_large_v2_request_is_chunked_and_acked_at_its_header() -> None:
    sfu, alice, bob = pair(bob=Config(client_protocol=1, capabilities=()))
    payload = "🦀" * 25_600  # 100 KiB of 4-byte characters
    alice.perform_rpc(destination_identity="bob", method="greet", payload=payload, now=T0)
    sends = sfu.take("alice")
    assert len(sends) == 1 + 7 + 1  # header, 7 chunks of at most 15 000 bytes, trailer
    sfu.forward("alice", sends[:1], now=T0 + 0.1)
    assert [p.rpc_ack.request_id for p in sfu.deliver("bob", now=T0 + 0.1)] == ["alice-1"]
    assert events(bob) == []
    assert bob.buffered_stream_bytes == 0
    sfu.forward("alice", sends[1:5], now=T0 + 0.2)
    assert bob.buffered_stream_bytes == 60_000  # held against the bound until complete
    sfu.forward("alice", sends[5:], now=T0 + 0.3)
    assert events(bob) == [invoked(payload=payload)]
    assert bob.buffered_stream_bytes == 0
    assert events(alice) == []
    bob.respond_rpc("alice-1", payload[::-1], now=T0 + 1)
    # alice advertises client_protocol 2 and deflate: the answer goes back in one packet.
    (response,) = sfu.deliver("bob", now=T0 + 1)
    assert response.stream_header.compression == dpb.DataStream.DEFLATE_RAW
    assert events(alice) == [ev.RpcSucceeded(request_id="alice-1", payload=payload[::-1])]


def test_v2_requests_to_a_compression_capable_peer_are_deflated() -> None:
    sfu, alice, bob = pair()
    payload = "na" * 10_000
    alice.perform_rpc(destination_identity="bob", method="greet", payload=payload, now=T0)
    (request,) = sfu.deliver("alice", now=T0)
    assert request.stream_header.compression == dpb.DataStream.DEFLATE_RAW
    assert len(request.stream_header.inline_content) < 200
    assert events(bob) == [invoked(payload=payload)]


def test_methods_registered_before_connect_and_unknown_ones_get_1400() -> None:
    sfu = Sfu()
    bob = sfu.join("bob", before_connect=lambda c: c.register_rpc_method("early"))
    assert bob.rpc_methods == frozenset({"early"})
    alice = sfu.join("alice")
    for method in ("early", "nope"):
        alice.perform_rpc(destination_identity="bob", method=method, payload="x", now=T0)
    sfu.settle(now=T0)
    assert events(bob) == [invoked(method="early", payload="x")]
    assert events(alice) == [
        ev.RpcFailed(request_id="alice-3", error=built_in(E.UNSUPPORTED_METHOD))
    ]
    bob.unregister_rpc_method("early")
    bob.unregister_rpc_method("early")  # idempotent
    alice.perform_rpc(destination_identity="bob", method="early", payload="x", now=T0)
    sfu.settle(now=T0)
    assert events(alice) == [
        ev.RpcFailed(request_id="alice-5", error=built_in(E.UNSUPPORTED_METHOD))
    ]


@pytest.mark.parametrize("bob_config", [None, LEGACY], ids=["v2", "v1"])
def test_rpc_errors_cross_intact(bob_config: Config | None) -> None:
    sfu, alice, bob = pair(bob=bob_config)
    ids = [
        alice.perform_rpc(destination_identity="bob", method="greet", payload="x", now=T0)
        for _ in range(3)
    ]
    # v2 draws a stream id after each request id.
    v2 = bob_config is None
    assert ids == (["alice-1", "alice-3", "alice-5"] if v2 else ["alice-1", "alice-2", "alice-3"])
    sfu.deliver("alice", now=T0)
    events(bob)
    error = RpcError(42, "nope \N{FACE WITH NO GOOD GESTURE}", '{"why": "because", "n": [1, 2]}')
    bob.respond_rpc(ids[0], error, now=T0)
    bob.respond_rpc_exception(ids[1], ValueError("secret"), now=T0)
    bob.respond_rpc_exception(ids[2], KeyError("k"), now=T0, include_detail=True)
    sfu.settle(now=T0)
    assert events(alice) == [
        ev.RpcFailed(request_id=ids[0], error=error),
        ev.RpcFailed(request_id=ids[1], error=built_in(E.APPLICATION_ERROR)),
        ev.RpcFailed(request_id=ids[2], error=built_in(E.APPLICATION_ERROR, "KeyError: 'k'")),
    ]


def test_a_v1_caller_gets_1504_for_a_large_response() -> None:
    sfu, alice, bob = pair(alice=LEGACY)
    alice.perform_rpc(destination_identity="bob", method="greet", payload="x", now=T0)
    sfu.deliver("alice", now=T0)
    bob.respond_rpc("alice-1", "y" * 15_361, now=T0)
    sfu.settle(now=T0)
    assert events(alice) == [
        ev.RpcFailed(request_id="alice-1", error=built_in(E.RESPONSE_PAYLOAD_TOO_LARGE))
    ]


# -- timers ---------------------------------------------------------------------------------------


def test_1501_without_an_ack_fires_at_exactly_7_seconds() -> None:
    sfu, alice, _ = pair()
    alice.perform_rpc(destination_identity="bob", method="greet", payload="hi", now=T0)
    sfu.take("alice")  # lost
    assert alice.get_timer() == T0 + 7.0
    alice.handle_timer(T0 + 6.999)  # early: nothing
    assert events(alice) == []
    assert alice.get_timer() == T0 + 7.0
    alice.handle_timer(T0 + 7.0)
    assert events(alice) == [
        ev.RpcFailed(request_id="alice-1", error=built_in(E.CONNECTION_TIMEOUT))
    ]
    assert alice.get_timer() is None
    alice.handle_timer(T0 + 7.0)  # repeated: nothing
    assert events(alice) == []


def test_1502_then_the_late_response_is_ignored() -> None:
    sfu, alice, bob = pair()
    alice.perform_rpc(
        destination_identity="bob", method="greet", payload="hi", now=T0, response_timeout=10.0
    )
    sfu.deliver("alice", now=T0 + 1.0)  # bob's handler deadline: T0 + 1 + 10
    assert events(bob) == [invoked(timeout=10.0)]
    sfu.deliver("bob", now=T0 + 1.0)  # the ack
    assert alice.get_timer() == T0 + 10.0
    assert bob.get_timer() == T0 + 11.0
    alice.handle_timer(T0 + 10.0)
    assert events(alice) == [ev.RpcFailed(request_id="alice-1", error=built_in(E.RESPONSE_TIMEOUT))]
    bob.respond_rpc("alice-1", "too late", now=T0 + 10.5)
    sfu.deliver("bob", now=T0 + 10.5)
    assert events(alice) == [
        ev.RpcDropped(
            reason="unknown",
            request_id="alice-1",
            participant_identity="bob",
            detail="no pending call (late or not ours)",
        )
    ]
    assert alice.get_timer() is None and bob.get_timer() is None


def test_the_handler_deadline_answers_1502_and_cancels_the_invocation() -> None:
    sfu, alice, bob = pair()
    alice.perform_rpc(destination_identity="bob", method="greet", payload="hi", now=T0)
    sfu.deliver("alice", now=T0)
    events(bob)
    sfu.deliver("bob", now=T0)
    bob.handle_timer(T0 + 15.0)
    assert events(bob) == [
        ev.RpcInvocationCancelled(
            request_id="alice-1", caller_identity="alice", reason=E.RESPONSE_TIMEOUT
        )
    ]
    sfu.deliver("bob", now=T0 + 15.0)
    assert events(alice) == [ev.RpcFailed(request_id="alice-1", error=built_in(E.RESPONSE_TIMEOUT))]
    bob.respond_rpc("alice-1", "late", now=T0 + 16)
    assert sfu.take("bob") == []
    assert [type(e) for e in events(bob)] == [ev.RpcDropped]


def test_config_caps_the_handler_deadline_a_caller_asks_for() -> None:
    sfu, alice, bob = pair(bob=Config(rpc_max_handler_timeout=2.0))
    alice.perform_rpc(
        destination_identity="bob", method="greet", payload="hi", now=T0, response_timeout=60.0
    )
    sfu.deliver("alice", now=T0)
    assert events(bob) == [invoked(timeout=2.0)]
    sfu.deliver("bob", now=T0)  # the ack
    assert bob.get_timer() == T0 + 2.0
    bob.handle_timer(T0 + 2.0)
    assert events(bob) == [
        ev.RpcInvocationCancelled(
            request_id="alice-1", caller_identity="alice", reason=E.RESPONSE_TIMEOUT
        )
    ]
    sfu.deliver("bob", now=T0 + 2.0)
    assert events(alice) == [ev.RpcFailed(request_id="alice-1", error=built_in(E.RESPONSE_TIMEOUT))]
    with pytest.raises(ValueError, match=r"Config\.rpc_max_handler_timeout must be a positive"):
        Config(rpc_max_handler_timeout=float("inf"))


def test_deadlines_fire_in_time_order_across_rpc_and_the_session() -> None:
    # The ack deadline (T0 + 7) passes before the ping timeout (T0 + 10): a late timer call
    # still reports 1501 first, then the session end (reconnecting is off here).
    sfu = Sfu()
    sfu.join("bob")
    alice = sfu.join("alice", Config(reconnect_attempts=0), ping=(5, 10))
    alice.perform_rpc(destination_identity="bob", method="greet", payload="hi", now=T0)
    sfu.take("alice")
    assert alice.get_timer() == T0 + 5.0  # the ping
    alice.handle_timer(T0 + 30.0)
    out = events(alice)
    assert out[0] == ev.RpcFailed(request_id="alice-1", error=built_in(E.CONNECTION_TIMEOUT))
    assert isinstance(out[1], ev.Disconnected) and len(out) == 2
    assert alice.get_timer() is None


def test_equal_deadlines_fire_rpc_first() -> None:
    sfu = Sfu()
    sfu.join("bob")
    alice = sfu.join("alice", Config(reconnect_attempts=0), ping=(5, 7))
    alice.perform_rpc(destination_identity="bob", method="greet", payload="hi", now=T0)
    sfu.take("alice")
    alice.handle_timer(T0 + 5)
    alice.handle_timer(T0 + 7)
    out = events(alice)
    assert out[0] == ev.RpcFailed(request_id="alice-1", error=built_in(E.CONNECTION_TIMEOUT))
    assert isinstance(out[1], ev.Disconnected)


# -- participants leaving, the session ending ----------------------------------------------------


@pytest.mark.parametrize("bob_config", [None, LEGACY], ids=["v2", "v1"])
def test_1503_when_the_destination_leaves(bob_config: Config | None) -> None:
    sfu, alice, _bob = pair(bob=bob_config)
    carol = sfu.join("carol")
    carol.register_rpc_method("greet")
    alice.perform_rpc(destination_identity="bob", method="greet", payload="1", now=T0)
    alice.perform_rpc(destination_identity="carol", method="greet", payload="2", now=T0)
    sfu.deliver("alice", now=T0)
    sfu.leave("bob", now=T0 + 1)
    assert [type(e) for e in events(alice)] == [ev.ParticipantDisconnected]
    # What the leave overtook has Config.rpc_departed_callee_timeout (2 s) to arrive.
    alice.handle_timer(T0 + 2.9)
    assert events(alice) == []
    alice.handle_timer(T0 + 3)
    out = events(alice)
    assert out == [ev.RpcFailed(request_id="alice-1", error=built_in(E.RECIPIENT_DISCONNECTED))]
    # The call to carol carries on.
    sfu.settle(now=T0 + 1)
    carol_request = next(e for e in events(carol) if isinstance(e, ev.RpcInvoked))
    carol.respond_rpc(carol_request.invocation.request_id, "ok", now=T0 + 1)
    sfu.settle(now=T0 + 1)
    assert events(alice) == [
        ev.RpcSucceeded(request_id=carol_request.invocation.request_id, payload="ok")
    ]


@pytest.mark.parametrize("bob_config", [None, LEGACY], ids=["v2", "v1"])
def test_a_response_the_leave_overtook_still_resolves_the_call(bob_config: Config | None) -> None:
    # issue 19 item 1: bob answers and leaves; the leave (signaling) arrives first.
    sfu, alice, bob = pair(bob=bob_config)
    alice.perform_rpc(destination_identity="bob", method="greet", payload="hi", now=T0)
    sfu.deliver("alice", now=T0)
    request = next(e for e in events(bob) if isinstance(e, ev.RpcInvoked))
    bob.respond_rpc(request.invocation.request_id, "hello", now=T0)
    answer = sfu.take("bob")  # the ack and the response, still in flight
    peer = sfu.peers["bob"]
    sfu.leave("bob", now=T0 + 0.5)
    assert [type(e) for e in events(alice)] == [ev.ParticipantDisconnected]
    sfu.peers["bob"] = peer
    sfu.forward("bob", answer, now=T0 + 1)
    assert events(alice) == [ev.RpcSucceeded(request_id="alice-1", payload="hello")]
    assert alice.get_timer() != T0 + 2.5  # the departed deadline went with the call


def test_a_departed_callee_timeout_of_zero_fails_the_call_at_the_leave() -> None:
    sfu, alice, _bob = pair(alice=Config(rpc_departed_callee_timeout=0))
    alice.perform_rpc(destination_identity="bob", method="greet", payload="1", now=T0)
    sfu.deliver("alice", now=T0)
    sfu.leave("bob", now=T0 + 1)
    out = events(alice)
    assert out[1:] == [ev.RpcFailed(request_id="alice-1", error=built_in(E.RECIPIENT_DISCONNECTED))]


@pytest.mark.parametrize("departed", [10.0, 0.0])
def test_the_caller_leaving_cancels_its_invocation_and_its_unread_request(departed: float) -> None:
    # The unread request is dropped at the leave, whatever the departed-sender timeout.
    config = Config(client_protocol=1, capabilities=(), stream_departed_sender_timeout=departed)
    sfu, alice, bob = pair(bob=config)
    alice.perform_rpc(destination_identity="bob", method="greet", payload="a", now=T0)
    alice.perform_rpc(destination_identity="bob", method="greet", payload="b" * 20_000, now=T0)
    sends = sfu.take("alice")
    sfu.forward("alice", sends[:-2], now=T0)  # the first whole, the second without its end
    assert events(bob) == [invoked(payload="a")]
    assert bob.get_timer() == T0 + 15.0
    sfu.leave("alice", now=T0 + 1)
    assert [type(e) for e in events(bob)] == [
        ev.ParticipantDisconnected,
        ev.RpcInvocationCancelled,
    ]
    assert bob.get_timer() is None and bob.buffered_stream_bytes == 0


def test_the_session_ending_settles_every_call_and_invocation_before_disconnected() -> None:
    sfu, alice, bob = pair()
    bob.perform_rpc(destination_identity="alice", method="m", payload="x", now=T0)
    alice.perform_rpc(destination_identity="bob", method="greet", payload="y", now=T0)
    sfu.deliver("alice", now=T0)
    assert events(bob) == [invoked(payload="y")]
    bob.close(now=T0 + 1)
    assert [type(c) for c in bob.commands_to_send()][-3:] == [
        cmd.SendSignal,  # leave
        cmd.CloseSignal,
        cmd.ClosePeerConnection,
    ]
    out = events(bob)
    assert out[:2] == [
        ev.RpcFailed(request_id="bob-1", error=built_in(E.RECIPIENT_DISCONNECTED)),
        ev.RpcInvocationCancelled(
            request_id="alice-1", caller_identity="alice", reason=E.RECIPIENT_DISCONNECTED
        ),
    ]
    assert isinstance(out[2], ev.Disconnected) and len(out) == 3
    assert bob.get_timer() is None
    # A handler finishing afterwards is told its answer was dropped, not refused.
    bob.respond_rpc("alice-1", "done", now=T0 + 2)
    assert bob.commands_to_send() == []
    assert events(bob) == [
        ev.RpcDropped(
            reason="unknown",
            request_id="alice-1",
            participant_identity="",
            detail="respond() for no running invocation",
        )
    ]


# -- refusals --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "data"),
    [
        ({"hidden": True}, "hidden participants cannot perform RPC"),
        ({"can_publish_data": False}, "this participant lacks canPublishData"),
    ],
)
def test_a_caller_the_server_would_silence_fails_fast(kwargs: dict[str, bool], data: str) -> None:
    _sfu, alice, _ = pair(**kwargs)
    alice.perform_rpc(destination_identity="bob", method="greet", payload="hi", now=T0)
    assert alice.commands_to_send() == []
    (failed,) = events(alice)
    assert isinstance(failed, ev.RpcFailed) and failed.request_id == "alice-1"
    assert (failed.error.code, failed.error.message) == (1505, "Failed to send")
    assert (failed.error.data or "").startswith(data)
    assert alice.get_timer() is None


def test_permissions_follow_local_participant_updates() -> None:
    sfu, alice, _ = pair()
    me = sfu.peers["alice"].info
    me.version = 2
    me.permission.can_publish_data = False
    alice.receive_signal(FakeSfu.update(me), now=T0)
    events(alice)
    alice.perform_rpc(destination_identity="bob", method="greet", payload="hi", now=T0)
    assert [e.error.code for e in events(alice) if isinstance(e, ev.RpcFailed)] == [1505]
    me.version = 3
    me.ClearField("permission")  # an update without permissions changes nothing
    alice.receive_signal(FakeSfu.update(me), now=T0)
    events(alice)
    alice.perform_rpc(destination_identity="bob", method="greet", payload="hi", now=T0)
    assert [e.error.code for e in events(alice) if isinstance(e, ev.RpcFailed)] == [1505]
    me.version = 4
    me.permission.can_publish_data = True
    alice.receive_signal(FakeSfu.update(me), now=T0)
    events(alice)
    alice.perform_rpc(destination_identity="bob", method="greet", payload="hi", now=T0)
    assert events(alice) == [] and len(sfu.take("alice")) == 1


def test_1403_below_server_1_8_and_1402_for_large_v1_payloads() -> None:
    sfu = Sfu()
    sfu.join("bob", LEGACY)
    alice = sfu.join("alice", server_version="1.7.2")
    alice.perform_rpc(destination_identity="bob", method="greet", payload="x", now=T0)
    alice.perform_rpc(destination_identity="ghost", method="greet", payload="x" * 15_361, now=T0)
    assert events(alice) == [
        ev.RpcFailed(request_id="alice-1", error=built_in(E.UNSUPPORTED_SERVER)),
        ev.RpcFailed(request_id="alice-2", error=built_in(E.REQUEST_PAYLOAD_TOO_LARGE)),
    ]
    assert alice.commands_to_send() == []


def test_a_request_that_cannot_be_sent_fails_with_1505() -> None:
    _sfu, alice, _ = pair(alice=Config(max_queued_send_bytes=100))
    alice.data_channel_closed(Channel.RELIABLE, now=T0)
    alice.perform_rpc(destination_identity="bob", method="greet", payload="x" * 200, now=T0)
    (failed,) = events(alice)
    assert isinstance(failed, ev.RpcFailed) and failed.error.code == 1505
    assert failed.error.data is not None
    assert failed.error.data.startswith("perform_rpc: the _reliable channel is not open")
    assert alice.commands_to_send() == [] and alice.get_timer() is None
    assert alice.next_sequence == 1


def test_a_v2_response_that_cannot_be_sent_becomes_a_1505_error_packet() -> None:
    v1_streams = Config(client_protocol=1, capabilities=())  # RPC v2, no inline/deflate
    sfu, alice, bob = pair(alice=v1_streams, bob=Config(max_queued_send_bytes=400))
    alice.perform_rpc(destination_identity="bob", method="greet", payload="x", now=T0)
    bob.data_channel_closed(Channel.RELIABLE, now=T0)
    sfu.deliver("alice", now=T0)
    assert bob.commands_to_send() == []  # the ack waits for the channel
    events(bob)
    bob.respond_rpc("alice-1", "🙂" * 200, now=T0)  # 800 bytes: no room; an error packet fits
    bob.data_channel_opened(Channel.RELIABLE, now=T0)
    sfu.settle(now=T0)
    (failed,) = events(alice)
    assert isinstance(failed, ev.RpcFailed)
    assert failed.error == built_in(E.SEND_FAILED)


def test_rpc_verbs_check_state_and_arguments() -> None:
    sfu = Sfu()
    fresh = Connection(now=T0, unix_time_ms=UNIX0, id_factory=lambda: "x")
    with pytest.raises(LocalProtocolError, match=r"perform_rpc\(\) is not allowed .* NEW"):
        fresh.perform_rpc(destination_identity="bob", method="m", payload="", now=T0)
    with pytest.raises(LocalProtocolError, match=r"respond_rpc\(\) is not allowed"):
        fresh.respond_rpc("r", "x", now=T0)
    for method in ("", 7):
        with pytest.raises(LocalProtocolError, match="must be a non-empty str"):
            fresh.register_rpc_method(method)  # type: ignore[arg-type]
    fresh.register_rpc_method("m")
    with pytest.raises(LocalProtocolError, match="'m' is already registered") as err:
        fresh.register_rpc_method("m")
    assert (err.value.call, err.value.state) == ("register_rpc_method", "NEW")
    sfu.join("bob")
    alice = sfu.join("alice", Config(max_pending_rpcs=1, max_rpc_method_bytes=4))
    with pytest.raises(LocalProtocolError, match="cannot call ourselves"):
        alice.perform_rpc(destination_identity="alice", method="m", payload="", now=T0)
    with pytest.raises(LocalProtocolError, match="method name must be 1 to 4") as err:
        alice.perform_rpc(destination_identity="bob", method="greet", payload="", now=T0)
    assert (err.value.call, err.value.state) == ("perform_rpc", "CONNECTED")
    with pytest.raises(LocalProtocolError, match="response_timeout must be a positive"):
        alice.perform_rpc(
            destination_identity="bob", method="m", payload="", now=T0, response_timeout=0
        )
    alice.perform_rpc(destination_identity="bob", method="m", payload="", now=T0)
    with pytest.raises(LocalProtocolError, match="1 calls are already pending"):
        alice.perform_rpc(destination_identity="bob", method="m", payload="", now=T0)
    with pytest.raises(LocalProtocolError, match="the result must be str"):
        alice.respond_rpc("r", 5, now=T0)  # type: ignore[arg-type]
    assert alice.commands_to_send() != []


# -- hostile or broken peers ----------------------------------------------------------------------


def inject(conn: Connection, packet: dpb.DataPacket, sender: str = "alice") -> None:
    packet.participant_identity = sender
    packet.participant_sid = f"PA_{sender}"
    conn.receive_data_packet(packet.SerializeToString(), channel=Channel.RELIABLE, now=T0)


def header(
    stream_id: str = "s1",
    topic: str = "lk.rpc_request",
    attributes: dict[str, str] | None = None,
    **fields: object,
) -> dpb.DataPacket:
    h = dpb.DataStream.Header(
        stream_id=stream_id,
        topic=topic,
        attributes=rpc_attrs() if attributes is None else attributes,
        text_header=dpb.DataStream.TextHeader(),
        **fields,  # type: ignore[arg-type]
    )
    return dpb.DataPacket(stream_header=h)


def chunk(stream_id: str, index: int, content: bytes) -> dpb.DataPacket:
    return dpb.DataPacket(
        stream_chunk=dpb.DataStream.Chunk(stream_id=stream_id, chunk_index=index, content=content)
    )


def trailer(stream_id: str, reason: str = "") -> dpb.DataPacket:
    return dpb.DataPacket(stream_trailer=dpb.DataStream.Trailer(stream_id=stream_id, reason=reason))


def test_a_broken_request_stream_is_answered_1500() -> None:
    sfu, alice, bob = pair(bob=Config(client_protocol=1, capabilities=()))
    alice.perform_rpc(destination_identity="bob", method="greet", payload="x" * 40_000, now=T0)
    sends = sfu.take("alice")
    sfu.forward("alice", sends[:2], now=T0)  # header and the first chunk
    aborted = dpb.DataPacket.FromString(sends[-1].data)
    aborted.stream_trailer.reason = "interrupted"
    aborted.sequence = 99
    sfu.forward(
        "alice",
        [cmd.SendDataPacket(channel=Channel.RELIABLE, data=aborted.SerializeToString())],
        now=T0,
    )
    assert events(bob) == [
        ev.RpcDropped(
            reason="failed",
            request_id="alice-1",
            participant_identity="alice",
            detail="the sender aborted the stream: interrupted",
        )
    ]
    sfu.settle(now=T0)
    assert events(alice) == [
        ev.RpcFailed(
            request_id="alice-1",
            error=built_in(E.APPLICATION_ERROR, "Error reading RPC request payload"),
        )
    ]
    assert bob.buffered_stream_bytes == 0 and bob.get_timer() is None


def test_a_broken_response_stream_fails_the_call_1500() -> None:
    sfu, alice, bob = pair(alice=Config(client_protocol=1, capabilities=()))
    alice.perform_rpc(destination_identity="bob", method="greet", payload="x", now=T0)
    sfu.deliver("alice", now=T0)
    sfu.deliver("bob", now=T0)
    events(bob)
    inject(alice, header("r1", "lk.rpc_response", {ATTR_REQUEST_ID: "alice-1"}), sender="bob")
    inject(alice, trailer("r1", "oops"), sender="bob")
    assert events(alice) == [
        ev.RpcFailed(
            request_id="alice-1",
            error=built_in(
                E.APPLICATION_ERROR,
                "Error reading RPC response payload: the sender aborted the stream: oops",
            ),
        )
    ]


def test_responses_from_anyone_but_the_destination_are_dropped() -> None:
    sfu, alice, _bob = pair()
    sfu.join("mallory")
    alice.perform_rpc(destination_identity="bob", method="greet", payload="x", now=T0)
    sfu.take("alice")
    inject(
        alice,
        header("m1", "lk.rpc_response", {ATTR_REQUEST_ID: "alice-1"}, inline_content=b"evil"),
        sender="mallory",
    )
    inject(alice, dpb.DataPacket(rpc_ack=dpb.RpcAck(request_id="alice-1")), sender="mallory")
    assert [(e.reason, e.participant_identity) for e in events(alice)] == [  # type: ignore[union-attr]
        ("wrong-sender", "mallory"),
        ("wrong-sender", "mallory"),
    ]
    assert alice.get_timer() == T0 + 7.0


def test_bad_rpc_stream_headers_are_reported_as_rpc_drops() -> None:
    _, _, bob = pair()
    inject(bob, header("s1", compression=7))
    inject(bob, header("s2"))
    inject(bob, header("s2"))  # a duplicate stream id
    byte_header = header("s3")
    byte_header.stream_header.byte_header.name = "x"  # a byte stream on lk.rpc_request
    inject(bob, byte_header)
    out = events(bob)
    assert [(e.reason, e.request_id) for e in out] == [  # type: ignore[union-attr]
        ("malformed", "alice-1"),
        ("duplicate", "alice-1"),
        ("malformed", "alice-1"),
    ]
    assert out[0] == ev.RpcDropped(
        reason="malformed",
        request_id="alice-1",
        participant_identity="alice",
        detail="lk.rpc_request stream s1: unknown compression 7",
    )
    # Only s2's header was admitted (acked), and it is still being read.
    assert bob.get_timer() == T0 + 15.0


def test_a_request_over_the_invocation_bound_is_answered_and_its_payload_ignored() -> None:
    _sfu, _alice, bob = pair(bob=Config(max_incoming_rpcs=1))
    inject(bob, header("s1"))  # admitted, being read
    inject(bob, header("s2", attributes=rpc_attrs("r2")))  # chunked: over the bound
    inject(
        bob, header("s3", attributes=rpc_attrs("r3"), inline_content=b"inline")
    )  # inline: over too
    inject(bob, chunk("s2", 0, b"payload"))
    inject(bob, trailer("s2"))
    assert events(bob) == [
        ev.RpcDropped(
            reason="refused",
            request_id=request_id,
            participant_identity="alice",
            detail="too many concurrent RPC invocations",
        )
        for request_id in ("r2", "r3")
    ]
    acks_and_errors = [
        (p.WhichOneof("value"), p.rpc_ack.request_id or p.rpc_response.request_id)
        for p in packets(bob.commands_to_send())
    ]
    assert acks_and_errors == [
        ("rpc_ack", "alice-1"),
        ("rpc_ack", "r2"),
        ("rpc_response", "r2"),
        ("rpc_ack", "r3"),
        ("rpc_response", "r3"),
    ]
    assert bob.buffered_stream_bytes == 0
    # Readers' flow-control calls about RPC streams are ignored.
    bob.stream_consumed("alice", "s1", 100)
    bob.stream_discarded("alice", "s1")
    inject(bob, trailer("s1"))
    assert events(bob) == [invoked(payload="")]


def test_an_anonymous_v2_request_is_dropped_once() -> None:
    _, _, bob = pair()
    inject(bob, header("s1", inline_content=b"hi"), sender="")
    assert [(e.reason, e.request_id) for e in events(bob)] == [("anonymous", "alice-1")]  # type: ignore[union-attr]
    assert bob.commands_to_send() == []


# -- property: every call through two connections resolves exactly once -------------------------

STREAM_EVENTS = (
    ev.StreamOpened,
    ev.StreamChunkReceived,
    ev.StreamFinished,
    ev.StreamFailed,
    ev.StreamDropped,
)


class RpcPairMachine(RuleBasedStateMachine):
    """alice calls bob through the relay; packets are delayed or lost, bob answers or not,
    time jumps, bob may leave. Invariants: a call resolves at most once (exactly once after
    alice's session ends), an invocation ends at most once, RPC streams never surface, and
    after `handle_timer(now)` the timer is None or later than now."""

    def __init__(self) -> None:
        super().__init__()
        self.sfu, self.alice, self.bob = pair(bob=Config(max_incoming_rpcs=4))
        self.now = T0
        self.calls: list[str] = []
        self.resolved: dict[str, int] = {}
        self.running: list[str] = []  # bob's invocations awaiting an answer
        self.ended: dict[str, int] = {}
        self.bob_here = True

    def collect(self) -> None:
        for e in events(self.alice):
            assert not isinstance(e, STREAM_EVENTS), e
            if isinstance(e, ev.RpcSucceeded | ev.RpcFailed):
                assert e.request_id in self.calls
                self.resolved[e.request_id] = self.resolved.get(e.request_id, 0) + 1
        for e in events(self.bob):
            assert not isinstance(e, STREAM_EVENTS), e
            if isinstance(e, ev.RpcInvoked):
                request_id = e.invocation.request_id
                assert request_id not in self.ended and request_id not in self.running
                self.running.append(request_id)
            elif isinstance(e, ev.RpcInvocationCancelled):
                self.running.remove(e.request_id)
                self.ended[e.request_id] = self.ended.get(e.request_id, 0) + 1

    @initialize(size=st.sampled_from([1, 20_000]))
    def first_call(self, size: int) -> None:
        self.perform(size, None)

    @rule(size=st.sampled_from([1, 100, 20_000]), timeout=st.sampled_from([None, 1.0, 9.0]))
    def perform(self, size: int, timeout: float | None) -> None:
        self.calls.append(
            self.alice.perform_rpc(
                destination_identity="bob",
                method="greet",
                payload="p" * size,
                now=self.now,
                response_timeout=timeout,
            )
        )
        self.collect()

    @rule(lose=st.booleans())
    def alice_sends(self, lose: bool) -> None:
        sends = self.sfu.take("alice")
        if not lose:
            self.sfu.forward("alice", sends, now=self.now)
        self.collect()

    @precondition(lambda self: self.bob_here)
    @rule(lose=st.booleans())
    def bob_sends(self, lose: bool) -> None:
        sends = self.sfu.take("bob")
        if not lose:
            self.sfu.forward("bob", sends, now=self.now)
        self.collect()

    @precondition(lambda self: self.bob_here and self.running)
    @rule(pick=st.integers(min_value=0), fail=st.booleans())
    def bob_answers(self, pick: int, fail: bool) -> None:
        request_id = self.running.pop(pick % len(self.running))
        self.ended[request_id] = self.ended.get(request_id, 0) + 1
        self.bob.respond_rpc(request_id, RpcError(7, "no") if fail else "yes", now=self.now)
        self.collect()

    @rule(dt=st.sampled_from([0.5, 1.0, 7.0, 8.0, 20.0]))
    def tick(self, dt: float) -> None:
        self.now += dt
        for conn in (self.alice, self.bob):
            conn.handle_timer(self.now)
            timer = conn.get_timer()
            assert timer is None or timer > self.now
        self.collect()

    @precondition(lambda self: self.bob_here)
    @rule()
    def bob_leaves(self) -> None:
        self.sfu.leave("bob", now=self.now)
        self.bob_here = False
        self.collect()

    @invariant()
    def at_most_once(self) -> None:
        assert all(n == 1 for n in self.resolved.values())
        assert all(n == 1 for n in self.ended.values())

    def teardown(self) -> None:
        self.alice.close(now=self.now)
        self.collect()
        assert self.resolved == dict.fromkeys(self.calls, 1)


RpcPairMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=25, deadline=None)
TestRpcPair = RpcPairMachine.TestCase
