"""RPC table edges: RpcError, argument checks, refusals, timers, de-dup, bounds, send failures,
and a wire cross-check against the official `livekit.protocol` models."""

from __future__ import annotations

import pickle

import pytest
from livekit.protocol import models as lk
from livekit.rtc.rpc import RpcError as LkRpcError
from test_rpc import (
    T0,
    ack_packet,
    counter,
    dropped,
    error_packet,
    invocation,
    no_sends,
    payload_packet,
    request_attrs,
    response_stream,
    table,
    v1_invocation,
)

from lkproto._pb import data_pb2 as dpb
from lkproto.errors import LocalProtocolError
from lkproto.rpc import (
    ATTR_REQUEST_ID,
    ATTR_RESPONSE_TIMEOUT_MS,
    ATTR_VERSION,
    InvocationCancelled,
    RpcDropped,
    RpcError,
    RpcErrorCode,
    RpcFailed,
    RpcSucceeded,
    RpcTable,
    SendRpcPacket,
    SendRpcStream,
)

E = RpcErrorCode


# -- RpcError -----------------------------------------------------------------------------------


def test_error_codes_and_messages_mirror_livekit_rtc() -> None:
    assert {c.name: int(c) for c in E} == {c.name: int(c) for c in LkRpcError.ErrorCode}
    for code in E:
        lk_code = LkRpcError.ErrorCode[code.name]
        assert RpcError.ErrorMessage[code] == LkRpcError.ErrorMessage[lk_code]
    assert RpcError.ErrorCode is E
    assert RpcError.built_in(E.SEND_FAILED, "why") == RpcError(1505, "Failed to send", "why")


def test_error_wire_truncation_keeps_whole_characters() -> None:
    error = RpcError(7, "a" + "€" * 100, "ü" * 8000)  # 301 and 16000 UTF-8 bytes
    wire = error.to_proto()
    assert wire.message == "a" + "€" * 85  # 256 bytes exactly
    assert len(wire.data.encode()) == 15360 and wire.data == "ü" * 7680
    assert error.message == "a" + "€" * 100  # the local value is whole
    long = dpb.RpcError(code=7, message="€" * 100, data="x" * 20000)
    decoded = RpcError.from_proto(long)
    assert decoded.message == "€" * 85 and decoded.data == "x" * 15360
    assert RpcError.from_proto(dpb.RpcError(code=7, message="m")).data is None
    assert RpcError(7, "m", None).to_proto() == dpb.RpcError(code=7, message="m")
    lone = RpcError(7, "bad \ud800 text").to_proto()
    assert lone.message == "bad ? text"


@pytest.mark.parametrize("code", [-1, 2**32, True, "1500", 1.5])
def test_error_code_must_fit_uint32(code: object) -> None:
    with pytest.raises(ValueError, match="RpcError code"):
        RpcError(code, "m")  # type: ignore[arg-type]


def test_error_value_semantics() -> None:
    error = RpcError(E.RESPONSE_TIMEOUT, "Response timeout")
    assert error == RpcError(1502, "Response timeout") and error != RpcError(1502, "x")
    assert error != "Response timeout" and hash(error) == hash(RpcError(1502, "Response timeout"))
    assert repr(error) == "RpcError(code=1502, message='Response timeout', data=None)"
    assert str(error) == "Response timeout" and error.code == 1502
    assert pickle.loads(pickle.dumps(RpcError(9, "m", "d"))) == RpcError(9, "m", "d")


