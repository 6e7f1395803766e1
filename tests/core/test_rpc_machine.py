"""Hypothesis state machine over one RpcTable playing both roles at arbitrary times.

Invariants, after every step:
- every call resolves at most once, only calls we made resolve, and `pending_calls` counts
  exactly the unresolved ones;
- every handler invocation ends at most once (one answer, or a cancellation);
- `get_timer()` is never in the past: None or later than the current time;
and at teardown, after `disconnected()`, every call resolved and every invocation ended
exactly once.
"""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

from lkproto._pb import data_pb2 as dpb
from lkproto.rpc import (
    ATTR_REQUEST_ID,
    ATTR_RESPONSE_TIMEOUT_MS,
    ATTR_VERSION,
    InvocationCancelled,
    InvokeHandler,
    RpcDropped,
    RpcError,
    RpcErrorCode,
    RpcFailed,
    RpcOutput,
    RpcSucceeded,
    RpcTable,
    SendRpcPacket,
    SendRpcStream,
)

PEERS = ["bob", "carol", "mallory", ""]
TIMEOUTS = st.sampled_from([0.05, 1.0, 7.0, 8.0, 15.0, 30.0])
DELAYS = st.sampled_from([0.0, 0.01, 0.05, 1.0, 6.99, 7.0, 8.0, 15.0, 100.0])


def is_answer(out: RpcOutput) -> bool:
    if isinstance(out, SendRpcStream):
        return out.topic == "lk.rpc_response"
    return isinstance(out, SendRpcPacket) and out.packet.HasField("rpc_response")


class RpcMachine(RuleBasedStateMachine):
    calls = Bundle("calls")
    sends = Bundle("sends")

    def __init__(self) -> None:
        super().__init__()
        numbers = itertools.count(1)
        self.table = RpcTable(
            id_factory=lambda: f"out-{next(numbers)}",
            max_pending_calls=8,
            max_incoming_invocations=3,
            max_remembered_requests=64,  # ids are never forgotten here: one invocation each
        )
        self.now = 0.0
        self.performed: dict[str, str] = {}  # request id -> destination
        self.resolved: dict[str, int] = {}
        self.invoked: dict[str, str] = {}  # incoming request id -> caller
        self.answers: dict[str, int] = {}  # incoming request id -> final answers/cancels
        self.answerable: list[str] = []

    def take(self) -> list[RpcOutput]:
        outputs = self.table.drain()
        for out in outputs:
            if isinstance(out, RpcSucceeded | RpcFailed):
                assert out.request_id in self.performed, out
                self.resolved[out.request_id] = self.resolved.get(out.request_id, 0) + 1
            elif isinstance(out, InvokeHandler):
                request_id = out.invocation.request_id
                assert request_id not in self.invoked
                self.invoked[request_id] = out.invocation.caller_identity
                self.answerable.append(request_id)
            elif isinstance(out, InvocationCancelled):
                if out.reason == RpcErrorCode.RESPONSE_TIMEOUT:  # the 1502 answer went just before
                    assert self.answers[out.request_id] == 1
                else:
                    self.end(out.request_id)
            elif is_answer(out):
                self.end(out.request_id)
            else:
                assert isinstance(out, SendRpcPacket | SendRpcStream | RpcDropped)
        return outputs

    def end(self, request_id: str) -> None:
        if request_id in self.invoked:
            self.answers[request_id] = self.answers.get(request_id, 0) + 1

    # -- caller -----------------------------------------------------------------------------

    @rule(
        target=calls,
        destination=st.sampled_from(["bob", "carol"]),
        v2=st.booleans(),
        timeout=TIMEOUTS,
        big=st.booleans(),
    )
    def perform(self, destination: str, v2: bool, timeout: float, big: bool) -> str:
        if self.table.pending_calls >= 8:
            return ""
        request_id = self.table.perform(
            destination,
            "m",
            "x" * (16_000 if big else 3),
            now=self.now,
            response_timeout=timeout,
            destination_client_protocol=int(v2),
        )
        self.performed[request_id] = destination
        self.take()
        return request_id

    @rule(request_id=calls, honest=st.booleans())
    def ack(self, request_id: str, honest: bool) -> None:
        sender = self.performed.get(request_id, "bob") if honest else "mallory"
        self.table.ack_received(request_id, sender_identity=sender, now=self.now)
        self.take()

    @rule(
        request_id=calls, honest=st.booleans(), how=st.sampled_from(["payload", "error", "stream"])
    )
    def response(self, request_id: str, honest: bool, how: str) -> None:
        sender = self.performed.get(request_id, "bob") if honest else "mallory"
        if how == "stream":
            self.table.stream_response_received(
                {ATTR_REQUEST_ID: request_id}, "r", sender_identity=sender, now=self.now
            )
        else:
            response = dpb.RpcResponse(request_id=request_id)
            if how == "payload":
                response.payload = "r"
            else:
                response.error.CopyFrom(RpcError(101, "no").to_proto())
            self.table.response_received(response, sender_identity=sender, now=self.now)
        self.take()

    @rule(request_id=calls)
    def request_send_fails(self, request_id: str) -> None:
        packet = dpb.DataPacket(rpc_request=dpb.RpcRequest(id=request_id))
        output = SendRpcPacket(request_id=request_id, destination_identity="bob", packet=packet)
        self.table.send_failed(output, now=self.now, detail="gone")
        self.take()

    @rule(identity=st.sampled_from(["bob", "carol", "alice", "dave"]))
    def participant_left(self, identity: str) -> None:
        self.table.participant_left(identity, now=self.now)
        self.take()
        # Nothing stays open with someone who left.
        assert all(r in self.resolved for r, d in self.performed.items() if d == identity)
        assert all(self.answers.get(r) for r, c in self.invoked.items() if c == identity)

    @rule(delay=DELAYS)
    def time_passes(self, delay: float) -> None:
        self.now += delay
        self.table.handle_timer(self.now)
        self.take()
        timer = self.table.get_timer()
        assert timer is None or timer > self.now

    # -- callee -----------------------------------------------------------------------------

    @rule(
        number=st.integers(1, 12),
        caller=st.sampled_from(["alice", "dave", ""]),
        v2=st.booleans(),
        opened_first=st.booleans(),
        registered=st.booleans(),
        timeout_ms=st.sampled_from([0, 50, 8000, 15000]),
    )
    def request(
        self,
        number: int,
        caller: str,
        v2: bool,
        opened_first: bool,
        registered: bool,
        timeout_ms: int,
    ) -> None:
        request_id = f"in-{number}"
        if v2:
            attrs = {
                ATTR_REQUEST_ID: request_id,
                "lk.rpc_request_method": "m",
                ATTR_RESPONSE_TIMEOUT_MS: str(timeout_ms),
                ATTR_VERSION: "2",
            }
            if opened_first:
                self.table.stream_request_opened(attrs, caller_identity=caller, now=self.now)
            self.table.stream_request_received(
                attrs, "p", caller_identity=caller, now=self.now, registered=registered
            )
        else:
            request = dpb.RpcRequest(
                id=request_id, method="m", payload="p", response_timeout_ms=timeout_ms, version=1
            )
            self.table.request_received(
                request, caller_identity=caller, now=self.now, registered=registered
            )
        self.take()

    @rule(pick=st.integers(0, 10), how=st.sampled_from(["ok", "big", "error", "exception"]))
    def respond(self, pick: int, how: str) -> None:
        if not self.answerable:
            return
        request_id = self.answerable[pick % len(self.answerable)]
        if how == "ok":
            self.table.respond(request_id, "r", now=self.now)
        elif how == "big":
            self.table.respond(request_id, "x" * 16_000, now=self.now)
        elif how == "error":
            self.table.respond(request_id, RpcError(7, "e"), now=self.now)
        else:
            self.table.respond_exception(request_id, ValueError("x"), now=self.now)
        self.take()

    # -- invariants -------------------------------------------------------------------------

    @invariant()
    def resolved_at_most_once(self) -> None:
        assert all(count == 1 for count in self.resolved.values()), self.resolved
        unresolved = [r for r in self.performed if r not in self.resolved]
        assert self.table.pending_calls == len(unresolved)

    @invariant()
    def invocations_end_at_most_once(self) -> None:
        assert all(count == 1 for count in self.answers.values()), self.answers

    @invariant()
    def timer_never_in_the_past(self) -> None:
        timer = self.table.get_timer()
        assert timer is None or timer > self.now

    def teardown(self) -> None:
        self.table.disconnected(now=self.now)
        self.take()
        assert self.resolved == dict.fromkeys(self.performed, 1)
        assert self.answers == dict.fromkeys(self.invoked, 1)
        assert self.table.get_timer() is None and self.table.active_invocations == 0


RpcMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestRpcMachine = RpcMachine.TestCase


TEXT = st.text(max_size=12)


@settings(max_examples=300, deadline=None)
@given(
    attributes=st.dictionaries(
        st.sampled_from([ATTR_REQUEST_ID, ATTR_RESPONSE_TIMEOUT_MS, ATTR_VERSION, "x"]), TEXT
    ),
    request=st.builds(
        dpb.RpcRequest,
        id=TEXT,
        method=TEXT,
        payload=TEXT,
        response_timeout_ms=st.integers(0, 2**32 - 1),
        version=st.integers(0, 2**32 - 1),
        compressed_payload=st.binary(max_size=4),
    ),
    error=st.builds(dpb.RpcError, code=st.integers(0, 2**32 - 1), message=TEXT, data=TEXT),
    sender=st.sampled_from(["bob", "", "mallory"]),
    registered=st.booleans(),
)
def test_remote_input_never_raises(
    attributes: dict[str, str],
    request: dpb.RpcRequest,
    error: dpb.RpcError,
    sender: str,
    registered: bool,
) -> None:
    """Whatever a peer sends, the table answers, resolves or drops; it never raises."""
    rpc = RpcTable(id_factory=lambda: request.id or "x")  # so the responses may match
    rpc.perform("bob", "m", "p", now=0.0, destination_client_protocol=1)
    rpc.request_received(request, caller_identity=sender, now=0.0, registered=registered)
    rpc.stream_request_opened(attributes, caller_identity=sender, now=0.0)
    rpc.stream_request_received(
        attributes, "p", caller_identity=sender, now=0.0, registered=registered
    )
    rpc.stream_request_failed(attributes, caller_identity=sender, now=0.0)
    rpc.ack_received(request.id, sender_identity=sender, now=0.0)
    rpc.stream_response_failed(attributes, sender_identity=sender, now=0.0)
    rpc.stream_response_received(attributes, "r", sender_identity=sender, now=0.0)
    rpc.response_received(
        dpb.RpcResponse(request_id=request.id, error=error), sender_identity=sender, now=0.0
    )
    rpc.handle_timer(1e9)
    assert rpc.get_timer() is None
    assert all(
        not isinstance(o, InvokeHandler) or o.invocation.caller_identity for o in rpc.drain()
    )
