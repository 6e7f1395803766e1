"""End-to-end encryption on a `Connection`'s data path (lkproto/_encryption.py), core only.

Exact bytes for what we send, exact events for what arrives: encrypted packets built with
`lkproto.e2ee`'s own pure functions and cryptor (checked against the JS snapshot in
test_e2ee_vectors.py), so a test fails if the envelope, the key choice or the clear outer
fields drift. HKDF keys keep the KDF cheap where PBKDF2 is not the point.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
from fake_sfu import T0, TOKEN, UNIX0, URL, FakeSfu, drain, participant

from lkproto import Channel, Config, Connection, DataPacketTooLargeError, LocalProtocolError
from lkproto import commands as cmd
from lkproto import events as ev
from lkproto._pb import data_pb2 as dpb
from lkproto.e2ee import (
    DataCryptor,
    E2EEOptions,
    EncryptionState,
    EncryptionType,
    KeyDerivationFunction,
    KeyProvider,
    KeyProviderOptions,
    aes_gcm_encrypt,
    derive_encryption_key,
)
from lkproto.models import ConnectionState, SimulateScenario
from lkproto.rpc import RpcError
from lkproto.streams import StreamErrorReason, StreamFailed, StreamKind
from lkproto.testing import MemoryRoom
from lkproto.tracks import TrackKind

KEY = b"password"
OTHER = b"not the password"
HKDF = KeyDerivationFunction.HKDF
S = EncryptionState


def options(key: bytes | None = KEY, kdf: KeyDerivationFunction = HKDF, **kw: int) -> E2EEOptions:
    return E2EEOptions(KeyProviderOptions(shared_key=key, key_derivation_function=kdf, **kw))


def counter_ivs(start: int = 1) -> Callable[[], bytes]:
    count = itertools.count(start)
    return lambda: next(count).to_bytes(12, "big")


def connection(
    encryption: E2EEOptions | None = None,
    *,
    config: Config | None = None,
    others: tuple[str, ...] = ("alice",),
    data_channel_encryption: bool = True,
) -> Connection:
    """Joined as "me", channels open, with `others` in the room (client_protocol 0)."""
    ids = iter(f"id-{i}" for i in range(1, 10_000))
    conn = Connection(
        config,
        now=T0,
        unix_time_ms=UNIX0,
        id_factory=lambda: next(ids),
        encryption=options() if encryption is None else encryption,
        data_channel_encryption=data_channel_encryption,
        iv_factory=counter_ivs(),
    )
    conn.connect(URL, TOKEN, now=T0)
    join = FakeSfu.join(others=[participant(identity) for identity in others])
    conn.receive_signal(join, now=T0)
    conn.data_channel_opened(Channel.RELIABLE, now=T0)
    conn.data_channel_opened(Channel.LOSSY, now=T0)
    drain(conn)
    return conn


def peer_cryptor(key: bytes = KEY, kdf: KeyDerivationFunction = HKDF) -> DataCryptor:
    provider = KeyProvider(KeyProviderOptions(shared_key=key, key_derivation_function=kdf))
    return DataCryptor(provider, iv_source=counter_ivs(1000))


def sealed(
    packet: dpb.DataPacket,
    *,
    sender: str = "alice",
    cryptor: DataCryptor | None = None,
    sequence: int = 0,
) -> bytes:
    """`packet` as `sender`'s SDK encrypts it and the server forwards it (outer identity)."""
    packet.participant_identity = sender
    packet.participant_sid = f"PA_{sender}"
    packet.sequence = sequence
    out = (cryptor or peer_cryptor()).encrypt_packet(packet, participant_identity=sender)
    return out.SerializeToString()


def user(payload: bytes, **kw: object) -> dpb.DataPacket:
    return dpb.DataPacket(user=dpb.UserPacket(payload=payload, **kw))  # type: ignore[arg-type]


def sent(conn: Connection) -> list[dpb.DataPacket]:
    return [
        dpb.DataPacket.FromString(c.data)
        for c in conn.commands_to_send()
        if isinstance(c, cmd.SendDataPacket)
    ]


def receive(conn: Connection, data: bytes, channel: Channel = Channel.RELIABLE) -> None:
    conn.receive_data_packet(data, channel=channel, now=T0 + 1)


