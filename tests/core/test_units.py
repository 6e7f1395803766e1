"""Small units of the core: config validation, codec corners, models, sub-machine resets."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, urlsplit

import pytest

from lkproto import (
    Channel,
    Config,
    DisconnectReason,
    Participant,
    ParticipantKind,
    RemoteProtocolError,
    SignalCodec,
)
from lkproto._data import DataSender, Deduplicator
from lkproto._pb import data_pb2 as dpb
from lkproto._pb import participants_pb2 as ppb


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("join_timeout", 0, "Config.join_timeout must be positive"),
        ("dedup_ttl", -1.0, "Config.dedup_ttl must be positive"),
        ("max_data_message_size", 0, "Config.max_data_message_size must be at least 1"),
        ("replay_buffer_bytes", -1, "Config.replay_buffer_bytes must not be negative"),
        ("rpc_response_timeout", 0, "Config.rpc_response_timeout must be a positive number"),
        ("rpc_max_round_trip_latency", float("inf"), "Config.rpc_max_round_trip_latency must"),
        ("rpc_response_timeout", float("nan"), "Config.rpc_response_timeout must"),
        ("stream_idle_timeout", 0.0, "Config.stream_idle_timeout must be a positive number"),
        ("stream_idle_timeout", float("inf"), "Config.stream_idle_timeout must"),
        ("stream_chunk_size", 3, "Config.stream_chunk_size must be at least 4"),
        ("stream_departed_sender_timeout", -1.0, "Config.stream_departed_sender_timeout must"),
        ("rpc_departed_callee_timeout", float("inf"), "Config.rpc_departed_callee_timeout must"),
        ("leave_drain_timeout", -0.5, "Config.leave_drain_timeout must"),
        ("client_protocol", -1, "Config.client_protocol must not be negative"),
        ("max_buffered_stream_bytes", 0, "Config.max_buffered_stream_bytes must be at least 1"),
        ("max_pending_rpcs", 0, "Config.max_pending_rpcs must be at least 1"),
    ],
)
def test_config_rejects_nonsense_bounds(field: str, value: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Config(**{field: value})  # type: ignore[arg-type]


def test_the_default_config_advertises_streams_v2_rpc_v2_and_deflate() -> None:
    # protocol-reference F.2: client_protocol 2 = RPC v2 + inline/compressed streams, which
    # the core implements; CAP_COMPRESSION_DEFLATE_RAW (2) because the assembler inflates.
    config = Config()
    assert (config.client_protocol, config.capabilities) == (2, (2,))
    assert Config(stream_idle_timeout=5.0).stream_idle_timeout == 5.0
    info = SignalCodec(config).client_info()
    assert (info.client_protocol, list(info.capabilities)) == (2, [2])
    legacy = SignalCodec(Config(client_protocol=0, capabilities=()))
    query = parse_qs(urlsplit(legacy.join_url_v0("wss://h/")).query)
    assert query["client_protocol"] == ["0"] and "capabilities" not in query


def test_v0_url_carries_os_capabilities_and_metadata() -> None:
    codec = SignalCodec(Config(os_name="linux", capabilities=(2, 99), client_protocol=2))
    query = parse_qs(urlsplit(codec.join_url_v0("wss://h", metadata="m")).query)
    assert query["os"] == ["linux"]
    assert query["capabilities"] == ["CAP_COMPRESSION_DEFLATE_RAW,99"]
    assert query["metadata"] == ["m"]
    assert query["client_protocol"] == ["2"]


def test_v1_url_uses_no_compression_when_gzip_is_not_smaller() -> None:
    codec = SignalCodec(Config())
    url = codec.join_url_v1("ws://h", codec.join_request())
    raw = base64.urlsafe_b64decode(parse_qs(urlsplit(url).query)["join_request"][0])
    from lkproto._pb import signal_pb2 as spb

    wrapped = spb.WrappedJoinRequest.FromString(raw)
    assert wrapped.compression == spb.WrappedJoinRequest.NONE
    assert spb.JoinRequest.FromString(wrapped.join_request).client_info.sdk == 9


def test_url_with_a_query_is_refused() -> None:
    from lkproto import LocalProtocolError

    with pytest.raises(LocalProtocolError, match="must not carry a query"):
        SignalCodec(Config()).join_url_v0("wss://h/?access_token=x")


def test_decode_refuses_text_frames() -> None:
    with pytest.raises(RemoteProtocolError, match="not binary"):
        SignalCodec.decode("{}")  # type: ignore[arg-type]


def test_unknown_enum_values_from_the_server_are_tolerated() -> None:
    info = ppb.ParticipantInfo(sid="PA", identity="x", kind=42, disconnect_reason=99)  # type: ignore[arg-type]
    p = Participant.from_pb(info)
    assert p.kind == 42 and p.disconnect_reason is DisconnectReason.UNKNOWN_REASON
    assert Participant.from_pb(ppb.ParticipantInfo(kind=4)).kind is ParticipantKind.AGENT  # type: ignore[arg-type]


def test_deduplicator_tracks_a_bounded_number_of_senders_and_resets() -> None:
    dedup = Deduplicator(Config(max_dedup_senders=2))
    for sid in ("a", "b", "c"):
        assert not dedup.is_duplicate(sid, 1, 0.0)
    assert dedup.receive_states() == {"b": 1, "c": 1}  # "a" was the stalest
    assert not dedup.is_duplicate("a", 1, 0.0)  # forgotten, so accepted again
    dedup.reset()
    assert dedup.receive_states() == {}


def test_sender_reset_starts_a_new_session() -> None:
    sender = DataSender(Config())
    channel, data, seq = sender.encode(dpb.DataPacket(), reliable=True, call="t")
    sender.send(channel, data, sequence=seq, call="t")  # queued: channel not open
    assert sender.next_sequence == 2 and sender.replay_sequences == [1]
    sender.reset()
    assert sender.next_sequence == 1 and sender.replay_sequences == []
    assert sender.channel_opened(Channel.RELIABLE) == []
