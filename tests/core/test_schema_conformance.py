"""Our hand-written schema (package ``lkproto.wire``) is wire-identical to upstream LiveKit.

The official ``livekit-protocol`` package is the oracle: its descriptors (package
``livekit``) are loaded into the same process as ours.

a) Structural: every message and enum of ours matches its upstream namesake exactly
   (field names, numbers, types, labels, presence, oneofs, maps, JSON names, enum values),
   and everything a client can meet on signaling or the data channels is present.
b) Round trip: random instances of every message type survive ours -> official -> ours
   and official -> ours -> official, byte for byte, with no unknown fields on either side.
c) Golden bytes for a few hot messages, computed by hand from the wire format.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any

import pytest
from google.protobuf import descriptor_pb2, json_format, message_factory, unknown_fields
from google.protobuf.descriptor import (
    Descriptor,
    EnumDescriptor,
    FieldDescriptor,
    FileDescriptor,
)
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from livekit.protocol import metrics as lk_metrics
from livekit.protocol import models as lk_models
from livekit.protocol import rtc as lk_rtc

from lkproto._pb import data_pb2, metrics_pb2, participants_pb2, signal_pb2, tracks_pb2

OUR_PREFIX = "lkproto.wire."
UPSTREAM_PREFIX = "livekit."
OUR_FILES: list[FileDescriptor] = [
    m.DESCRIPTOR for m in (metrics_pb2, data_pb2, tracks_pb2, participants_pb2, signal_pb2)
]
UPSTREAM_POOL = lk_rtc.DESCRIPTOR.pool
assert UPSTREAM_POOL is lk_models.DESCRIPTOR.pool is lk_metrics.DESCRIPTOR.pool

# Messages a client sends or receives, from which everything in scope is reachable.
ROOTS = [
    "livekit.SignalRequest",
    "livekit.SignalResponse",
    "livekit.DataPacket",
    "livekit.WrappedJoinRequest",
]
# bytes fields that carry a serialized message (the walk follows them too).
BYTES_CARRY: dict[str, str] = {
    "livekit.WrappedJoinRequest.join_request": "livekit.JoinRequest",
    "livekit.EncryptedPacket.encrypted_value": "livekit.EncryptedPacketPayload",
}

# Upstream fields / enum values newer than our schema, keyed by (upstream type, name),
# with the reason we may lag. Ours may never have anything upstream lacks.
UPSTREAM_ONLY_ALLOWED: dict[tuple[str, str], str] = {}
# Upstream types reachable from ROOTS that we deliberately leave out, with the reason.
UNREACHED_ALLOWED: dict[str, str] = {}
# Types of ours that ROOTS do not reach, with the reason we keep them.
EXTRA_OURS: dict[str, str] = {
    "livekit.MetricLabel": "names the predefined values of the uint32 label fields in metrics",
}


# --------------------------------------------------------------------------------------
# descriptor helpers
# --------------------------------------------------------------------------------------


def to_upstream(full_name: str) -> str:
    if full_name.startswith(OUR_PREFIX):
        return UPSTREAM_PREFIX + full_name[len(OUR_PREFIX) :]
    return full_name  # well-known types such as google.protobuf.Timestamp


def walk_messages(descs: Iterator[Descriptor] | list[Descriptor]) -> Iterator[Descriptor]:
    for d in descs:
        yield d
        yield from walk_messages(list(d.nested_types))


def our_messages() -> list[Descriptor]:
    return [m for f in OUR_FILES for m in walk_messages(list(f.message_types_by_name.values()))]


def our_enums() -> list[EnumDescriptor]:
    enums = [e for f in OUR_FILES for e in f.enum_types_by_name.values()]
    enums += [e for m in our_messages() for e in m.enum_types]
    return enums


def upstream_message(ours: Descriptor) -> Descriptor:
    return UPSTREAM_POOL.FindMessageTypeByName(to_upstream(ours.full_name))


def upstream_enum(ours: EnumDescriptor) -> EnumDescriptor:
    return UPSTREAM_POOL.FindEnumTypeByName(to_upstream(ours.full_name))


@cache
def field_protos(desc: Descriptor) -> dict[str, descriptor_pb2.FieldDescriptorProto]:
    # The descriptor proto gives label and proto3_optional the same way on every
    # protobuf runtime from 5.29 (no FieldDescriptor.is_repeated yet) to 7.x (no .label).
    proto = descriptor_pb2.DescriptorProto()
    desc.CopyToProto(proto)
    return {f.name: f for f in proto.field}


def field_proto(field: FieldDescriptor) -> descriptor_pb2.FieldDescriptorProto:
    assert field.containing_type is not None
    return field_protos(field.containing_type)[field.name]


def is_repeated(field: FieldDescriptor) -> bool:
    return field_proto(field).label == descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED


def is_map(field: FieldDescriptor) -> bool:
    mt = field.message_type
    return mt is not None and mt.GetOptions().map_entry


def map_key_value(field: FieldDescriptor) -> tuple[FieldDescriptor, FieldDescriptor]:
    entry = field.message_type
    assert entry is not None and entry.GetOptions().map_entry
    return entry.fields_by_name["key"], entry.fields_by_name["value"]


def real_oneof(field: FieldDescriptor) -> str | None:
    oneof = field.containing_oneof
    if oneof is None or field_proto(field).proto3_optional:
        return None
    return oneof.name


def field_facts(field: FieldDescriptor) -> dict[str, object]:
    """Everything about a field that affects binary or JSON encoding (names in upstream form)."""
    ref = field.message_type or field.enum_type
    return {
        "number": field.number,
        "type": field.type,
        "type_name": to_upstream(ref.full_name) if ref is not None else None,
        "label": field_proto(field).label,
        "packed": field.is_packed,
        "map": is_map(field),
        "proto3_optional": field_proto(field).proto3_optional,
        "has_presence": field.has_presence,
        "oneof": real_oneof(field),
        "json_name": field.json_name,
    }


OUR_MESSAGES = our_messages()
OUR_ENUMS = our_enums()
# Map entries are compared structurally but are not standalone messages.
ROUND_TRIP_MESSAGES = [m for m in OUR_MESSAGES if not m.GetOptions().map_entry]


# --------------------------------------------------------------------------------------
# a) structure
# --------------------------------------------------------------------------------------


def test_files_use_our_package_and_names() -> None:
    for f in OUR_FILES:
        assert f.package == "lkproto.wire"
        assert f.name.startswith("lkproto/_pb/")
        assert not f.name.startswith("livekit")
    # Both sets of classes are registered side by side in the default pool.
    ours, theirs = signal_pb2.SignalRequest.DESCRIPTOR, lk_rtc.SignalRequest.DESCRIPTOR
    assert ours.file.pool is theirs.file.pool
    assert (ours.full_name, theirs.full_name) == (
        "lkproto.wire.SignalRequest",
        "livekit.SignalRequest",
    )


@pytest.mark.parametrize("ours", OUR_MESSAGES, ids=lambda d: d.full_name)
def test_message_matches_upstream(ours: Descriptor) -> None:
    try:
        theirs = upstream_message(ours)
    except KeyError:
        pytest.fail(f"{ours.full_name} has no upstream counterpart {to_upstream(ours.full_name)}")
    assert ours.GetOptions().map_entry == theirs.GetOptions().map_entry

    ours_fields = {f.name: field_facts(f) for f in ours.fields}
    their_fields = {f.name: field_facts(f) for f in theirs.fields}
    only_ours = sorted(ours_fields.keys() - their_fields.keys())
    assert not only_ours, f"fields upstream does not have: {only_ours}"
    for name in sorted(their_fields.keys() - ours_fields.keys()):
        assert (theirs.full_name, name) in UPSTREAM_ONLY_ALLOWED, (
            f"upstream field {theirs.full_name}.{name} missing from our schema"
        )
    for name, facts in ours_fields.items():
        assert facts == their_fields[name], f"field {name} differs"

    ours_oneofs = {o.name: sorted(f.name for f in o.fields) for o in ours.oneofs}
    their_oneofs = {
        o.name: sorted(f.name for f in o.fields if f.name in ours_fields) for o in theirs.oneofs
    }
    assert ours_oneofs == {k: v for k, v in their_oneofs.items() if v}


@pytest.mark.parametrize("ours", OUR_ENUMS, ids=lambda d: d.full_name)
def test_enum_matches_upstream(ours: EnumDescriptor) -> None:
    try:
        theirs = upstream_enum(ours)
    except KeyError:
        pytest.fail(f"{ours.full_name} has no upstream counterpart {to_upstream(ours.full_name)}")
    ours_values = {v.name: v.number for v in ours.values}
    their_values = {v.name: v.number for v in theirs.values}
    for name, number in ours_values.items():
        assert their_values.get(name) == number, f"value {name}={number} not upstream"
    for name in sorted(their_values.keys() - ours_values.keys()):
        assert (theirs.full_name, name) in UPSTREAM_ONLY_ALLOWED, (
            f"upstream value {theirs.full_name}.{name} missing from our schema"
        )
    assert ours.is_closed == theirs.is_closed


def upstream_reachable() -> set[str]:
    """Full names of every upstream message and enum reachable from ROOTS."""
    seen: set[str] = set()

    def visit(desc: Descriptor) -> None:
        if desc.full_name in seen:
            return
        seen.add(desc.full_name)
        if desc.containing_type is not None:  # containers such as DataStream or Encryption
            visit(desc.containing_type)
        for field in desc.fields:
            if field.message_type is not None:
                visit(field.message_type)
            if field.enum_type is not None:
                seen.add(field.enum_type.full_name)
                if field.enum_type.containing_type is not None:
                    visit(field.enum_type.containing_type)
            if field.full_name in BYTES_CARRY:
                visit(UPSTREAM_POOL.FindMessageTypeByName(BYTES_CARRY[field.full_name]))

    for root in ROOTS:
        visit(UPSTREAM_POOL.FindMessageTypeByName(root))
    return seen


def test_everything_reachable_is_present() -> None:
    reachable = {n for n in upstream_reachable() if n.startswith(UPSTREAM_PREFIX)}
    ours = {to_upstream(d.full_name) for d in [*OUR_MESSAGES, *OUR_ENUMS]}
    missing = sorted(reachable - ours - UNREACHED_ALLOWED.keys())
    assert not missing, f"reachable upstream types missing from our schema: {missing}"
    extra = sorted(ours - reachable - EXTRA_OURS.keys())
    assert not extra, f"our types that no client message reaches: {extra}"
    # Reached only through bytes fields, enum fields or as containers of nested types:
    for name in ("JoinRequest", "EncryptedPacketPayload", "ClientInfo.SDK", "DataStream"):
        assert UPSTREAM_PREFIX + name in ours
    assert len(reachable) > 100


def test_allow_lists_are_not_stale() -> None:
    for (type_name, member), reason in UPSTREAM_ONLY_ALLOWED.items():
        assert reason
        try:
            members = set(UPSTREAM_POOL.FindMessageTypeByName(type_name).fields_by_name)
        except KeyError:
            members = set(UPSTREAM_POOL.FindEnumTypeByName(type_name).values_by_name)
        assert member in members
    reachable = upstream_reachable()
    assert all(reason and name in reachable for name, reason in UNREACHED_ALLOWED.items())
    assert all(reason and name not in reachable for name, reason in EXTRA_OURS.items())


# --------------------------------------------------------------------------------------
# b) round trip with hypothesis
# --------------------------------------------------------------------------------------

MAX_DEPTH = 3
MAX_ITEMS = 2

_INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}
# Enum numbers no schema defines; proto3 enums are open, so they must survive.
_UNKNOWN_ENUM_NUMBERS = [-(2**31), -1, 77, 4095, 2**31 - 1]
# Keep Timestamps within the range protobuf-JSON can print.
_TIMESTAMP_SECONDS = (-62_135_596_800, 253_402_300_799)


def _integers(lo: int, hi: int) -> st.SearchStrategy[int]:
    return st.one_of(st.sampled_from(sorted({lo, hi, 0, 1, min(hi, 300)})), st.integers(lo, hi))


@cache
def scalar_strategy(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    t = field.type
    if t in _INT_RANGES:
        scope = field.containing_type
        if scope is not None and scope.full_name == "google.protobuf.Timestamp":
            if field.name == "seconds":
                return _integers(*_TIMESTAMP_SECONDS)
            return _integers(0, 999_999_999)
        return _integers(*_INT_RANGES[t])
    if t == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if t == FieldDescriptor.TYPE_FLOAT:
        return st.floats(width=32, allow_nan=False)  # NaN != NaN would break equality
    if t == FieldDescriptor.TYPE_DOUBLE:
        return st.floats(allow_nan=False)
    if t == FieldDescriptor.TYPE_STRING:
        return st.text(max_size=12)
    if t == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=12)
    if t == FieldDescriptor.TYPE_ENUM and field.enum_type is not None:
        known = [v.number for v in field.enum_type.values]
        return st.one_of(st.sampled_from(known), st.sampled_from(_UNKNOWN_ENUM_NUMBERS))
    raise AssertionError(f"unhandled field type {t} for {field.full_name}")


def value_strategy(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if field.message_type is not None:
        return message_strategy(field.message_type, depth - 1)
    return scalar_strategy(field)


@cache
def message_strategy(desc: Descriptor, depth: int = MAX_DEPTH) -> st.SearchStrategy[Message]:
    """Random, fully populated-or-not instances of the class for ``desc`` (any pool)."""
    cls = message_factory.GetMessageClass(desc)
    plain = [f for f in desc.fields if real_oneof(f) is None]
    oneofs = [o for o in desc.oneofs if real_oneof(o.fields[0]) is not None]

    def usable(field: FieldDescriptor) -> bool:
        # Bound the recursion: below the depth limit, message-typed fields stay unset.
        if is_map(field):
            return usable(map_key_value(field)[1])
        return field.message_type is None or depth > 0

    @st.composite
    def build(draw: st.DrawFn) -> Message:
        msg = cls()
        for field in plain:
            if usable(field) and draw(st.booleans()):
                assign(draw, msg, field)
        for oneof in oneofs:
            choice = draw(st.sampled_from([None, *[f for f in oneof.fields if usable(f)]]))
            if choice is not None:
                assign(draw, msg, choice)
        return msg

    def assign(draw: st.DrawFn, msg: Message, field: FieldDescriptor) -> None:
        target = getattr(msg, field.name)
        if is_map(field):
            key_f, val_f = map_key_value(field)
            entries = draw(
                st.dictionaries(
                    scalar_strategy(key_f), value_strategy(val_f, depth), max_size=MAX_ITEMS
                )
            )
            for k, v in entries.items():
                if val_f.message_type is not None:
                    target[k].CopyFrom(v)
                else:
                    target[k] = v
        elif is_repeated(field):
            items = draw(st.lists(value_strategy(field, depth), max_size=MAX_ITEMS))
            for item in items:
                if field.message_type is not None:
                    target.add().CopyFrom(item)
                else:
                    target.append(item)
        elif field.message_type is not None:
            target.CopyFrom(draw(value_strategy(field, depth)))  # marks presence too
        else:
            setattr(msg, field.name, draw(scalar_strategy(field)))

    return build()


def assert_no_unknown_fields(msg: Message) -> None:
    """Every byte was understood by the parsing schema, recursively."""
    assert len(unknown_fields.UnknownFieldSet(msg)) == 0, type(msg).DESCRIPTOR.full_name
    for field, value in msg.ListFields():
        if field.message_type is None:
            continue
        if is_map(field):
            if map_key_value(field)[1].message_type is not None:
                for v in value.values():
                    assert_no_unknown_fields(v)
        elif is_repeated(field):
            for v in value:
                assert_no_unknown_fields(v)
        else:
            assert_no_unknown_fields(value)


def _dict(msg: Message) -> dict[str, Any]:
    return json_format.MessageToDict(msg, preserving_proto_field_name=False)


def check_round_trip(start: Message, other_cls: Callable[[], Message]) -> None:
    start_cls = type(start)
    wire = start.SerializeToString(deterministic=True)

    other = other_cls()
    other.ParseFromString(wire)
    assert_no_unknown_fields(other)
    other_wire = other.SerializeToString(deterministic=True)
    assert other_wire == wire
    assert _dict(other) == _dict(start)  # same protobuf-JSON, i.e. same JSON names

    back = start_cls()
    back.ParseFromString(other_wire)
    assert_no_unknown_fields(back)
    assert back == start
    assert back.SerializeToString(deterministic=True) == wire


ROUND_TRIP_SETTINGS = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.parametrize("ours", ROUND_TRIP_MESSAGES, ids=lambda d: d.full_name)
@ROUND_TRIP_SETTINGS
@given(data=st.data())
def test_round_trip_from_ours(ours: Descriptor, data: st.DataObject) -> None:
    theirs = message_factory.GetMessageClass(upstream_message(ours))
    check_round_trip(data.draw(message_strategy(ours)), theirs)


@pytest.mark.parametrize("ours", ROUND_TRIP_MESSAGES, ids=lambda d: d.full_name)
@ROUND_TRIP_SETTINGS
@given(data=st.data())
def test_round_trip_from_official(ours: Descriptor, data: st.DataObject) -> None:
    theirs = upstream_message(ours)
    check_round_trip(data.draw(message_strategy(theirs)), message_factory.GetMessageClass(ours))


def test_strategy_reaches_extremes_and_unknown_enums() -> None:
    """Sanity check of the generator itself: it sets presence, extremes and unknown enums."""
    seen_presence = seen_extreme = seen_unknown_enum = False

    @settings(max_examples=200, deadline=None, derandomize=True, database=None)
    @given(
        message_strategy(data_pb2.UserPacket.DESCRIPTOR),
        message_strategy(data_pb2.DataPacket.DESCRIPTOR),
    )
    def probe(user: Any, packet: Any) -> None:
        nonlocal seen_presence, seen_extreme, seen_unknown_enum
        seen_presence |= user.HasField("start_time") and user.start_time == 0
        seen_extreme |= user.end_time == 2**64 - 1
        seen_unknown_enum |= packet.kind not in (0, 1)

    probe()
    assert seen_presence and seen_extreme and seen_unknown_enum


# --------------------------------------------------------------------------------------
# c) golden bytes, computed by hand (tag byte = field_number << 3 | wire_type)
# --------------------------------------------------------------------------------------


def assert_golden(ours: Message, official: Message, golden: bytes) -> None:
    assert ours.SerializeToString(deterministic=True) == golden
    assert official.SerializeToString(deterministic=True) == golden
    assert type(ours).FromString(golden) == ours
    assert type(official).FromString(golden) == official


def test_golden_data_packet_user() -> None:
    golden = bytes.fromhex(
        "12 0a"  # field 2 (user), LEN 10
        "   12 02 6869"  # UserPacket.payload (2) = b"hi"
        "   22 04 63686174"  # UserPacket.topic (4) = "chat"
        "2a 03 626f62"  # field 5 (destination_identities) = "bob"
        "80 01 07"  # field 16 (sequence): tag 16<<3|0 = 128 -> varint 80 01; value 7
    )
    kw: dict[str, Any] = {"destination_identities": ["bob"], "sequence": 7}
    assert_golden(
        data_pb2.DataPacket(user=data_pb2.UserPacket(payload=b"hi", topic="chat"), **kw),
        lk_models.DataPacket(user=lk_models.UserPacket(payload=b"hi", topic="chat"), **kw),
        golden,
    )


def test_golden_stream_header_presence() -> None:
    # An explicitly set optional total_length=0 is on the wire; mime_type "" is not.
    golden = bytes.fromhex(
        "6a 05"  # field 13 (stream_header), LEN 5
        "   0a 01 73"  # Header.stream_id (1) = "s"
        "   28 00"  # Header.total_length (5) = 0, present because it is `optional`
    )
    assert_golden(
        data_pb2.DataPacket(
            stream_header=data_pb2.DataStream.Header(stream_id="s", total_length=0)
        ),
        lk_models.DataPacket(
            stream_header=lk_models.DataStream.Header(stream_id="s", total_length=0)
        ),
        golden,
    )


def test_golden_signal_request_ping_req() -> None:
    golden = bytes.fromhex(
        "82 01 09"  # field 16 (ping_req): tag 16<<3|2 = 130 -> varint 82 01; LEN 9
        "   08 80d095ffbc31"  # Ping.timestamp (1) = 1_700_000_000_000 (6-byte varint)
        "   10 2a"  # Ping.rtt (2) = 42
    )
    assert_golden(
        signal_pb2.SignalRequest(ping_req=signal_pb2.Ping(timestamp=1_700_000_000_000, rtt=42)),
        lk_rtc.SignalRequest(ping_req=lk_rtc.Ping(timestamp=1_700_000_000_000, rtt=42)),
        golden,
    )


def test_golden_signal_request_leave_and_metadata() -> None:
    leave = bytes.fromhex(
        "42 02"  # field 8 (leave), LEN 2
        "   10 01"  # LeaveRequest.reason (2) = CLIENT_INITIATED; action DISCONNECT=0 omitted
    )
    assert_golden(
        signal_pb2.SignalRequest(
            leave=signal_pb2.LeaveRequest(reason=participants_pb2.CLIENT_INITIATED)
        ),
        lk_rtc.SignalRequest(leave=lk_rtc.LeaveRequest(reason=lk_models.CLIENT_INITIATED)),
        leave,
    )
    update = bytes.fromhex(
        "7a 0a"  # field 15 (update_metadata), LEN 10
        "   1a 06 0a016b 120176"  # attributes (3): map entry {key (1) = "k", value (2) = "v"}
        "   20 01"  # request_id (4) = 1
    )
    assert_golden(
        signal_pb2.SignalRequest(
            update_metadata=signal_pb2.UpdateParticipantMetadata(
                attributes={"k": "v"}, request_id=1
            )
        ),
        lk_rtc.SignalRequest(
            update_metadata=lk_rtc.UpdateParticipantMetadata(attributes={"k": "v"}, request_id=1)
        ),
        update,
    )


def test_golden_signal_response_pong_resp() -> None:
    golden = bytes.fromhex("a2 01 04 08 01 10 02")  # field 20: tag 162 -> a2 01; Pong{1, 2}
    assert_golden(
        signal_pb2.SignalResponse(pong_resp=signal_pb2.Pong(last_ping_timestamp=1, timestamp=2)),
        lk_rtc.SignalResponse(pong_resp=lk_rtc.Pong(last_ping_timestamp=1, timestamp=2)),
        golden,
    )


def test_golden_wrapped_join_request() -> None:
    join = bytes.fromhex(
        "0a 06"  # JoinRequest.client_info (1), LEN 6
        "   08 09"  # ClientInfo.sdk (1) = PYTHON (9)
        "   18 11"  # ClientInfo.protocol (3) = 17
        "   60 02"  # ClientInfo.client_protocol (12): tag 12<<3|0 = 0x60; = 2
        "38 01"  # JoinRequest.reconnect (7) = true
    )
    wrapped = bytes.fromhex("12 0a") + join  # join_request (2), LEN 10; compression NONE omitted
    ours_join = signal_pb2.JoinRequest(
        client_info=participants_pb2.ClientInfo(
            sdk=participants_pb2.ClientInfo.PYTHON, protocol=17, client_protocol=2
        ),
        reconnect=True,
    )
    official_join = lk_rtc.JoinRequest(
        client_info=lk_models.ClientInfo(
            sdk=lk_models.ClientInfo.PYTHON, protocol=17, client_protocol=2
        ),
        reconnect=True,
    )
    assert_golden(ours_join, official_join, join)
    assert_golden(
        signal_pb2.WrappedJoinRequest(join_request=ours_join.SerializeToString()),
        lk_rtc.WrappedJoinRequest(join_request=official_join.SerializeToString()),
        wrapped,
    )
    # The /rtc/v1 query value: base64url with padding.
    assert base64.urlsafe_b64encode(wrapped) == b"EgoKBggJGBFgAjgB"