# -- sending ------------------------------------------------------------------------------------


def test_a_user_packet_leaves_as_exactly_this_envelope() -> None:
    conn = connection()
    conn.publish_data(b"hi", now=T0, topic="t", destination_identities=["alice"])
    (packet,) = sent(conn)
    payload = dpb.EncryptedPacketPayload(
        user=dpb.UserPacket(
            payload=b"hi", topic="t", participant_identity="me", destination_identities=["alice"]
        )
    ).SerializeToString()
    iv = (1).to_bytes(12, "big")
    key = derive_encryption_key(KEY, kdf=HKDF)
    assert packet == dpb.DataPacket(
        kind=dpb.DataPacket.RELIABLE,
        destination_identities=["alice"],  # in clear: the server routes by it
        sequence=1,  # in clear: the server orders by it
        encrypted_packet=dpb.EncryptedPacket(
            encryption_type=dpb.Encryption.GCM,
            iv=iv,
            key_index=0,
            encrypted_value=aes_gcm_encrypt(key, iv, payload),
        ),
    )
    assert conn.data_channel_encryption is True


def test_every_kind_the_sdks_encrypt_is_encrypted_and_dtmf_and_transcriptions_are_not() -> None:
    conn = connection(others=("alice", "bob"))
    conn.publish_data(b"lossy", now=T0, reliable=False)
    conn.send_stream(
        now=T0,
        kind=StreamKind.TEXT,
        topic="chat",
        payload="x" * 20_000,  # two chunks; to a legacy destination: header, chunks, trailer
        destination_identities=["alice"],
    )
    conn.perform_rpc(destination_identity="alice", method="m", payload="p", now=T0)  # v1
    conn.publish_dtmf(1, "1", now=T0)
    conn.publish_transcription(
        now=T0,
        transcribed_participant_identity="me",
        track_id="TR_1",
        segments=[
            ev.TranscriptionSegment(
                id="s", text="t", start_time=0, end_time=1, final=True, language="en"
            )
        ],
    )
    packets = sent(conn)
    kinds = [p.WhichOneof("value") for p in packets]
    assert kinds == ["encrypted_packet"] * 6 + ["sip_dtmf", "transcription"]
    reader = peer_cryptor()
    inner = []
    for packet in packets[:6]:
        packet.participant_identity = "me"  # what the server stamps
        opened = reader.decrypt_packet(packet)
        assert not isinstance(opened, Exception) and hasattr(opened, "packet")
        inner.append(opened.packet.WhichOneof("value"))  # type: ignore[union-attr]
    assert inner == [
        "user",
        "stream_header",
        "stream_chunk",
        "stream_chunk",
        "stream_trailer",
        "rpc_request",
    ]
    assert [list(p.destination_identities) for p in packets[1:6]] == [["alice"]] * 5
    assert [p.sequence for p in packets] == [0, 1, 2, 3, 4, 5, 6, 7]


def test_acks_and_responses_to_an_encrypted_request_leave_encrypted_to_the_caller() -> None:
    conn = connection()
    conn.register_rpc_method("echo")
    request = dpb.RpcRequest(id="r1", method="echo", payload="x", response_timeout_ms=10_000)
    receive(conn, sealed(dpb.DataPacket(rpc_request=request), sequence=1))
    ack = sent(conn)
    (invoked,) = [e for e in drain(conn)[1] if isinstance(e, ev.RpcInvoked)]
    conn.respond_rpc(invoked.invocation.request_id, "y", now=T0 + 2)
    answer = sent(conn)
    reader = peer_cryptor()
    out = []
    for packet in ack + answer:
        assert packet.WhichOneof("value") == "encrypted_packet"
        assert list(packet.destination_identities) == ["alice"]
        packet.participant_identity = "me"
        opened = reader.decrypt_packet(packet)
        out.append(opened.packet)  # type: ignore[union-attr]
    assert [p.WhichOneof("value") for p in out] == ["rpc_ack", "rpc_response"]
    assert out[1].rpc_response == dpb.RpcResponse(request_id="r1", payload="y")


