"""RPC correlation: the caller's pending calls and the callee's invocations, without I/O.

Theory of operation (protocol-reference B; client-sdk-js `RpcClientManager`/`RpcServerManager`;
the RPC v2 spec `RPC_SPEC.md`)
- An `RpcTable` holds both sides of RPC for one local participant. Inputs are method calls
  given `now` (monotonic seconds); outputs are frozen values read with `drain()` after every
  input: what to send (`SendRpcPacket`, `SendRpcStream`), how calls ended (`RpcSucceeded`,
  `RpcFailed`), what to run (`InvokeHandler`, `InvocationCancelled`) and what was ignored
  (`RpcDropped`). RPC failures are values, never exceptions; `LocalProtocolError` is raised
  only for misuse (bad arguments, bounds), and then nothing changed.
- Wire: `DataPacket.rpc_request` (RpcRequest{id, method, payload, response_timeout_ms,
  version=1}), `rpc_ack` (RpcAck{request_id}) and `rpc_response` (RpcResponse{request_id,
  payload | error}), always reliable with `destination_identities = [peer]`. Request ids come
  from the injected `id_factory` (LiveKit uses UUID v4 strings).
- Transport (B.2): a request uses RPC v2, a text data stream on `lk.rpc_request` with the
  `lk.rpc_request_*` attributes, when both we and the destination advertise
  `client_protocol >= 1` (CLIENT_PROTOCOL_DATA_STREAM_RPC); otherwise an RpcRequest packet
  (v1), whose payload is limited to 15360 UTF-8 bytes (MAX_V1_PAYLOAD_BYTES). The table only
  describes the stream; chunking is the stream layer's job. Acks and every error response
  are always v1 packets. The callee answers on the request's own transport: a v2 request
  gets a success as a text stream on `lk.rpc_response` (attribute `lk.rpc_request_id`), a v1
  request an RpcResponse packet, or 1504 if the payload is over 15360 bytes (the reference's
  recommendation; JS instead looks up the caller's client_protocol).
- Caller timers follow client-sdk-js (B.3), both armed at send time: the ack deadline
  `now + max_round_trip_latency` (maxRoundTripLatency, 7000 ms) fails the call with 1501
  CONNECTION_TIMEOUT; the response deadline `now + response_timeout` fails it with 1502
  RESPONSE_TIMEOUT. Its default is 15000 ms as in the current JS and Rust SDKs (the public
  docs still say 10 s, the first JS value). A response before the ack is accepted. The
  handler is told max(response_timeout, max_round_trip_latency + 1 s), i.e. JS's
  minEffectiveTimeout of 8000 ms; Rust (and so livekit.rtc) sends
  max(response_timeout - max_round_trip_latency, 1 s) instead.
- Every call resolves exactly once: on the first of response, error, ack timeout, response
  timeout, the destination leaving (1503 RECIPIENT_DISCONNECTED), a local send failure (1505
  SEND_FAILED, as in Rust) or an immediate refusal (1402 REQUEST_PAYLOAD_TOO_LARGE for a v1
  destination, 1403 UNSUPPORTED_SERVER below server 1.8.0, and 1505 when the server would
  drop the request: a hidden participant's packets lose their sender identity, so no answer
  can be addressed back, livekit/livekit#3832; without canPublishData the server drops
  them). Anything arriving later is reported as `RpcDropped` and changes nothing. Acks and
  responses must come from the destination identity (required for v2 response streams by
  the spec; applied to every packet here, so a hidden callee, whose identity is stripped,
  cannot answer).
- Callee (B.4): the ack goes out first, before any validation or handler lookup. Then 1404
  UNSUPPORTED_VERSION (v1 version other than 0/1; v2 version attribute other than "2"), 1400
  UNSUPPORTED_METHOD when nothing is registered, or `InvokeHandler`. The handler runs until
  `respond()` or until its deadline, now + the response timeout from the request (0 or
  missing: the default), which answers 1502 and emits `InvocationCancelled` as livekit.rtc
  does. The request's timeout is capped at `max_handler_timeout` (600 s): its uint32 of
  milliseconds would otherwise let a caller hold an invocation slot for 49 days.
  Non-RpcError exceptions become 1500 with the built-in message only. A request id already
  being handled or recently handled is ignored (no SDK de-duplicates; sequence de-dup
  normally prevents replays).
- Every store is bounded: `max_pending_calls`, `max_incoming_invocations` (beyond it the
  request is acked and answered 1500), `max_remembered_requests` (duplicate detection).
"""

from __future__ import annotations

import enum
import math
from collections import OrderedDict
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import ClassVar, Final, cast

import attrs

from lkproto._deadlines import Deadlines
from lkproto._pb import data_pb2 as dpb
from lkproto._repr import plain_repr
from lkproto.errors import LocalProtocolError