# -- construction and argument checks -------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"response_timeout": 0},
        {"max_round_trip_latency": float("nan")},
        {"response_timeout": True},
        {"max_pending_calls": 0},
        {"max_remembered_requests": 0},
    ],
)
def test_constructor_rejects_bad_bounds(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="RpcTable"):
        table(**kwargs)


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (("", "m", "p"), {}, "destination identity is empty"),
        (("bob", "", "p"), {}, "1 to 64 UTF-8 bytes, not 0"),
        (("bob", "é" * 33, "p"), {}, "1 to 64 UTF-8 bytes, not 66"),
        (("bob", "m", b"p"), {}, "payload must be str, not bytes"),
        (("bob", "m", "\ud800"), {}, "payload is not valid Unicode text"),
        (("bob", "m", "p"), {"response_timeout": 0.0}, "response_timeout must be a positive"),
        (("bob", "m", "p"), {"response_timeout": float("inf")}, "response_timeout"),
        (("bob", "m", "p"), {"max_round_trip_latency": -1}, "max_round_trip_latency"),
    ],
)
def test_perform_misuse_raises_and_changes_nothing(
    args: tuple[str, str, str], kwargs: dict[str, float], match: str
) -> None:
    alice = table()
    with pytest.raises(LocalProtocolError, match=match) as info:
        alice.perform(*args, now=T0, **kwargs)  # type: ignore[arg-type]
    assert info.value.call == "perform_rpc"
    assert alice.drain() == [] and alice.get_timer() is None
    assert alice.perform("bob", "m", "p", now=T0) == "req-1"  # no id was consumed


def test_max_pending_calls_is_enforced() -> None:
    alice = table(max_pending_calls=2)
    alice.perform("bob", "m", "p", now=T0)
    alice.perform("bob", "m", "p", now=T0)
    with pytest.raises(LocalProtocolError, match="2 calls are already pending"):
        alice.perform("bob", "m", "p", now=T0)
    alice.participant_left("bob", now=T0)
    alice.perform("bob", "m", "p", now=T0)  # room again once they resolved


@pytest.mark.parametrize("ids", [["", "x"], ["same", "same"]])
def test_a_bad_id_factory_is_a_local_error(ids: list[str]) -> None:
    alice = RpcTable(id_factory=iter(ids).__next__)
    if ids[0]:
        alice.perform("bob", "m", "p", now=T0)
    with pytest.raises(LocalProtocolError, match="id_factory returned"):
        alice.perform("bob", "m", "p", now=T0)


# -- refusals before sending ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "refused"),
    [
        ("1.7.9", True),
        ("1.7.0+build", True),
        ("0.15", True),
        ("1.8.0", False),
        ("1.8", False),
        ("1.13.5-rc1", False),
        ("v1.2.0", False),  # unparsable: do not refuse
        ("1." + "9" * 5000, False),  # hostile: never int() thousands of digits
        ("", False),
    ],
)
def test_old_servers_are_refused_with_1403(version: str, refused: bool) -> None:
    alice = table()
    alice.server_version = version
    alice.perform("bob", "m", "p", now=T0)
    outputs = alice.drain()
    if refused:
        error = RpcError(1403, "RPC not supported by server")
        assert outputs == [RpcFailed(request_id="req-1", error=error)]
    else:
        assert isinstance(outputs[0], SendRpcPacket)


def test_hidden_or_data_less_participants_fail_fast_with_1505() -> None:
    alice = table()
    alice.local_hidden = True
    alice.perform("bob", "m", "p", now=T0)
    (failed,) = alice.drain()
    assert isinstance(failed, RpcFailed) and failed.error.code == 1505
    assert "livekit/livekit#3832" in (failed.error.data or "")
    alice.local_hidden, alice.local_can_publish_data = False, False
    alice.perform("bob", "m", "p", now=T0)
    (failed,) = alice.drain()
    assert isinstance(failed, RpcFailed) and "canPublishData" in (failed.error.data or "")
    assert alice.get_timer() is None


def test_v2_needs_both_sides() -> None:
    alice = table(client_protocol=0)
    alice.perform("bob", "m", "p", now=T0, destination_client_protocol=1)
    (send,) = alice.drain()
    assert isinstance(send, SendRpcPacket) and send.packet.rpc_request.version == 1