def test_the_size_limit_is_checked_on_the_encrypted_bytes() -> None:
    conn = connection()
    clear = connection(data_channel_encryption=False)
    size = 64_000
    while True:  # the biggest payload that fits in clear
        try:
            clear.publish_data(b"x" * size, now=T0)
            break
        except DataPacketTooLargeError:
            size -= 1
    (packet,) = sent(clear)
    assert packet.ByteSize() == 64_000 and packet.WhichOneof("value") == "user"
    payload = b"x" * (size - 30)  # fits in clear; not with the envelope's 12-byte IV and tag
    with pytest.raises(DataPacketTooLargeError) as info:
        conn.publish_data(payload, now=T0)
    assert info.value.size > 64_000 and conn.commands_to_send() == []
    conn.publish_data(b"ok", now=T0)
    assert [p.sequence for p in sent(conn)] == [1]  # the refused one consumed nothing


def test_no_key_of_our_own_to_encrypt_with_is_a_local_error_and_sends_nothing() -> None:
    conn = connection(options(key=None))  # per-participant keys, none set for "me"
    with pytest.raises(LocalProtocolError, match=r"^publish_data: cannot encrypt: .*no key"):
        conn.publish_data(b"hi", now=T0)
    assert conn.commands_to_send() == []
    keys = conn.key_provider
    assert keys is not None
    keys.set_key("me", OTHER, 0)
    conn.publish_data(b"hi", now=T0)
    (packet,) = sent(conn)
    assert packet.sequence == 1 and packet.WhichOneof("value") == "encrypted_packet"


def test_a_resume_replays_the_very_encrypted_bytes_sent() -> None:
    conn = connection()
    conn.publish_data(b"one", now=T0)
    conn.publish_data(b"two", now=T0)
    first = [c.data for c in conn.commands_to_send() if isinstance(c, cmd.SendDataPacket)]
    conn.resume_data(1)  # the server had the first one
    again = [c.data for c in conn.commands_to_send() if isinstance(c, cmd.SendDataPacket)]
    assert again == first[1:]


def test_the_deprecated_e2ee_option_sends_in_clear_but_still_reads_encrypted_packets() -> None:
    conn = connection(data_channel_encryption=False)
    assert conn.data_channel_encryption is False and conn.key_provider is not None
    conn.publish_data(b"hi", now=T0)
    (packet,) = sent(conn)
    assert packet.WhichOneof("value") == "user"
    receive(conn, sealed(user(b"secret")))
    (_, received) = drain(conn)[1]
    assert isinstance(received, ev.DataReceived) and received.payload == b"secret"


def test_without_encryption_there_is_no_key_provider_and_derivation_inputs_are_ignored() -> None:
    conn = Connection(now=T0, unix_time_ms=UNIX0, id_factory=lambda: "x")
    assert conn.key_provider is None and conn.data_channel_encryption is False
    command = cmd.DeriveRatchets(request_id=1, material=KEY, steps=1, salt=b"s", kdf=HKDF)
    conn.ratchets_derived(1, command.run(), now=T0)
    conn.command_failed(command, "nothing asked for it", now=T0)
    assert drain(conn) == ([], []) and conn.state is ConnectionState.NEW


def test_bad_encryption_arguments_are_refused_at_construction() -> None:
    def make(**kw: object) -> Connection:
        return Connection(now=T0, unix_time_ms=UNIX0, id_factory=lambda: "x", **kw)  # type: ignore[arg-type]

    with pytest.raises(TypeError, match="encryption must be E2EEOptions, not KeyProviderOptions"):
        make(encryption=KeyProviderOptions(shared_key=KEY))
    with pytest.raises(ValueError, match="needs an iv_factory"):
        make(encryption=options())
    with pytest.raises(ValueError, match="needs an iv_factory"):  # data tracks encrypt anyway
        make(encryption=options(), data_channel_encryption=False)
    deprecated = make(
        encryption=options(), data_channel_encryption=False, iv_factory=lambda: bytes(12)
    )
    assert deprecated.key_provider is not None
    with pytest.raises(ValueError, match="encryption_type must be GCM"):
        E2EEOptions(encryption_type=EncryptionType.NONE)
    with pytest.raises(TypeError, match="key_provider_options must be KeyProviderOptions"):
        E2EEOptions(key_provider_options={"shared_key": KEY})  # type: ignore[arg-type]


# -- receiving ------------------------------------------------------------------------------------