__all__ = [
    "ATTR_METHOD",
    "ATTR_REQUEST_ID",
    "ATTR_RESPONSE_TIMEOUT_MS",
    "ATTR_VERSION",
    "CLIENT_PROTOCOL_DATA_STREAM_RPC",
    "CLIENT_PROTOCOL_DEFAULT",
    "DEFAULT_MAX_HANDLER_TIMEOUT",
    "DEFAULT_MAX_ROUND_TRIP_LATENCY",
    "DEFAULT_RESPONSE_TIMEOUT",
    "MAX_V1_PAYLOAD_BYTES",
    "RPC_REQUEST_TOPIC",
    "RPC_RESPONSE_TOPIC",
    "InvocationCancelled",
    "InvokeHandler",
    "RpcDropped",
    "RpcError",
    "RpcErrorCode",
    "RpcFailed",
    "RpcInvocationData",
    "RpcOutput",
    "RpcSucceeded",
    "RpcTable",
    "SendRpcPacket",
    "SendRpcStream",
]

CLIENT_PROTOCOL_DEFAULT: Final = 0
CLIENT_PROTOCOL_DATA_STREAM_RPC: Final = 1
RPC_REQUEST_TOPIC: Final = "lk.rpc_request"
RPC_RESPONSE_TOPIC: Final = "lk.rpc_response"
ATTR_REQUEST_ID: Final = "lk.rpc_request_id"
ATTR_METHOD: Final = "lk.rpc_request_method"
ATTR_RESPONSE_TIMEOUT_MS: Final = "lk.rpc_request_response_timeout_ms"
ATTR_VERSION: Final = "lk.rpc_request_version"
MAX_V1_PAYLOAD_BYTES: Final = 15360
DEFAULT_RESPONSE_TIMEOUT: Final = 15.0
DEFAULT_MAX_ROUND_TRIP_LATENCY: Final = 7.0
#: The longest handler deadline a caller may ask for (a local bound: no SDK caps it).
DEFAULT_MAX_HANDLER_TIMEOUT: Final = 600.0
_MIN_EFFECTIVE_MARGIN = 1.0  # JS minEffectiveTimeoutMs = maxRoundTripLatencyMs + 1000
_MIN_SERVER_VERSION = (1, 8, 0)
_UINT32_MAX = 0xFFFFFFFF
_ACK, _RESPONSE, _HANDLER, _DEPARTED = "ack", "response", "handler", "departed"
_HIDDEN = (
    "hidden participants cannot perform RPC: the server strips the sender identity from "
    "their data packets, so the callee cannot address an answer (livekit/livekit#3832)"
)
_NO_DATA_GRANT = "this participant lacks canPublishData: the server drops its data packets"


def _truncate_utf8(text: str, limit: int) -> str:
    """The longest prefix of `text` whose UTF-8 encoding fits in `limit` bytes."""
    return text.encode("utf-8", "replace")[:limit].decode("utf-8", "ignore")


class RpcError(Exception):
    """An RPC failure: a built-in code (1400-1505) or the application's own.

    Raised by a handler, it is sent to the caller as is; codes 1001-1999 are reserved for
    built-in errors. On the wire the message is cut to 256 and the data to 15360 UTF-8 bytes,
    on character boundaries (`to_proto`, `from_proto`); the local value is left whole.
    """

    class ErrorCode(enum.IntEnum):
        """Built-in codes, named as in livekit.rtc's `RpcError.ErrorCode`."""

        APPLICATION_ERROR = 1500
        CONNECTION_TIMEOUT = 1501
        RESPONSE_TIMEOUT = 1502
        RECIPIENT_DISCONNECTED = 1503
        RESPONSE_PAYLOAD_TOO_LARGE = 1504
        SEND_FAILED = 1505

        UNSUPPORTED_METHOD = 1400
        RECIPIENT_NOT_FOUND = 1401
        REQUEST_PAYLOAD_TOO_LARGE = 1402
        UNSUPPORTED_SERVER = 1403
        UNSUPPORTED_VERSION = 1404

    ErrorMessage: ClassVar[Mapping[RpcError.ErrorCode, str]] = MappingProxyType(
        {
            ErrorCode.APPLICATION_ERROR: "Application error in method handler",
            ErrorCode.CONNECTION_TIMEOUT: "Connection timeout",
            ErrorCode.RESPONSE_TIMEOUT: "Response timeout",
            ErrorCode.RECIPIENT_DISCONNECTED: "Recipient disconnected",
            ErrorCode.RESPONSE_PAYLOAD_TOO_LARGE: "Response payload too large",
            ErrorCode.SEND_FAILED: "Failed to send",
            ErrorCode.UNSUPPORTED_METHOD: "Method not supported at destination",
            ErrorCode.RECIPIENT_NOT_FOUND: "Recipient not found",
            ErrorCode.REQUEST_PAYLOAD_TOO_LARGE: "Request payload too large",
            ErrorCode.UNSUPPORTED_SERVER: "RPC not supported by server",
            ErrorCode.UNSUPPORTED_VERSION: "Unsupported RPC version",
        }
    )
    MAX_MESSAGE_BYTES: ClassVar[int] = 256
    MAX_DATA_BYTES: ClassVar[int] = 15360

    def __init__(self, code: int, message: str, data: str | None = None) -> None:
        """Args: `code` (0..2**32-1, the wire type is uint32), `message`, optional `data`.

        Raises `ValueError` for a code that cannot travel on the wire.
        """
        if isinstance(code, bool) or not isinstance(code, int) or not 0 <= code <= _UINT32_MAX:
            raise ValueError(f"RpcError code must be an integer in 0..{_UINT32_MAX}: {code!r}")
        super().__init__(message)
        self._code = code
        self._message = message
        self._data = data

    @property
    def code(self) -> int:
        """The error code; 1001-1999 are built-in (`RpcError.ErrorCode`)."""
        return self._code

    @property
    def message(self) -> str:
        """A readable message."""
        return self._message

    @property
    def data(self) -> str | None:
        """Optional extra data (JSON recommended); None when empty on the wire."""
        return self._data

    @classmethod
    def built_in(cls, code: RpcError.ErrorCode, data: str | None = None) -> RpcError:
        """The built-in error `code` with its standard message."""
        return cls(code, cls.ErrorMessage[code], data)

    @classmethod
    def from_proto(cls, proto: dpb.RpcError) -> RpcError:
        """Decode a wire `RpcError`; empty data means none. Oversized text is truncated."""
        data = _truncate_utf8(proto.data, cls.MAX_DATA_BYTES) or None
        return cls(proto.code, _truncate_utf8(proto.message, cls.MAX_MESSAGE_BYTES), data)

    def to_proto(self) -> dpb.RpcError:
        """Encode for the wire, truncating message and data to their byte limits."""
        return dpb.RpcError(
            code=int(self._code),
            message=_truncate_utf8(self._message, self.MAX_MESSAGE_BYTES),
            data=_truncate_utf8(self._data or "", self.MAX_DATA_BYTES),
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RpcError):
            return NotImplemented
        return (self._code, self._message, self._data) == (other.code, other.message, other.data)

    def __hash__(self) -> int:
        return hash((self._code, self._message, self._data))

    def __repr__(self) -> str:
        return f"RpcError(code={self._code}, message={self._message!r}, data={self._data!r})"

    def __reduce__(self) -> tuple[type[RpcError], tuple[int, str, str | None]]:
        return type(self), (self._code, self._message, self._data)