@pytest.mark.parametrize(
    ("kwargs", "advertised"),
    [
        ({"response_timeout": 3.0}, 8000),
        ({"response_timeout": 20.0}, 20000),
        ({"response_timeout": 5.0, "max_round_trip_latency": 10.0}, 11000),
        ({"response_timeout": 1e10}, 0xFFFFFFFF),
    ],
)
def test_advertised_timeout(kwargs: dict[str, float], advertised: int) -> None:
    alice = table()
    alice.perform("bob", "m", "p", now=T0, **kwargs)  # type: ignore[arg-type]
    (send,) = alice.drain()
    assert isinstance(send, SendRpcPacket)
    assert send.packet.rpc_request.response_timeout_ms == advertised


# -- caller: acks, responses, timers --------------------------------------------------------------


def test_equal_ack_and_response_deadlines_fail_once_with_1501() -> None:
    alice = table(response_timeout=7.0)
    alice.perform("bob", "m", "p", now=T0)
    alice.drain()
    alice.handle_timer(T0 + 30)
    assert alice.drain() == [
        RpcFailed(request_id="req-1", error=RpcError(1501, "Connection timeout"))
    ]


def test_ack_then_response_timeout_fails_1502() -> None:
    alice = table()
    alice.perform("bob", "m", "p", now=T0)
    alice.drain()
    alice.ack_received("req-1", sender_identity="bob", now=T0 + 1)
    alice.ack_received("req-1", sender_identity="bob", now=T0 + 2)
    assert dropped(alice.drain()) == [("duplicate", "req-1")]
    alice.handle_timer(T0 + 7.0)  # the ack deadline is gone
    assert alice.drain() == [] and alice.get_timer() == T0 + 15.0
    alice.handle_timer(T0 + 15.0)
    assert alice.drain() == [
        RpcFailed(request_id="req-1", error=RpcError(1502, "Response timeout"))
    ]


def test_ack_from_someone_else_or_nobody_is_ignored() -> None:
    alice = table()
    alice.perform("bob", "m", "p", now=T0)
    alice.drain()
    alice.ack_received("req-1", sender_identity="", now=T0)
    (drop,) = alice.drain()
    assert drop.reason == "wrong-sender" and "hidden participant" in drop.detail  # type: ignore[union-attr]
    alice.handle_timer(T0 + 7.0)
    assert [type(o) for o in alice.drain()] == [RpcFailed]


def test_response_before_ack_is_accepted() -> None:
    alice = table()
    alice.perform("bob", "m", "p", now=T0)
    alice.drain()
    alice.response_received(
        dpb.RpcResponse(request_id="req-1", payload=""), sender_identity="bob", now=T0 + 1
    )
    assert alice.drain() == [RpcSucceeded(request_id="req-1", payload="")]
    assert alice.get_timer() is None


@pytest.mark.parametrize(
    ("response", "detail"),
    [
        (dpb.RpcResponse(request_id="req-1", compressed_payload=b"x"), "compressed_payload"),
        (dpb.RpcResponse(request_id="req-1"), "none"),
    ],
)
def test_undecodable_responses_fail_1500(response: dpb.RpcResponse, detail: str) -> None:
    alice = table()
    alice.perform("bob", "m", "p", now=T0)
    alice.drain()
    alice.response_received(response, sender_identity="bob", now=T0)
    (failed,) = alice.drain()
    assert isinstance(failed, RpcFailed)
    assert failed.error == RpcError(
        1500, "Application error in method handler", f"unsupported RpcResponse value: {detail}"
    )


def test_response_stream_without_id_is_malformed() -> None:
    alice = table()
    alice.stream_response_received({}, "x", sender_identity="bob", now=T0)
    assert dropped(alice.drain()) == [("malformed", "")]