def test_an_encrypted_packet_is_read_with_the_outer_identitys_key_and_dispatched() -> None:
    conn = connection(options(key=None), others=("alice", "bob"))
    keys = conn.key_provider
    assert keys is not None
    keys.set_key("alice", b"alice's key", 0)
    alice = DataCryptor(
        KeyProvider(KeyProviderOptions(key_derivation_function=HKDF)), iv_source=counter_ivs()
    )
    alice.key_provider.set_key("alice", b"alice's key", 0)
    # The inner user packet claims to be from someone else; the outer identity decides.
    receive(conn, sealed(user(b"hello", participant_identity="eve"), cryptor=alice, sequence=1))
    # bob's packet sealed with alice's key: read with bob's (none): a missing key.
    bob_packet = dpb.DataPacket.FromString(sealed(user(b"x"), cryptor=alice, sequence=2))
    bob_packet.participant_identity, bob_packet.participant_sid = "bob", "PA_bob"
    receive(conn, bob_packet.SerializeToString())
    assert drain(conn)[1] == [
        ev.E2eeStateChanged(participant_identity="alice", state=S.OK),
        ev.DataReceived(
            payload=b"hello",
            participant_identity="alice",
            participant_sid="PA_alice",
            topic=None,
            channel=Channel.RELIABLE,
            encryption_type=EncryptionType.GCM,
        ),
        ev.E2eeStateChanged(participant_identity="bob", state=S.MISSING_KEY),
        ev.PacketDropped(
            reason="missing_key",
            channel=Channel.RELIABLE,
            detail="key index 0: no key for this participant and index",
            participant_identity="bob",
        ),
    ]


def test_clear_packets_still_arrive_in_an_encrypted_room_marked_none() -> None:
    conn = connection()
    receive(conn, FakeSfu.user_packet(b"plain", sequence=1))
    (received,) = drain(conn)[1]
    assert isinstance(received, ev.DataReceived)
    assert (received.payload, received.encryption_type) == (b"plain", EncryptionType.NONE)


def test_a_stream_whose_packets_change_encryption_fails() -> None:
    conn = connection()
    conn.register_stream_topic(StreamKind.TEXT, "chat")
    header = dpb.DataStream.Header(
        stream_id="s1", topic="chat", text_header=dpb.DataStream.TextHeader()
    )
    chunk = dpb.DataStream.Chunk(stream_id="s1", chunk_index=0, content=b"hi")
    receive(conn, sealed(dpb.DataPacket(stream_header=header), sequence=1))
    clear = dpb.DataPacket(stream_chunk=chunk, participant_identity="alice", sequence=2)
    clear.participant_sid = "PA_alice"
    receive(conn, clear.SerializeToString())  # injected in clear into an encrypted stream
    failed = [e for e in drain(conn)[1] if isinstance(e, StreamFailed)]
    assert [f.reason for f in failed] == [StreamErrorReason.ENCRYPTION_TYPE_MISMATCH]


def test_a_wrong_key_is_reported_once_searched_then_costs_no_derivation() -> None:
    conn = connection()
    wrong = peer_cryptor(OTHER)
    receive(conn, sealed(user(b"1"), cryptor=wrong, sequence=1))
    asked = []
    while commands := [c for c in conn.commands_to_send() if isinstance(c, cmd.DeriveRatchets)]:
        (command,) = commands
        asked.append(command.steps)
        assert drain(conn)[1] == []  # held meanwhile: nothing reported yet
        conn.ratchets_derived(command.request_id, command.run(), now=T0 + 1)
    assert asked == [1, 1, 2, 4, 8]  # the window of 16, searched in growing steps
    assert drain(conn)[1] == [
        ev.E2eeStateChanged(participant_identity="alice", state=S.DECRYPTION_FAILED),
        ev.PacketDropped(
            reason="decryption_failed",
            channel=Channel.RELIABLE,
            detail="key index 0: the key and 16 of 16 ratchets failed",
            participant_identity="alice",
        ),
    ]
    derived = conn.key_provider.derivations  # type: ignore[union-attr]
    receive(conn, sealed(user(b"2"), cryptor=wrong, sequence=2))
    cmds, events = drain(conn)
    assert cmds == [] and [type(e) for e in events] == [ev.PacketDropped]  # state unchanged
    assert conn.key_provider.derivations == derived  # type: ignore[union-attr]
    assert conn.state is ConnectionState.CONNECTED
    # The right key, and the next packet arrives.
    conn.key_provider.set_shared_key(OTHER, 0)  # type: ignore[union-attr]
    receive(conn, sealed(user(b"3"), cryptor=wrong, sequence=3))
    events = drain(conn)[1]
    assert events[0] == ev.E2eeStateChanged(participant_identity="alice", state=S.OK)
    assert isinstance(events[1], ev.DataReceived) and events[1].payload == b"3"


