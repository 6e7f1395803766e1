"""Deterministic tests of the RPC table: the 23 required scenarios of RPC_SPEC.md, then edges.

Literal times throughout (T0 = 100.0). Caller "alice" calls callee "bob"; request ids come
from a counter ("req-1", "req-2", ...). Scenario numbers refer to RPC_SPEC.md's "Minimum
required test cases".
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from lkproto._pb import data_pb2 as dpb
from lkproto.rpc import (
    ATTR_METHOD,
    ATTR_REQUEST_ID,
    ATTR_RESPONSE_TIMEOUT_MS,
    ATTR_VERSION,
    InvokeHandler,
    RpcDropped,
    RpcError,
    RpcErrorCode,
    RpcFailed,
    RpcInvocationData,
    RpcOutput,
    RpcSucceeded,
    RpcTable,
    SendRpcPacket,
    SendRpcStream,
)

T0 = 100.0
E = RpcErrorCode


def counter(prefix: str = "req-") -> Callable[[], str]:
    numbers = itertools.count(1)
    return lambda: f"{prefix}{next(numbers)}"


def table(**kwargs: object) -> RpcTable:
    return RpcTable(id_factory=counter(), **kwargs)  # type: ignore[arg-type]


def request_attrs(
    request_id: str = "req-1", method: str = "greet", timeout: str = "15000"
) -> dict[str, str]:
    return {
        ATTR_REQUEST_ID: request_id,
        ATTR_METHOD: method,
        ATTR_RESPONSE_TIMEOUT_MS: timeout,
        ATTR_VERSION: "2",
    }


def ack_packet(request_id: str, to: str) -> SendRpcPacket:
    packet = dpb.DataPacket(destination_identities=[to], rpc_ack=dpb.RpcAck(request_id=request_id))
    return SendRpcPacket(request_id=request_id, destination_identity=to, packet=packet)


def error_packet(
    request_id: str, to: str, code: int, message: str, data: str = ""
) -> SendRpcPacket:
    error = dpb.RpcError(code=code, message=message, data=data)
    packet = dpb.DataPacket(
        destination_identities=[to],
        rpc_response=dpb.RpcResponse(request_id=request_id, error=error),
    )
    return SendRpcPacket(request_id=request_id, destination_identity=to, packet=packet)


def payload_packet(request_id: str, to: str, payload: str) -> SendRpcPacket:
    packet = dpb.DataPacket(
        destination_identities=[to],
        rpc_response=dpb.RpcResponse(request_id=request_id, payload=payload),
    )
    return SendRpcPacket(request_id=request_id, destination_identity=to, packet=packet)


def response_stream(request_id: str, to: str, text: str) -> SendRpcStream:
    return SendRpcStream(
        request_id=request_id,
        destination_identity=to,
        topic="lk.rpc_response",
        attributes={ATTR_REQUEST_ID: request_id},
        text=text,
    )


def dropped(outputs: list[RpcOutput]) -> list[tuple[str, str]]:
    return [(o.reason, o.request_id) for o in outputs if isinstance(o, RpcDropped)]


def no_sends(outputs: list[RpcOutput]) -> bool:
    return not any(isinstance(o, SendRpcPacket | SendRpcStream) for o in outputs)


def invocation(
    request_id: str = "req-1", payload: str = "hi", timeout: float = 15.0
) -> InvokeHandler:
    return InvokeHandler(
        invocation=RpcInvocationData(
            request_id=request_id,
            caller_identity="alice",
            payload=payload,
            response_timeout=timeout,
            method="greet",
        )
    )


# -- v2 -> v2 -----------------------------------------------------------------------------------


def test_01_v2_caller_happy_path_short_payload() -> None:
    alice = table()
    request_id = alice.perform("bob", "greet", "hi", now=T0, destination_client_protocol=1)
    assert request_id == "req-1"
    assert alice.drain() == [
        SendRpcStream(
            request_id="req-1",
            destination_identity="bob",
            topic="lk.rpc_request",
            attributes=request_attrs(),
            text="hi",
        )
    ]  # and no RpcRequest packet
    assert alice.get_timer() == T0 + 7.0
    alice.ack_received("req-1", sender_identity="bob", now=T0 + 0.1)
    assert alice.drain() == []
    assert alice.get_timer() == T0 + 15.0
    alice.stream_response_received(
        {ATTR_REQUEST_ID: "req-1"}, "hello", sender_identity="bob", now=T0 + 0.2
    )
    assert alice.drain() == [RpcSucceeded(request_id="req-1", payload="hello")]
    assert alice.get_timer() is None and alice.pending_calls == 0


def test_02_v2_caller_large_payload_is_not_refused() -> None:
    alice = table()
    big = "x" * 20_000
    alice.perform("bob", "greet", big, now=T0, destination_client_protocol=1)
    (send,) = alice.drain()
    assert isinstance(send, SendRpcStream) and send.text == big
    alice.ack_received("req-1", sender_identity="bob", now=T0 + 0.1)
    reply = "y" * 20_000
    alice.stream_response_received(
        {ATTR_REQUEST_ID: "req-1"}, reply, sender_identity="bob", now=T0 + 0.2
    )
    assert alice.drain() == [RpcSucceeded(request_id="req-1", payload=reply)]


def test_03_v2_handler_happy_path_short_payload() -> None:
    bob = table()
    bob.stream_request_opened(request_attrs(), caller_identity="alice", now=T0)
    (ack,) = bob.drain()
    assert ack == ack_packet("req-1", "alice")
    # DataPacket{destination_identities(5)="alice", rpc_ack(11)=RpcAck{request_id(1)="req-1"}}
    assert ack.packet.SerializeToString() == bytes.fromhex("2a05616c6963655a070a057265712d31")
    bob.stream_request_received(
        request_attrs(), "hi", caller_identity="alice", now=T0 + 0.1, registered=True
    )
    assert bob.drain() == [invocation()]
    bob.respond("req-1", "hello", now=T0 + 0.2)
    assert bob.drain() == [response_stream("req-1", "alice", "hello")]  # no RpcResponse packet
    assert bob.get_timer() is None and bob.active_invocations == 0


def test_04_v2_handler_large_payload_both_ways() -> None:
    bob = table()
    big = "é" * 10_000  # 20 000 UTF-8 bytes
    bob.stream_request_received(
        request_attrs(), big, caller_identity="alice", now=T0, registered=True
    )
    assert bob.drain() == [ack_packet("req-1", "alice"), invocation(payload=big)]
    bob.respond("req-1", big, now=T0 + 1)
    assert bob.drain() == [response_stream("req-1", "alice", big)]


def test_05_unregistered_method_is_acked_then_answered_1400() -> None:
    bob = table()
    bob.stream_request_received(
        request_attrs(method="unknown-method"),
        "hi",
        caller_identity="alice",
        now=T0,
        registered=False,
    )
    assert bob.drain() == [
        ack_packet("req-1", "alice"),
        error_packet("req-1", "alice", 1400, "Method not supported at destination"),
    ]
    assert bob.get_timer() is None


def test_06_v2_unhandled_exception_is_a_1500_packet_that_leaks_nothing() -> None:
    bob = table()
    bob.stream_request_received(
        request_attrs(), "hi", caller_identity="alice", now=T0, registered=True
    )
    bob.drain()
    bob.respond_exception("req-1", ValueError("db password is hunter2"), now=T0 + 1)
    (sent,) = bob.drain()
    assert sent == error_packet("req-1", "alice", 1500, "Application error in method handler")
    assert b"hunter2" not in sent.packet.SerializeToString()


def test_07_v2_rpc_error_passes_through() -> None:
    bob = table()
    bob.stream_request_received(
        request_attrs(), "hi", caller_identity="alice", now=T0, registered=True
    )
    bob.drain()
    bob.respond_exception("req-1", RpcError(101, "Test error message", "d"), now=T0 + 1)
    assert bob.drain() == [error_packet("req-1", "alice", 101, "Test error message", "d")]


@pytest.mark.parametrize("client_protocol", [1, 0], ids=["v2", "v1"])
def test_08_21_response_timeout(client_protocol: int) -> None:
    alice = table()
    alice.perform(
        "bob",
        "greet",
        "hi",
        now=T0,
        response_timeout=0.05,
        destination_client_protocol=client_protocol,
    )
    (send,) = alice.drain()
    if isinstance(send, SendRpcStream):
        advertised = send.attributes[ATTR_RESPONSE_TIMEOUT_MS]
    else:
        assert isinstance(send, SendRpcPacket)
        advertised = str(send.packet.rpc_request.response_timeout_ms)
    assert advertised == "8000"  # clamped to max_round_trip_latency + 1 s, as JS
    assert alice.get_timer() == T0 + 0.05
    alice.handle_timer(T0 + 0.049)
    assert alice.drain() == []
    alice.handle_timer(T0 + 0.05)
    assert alice.drain() == [
        RpcFailed(request_id="req-1", error=RpcError(1502, "Response timeout"))
    ]
    assert alice.get_timer() is None


@pytest.mark.parametrize("client_protocol", [1, 0], ids=["v2", "v1"])
def test_09_22_error_response(client_protocol: int) -> None:
    alice = table()
    alice.perform("bob", "greet", "hi", now=T0, destination_client_protocol=client_protocol)
    alice.drain()
    alice.ack_received("req-1", sender_identity="bob", now=T0 + 0.1)
    error = dpb.RpcError(code=101, message="Test error message")
    alice.response_received(
        dpb.RpcResponse(request_id="req-1", error=error), sender_identity="bob", now=T0 + 0.2
    )
    ((failed,),) = [alice.drain()]
    assert failed == RpcFailed(request_id="req-1", error=RpcError(101, "Test error message"))
    assert isinstance(failed, RpcFailed) and failed.error.data is None  # "" on the wire


@pytest.mark.parametrize("client_protocol", [1, 0], ids=["v2", "v1"])
def test_10_23_participant_disconnection(client_protocol: int) -> None:
    alice = table()
    alice.perform("bob", "greet", "hi", now=T0, destination_client_protocol=client_protocol)
    alice.perform("carol", "greet", "hi", now=T0, destination_client_protocol=client_protocol)
    alice.drain()
    alice.participant_left("bob", now=T0 + 1)
    assert alice.drain() == [
        RpcFailed(request_id="req-1", error=RpcError(1503, "Recipient disconnected"))
    ]
    assert alice.pending_calls == 1  # carol's call is untouched
    alice.ack_received("req-1", sender_identity="bob", now=T0 + 2)
    assert dropped(alice.drain()) == [("unknown", "req-1")]


def test_11_fast_response_right_after_publish_leaves_no_orphaned_ack() -> None:
    alice = table()
    alice.perform("bob", "greet", "hi", now=T0, destination_client_protocol=1)
    # The response is delivered before anything was drained or any ack came.
    alice.stream_response_received(
        {ATTR_REQUEST_ID: "req-1"}, "hello", sender_identity="bob", now=T0
    )
    outputs = alice.drain()
    assert isinstance(outputs[0], SendRpcStream)
    assert outputs[1:] == [RpcSucceeded(request_id="req-1", payload="hello")]
    assert alice.get_timer() is None and alice.pending_calls == 0
    alice.handle_timer(T0 + 60)
    assert alice.drain() == []


def test_12_ack_and_response_inside_the_publish_window() -> None:
    """The ack and the response arrive while the request is being sent (synchronously, from
    inside the adapter's send of the request): both are matched."""
    alice, bob = table(), table()
    alice.perform("bob", "greet", "hi", now=T0, destination_client_protocol=1)
    results: list[RpcOutput] = []
    for out in alice.drain():
        assert isinstance(out, SendRpcStream)  # "publishing" it: bob answers at once
        bob.stream_request_received(
            dict(out.attributes), out.text, caller_identity="alice", now=T0, registered=True
        )
        ack, invoke = bob.drain()
        assert isinstance(ack, SendRpcPacket) and isinstance(invoke, InvokeHandler)
        alice.ack_received(ack.packet.rpc_ack.request_id, sender_identity="bob", now=T0)
        bob.respond(invoke.invocation.request_id, "hello", now=T0)
        (reply,) = bob.drain()
        assert isinstance(reply, SendRpcStream)
        alice.stream_response_received(
            dict(reply.attributes), reply.text, sender_identity="bob", now=T0
        )
        results += alice.drain()
    assert results == [RpcSucceeded(request_id="req-1", payload="hello")]
    assert alice.get_timer() is None


def test_13_late_ack_and_response_after_the_ack_timeout_are_ignored() -> None:
    alice = table()
    alice.perform("bob", "greet", "hi", now=T0, destination_client_protocol=1)
    alice.drain()
    alice.handle_timer(T0 + 7.0)
    assert alice.drain() == [
        RpcFailed(request_id="req-1", error=RpcError(1501, "Connection timeout"))
    ]
    assert alice.get_timer() is None  # the response timer went with it
    alice.ack_received("req-1", sender_identity="bob", now=T0 + 8)
    alice.stream_response_received(
        {ATTR_REQUEST_ID: "req-1"}, "late", sender_identity="bob", now=T0 + 9
    )
    alice.handle_timer(T0 + 15)
    assert dropped(alice.drain()) == [("unknown", "req-1"), ("unknown", "req-1")]


def test_14_response_stream_from_the_wrong_sender_is_ignored() -> None:
    alice = table()
    alice.perform("bob", "greet", "hi", now=T0, destination_client_protocol=1)
    alice.drain()
    alice.stream_response_received(
        {ATTR_REQUEST_ID: "req-1"}, "evil", sender_identity="mallory", now=T0 + 1
    )
    (drop,) = alice.drain()
    assert drop == RpcDropped(
        reason="wrong-sender",
        request_id="req-1",
        participant_identity="mallory",
        detail="expected 'bob', got 'mallory'",
    )
    assert alice.pending_calls == 1
    alice.stream_response_received(
        {ATTR_REQUEST_ID: "req-1"}, "good", sender_identity="bob", now=T0 + 2
    )
    assert alice.drain() == [RpcSucceeded(request_id="req-1", payload="good")]


def test_15_five_concurrent_calls_to_one_destination_do_not_cross() -> None:
    alice = table()
    ids = [
        alice.perform("bob", "echo", f"p{i}", now=T0, destination_client_protocol=1)
        for i in range(5)
    ]
    assert ids == [f"req-{i}" for i in range(1, 6)]
    sends = [s for s in alice.drain() if isinstance(s, SendRpcStream)]
    assert [s.request_id for s in sends] == ids
    assert all(s.topic == "lk.rpc_request" for s in sends)
    for request_id in reversed(ids):
        alice.ack_received(request_id, sender_identity="bob", now=T0 + 1)
        alice.stream_response_received(
            {ATTR_REQUEST_ID: request_id}, f"r-{request_id}", sender_identity="bob", now=T0 + 1
        )
    assert alice.drain() == [
        RpcSucceeded(request_id=request_id, payload=f"r-{request_id}")
        for request_id in reversed(ids)
    ]


# -- v1 <-> v2 ----------------------------------------------------------------------------------


def test_16_v1_caller_happy_path() -> None:
    alice = table()
    alice.perform("bob", "greet", "hi", now=T0, destination_client_protocol=0)
    (send,) = alice.drain()
    request = dpb.RpcRequest(
        id="req-1", method="greet", payload="hi", response_timeout_ms=15000, version=1
    )
    assert send == SendRpcPacket(
        request_id="req-1",
        destination_identity="bob",
        packet=dpb.DataPacket(destination_identities=["bob"], rpc_request=request),
    )  # no data stream
    # destination_identities(5) "bob"; rpc_request(10) {id(1), method(2), payload(3),
    # response_timeout_ms(4) = 15000 (varint 98 75), version(5) = 1}
    assert send.packet.SerializeToString() == bytes.fromhex(
        "2a03626f6252170a057265712d31120567726565741a0268692098752801"
    )
    alice.ack_received("req-1", sender_identity="bob", now=T0 + 0.1)
    alice.response_received(
        dpb.RpcResponse(request_id="req-1", payload="hello"), sender_identity="bob", now=T0 + 0.2
    )
    assert alice.drain() == [RpcSucceeded(request_id="req-1", payload="hello")]


def test_17_v1_handler_happy_path() -> None:
    bob = table()
    request = dpb.RpcRequest(
        id="req-1", method="greet", payload="hi", response_timeout_ms=15000, version=1
    )
    bob.request_received(request, caller_identity="alice", now=T0, registered=True)
    assert bob.drain() == [ack_packet("req-1", "alice"), invocation()]
    assert bob.get_timer() == T0 + 15.0  # the handler's deadline
    bob.respond("req-1", "hello", now=T0 + 1)
    (reply,) = bob.drain()
    assert reply == payload_packet("req-1", "alice", "hello")  # a packet, not a stream
    # destination_identities(5) "alice"; rpc_response(12) {request_id(1), payload(2) "hello"}
    assert reply.packet.SerializeToString() == bytes.fromhex(
        "2a05616c696365620e0a057265712d31120568656c6c6f"
    )


def v1_invocation(bob: RpcTable, request_id: str = "req-1", **fields: object) -> None:
    request = dpb.RpcRequest(
        id=request_id, method="greet", payload="hi", response_timeout_ms=15000, version=1
    )
    for name, value in fields.items():
        setattr(request, name, value)
    bob.request_received(request, caller_identity="alice", now=T0, registered=True)


def test_18_v1_unhandled_exception_is_1500() -> None:
    bob = table()
    v1_invocation(bob)
    bob.drain()
    bob.respond_exception("req-1", KeyError("x"), now=T0 + 1)
    assert bob.drain() == [
        error_packet("req-1", "alice", 1500, "Application error in method handler")
    ]


def test_19_v1_rpc_error_passes_through() -> None:
    bob = table()
    v1_invocation(bob)
    bob.drain()
    bob.respond("req-1", RpcError(101, "Test error message"), now=T0 + 1)
    assert bob.drain() == [error_packet("req-1", "alice", 101, "Test error message")]


def test_20_v1_payload_too_large_is_refused_before_sending() -> None:
    alice = table()
    # 7681 characters but 15362 UTF-8 bytes: the limit counts bytes.
    request_id = alice.perform("bob", "greet", "é" * 7681, now=T0)
    assert alice.drain() == [
        RpcFailed(request_id=request_id, error=RpcError(1402, "Request payload too large"))
    ]
    assert alice.get_timer() is None and alice.pending_calls == 0
    alice.perform("bob", "greet", "x" * 15360, now=T0)  # exactly at the limit: sent
    (send,) = alice.drain()
    assert isinstance(send, SendRpcPacket) and len(send.packet.rpc_request.payload) == 15360