@pytest.mark.parametrize(
    ("detail", "data"),
    [
        ("", "Error reading RPC response payload"),
        ("EOF", "Error reading RPC response payload: EOF"),
    ],
)
def test_unreadable_response_stream_fails_1500(detail: str, data: str) -> None:
    alice = table()
    alice.perform("bob", "m", "p", now=T0, destination_client_protocol=1)
    alice.drain()
    attrs = {ATTR_REQUEST_ID: "req-1"}
    alice.stream_response_failed(attrs, sender_identity="mallory", now=T0, detail=detail)
    assert dropped(alice.drain()) == [("wrong-sender", "req-1")]
    alice.stream_response_failed(attrs, sender_identity="bob", now=T0, detail=detail)
    assert alice.drain() == [
        RpcFailed(
            request_id="req-1", error=RpcError(1500, "Application error in method handler", data)
        )
    ]


def test_send_failures() -> None:
    alice = table()
    alice.perform("bob", "m", "p", now=T0)
    alice.perform("bob", "m", "p", now=T0, destination_client_protocol=1)
    packet, stream = alice.drain()
    assert isinstance(packet, SendRpcPacket) and isinstance(stream, SendRpcStream)
    alice.send_failed(packet, now=T0, detail="too large")
    alice.send_failed(stream, now=T0)
    alice.send_failed(packet, now=T0)  # already failed: nothing
    assert alice.drain() == [
        RpcFailed(request_id="req-1", error=RpcError(1505, "Failed to send", "too large")),
        RpcFailed(request_id="req-2", error=RpcError(1505, "Failed to send")),
    ]
    assert alice.get_timer() is None
    # Callee side: a v2 response stream that cannot be sent becomes a v1 1505 error packet;
    # an ack or response packet that cannot be sent is the end of it.
    bob = table()
    bob.send_failed(response_stream("r", "alice", "x"), now=T0)
    assert bob.drain() == [error_packet("r", "alice", 1505, "Failed to send")]
    bob.send_failed(ack_packet("r", "alice"), now=T0)
    bob.send_failed(payload_packet("r", "alice", "x"), now=T0)
    assert bob.drain() == []


def test_disconnected_fails_and_cancels_everything() -> None:
    t = table()
    t.perform("bob", "m", "p", now=T0)
    v1_invocation(t, "in-1")
    t.stream_request_opened(request_attrs("in-2"), caller_identity="carol", now=T0)
    t.drain()
    t.disconnected(now=T0 + 1)
    assert t.drain() == [
        RpcFailed(request_id="req-1", error=RpcError(1503, "Recipient disconnected")),
        InvocationCancelled(
            request_id="in-1", caller_identity="alice", reason=E.RECIPIENT_DISCONNECTED
        ),
    ]  # the request still being read had no handler to cancel
    assert t.get_timer() is None and t.pending_calls == 0 and t.active_invocations == 0


# -- callee -------------------------------------------------------------------------------------


def test_handler_deadline_answers_1502_and_cancels() -> None:
    bob = table()
    v1_invocation(bob, response_timeout_ms=8000)
    assert bob.drain()[1] == invocation(timeout=8.0)
    assert bob.get_timer() == T0 + 8.0
    bob.handle_timer(T0 + 8.0)
    assert bob.drain() == [
        error_packet("req-1", "alice", 1502, "Response timeout"),
        InvocationCancelled(request_id="req-1", caller_identity="alice", reason=E.RESPONSE_TIMEOUT),
    ]
    bob.respond("req-1", "too late", now=T0 + 9)
    assert dropped(bob.drain()) == [("unknown", "req-1")]


def test_a_request_stream_that_never_completes_times_out_quietly() -> None:
    bob = table()
    bob.stream_request_opened(request_attrs(timeout="1000"), caller_identity="alice", now=T0)
    bob.respond("req-1", "not yet", now=T0)  # no handler runs while the payload is read
    assert dropped(bob.drain()) == [("unknown", "req-1")]
    bob.handle_timer(T0 + 1.0)
    assert bob.drain() == [error_packet("req-1", "alice", 1502, "Response timeout")]
    bob.stream_request_received(
        request_attrs(timeout="1000"), "hi", caller_identity="alice", now=T0 + 2, registered=True
    )
    assert dropped(bob.drain()) == [("duplicate", "req-1")]