def test_a_senders_packets_wait_in_order_while_its_ratchet_is_derived() -> None:
    conn = connection(others=("alice", "bob"))
    alice = peer_cryptor()
    alice.key_provider.ratchet_shared_key(0)
    receive(conn, sealed(user(b"1"), cryptor=alice, sequence=1))
    dtmf = dpb.DataPacket(sip_dtmf=dpb.SipDTMF(code=5, digit="5"), participant_identity="alice")
    dtmf.participant_sid, dtmf.sequence = "PA_alice", 2
    receive(conn, dtmf.SerializeToString())  # in clear, but behind alice's first packet
    receive(conn, sealed(user(b"bob"), sender="bob", sequence=1))  # bob is not held up
    receive(conn, sealed(user(b"2"), cryptor=alice, sequence=3), Channel.LOSSY)
    (command,) = conn.commands_to_send()
    assert isinstance(command, cmd.DeriveRatchets) and command.steps == 1
    assert "material" not in repr(command) and KEY.hex() not in repr(command)
    events = drain(conn)[1]
    assert [(type(e), getattr(e, "payload", None)) for e in events] == [
        (ev.E2eeStateChanged, None),
        (ev.DataReceived, b"bob"),
    ]
    conn.ratchets_derived(command.request_id, command.run(), now=T0 + 2)
    cmds, events = drain(conn)
    assert cmds == []
    assert [(type(e), getattr(e, "payload", getattr(e, "state", None))) for e in events] == [
        (ev.E2eeStateChanged, S.KEY_RATCHETED),
        (ev.DataReceived, b"1"),
        (ev.SipDtmfReceived, None),
        (ev.E2eeStateChanged, S.OK),
        (ev.DataReceived, b"2"),
    ]
    assert isinstance(events[4], ev.DataReceived) and events[4].channel is Channel.LOSSY
    conn.ratchets_derived(command.request_id, command.run(), now=T0 + 3)  # stale: ignored
    assert drain(conn) == ([], [])


def test_what_waits_for_ratchets_is_bounded() -> None:
    conn = connection(config=Config(e2ee_max_waiting_bytes=200))
    alice = peer_cryptor()
    alice.key_provider.ratchet_shared_key(0)
    receive(conn, sealed(user(b"a" * 50), cryptor=alice, sequence=1))
    receive(conn, sealed(user(b"b" * 100), cryptor=alice, sequence=2))
    (command,) = conn.commands_to_send()
    assert drain(conn)[1] == [
        ev.PacketDropped(
            reason="e2ee_backlog",
            channel=Channel.RELIABLE,
            detail="112 bytes already wait for key ratchets (Config.e2ee_max_waiting_bytes=200)",
            participant_identity="alice",
        )
    ]
    huge = peer_cryptor()
    huge.key_provider.set_shared_key(b"another key", 0)
    receive(conn, sealed(user(b"c" * 300), sender="bob", cryptor=huge, sequence=1))
    assert [e.reason for e in drain(conn)[1] if isinstance(e, ev.PacketDropped)] == [
        "e2ee_backlog"  # a first packet too big to wait is dropped, and nothing is asked
    ]
    conn.ratchets_derived(command.request_id, command.run(), now=T0 + 1)
    payloads = [e.payload for e in drain(conn)[1] if isinstance(e, ev.DataReceived)]
    assert payloads == [b"a" * 50]