RpcErrorCode = RpcError.ErrorCode
_E = RpcError.ErrorCode


def _frozen_map(value: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(value))


# -- outputs ----------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
@plain_repr
class SendRpcPacket:
    """Send `packet` (an RpcRequest, RpcAck or RpcResponse) reliably to one participant.

    The packet already names `destination_identity` in `destination_identities`; the
    consumer owns it and stamps kind and sequence. `request_id` is the RPC it belongs to.
    """

    request_id: str
    destination_identity: str
    packet: dpb.DataPacket = attrs.field(hash=False)  # protobuf messages are unhashable


@attrs.frozen(kw_only=True)
@plain_repr
class SendRpcStream:
    """Send `text` as one text data stream on `topic` to `destination_identity`.

    `attributes` go in the stream header. Topics: `lk.rpc_request` (a v2 request) or
    `lk.rpc_response` (a v2 success response).
    """

    request_id: str
    destination_identity: str
    topic: str
    attributes: Mapping[str, str] = attrs.field(converter=_frozen_map)
    text: str


@attrs.frozen(kw_only=True)
@plain_repr
class RpcSucceeded:
    """Our call `request_id` returned `payload`."""

    request_id: str
    payload: str


@attrs.frozen(kw_only=True)
@plain_repr
class RpcFailed:
    """Our call `request_id` failed with `error` (raise it on the awaiting future)."""

    request_id: str
    error: RpcError


@attrs.frozen(kw_only=True)
@plain_repr
class RpcInvocationData:
    """What a handler receives (livekit.rtc `RpcInvocationData`); `response_timeout` in s."""

    request_id: str
    caller_identity: str
    payload: str
    response_timeout: float
    method: str


@attrs.frozen(kw_only=True)
@plain_repr
class InvokeHandler:
    """Run the handler registered for `invocation.method`, then call `respond()`."""

    invocation: RpcInvocationData


@attrs.frozen(kw_only=True)
@plain_repr
class InvocationCancelled:
    """Stop the handler for `request_id`; its answer is no longer wanted.

    `reason` is RESPONSE_TIMEOUT (its deadline passed; the caller was answered 1502) or
    RECIPIENT_DISCONNECTED (the caller left, or we disconnected; nothing is sent).
    """

    request_id: str
    caller_identity: str
    reason: RpcError.ErrorCode


@attrs.frozen(kw_only=True)
@plain_repr
class RpcDropped:
    """Something RPC-related was ignored; nothing changed. Report or log it.

    `reason`: "unknown" (an ack, response or `respond()` for no pending request: late after
    a timeout, already resolved, or never ours), "wrong-sender" (not the destination),
    "duplicate" (a second ack, or a request id already handled), "malformed" (no request id)
    or "anonymous" (a request without caller identity, which cannot be answered); and for
    requests that were answered with an error rather than handled: "refused" (over
    `max_incoming_invocations` or the per-caller share) and "failed" (a v2 request whose
    payload could not be read), each answered 1500.
    """

    reason: str
    request_id: str
    participant_identity: str
    detail: str = ""


RpcOutput = (
    SendRpcPacket
    | SendRpcStream
    | RpcSucceeded
    | RpcFailed
    | InvokeHandler
    | InvocationCancelled
    | RpcDropped
)


# -- the table --------------------------------------------------------------------------------


@attrs.define
@plain_repr
class _Call:
    destination: str
    acked: bool = False