@pytest.mark.parametrize(("timeout_ms", "seconds"), [(0, 15.0), (2500, 2.5)])
def test_v1_handler_timeout_comes_from_the_request(timeout_ms: int, seconds: float) -> None:
    bob = table()
    v1_invocation(bob, response_timeout_ms=timeout_ms)
    assert bob.drain()[1] == invocation(timeout=seconds)


def test_a_requested_handler_deadline_is_capped_then_answered_1502() -> None:
    """A uint32 of milliseconds is 49 days: the request gets `max_handler_timeout` at most."""
    bob = table(max_handler_timeout=30.0)
    v1_invocation(bob, response_timeout_ms=4_294_967_295)
    assert bob.drain()[1] == invocation(timeout=30.0)
    assert bob.get_timer() == T0 + 30.0
    bob.handle_timer(T0 + 30.0)
    assert bob.drain() == [
        error_packet("req-1", "alice", 1502, "Response timeout"),
        InvocationCancelled(request_id="req-1", caller_identity="alice", reason=E.RESPONSE_TIMEOUT),
    ]
    assert bob.active_invocations == 0
    capped = table()  # the default cap: 600 s
    v1_invocation(capped, response_timeout_ms=601_000)
    assert capped.drain()[1] == invocation(timeout=600.0)
    with pytest.raises(ValueError, match=r"RpcTable\.max_handler_timeout must be a positive"):
        table(max_handler_timeout=0)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("abc", 15.0), ("", 15.0), ("8000", 8.0), ("9" * 5000, 15.0), ("9999999999", 600.0)],
)
def test_v2_handler_timeout_attribute_is_parsed_liberally(text: str, seconds: float) -> None:
    bob = table()
    bob.stream_request_received(
        request_attrs(timeout=text), "hi", caller_identity="alice", now=T0, registered=True
    )
    assert bob.drain()[1] == invocation(timeout=seconds)


@pytest.mark.parametrize(
    ("fields", "code", "message", "data"),
    [
        ({"version": 2}, 1404, "Unsupported RPC version", ""),
        (
            {"payload": "", "compressed_payload": b"\x01"},
            1500,
            "Application error in method handler",
            "compressed RPC payloads are not supported",
        ),
    ],
)
def test_v1_requests_that_cannot_be_handled_are_acked_then_refused(
    fields: dict[str, object], code: int, message: str, data: str
) -> None:
    bob = table()
    v1_invocation(bob, **fields)  # type: ignore[arg-type]
    assert bob.drain() == [
        ack_packet("req-1", "alice"),
        error_packet("req-1", "alice", code, message, data),
    ]


def test_v1_request_with_version_0_is_accepted() -> None:
    bob = table()
    v1_invocation(bob, version=0)
    assert bob.drain() == [ack_packet("req-1", "alice"), invocation()]


@pytest.mark.parametrize("version", ["1", None])
def test_v2_request_with_another_version_is_acked_then_1404(version: str | None) -> None:
    bob = table()
    attrs = request_attrs()
    if version is None:
        del attrs[ATTR_VERSION]
    else:
        attrs[ATTR_VERSION] = version
    bob.stream_request_received(attrs, "hi", caller_identity="alice", now=T0, registered=True)
    assert bob.drain() == [
        ack_packet("req-1", "alice"),
        error_packet("req-1", "alice", 1404, "Unsupported RPC version"),
    ]


def test_requests_without_caller_or_id_are_dropped_unanswered() -> None:
    bob = table()
    v1_invocation(bob, "")
    bob.stream_request_received(request_attrs(), "hi", caller_identity="", now=T0, registered=True)
    assert dropped(bob.drain()) == [("malformed", ""), ("anonymous", "req-1")]
    assert bob.get_timer() is None