def test_a_failed_derivation_fails_the_packet_that_asked_and_the_next_asks_again() -> None:
    conn = connection()
    alice = peer_cryptor()
    alice.key_provider.ratchet_shared_key(0)
    receive(conn, sealed(user(b"1"), cryptor=alice, sequence=1))
    receive(conn, sealed(user(b"2"), cryptor=alice, sequence=2))
    (command,) = conn.commands_to_send()
    conn.command_failed(command, "RuntimeError: boom", now=T0 + 1)
    cmds, events = drain(conn)
    assert events == [
        ev.E2eeStateChanged(participant_identity="alice", state=S.DECRYPTION_FAILED),
        ev.PacketDropped(
            reason="decryption_failed",
            channel=Channel.RELIABLE,
            detail="key index 0: deriving its ratchets failed: RuntimeError: boom",
            participant_identity="alice",
        ),
    ]
    (again,) = cmds
    assert isinstance(again, cmd.DeriveRatchets) and again.request_id == command.request_id + 1
    conn.command_failed(command, "late", now=T0 + 1)  # already settled: ignored
    conn.ratchets_derived(again.request_id, again.run(), now=T0 + 2)
    payloads = [e.payload for e in drain(conn)[1] if isinstance(e, ev.DataReceived)]
    assert payloads == [b"2"]


def test_ratchets_evicted_before_the_retry_fail_the_packet_instead_of_asking_forever() -> None:
    conn = connection(config=Config(e2ee_max_cached_ratchets=1))
    alice = peer_cryptor()
    alice.key_provider.ratchet_shared_key(0)
    alice.key_provider.ratchet_shared_key(0)  # two steps; the cache holds one
    receive(conn, sealed(user(b"1"), cryptor=alice, sequence=1))
    rounds = 0
    while commands := [c for c in conn.commands_to_send() if isinstance(c, cmd.DeriveRatchets)]:
        (command,) = commands
        rounds += 1
        conn.ratchets_derived(command.request_id, command.run(), now=T0 + 1)
    # M0 -> M1 asked and cached; M1 -> M2 asked, cached, evicting M0 -> M1; the retry needs
    # M0's ratchet again: asked for this packet already, so it fails.
    assert rounds == 2
    dropped = [e for e in drain(conn)[1] if isinstance(e, ev.PacketDropped)]
    assert [d.detail for d in dropped] == [
        "key index 0: its ratchets were derived, then evicted (e2ee_max_cached_ratchets)"
    ]


def test_a_malformed_derivation_result_is_refused_and_changes_nothing() -> None:
    conn = connection()
    alice = peer_cryptor()
    alice.key_provider.ratchet_shared_key(0)
    receive(conn, sealed(user(b"1"), cryptor=alice, sequence=1))
    (command,) = conn.commands_to_send()
    with pytest.raises(LocalProtocolError, match="add_ratchets: a ratchet is a 32-byte"):
        conn.ratchets_derived(command.request_id, [(b"short", bytes(16))], now=T0)
    conn.ratchets_derived(command.request_id, command.run(), now=T0)
    assert [e.payload for e in drain(conn)[1] if isinstance(e, ev.DataReceived)] == [b"1"]


def test_the_end_of_the_session_forgets_what_waits_and_a_late_answer_is_ignored() -> None:
    conn = connection()
    alice = peer_cryptor()
    alice.key_provider.ratchet_shared_key(0)
    receive(conn, sealed(user(b"1"), cryptor=alice, sequence=1))
    (command,) = conn.commands_to_send()
    conn.close(now=T0 + 1)
    drain(conn)
    conn.ratchets_derived(command.request_id, command.run(), now=T0 + 2)
    conn.command_failed(command, "late", now=T0 + 2)
    assert drain(conn) == ([], [])


def test_a_participant_leaving_forgets_its_ratchets_and_state() -> None:
    conn = connection()
    alice = peer_cryptor()
    alice.key_provider.ratchet_shared_key(0)
    receive(conn, sealed(user(b"1"), cryptor=alice, sequence=1))
    (command,) = conn.commands_to_send()
    conn.ratchets_derived(command.request_id, command.run(), now=T0 + 1)
    keys = conn.key_provider
    assert keys is not None and keys.cloned_identities == 1
    gone = participant("alice", state=3)
    conn.receive_signal(FakeSfu.update(gone), now=T0 + 2)
    drain(conn)
    assert keys.cloned_identities == 0
    receive(conn, sealed(user(b"2"), cryptor=alice, sequence=2))  # its state starts over
    assert drain(conn)[1][0] == ev.E2eeStateChanged(
        participant_identity="alice", state=S.KEY_RATCHETED
    )