@attrs.define
@plain_repr
class _Invocation:
    caller: str
    method: str
    response_timeout: float
    via_stream: bool
    reading: bool  # a v2 request whose header arrived but not yet its payload


def _utf8_len(text: object, call: str, what: str) -> int:
    if not isinstance(text, str):
        raise LocalProtocolError(
            f"{call}: {what} must be str, not {type(text).__name__}", call=call
        )
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise LocalProtocolError(f"{call}: {what} is not valid Unicode text", call=call) from exc


def _is_seconds(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and 0 < value < math.inf


def _seconds(value: float, name: str, call: str) -> float:
    if not _is_seconds(value):
        raise LocalProtocolError(f"{call}: {name} must be a positive number: {value!r}", call=call)
    return float(value)


def _decimal(text: str) -> int | None:
    """A short ASCII decimal (remote text: never hand int() thousands of digits), or None."""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 10 else None


def _older_than_minimum(version: str) -> bool:
    parts = [_decimal(piece) for piece in version.split("-")[0].split("+")[0].split(".")[:3]]
    if None in parts:
        return False  # unknown or unparsable: do not refuse
    return tuple(cast(list[int], parts) + [0] * (3 - len(parts))) < _MIN_SERVER_VERSION


def _timeout_ms(text: str) -> int:
    value = _decimal(text)
    return 0 if value is None else min(value, _UINT32_MAX)


class RpcTable:
    """Pending outgoing RPC calls and running incoming invocations of one participant.

    After every call, `drain()` the outputs and re-arm from `get_timer()`. Public attributes
    the owner keeps current (all checked by `perform`): `server_version`
    (`JoinResponse.server_info.version`), `local_hidden` and `local_can_publish_data` (our
    own `ParticipantPermission.hidden` / `can_publish_data`). Not thread-safe.
    """

    def __init__(
        self,
        *,
        id_factory: Callable[[], str],
        client_protocol: int = CLIENT_PROTOCOL_DATA_STREAM_RPC,
        response_timeout: float = DEFAULT_RESPONSE_TIMEOUT,
        max_round_trip_latency: float = DEFAULT_MAX_ROUND_TRIP_LATENCY,
        max_pending_calls: int = 1024,
        max_incoming_invocations: int = 256,
        max_method_bytes: int = 64,
        max_remembered_requests: int = 1024,
        max_incoming_invocations_per_caller: int | None = None,
        max_handler_timeout: float = DEFAULT_MAX_HANDLER_TIMEOUT,
        departed_timeout: float = 0.0,
    ) -> None:
        """Args:
        id_factory: returns a fresh request id per call (LiveKit uses `str(uuid4())`).
        client_protocol: the level we advertise; v2 is used only if it is >= 1 (default 1).
        response_timeout: default seconds to wait for a response (15, as JS and Rust).
        max_round_trip_latency: default seconds to wait for the ack (7, as JS and Rust).
        max_pending_calls: most outgoing calls awaiting a result (default 1024).
        max_incoming_invocations: most requests being handled at once (default 256).
        max_incoming_invocations_per_caller: most of those from one caller, so one peer
            cannot take every slot (default: all of them).
        max_method_bytes: longest method name `perform` accepts, UTF-8 (default 64; a local
            rule, no SDK limits it, but it must fit the packet/header budget).
        max_remembered_requests: incoming request ids kept to ignore duplicates (1024).
        max_handler_timeout: the cap on the handler deadline a request asks for (600 s).
        departed_timeout: seconds a call whose destination left still waits for its ack and
            response, which the leave (over signaling) may have overtaken; 0 (the default,
            as every SDK): 1503 at the leave.

        Raises `ValueError` for a non-positive timeout or bound (a negative or infinite
        `departed_timeout`).
        """
        for name, value in (
            ("response_timeout", response_timeout),
            ("max_round_trip_latency", max_round_trip_latency),
            ("max_handler_timeout", max_handler_timeout),
        ):
            if not _is_seconds(value):
                raise ValueError(f"RpcTable.{name} must be a positive number of seconds")
        for name, bound in (
            ("max_pending_calls", max_pending_calls),
            ("max_incoming_invocations", max_incoming_invocations),
            (
                "max_incoming_invocations_per_caller",
                max_incoming_invocations
                if max_incoming_invocations_per_caller is None
                else max_incoming_invocations_per_caller,
            ),
            ("max_method_bytes", max_method_bytes),
            ("max_remembered_requests", max_remembered_requests),
        ):
            if bound < 1:
                raise ValueError(f"RpcTable.{name} must be at least 1")
        if not 0 <= departed_timeout < float("inf"):
            raise ValueError("RpcTable.departed_timeout must be a finite number >= 0")
        self.departed_timeout = departed_timeout
        self._id_factory = id_factory
        self.response_timeout = float(response_timeout)
        self.max_round_trip_latency = float(max_round_trip_latency)
        self.max_handler_timeout = float(max_handler_timeout)
        self.client_protocol = client_protocol
        self.max_pending_calls = max_pending_calls
        self.max_incoming_invocations = max_incoming_invocations
        self.max_incoming_invocations_per_caller = (
            max_incoming_invocations
            if max_incoming_invocations_per_caller is None
            else max_incoming_invocations_per_caller
        )
        self.max_method_bytes = max_method_bytes
        self.max_remembered_requests = max_remembered_requests
        self.server_version = ""
        self.local_hidden = False
        self.local_can_publish_data = True
        self._calls: dict[str, _Call] = {}
        self._invocations: dict[str, _Invocation] = {}
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._deadlines = Deadlines()
        self._out: list[RpcOutput] = []

    # -- outputs and time -----------------------------------------------------------------

    def drain(self) -> list[RpcOutput]:
        """Everything produced since the last drain, in order. Carry out sends in order."""
        out, self._out = self._out, []
        return out

    def get_timer(self) -> float | None:
        """The earliest deadline (monotonic seconds), or None."""
        return self._deadlines.earliest()

    @property
    def pending_calls(self) -> int:
        """Outgoing calls still awaiting their result."""
        return len(self._calls)

    @property
    def active_invocations(self) -> int:
        """Incoming requests being read or handled, not yet answered."""
        return len(self._invocations)

    def handle_timer(self, now: float) -> None:
        """Fire every deadline due at `now`: 1501 (no ack), 1502 (no response), handler
        timeouts (1502 to the caller plus `InvocationCancelled`). Early or repeated calls
        are harmless."""
        for key in self._deadlines.pop_due(now):
            kind, request_id = cast(tuple[str, str], key)
            if kind == _HANDLER:
                caller = self._invocations[request_id].caller
                self._send_error(request_id, caller, _E.RESPONSE_TIMEOUT)
                self._cancel(request_id, _E.RESPONSE_TIMEOUT)
            elif kind == _DEPARTED:  # resolving a call cancels this one
                self._fail(request_id, RpcError.built_in(_E.RECIPIENT_DISCONNECTED))
            elif request_id in self._calls:  # an ack and a response deadline may fire together
                code = _E.CONNECTION_TIMEOUT if kind == _ACK else _E.RESPONSE_TIMEOUT
                self._fail(request_id, RpcError.built_in(code))

    # -- caller side ------------------------------------------------------------------------

    def perform(
        self,
        destination_identity: str,
        method: str,
        payload: str,
        *,
        now: float,
        response_timeout: float | None = None,
        max_round_trip_latency: float | None = None,
        destination_client_protocol: int = CLIENT_PROTOCOL_DEFAULT,
    ) -> str:
        """Start a call; returns its request id. Its result comes later as exactly one
        `RpcSucceeded` or `RpcFailed` with that id (possibly already in this drain: 1402,
        1403 or 1505 refusals send nothing).

        Args:
            destination_identity: the callee; `destination_client_protocol` is its
                `ParticipantInfo.client_protocol` (0 if unknown), which picks v1 or v2.
            response_timeout, max_round_trip_latency: seconds, defaulting to the table's.

        Raises `LocalProtocolError`, changing nothing, for an empty destination or method, a
        method over `max_method_bytes`, text that is not valid Unicode, a non-positive
        timeout, `max_pending_calls` reached, or an empty or reused id from `id_factory`.
        """
        call = "perform_rpc"
        if not destination_identity:
            raise LocalProtocolError(f"{call}: the destination identity is empty", call=call)
        method_bytes = _utf8_len(method, call, "method")
        if not 0 < method_bytes <= self.max_method_bytes:
            raise LocalProtocolError(
                f"{call}: the method name must be 1 to {self.max_method_bytes} UTF-8 bytes, "
                f"not {method_bytes}",
                call=call,
            )
        payload_bytes = _utf8_len(payload, call, "payload")
        timeout = self.response_timeout
        if response_timeout is not None:
            timeout = _seconds(response_timeout, "response_timeout", call)
        latency = self.max_round_trip_latency
        if max_round_trip_latency is not None:
            latency = _seconds(max_round_trip_latency, "max_round_trip_latency", call)
        if len(self._calls) >= self.max_pending_calls:
            raise LocalProtocolError(
                f"{call}: {len(self._calls)} calls are already pending (max_pending_calls)",
                call=call,
            )
        request_id = self._id_factory()
        if not request_id or request_id in self._calls:
            raise LocalProtocolError(f"{call}: id_factory returned {request_id!r}", call=call)
        v2 = min(self.client_protocol, destination_client_protocol) >= 1
        refusal: RpcError | None = None
        if not v2 and payload_bytes > MAX_V1_PAYLOAD_BYTES:
            refusal = RpcError.built_in(_E.REQUEST_PAYLOAD_TOO_LARGE)
        elif _older_than_minimum(self.server_version):
            refusal = RpcError.built_in(_E.UNSUPPORTED_SERVER)
        elif self.local_hidden:
            refusal = RpcError.built_in(_E.SEND_FAILED, _HIDDEN)
        elif not self.local_can_publish_data:
            refusal = RpcError.built_in(_E.SEND_FAILED, _NO_DATA_GRANT)
        if refusal is not None:
            self._out.append(RpcFailed(request_id=request_id, error=refusal))
            return request_id
        # State first, then the send: an ack or response delivered while the request is
        # still being published (spec test 12) finds its call.
        self._calls[request_id] = _Call(destination=destination_identity)
        self._deadlines.set((_ACK, request_id), now + latency)
        self._deadlines.set((_RESPONSE, request_id), now + timeout)
        advertised_ms = min(
            _UINT32_MAX, round(max(timeout, latency + _MIN_EFFECTIVE_MARGIN) * 1000)
        )
        if v2:
            attributes = {
                ATTR_REQUEST_ID: request_id,
                ATTR_METHOD: method,
                ATTR_RESPONSE_TIMEOUT_MS: str(advertised_ms),
                ATTR_VERSION: "2",
            }
            self._out.append(
                SendRpcStream(
                    request_id=request_id,
                    destination_identity=destination_identity,
                    topic=RPC_REQUEST_TOPIC,
                    attributes=attributes,
                    text=payload,
                )
            )
        else:
            request = dpb.RpcRequest(
                id=request_id,
                method=method,
                payload=payload,
                response_timeout_ms=advertised_ms,
                version=1,
            )
            self._send(request_id, destination_identity, dpb.DataPacket(rpc_request=request))
        return request_id

    def ack_received(self, request_id: str, *, sender_identity: str, now: float) -> None:
        """An `RpcAck` arrived from `sender_identity`: stop the ack timer of that call."""
        pending = self._pending_from(request_id, sender_identity)
        if pending is None:
            return
        if pending.acked:
            self._drop("duplicate", request_id, sender_identity, "second ack")
            return
        pending.acked = True
        self._deadlines.cancel((_ACK, request_id))

    def response_received(
        self, response: dpb.RpcResponse, *, sender_identity: str, now: float
    ) -> None:
        """An `RpcResponse` packet arrived: resolve the call with its payload or error.

        A `compressed_payload` (never produced by JS or Rust) or an empty value fails the
        call with 1500 rather than leaving it to time out.
        """
        request_id = response.request_id
        if self._pending_from(request_id, sender_identity) is None:
            return
        kind = response.WhichOneof("value")
        if kind == "payload":
            self._resolve(request_id, RpcSucceeded(request_id=request_id, payload=response.payload))
        elif kind == "error":
            self._fail(request_id, RpcError.from_proto(response.error))
        else:
            detail = f"unsupported RpcResponse value: {kind or 'none'}"
            self._fail(request_id, RpcError.built_in(_E.APPLICATION_ERROR, detail))

    def stream_response_received(
        self, attributes: Mapping[str, str], payload: str, *, sender_identity: str, now: float
    ) -> None:
        """A complete text stream on `lk.rpc_response` arrived: resolve with its text."""
        request_id = attributes.get(ATTR_REQUEST_ID, "")
        if not request_id:
            self._drop(
                "malformed", "", sender_identity, f"response stream without {ATTR_REQUEST_ID}"
            )
        elif self._pending_from(request_id, sender_identity) is not None:
            self._resolve(request_id, RpcSucceeded(request_id=request_id, payload=payload))

    def stream_response_failed(
        self, attributes: Mapping[str, str], *, sender_identity: str, now: float, detail: str = ""
    ) -> None:
        """A response stream could not be read: fail the call with 1500 (as JS)."""
        request_id = attributes.get(ATTR_REQUEST_ID, "")
        if self._pending_from(request_id, sender_identity) is not None:
            data = "Error reading RPC response payload" + (f": {detail}" if detail else "")
            self._fail(request_id, RpcError.built_in(_E.APPLICATION_ERROR, data))

    def send_failed(
        self, output: SendRpcPacket | SendRpcStream, *, now: float, detail: str = ""
    ) -> None:
        """An output from this table could not be sent (refused, oversized, channel gone).

        A request: the call fails with 1505 SEND_FAILED, `detail` as data (Rust). A v2 response
        stream: the caller is sent a 1505 error packet instead (Rust's fallback). An ack or
        a response packet: nothing more can be done.
        """
        if isinstance(output, SendRpcStream):
            is_request = output.topic == RPC_REQUEST_TOPIC
        else:
            is_request = output.packet.WhichOneof("value") == "rpc_request"
        if is_request:
            if output.request_id in self._calls:
                self._fail(output.request_id, RpcError.built_in(_E.SEND_FAILED, detail or None))
        elif isinstance(output, SendRpcStream):
            self._send_error(output.request_id, output.destination_identity, _E.SEND_FAILED)

    def participant_left(self, identity: str, *, now: float) -> None:
        """`identity` disconnected: its pending calls fail with 1503 (after
        `departed_timeout` seconds, unless their answer still arrives) and its invocations
        are cancelled (nothing is sent to it)."""
        for request_id in [r for r, c in self._calls.items() if c.destination == identity]:
            if self.departed_timeout:
                self._deadlines.set((_DEPARTED, request_id), now + self.departed_timeout)
            else:
                self._fail(request_id, RpcError.built_in(_E.RECIPIENT_DISCONNECTED))
        for request_id in [r for r, i in self._invocations.items() if i.caller == identity]:
            self._cancel(request_id, _E.RECIPIENT_DISCONNECTED)

    def disconnected(self, *, now: float) -> None:
        """We left the room or lost the session: every call fails with 1503 and every
        invocation is cancelled, as if all participants had left."""
        for request_id in list(self._calls):
            self._fail(request_id, RpcError.built_in(_E.RECIPIENT_DISCONNECTED))
        for request_id in list(self._invocations):
            self._cancel(request_id, _E.RECIPIENT_DISCONNECTED)
        self._deadlines.clear()

    # -- callee side ------------------------------------------------------------------------

    def request_received(
        self, request: dpb.RpcRequest, *, caller_identity: str, now: float, registered: bool
    ) -> None:
        """An `RpcRequest` packet (v1) arrived from `caller_identity`
        (`DataPacket.participant_identity`); `registered` says whether a handler exists for
        `request.method`. Emits the ack, then an error response or `InvokeHandler`."""
        timeout_ms = request.response_timeout_ms
        invocation = self._begin(request.id, caller_identity, request.method, timeout_ms, now)
        if invocation is None:
            return
        if request.version not in (0, 1):  # 0: an unset field; be liberal (android#601)
            self._finish(request.id, RpcError.built_in(_E.UNSUPPORTED_VERSION))
        elif request.compressed_payload:
            detail = "compressed RPC payloads are not supported"
            self._finish(request.id, RpcError.built_in(_E.APPLICATION_ERROR, detail))
        else:
            self._dispatch(request.id, invocation, request.payload, registered)

    def stream_request_opened(
        self, attributes: Mapping[str, str], *, caller_identity: str, now: float
    ) -> bool:
        """The header of a text stream on `lk.rpc_request` arrived: ack now, before the
        payload (a large payload can take longer to arrive than the caller's ack timeout).
        Optional: `stream_request_received` acks by itself if this was not called.

        Returns True if the request was admitted and its payload is awaited; False if it was
        already answered (e.g. too many invocations) or dropped (anonymous, duplicate), in
        which case the rest of the stream needs no further call."""
        return self._stream_invocation(attributes, caller_identity, now, reading=True) is not None

    def stream_request_received(
        self,
        attributes: Mapping[str, str],
        payload: str,
        *,
        caller_identity: str,
        now: float,
        registered: bool,
    ) -> None:
        """A complete v2 request stream arrived; `registered` says whether a handler exists
        for its `lk.rpc_request_method`. Emits (the ack if not yet sent, then) an error
        response or `InvokeHandler`."""
        invocation = self._stream_invocation(attributes, caller_identity, now, reading=False)
        if invocation is None:
            return
        request_id = attributes[ATTR_REQUEST_ID]
        invocation.reading = False
        if attributes.get(ATTR_VERSION) != "2":
            self._finish(request_id, RpcError.built_in(_E.UNSUPPORTED_VERSION))
        else:
            self._dispatch(request_id, invocation, payload, registered)

    def stream_request_failed(
        self, attributes: Mapping[str, str], *, caller_identity: str, now: float, detail: str = ""
    ) -> None:
        """A v2 request stream could not be read: answer 1500 (JS's data text), and report
        it (`RpcDropped` "failed", with `detail`, the stream's failure)."""
        invocation = self._stream_invocation(attributes, caller_identity, now, reading=True)
        if invocation is not None:
            request_id = attributes[ATTR_REQUEST_ID]
            error = RpcError.built_in(_E.APPLICATION_ERROR, "Error reading RPC request payload")
            self._finish(request_id, error)
            self._drop("failed", request_id, caller_identity, detail or "unreadable payload")

    def respond(self, request_id: str, result: str | RpcError | None, *, now: float) -> None:
        """The handler for `request_id` returned `result` (None means "") or raised an
        `RpcError`. A success over 15360 bytes to a v1 caller becomes 1504. A call for an
        invocation that already ended (timed out, caller left) is reported as `RpcDropped`.

        Raises `LocalProtocolError`, changing nothing, if `result` is of another type or
        not valid Unicode text.
        """
        if not isinstance(result, RpcError):
            _utf8_len("" if result is None else result, "respond_rpc", "the result")
        invocation = self._invocations.get(request_id)
        if invocation is None or invocation.reading:
            self._drop("unknown", request_id, "", "respond() for no running invocation")
            return
        self._finish(request_id, "" if result is None else result)

    def respond_exception(
        self, request_id: str, exc: BaseException, *, now: float, include_detail: bool = False
    ) -> None:
        """The handler raised `exc`. An `RpcError` is sent as is; anything else becomes
        1500 with the built-in message and no data (nothing leaks), unless
        `include_detail` puts "<type>: <text>" in the data (opt-in, truncated on the wire)."""
        if isinstance(exc, RpcError):
            self.respond(request_id, exc, now=now)
            return
        data = f"{type(exc).__name__}: {exc}" if include_detail else None
        self.respond(request_id, RpcError.built_in(_E.APPLICATION_ERROR, data), now=now)

    # -- internals --------------------------------------------------------------------------

    def _send(self, request_id: str, destination: str, packet: dpb.DataPacket) -> None:
        packet.destination_identities.append(destination)
        self._out.append(
            SendRpcPacket(request_id=request_id, destination_identity=destination, packet=packet)
        )

    def _send_error(
        self, request_id: str, destination: str, error: RpcError | RpcError.ErrorCode
    ) -> None:
        if not isinstance(error, RpcError):
            error = RpcError.built_in(error)
        response = dpb.RpcResponse(request_id=request_id, error=error.to_proto())
        self._send(request_id, destination, dpb.DataPacket(rpc_response=response))

    def _drop(self, reason: str, request_id: str, identity: str, detail: str) -> None:
        self._out.append(
            RpcDropped(
                reason=reason, request_id=request_id, participant_identity=identity, detail=detail
            )
        )

    def _pending_from(self, request_id: str, sender: str) -> _Call | None:
        pending = self._calls.get(request_id)
        if pending is None:
            self._drop("unknown", request_id, sender, "no pending call (late or not ours)")
            return None
        if sender != pending.destination:
            hint = " (empty: a hidden participant?)" if not sender else ""
            detail = f"expected {pending.destination!r}, got {sender!r}{hint}"
            self._drop("wrong-sender", request_id, sender, detail)
            return None
        return pending

    def _resolve(self, request_id: str, outcome: RpcSucceeded | RpcFailed) -> None:
        del self._calls[request_id]
        self._deadlines.cancel((_ACK, request_id))
        self._deadlines.cancel((_RESPONSE, request_id))
        self._deadlines.cancel((_DEPARTED, request_id))
        self._out.append(outcome)

    def _fail(self, request_id: str, error: RpcError) -> None:
        self._resolve(request_id, RpcFailed(request_id=request_id, error=error))

    def _begin(
        self, request_id: str, caller: str, method: str, timeout_ms: int, now: float
    ) -> _Invocation | None:
        """Admit a new request: de-dup, ack, bound. None if it needs nothing more."""
        if not caller:
            self._drop("anonymous", request_id, caller, "a request without caller identity")
            return None
        if not request_id:
            self._drop("malformed", request_id, caller, "a request without request id")
            return None
        if request_id in self._invocations or request_id in self._seen:
            self._drop("duplicate", request_id, caller, "request id already handled")
            return None
        self._seen[request_id] = None
        while len(self._seen) > self.max_remembered_requests:
            self._seen.popitem(last=False)
        self._send(request_id, caller, dpb.DataPacket(rpc_ack=dpb.RpcAck(request_id=request_id)))
        mine = sum(1 for i in self._invocations.values() if i.caller == caller)
        if len(self._invocations) >= self.max_incoming_invocations:
            refusal = "too many concurrent RPC invocations"
        elif mine >= self.max_incoming_invocations_per_caller:
            refusal = "too many concurrent RPC invocations from this caller"
        else:
            refusal = ""
        if refusal:
            self._send_error(request_id, caller, RpcError.built_in(_E.APPLICATION_ERROR, refusal))
            self._drop("refused", request_id, caller, refusal)
            return None
        timeout = timeout_ms / 1000 if timeout_ms > 0 else self.response_timeout
        timeout = min(timeout, self.max_handler_timeout)
        invocation = _Invocation(caller, method, timeout, via_stream=False, reading=False)
        self._invocations[request_id] = invocation
        self._deadlines.set((_HANDLER, request_id), now + timeout)
        return invocation

    def _stream_invocation(
        self, attributes: Mapping[str, str], caller: str, now: float, *, reading: bool
    ) -> _Invocation | None:
        request_id = attributes.get(ATTR_REQUEST_ID, "")
        invocation = self._invocations.get(request_id)
        if invocation is not None and invocation.reading and invocation.caller == caller:
            return invocation
        timeout_ms = _timeout_ms(attributes.get(ATTR_RESPONSE_TIMEOUT_MS, ""))
        method = attributes.get(ATTR_METHOD, "")
        invocation = self._begin(request_id, caller, method, timeout_ms, now)
        if invocation is not None:
            invocation.via_stream = True
            invocation.reading = reading
        return invocation

    def _dispatch(
        self, request_id: str, invocation: _Invocation, payload: str, registered: bool
    ) -> None:
        if not registered:
            self._finish(request_id, RpcError.built_in(_E.UNSUPPORTED_METHOD))
            return
        data = RpcInvocationData(
            request_id=request_id,
            caller_identity=invocation.caller,
            payload=payload,
            response_timeout=invocation.response_timeout,
            method=invocation.method,
        )
        self._out.append(InvokeHandler(invocation=data))

    def _finish(self, request_id: str, result: str | RpcError) -> None:
        invocation = self._invocations.pop(request_id)
        self._deadlines.cancel((_HANDLER, request_id))
        caller = invocation.caller
        if isinstance(result, RpcError):
            self._send_error(request_id, caller, result)
        elif invocation.via_stream:
            self._out.append(
                SendRpcStream(
                    request_id=request_id,
                    destination_identity=caller,
                    topic=RPC_RESPONSE_TOPIC,
                    attributes={ATTR_REQUEST_ID: request_id},
                    text=result,
                )
            )
        elif len(result.encode("utf-8")) > MAX_V1_PAYLOAD_BYTES:
            self._send_error(request_id, caller, _E.RESPONSE_PAYLOAD_TOO_LARGE)
        else:
            response = dpb.RpcResponse(request_id=request_id, payload=result)
            self._send(request_id, caller, dpb.DataPacket(rpc_response=response))

    def _cancel(self, request_id: str, reason: RpcError.ErrorCode) -> None:
        invocation = self._invocations.pop(request_id)
        self._deadlines.cancel((_HANDLER, request_id))
        if not invocation.reading:  # a handler runs only once the payload was read
            cancelled = InvocationCancelled(
                request_id=request_id, caller_identity=invocation.caller, reason=reason
            )
            self._out.append(cancelled)