def test_duplicate_requests_are_ignored_while_running_and_after() -> None:
    bob = table(max_remembered_requests=2)
    v1_invocation(bob, "a")
    v1_invocation(bob, "a")  # while running
    bob.drain()
    bob.respond("a", "done", now=T0)
    bob.drain()
    v1_invocation(bob, "a")  # after: still remembered
    assert dropped(bob.drain()) == [("duplicate", "a")]
    bob.stream_request_opened(request_attrs("b"), caller_identity="alice", now=T0)
    bob.stream_request_received(
        request_attrs("b"), "hi", caller_identity="mallory", now=T0, registered=True
    )  # someone else completing alice's request id
    assert dropped(bob.drain())[-1] == ("duplicate", "b")
    v1_invocation(bob, "c")  # evicts "a" from memory (bound 2)
    v1_invocation(bob, "a")
    assert bob.drain()[-1] == invocation("a")


def test_too_many_invocations_are_acked_then_refused() -> None:
    bob = table(max_incoming_invocations=1)
    v1_invocation(bob, "a")
    v1_invocation(bob, "b")
    assert bob.drain() == [
        ack_packet("a", "alice"),
        invocation("a"),
        ack_packet("b", "alice"),
        error_packet(
            "b", "alice", 1500, "Application error in method handler",
            "too many concurrent RPC invocations",
        ),
        RpcDropped(
            reason="refused", request_id="b", participant_identity="alice",
            detail="too many concurrent RPC invocations",
        ),
    ]  # fmt: skip
    assert bob.active_invocations == 1


def test_respond_variants() -> None:
    bob = table()
    for request_id in ("a", "b", "c"):
        v1_invocation(bob, request_id)
    bob.drain()
    with pytest.raises(LocalProtocolError, match="the result must be str, not int"):
        bob.respond("a", 42, now=T0)  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError, match="not valid Unicode"):
        bob.respond("a", "\udc80", now=T0)
    bob.respond("a", None, now=T0)
    bob.respond("b", "x" * 15361, now=T0)
    bob.respond_exception("c", RuntimeError("boom"), now=T0, include_detail=True)
    assert bob.drain() == [
        payload_packet("a", "alice", ""),
        error_packet("b", "alice", 1504, "Response payload too large"),
        error_packet(
            "c", "alice", 1500, "Application error in method handler", "RuntimeError: boom"
        ),
    ]
    bob.respond("never", "x", now=T0)
    assert dropped(bob.drain()) == [("unknown", "never")]


def test_unreadable_request_stream_is_answered_1500() -> None:
    bob = table()
    bob.stream_request_failed(request_attrs("a"), caller_identity="alice", now=T0)
    bob.stream_request_opened(request_attrs("b"), caller_identity="alice", now=T0)
    bob.stream_request_failed(request_attrs("b"), caller_identity="alice", now=T0)
    bob.stream_request_failed(request_attrs("b"), caller_identity="alice", now=T0)
    bob.stream_request_opened(request_attrs("c"), caller_identity="alice", now=T0)
    bob.stream_request_failed(
        request_attrs("c"), caller_identity="alice", now=T0, detail="the stream went idle"
    )
    data = "Error reading RPC request payload"
    assert bob.drain() == [
        ack_packet("a", "alice"),
        error_packet("a", "alice", 1500, "Application error in method handler", data),
        RpcDropped(
            reason="failed", request_id="a", participant_identity="alice",
            detail="unreadable payload",
        ),
        ack_packet("b", "alice"),
        error_packet("b", "alice", 1500, "Application error in method handler", data),
        RpcDropped(
            reason="failed", request_id="b", participant_identity="alice",
            detail="unreadable payload",
        ),
        RpcDropped(
            reason="duplicate", request_id="b", participant_identity="alice",
            detail="request id already handled",
        ),
        ack_packet("c", "alice"),
        error_packet("c", "alice", 1500, "Application error in method handler", data),
        RpcDropped(
            reason="failed", request_id="c", participant_identity="alice",
            detail="the stream went idle",
        ),
    ]  # fmt: skip
    assert bob.get_timer() is None