def test_the_command_derives_what_the_pure_function_does() -> None:
    command = cmd.DeriveRatchets(request_id=1, material=KEY, steps=2, salt=b"s", kdf=HKDF)
    assert repr(command) == (
        "DeriveRatchets(request_id=1, steps=2, salt=b's', kdf=<KeyDerivationFunction.HKDF: 1>)"
    )
    (m1, k1), (m2, k2) = command.run()
    provider = KeyProvider(
        KeyProviderOptions(shared_key=KEY, ratchet_salt=b"s", key_derivation_function=HKDF)
    )
    assert provider.ratchet_shared_key(0) == m1
    assert provider.ratchet_shared_key(0) == m2
    assert (len(k1), len(k2)) == (16, 16)


# -- a room in memory -----------------------------------------------------------------------------


def test_memory_room_forwards_ciphertext_between_encrypting_participants() -> None:
    room = MemoryRoom(update_interval=0)
    topic = (StreamKind.TEXT, "t")
    alice = room.join(
        "alice", encryption=options(), before_connect=lambda c: c.register_rpc_method("m")
    )
    bob = room.join(
        "bob",
        encryption=options(),
        config=Config(client_protocol=0),  # RPC v1 and plain streams towards bob
        before_connect=lambda c: (c.register_stream_topic(*topic), c.register_rpc_method("m")),
    )
    room.join("eve")  # no key: a participant the server forwards to all the same
    room.run_until_idle()
    for who in ("alice", "bob", "eve"):
        room.events(who)
    alice.publish_data(b"secret data", now=room.now)
    alice.send_stream(now=room.now, kind=StreamKind.TEXT, topic="t", payload="secret " * 5000)
    call = alice.perform_rpc(destination_identity="bob", method="m", payload="q", now=room.now)
    room.run_until_idle()
    got = room.events("bob")
    (invoked,) = [e for e in got if isinstance(e, ev.RpcInvoked)]
    bob.respond_rpc(invoked.invocation.request_id, "answer", now=room.now)
    back = bob.perform_rpc(destination_identity="alice", method="m", payload="v2?", now=room.now)
    room.run_until_idle()
    assert [e.payload for e in got if isinstance(e, ev.DataReceived)] == [b"secret data"]
    text = "".join(str(e.data) for e in got if isinstance(e, ev.StreamChunkReceived))
    assert text == "secret " * 5000
    from_bob = room.events("alice")
    (invoked,) = [e for e in from_bob if isinstance(e, ev.RpcInvoked)]
    assert invoked.invocation.payload == "v2?"
    alice.respond_rpc(invoked.invocation.request_id, RpcError(1500, "no"), now=room.now)
    room.run_until_idle()
    (answer,) = [e for e in from_bob if isinstance(e, ev.RpcSucceeded)]
    assert (answer.request_id, answer.payload) == (call, "answer")
    (failed,) = [e for e in room.events("bob") if isinstance(e, ev.RpcFailed)]
    assert (failed.request_id, failed.error.code) == (back, 1500)
    # eve got the broadcasts, encrypted: reported, never read.
    dropped = [e for e in room.events("eve") if isinstance(e, ev.PacketDropped)]
    assert {(d.reason, d.participant_identity) for d in dropped} == {("encrypted", "alice")}
    assert len(dropped) >= 2


def test_one_derivation_serves_every_sender_waiting_on_the_same_key() -> None:
    conn = connection(others=("alice", "bob", "carol"))
    keys = conn.key_provider
    assert keys is not None
    keys.set_key("carol", OTHER, 0)  # carol has a key of her own
    ratcheted = peer_cryptor()
    ratcheted.key_provider.ratchet_shared_key(0)
    carol = peer_cryptor(OTHER)
    carol.key_provider.ratchet_shared_key(0)
    receive(conn, sealed(user(b"a"), cryptor=ratcheted, sequence=1))
    receive(conn, sealed(user(b"b"), sender="bob", cryptor=ratcheted, sequence=1))
    receive(conn, sealed(user(b"c"), sender="carol", cryptor=carol, sequence=1))
    first, second = conn.commands_to_send()  # alice and bob share one; carol's is another
    assert isinstance(first, cmd.DeriveRatchets) and isinstance(second, cmd.DeriveRatchets)
    drain(conn)
    conn.ratchets_derived(first.request_id, first.run(), now=T0 + 1)
    got = [(e.participant_identity, e.payload) for e in drain(conn)[1] if hasattr(e, "payload")]
    assert got == [("alice", b"a"), ("bob", b"b")]  # carol still waits for hers
    conn.ratchets_derived(second.request_id, second.run(), now=T0 + 1)
    got = [(e.participant_identity, e.payload) for e in drain(conn)[1] if hasattr(e, "payload")]
    assert got == [("carol", b"c")]