def test_caller_leaving_cancels_its_invocations_only() -> None:
    bob = table()
    v1_invocation(bob, "a")
    bob.request_received(
        dpb.RpcRequest(id="b", method="m", version=1),
        caller_identity="carol",
        now=T0,
        registered=True,
    )
    bob.stream_request_opened(request_attrs("c"), caller_identity="alice", now=T0)
    bob.drain()
    bob.participant_left("alice", now=T0 + 1)
    assert bob.drain() == [
        InvocationCancelled(
            request_id="a", caller_identity="alice", reason=E.RECIPIENT_DISCONNECTED
        )
    ]
    assert bob.active_invocations == 1 and no_sends(bob.drain())


# -- wire cross-check with livekit.protocol -------------------------------------------------------


def test_packets_parse_identically_with_livekit_protocol() -> None:
    alice, bob = table(), table()
    alice.perform("bob", "greet", "héllo", now=T0, response_timeout=20.0)
    (request,) = alice.drain()
    v1_invocation(bob, "req-1")
    ack, _ = bob.drain()
    bob.respond("req-1", "wörld", now=T0)
    (response,) = bob.drain()
    bob.send_failed(response_stream("req-9", "alice", "x"), now=T0)
    (error,) = bob.drain()
    expected = [
        lk.DataPacket(
            destination_identities=["bob"],
            rpc_request=lk.RpcRequest(
                id="req-1", method="greet", payload="héllo", response_timeout_ms=20000, version=1
            ),
        ),
        lk.DataPacket(destination_identities=["alice"], rpc_ack=lk.RpcAck(request_id="req-1")),
        lk.DataPacket(
            destination_identities=["alice"],
            rpc_response=lk.RpcResponse(request_id="req-1", payload="wörld"),
        ),
        lk.DataPacket(
            destination_identities=["alice"],
            rpc_response=lk.RpcResponse(
                request_id="req-9", error=lk.RpcError(code=1505, message="Failed to send")
            ),
        ),
    ]
    for ours, theirs in zip([request, ack, response, error], expected, strict=True):
        assert isinstance(ours, SendRpcPacket)
        data = ours.packet.SerializeToString()
        assert data == theirs.SerializeToString()
        assert lk.DataPacket.FromString(data) == theirs
        assert dpb.DataPacket.FromString(theirs.SerializeToString()) == ours.packet


def test_stream_attributes_are_read_only_values() -> None:
    alice = table()
    alice.perform("bob", "m", "p", now=T0, destination_client_protocol=1)
    (send,) = alice.drain()
    assert isinstance(send, SendRpcStream)
    with pytest.raises(TypeError):
        send.attributes["x"] = "y"  # type: ignore[index]
    assert send.attributes[ATTR_RESPONSE_TIMEOUT_MS] == "15000"
    assert counter("r")() == "r1"


def test_late_v1_response_is_dropped() -> None:
    alice = table()
    alice.perform("bob", "m", "p", now=T0)
    alice.drain()
    alice.handle_timer(T0 + 7.0)
    alice.response_received(
        dpb.RpcResponse(request_id="req-1", payload="late"), sender_identity="bob", now=T0 + 8
    )
    outputs = alice.drain()
    assert isinstance(outputs[0], RpcFailed)
    assert dropped(outputs) == [("unknown", "req-1")]


@pytest.mark.parametrize("value", [-1.0, float("inf")])
def test_departed_timeout_must_be_finite_and_not_negative(value: float) -> None:
    with pytest.raises(ValueError, match=r"^RpcTable.departed_timeout must be a finite number"):
        RpcTable(id_factory=lambda: "x", departed_timeout=value)