def test_memory_room_derives_ratchets_for_its_participants() -> None:
    room = MemoryRoom(update_interval=0)
    alice = room.join("alice", encryption=options())
    room.join("bob", encryption=options())
    room.run_until_idle()
    room.events("bob")
    alice.key_provider.ratchet_shared_key(0)  # type: ignore[union-attr]
    alice.publish_data(b"after the ratchet", now=room.now)
    room.run_until_idle()
    assert [
        (type(e), getattr(e, "payload", getattr(e, "state", None))) for e in room.events("bob")
    ] == [
        (ev.E2eeStateChanged, S.KEY_RATCHETED),
        (ev.DataReceived, b"after the ratchet"),
    ]


def test_the_config_bounds_reach_the_key_provider() -> None:
    config = Config(
        e2ee_ratchet_retry_interval=7, e2ee_max_cached_ratchets=9, e2ee_max_cloned_identities=3
    )
    keys = connection(config=config).key_provider
    assert keys is not None
    assert (keys.ratchet_retry_interval, keys.max_cached_ratchets, keys.max_cloned_identities) == (
        7,
        9,
        3,
    )
    for bad in (
        {"e2ee_ratchet_retry_interval": -1},
        {"e2ee_max_cached_ratchets": 0},
        {"e2ee_max_cloned_identities": 0},
        {"e2ee_max_waiting_bytes": -1},
    ):
        with pytest.raises(ValueError, match=f"Config.{next(iter(bad))} must"):
            Config(**bad)  # type: ignore[arg-type]


def test_the_official_sdks_reliability_test_encrypted_across_resumes() -> None:
    """128 encrypted reliable 4 KiB packets, the sender resuming at 200 ms and the receiver at
    400 ms, 20 ms on each leg: the replay re-sends the encrypted bytes, the server drops the
    copies it already had, and every packet arrives exactly once, in order, decrypted."""
    room = MemoryRoom(now=T0, unix_time_ms=UNIX0, update_interval=0)
    alice = room.join("alice", encryption=options(), random=lambda: 0.5)
    bob = room.join("bob", encryption=options(), random=lambda: 0.5)
    room.events("alice"), room.events("bob")
    room.uplink("alice").delay(0.02)
    room.link("alice", "bob").delay(0.02)
    sent = [bytes([i]) * 4096 for i in range(128)]
    for i, payload in enumerate(sent):
        if i == 20:
            alice.simulate_scenario(SimulateScenario.SIGNAL_RECONNECT, now=room.now)
        if i == 40:
            bob.simulate_scenario(SimulateScenario.SIGNAL_RECONNECT, now=room.now)
        alice.publish_data(payload, now=room.now)
        room.advance(0.01)
    room.advance(15)
    got = [e for e in room.events("bob") if isinstance(e, ev.DataReceived)]
    assert [e.payload for e in got] == sent
    assert {e.encryption_type for e in got} == {EncryptionType.GCM}
    dropped = [d.packet() for d in room.dropped]
    assert [(p.sequence, p.WhichOneof("value")) for p in dropped] == [
        (20, "encrypted_packet"),
        (21, "encrypted_packet"),
    ]


def test_publishing_media_with_encryption_on_is_refused() -> None:
    conn = connection()
    with pytest.raises(LocalProtocolError, match="not end-to-end encrypted by lkproto"):
        conn.publish_track(TrackKind.AUDIO, name="mic", now=T0 + 1)
    assert conn.commands_to_send() == [] and conn.tracks.local_cids == ()
