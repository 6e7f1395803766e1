"""`RoomModel` and `EventEmitter` (transports/_room.py): core events in, `livekit.rtc` out.

Each core event type is applied to a model and the exact emissions are checked against what
`livekit.rtc.Room._on_room_event` emits (names, argument order and types). Participants are
objects updated in place: the same `RemoteParticipant` is passed to every callback about it.
"""

from __future__ import annotations

import datetime
import logging

import attrs
import pytest

from lkproto import events as ev
from lkproto.models import (
    Channel,
    DisconnectReason,
    Participant,
    ParticipantKind,
    ParticipantState,
    Permissions,
    ReconnectMode,
    RoomInfo,
    ServerInfo,
)
from lkproto.transports._room import (
    ConnectionState,
    DataPacket,
    DataPacketKind,
    EventEmitter,
    LocalParticipantInfo,
    RemoteParticipant,
    RoomModel,
    SipDTMF,
    TranscriptionSegment,
)

ME = Participant(sid="PA_me", identity="me", name="Me", state=ParticipantState.JOINED)
ALICE = Participant(
    sid="PA_alice",
    identity="alice",
    name="Alice",
    metadata="m0",
    attributes={"role": "host"},
    state=ParticipantState.ACTIVE,
    permissions=Permissions(can_subscribe=True, can_publish_data=True),
    joined_at_ms=1_700_000_000_000,
)
BOB = Participant(sid="PA_bob", identity="bob", state=ParticipantState.JOINED)
ROOM = RoomInfo(sid="RM_1", name="lobby", metadata="room-m", num_participants=3)


def joined(*others: Participant, local: LocalParticipantInfo | None = None) -> RoomModel:
    model = RoomModel(local)
    out = model.apply(
        ev.Joined(
            room=ROOM,
            local_participant=ME,
            participants=others,
            server_info=ServerInfo(version="1.13.5"),
            ice_servers=(),
            single_peer_connection=True,
        )
    )
    assert out == []
    return model


def evolve(p: Participant, **changes: object) -> Participant:
    return attrs.evolve(p, **changes)


# -- joining and participants -------------------------------------------------------------------


def test_joined_sets_room_local_and_remotes_without_emitting() -> None:
    model = joined(ALICE, BOB)
    assert (model.room_sid, model.room_name, model.room_metadata) == ("RM_1", "lobby", "room-m")
    assert model.num_participants == 3
    assert isinstance(model.local, LocalParticipantInfo)
    assert (model.local.sid, model.local.identity, model.local.name) == ("PA_me", "me", "Me")
    assert list(model.remote) == ["alice", "bob"]
    alice = model.remote["alice"]
    assert type(alice) is RemoteParticipant
    assert alice.info is ALICE
    assert model.connection_state is ConnectionState.CONN_DISCONNECTED  # the adapter sets it


def test_joined_updates_a_given_local_participant_in_place() -> None:
    local = LocalParticipantInfo(Participant(sid="", identity=""))
    model = joined(local=local)
    assert model.local is local
    assert local.identity == "me"


def test_participant_properties_mirror_livekit_rtc() -> None:
    alice = joined(ALICE).remote["alice"]
    assert (alice.sid, alice.identity, alice.name, alice.metadata) == (
        "PA_alice",
        "alice",
        "Alice",
        "m0",
    )
    assert alice.attributes == {"role": "host"}
    alice.attributes["role"] = "changed"  # a copy: the model is not changed through it
    assert alice.attributes == {"role": "host"}
    assert alice.kind is ParticipantKind.STANDARD
    assert alice.state is ParticipantState.ACTIVE
    assert alice.permissions == Permissions(can_subscribe=True, can_publish_data=True)
    assert alice.disconnect_reason is DisconnectReason.UNKNOWN_REASON
    assert alice.joined_at == datetime.datetime(2023, 11, 14, 22, 13, 20, tzinfo=datetime.UTC)
    assert dict(alice.track_publications) == {}
    assert repr(alice) == "RemoteParticipant(sid=PA_alice, identity=alice, name=Alice)"
    assert RemoteParticipant(BOB).joined_at is None


def test_participant_connected() -> None:
    model = joined()
    out = model.apply(ev.ParticipantConnected(participant=BOB))
    bob = model.remote["bob"]
    assert out == [("participant_connected", (bob,))]
    assert out[0][1][0] is bob and bob.info is BOB


def test_participant_lifecycle_keeps_one_object() -> None:
    model = joined()
    (connected,) = model.apply(ev.ParticipantConnected(participant=BOB))
    bob = model.remote["bob"]
    active = evolve(BOB, state=ParticipantState.ACTIVE, version=2)
    assert model.apply(ev.ParticipantActive(participant=active)) == [("participant_active", (bob,))]
    assert model.remote["bob"] is bob and bob.state is ParticipantState.ACTIVE
    renamed = evolve(active, name="Robert", version=3)
    assert model.apply(ev.ParticipantUpdated(participant=renamed, previous=active)) == []
    assert model.remote["bob"] is bob and bob.name == "Robert"
    out = model.apply(
        ev.ParticipantDisconnected(participant=renamed, reason=DisconnectReason.ROOM_DELETED)
    )
    assert out == [("participant_disconnected", (bob,))]
    assert out[0][1][0] is bob
    assert "bob" not in model.remote
    # livekit.rtc sets the reason on the participant it hands out.
    assert bob.disconnect_reason is DisconnectReason.ROOM_DELETED
    assert connected[1][0] is bob


def test_disconnect_of_an_unknown_participant_still_emits() -> None:
    model = joined()
    out = model.apply(
        ev.ParticipantDisconnected(participant=BOB, reason=DisconnectReason.DUPLICATE_IDENTITY)
    )
    ((name, (gone,)),) = out
    assert name == "participant_disconnected"
    assert type(gone) is RemoteParticipant and gone.identity == "bob"
    assert gone.disconnect_reason is DisconnectReason.DUPLICATE_IDENTITY
    assert model.remote == {}


def test_attributes_changed() -> None:
    model = joined(ALICE)
    alice = model.remote["alice"]
    new = evolve(ALICE, attributes={"role": "guest", "mood": "ok"}, version=2)
    out = model.apply(
        ev.ParticipantAttributesChanged(participant=new, changed={"role": "guest", "mood": "ok"})
    )
    assert out == [("participant_attributes_changed", ({"role": "guest", "mood": "ok"}, alice))]
    changed, who = out[0][1]
    assert type(changed) is dict and who is alice
    assert alice.attributes == {"role": "guest", "mood": "ok"}


def test_name_changed() -> None:
    model = joined(ALICE)
    alice = model.remote["alice"]
    out = model.apply(
        ev.ParticipantNameChanged(participant=evolve(ALICE, name="Al", version=2), old_name="Alice")
    )
    assert out == [("participant_name_changed", (alice, "Alice", "Al"))]
    assert out[0][1][0] is alice


def test_metadata_changed() -> None:
    model = joined(ALICE)
    alice = model.remote["alice"]
    out = model.apply(
        ev.ParticipantMetadataChanged(
            participant=evolve(ALICE, metadata="m1", version=2), old_metadata="m0"
        )
    )
    assert out == [("participant_metadata_changed", (alice, "m0", "m1"))]
    assert out[0][1][0] is alice


def test_permissions_changed() -> None:
    model = joined(ALICE)
    alice = model.remote["alice"]
    granted = Permissions(can_subscribe=True, can_publish=True, can_publish_data=True)
    out = model.apply(
        ev.ParticipantPermissionsChanged(
            participant=evolve(ALICE, permissions=granted, version=2),
            old_permissions=ALICE.permissions,
        )
    )
    assert out == [("participant_permissions_changed", (alice, granted))]
    assert out[0][1][0] is alice


def test_local_participant_updates_in_place() -> None:
    model = joined()
    local = model.local
    assert local is not None
    updated = evolve(ME, metadata="mine", version=2)
    assert model.apply(ev.ParticipantUpdated(participant=updated, previous=ME)) == []
    out = model.apply(ev.ParticipantMetadataChanged(participant=updated, old_metadata=""))
    assert out == [("participant_metadata_changed", (local, "", "mine"))]
    assert out[0][1][0] is local and model.local is local
    assert model.remote == {}
    assert model.participant("me") is local


# -- room ---------------------------------------------------------------------------------------


def test_room_metadata_changed() -> None:
    model = joined()
    out = model.apply(ev.RoomMetadataChanged(old_metadata="room-m", metadata="new"))
    assert out == [("room_metadata_changed", ("room-m", "new"))]
    assert model.room_metadata == "new"


def test_room_updated() -> None:
    model = joined()
    out = model.apply(ev.RoomUpdated(room=RoomInfo(sid="", name="lobby", num_participants=7)))
    assert out == [("room_updated", ())]
    assert (model.room_sid, model.num_participants) == ("RM_1", 7)  # an empty sid keeps ours
    model.apply(ev.RoomUpdated(room=RoomInfo(sid="RM_2", num_participants=1)))
    assert (model.room_sid, model.num_participants) == ("RM_2", 1)


def test_active_speakers_changed() -> None:
    model = joined(ALICE, BOB)
    out = model.apply(
        ev.ActiveSpeakersChanged(
            speakers=(
                ev.SpeakerLevel(sid="PA_bob", level=0.9, active=True),
                ev.SpeakerLevel(sid="PA_me", level=0.5, active=True),
                ev.SpeakerLevel(sid="PA_alice", level=0.0, active=False),
                ev.SpeakerLevel(sid="PA_gone", level=0.7, active=True),
            )
        )
    )
    assert out == [("active_speakers_changed", ([model.remote["bob"], model.local],))]
    speakers = out[0][1][0]
    assert isinstance(speakers, list)
    assert speakers[0] is model.remote["bob"] and speakers[1] is model.local


def test_connection_quality_changed() -> None:
    model = joined(ALICE)
    out = model.apply(ev.ConnectionQualityChanged(participant_sid="PA_alice", quality=2, score=4.5))
    assert out == [("connection_quality_changed", (model.remote["alice"], 2))]
    assert out[0][1][0] is model.remote["alice"]


def test_connection_quality_of_the_local_participant() -> None:
    # livekit.rtc looks the participant up among local and remote ones (_retrieve_participant).
    model = joined(ALICE)
    out = model.apply(ev.ConnectionQualityChanged(participant_sid="PA_me", quality=1, score=3.0))
    assert out == [("connection_quality_changed", (model.local, 1))]


def test_connection_quality_of_an_unknown_sid() -> None:
    model = joined()
    out = model.apply(ev.ConnectionQualityChanged(participant_sid="PA_x", quality=3, score=0.0))
    assert out == [("connection_quality_changed", (None, 3))]


# -- data ---------------------------------------------------------------------------------------


def test_data_received_reliable_with_topic() -> None:
    model = joined(ALICE)
    out = model.apply(
        ev.DataReceived(
            payload=b"hi",
            participant_identity="alice",
            participant_sid="PA_alice",
            topic="chat",
            channel=Channel.RELIABLE,
        )
    )
    alice = model.remote["alice"]
    assert out == [
        (
            "data_received",
            (
                DataPacket(
                    data=b"hi", kind=DataPacketKind.KIND_RELIABLE, participant=alice, topic="chat"
                ),
            ),
        )
    ]
    assert out[0][1][0].participant is alice  # type: ignore[union-attr]


def test_data_received_lossy_without_topic_from_unknown_sender() -> None:
    model = joined()
    out = model.apply(
        ev.DataReceived(
            payload=b"\x00",
            participant_identity="server",
            participant_sid="",
            topic=None,
            channel=Channel.LOSSY,
        )
    )
    assert out == [
        (
            "data_received",
            (DataPacket(data=b"\x00", kind=DataPacketKind.KIND_LOSSY, participant=None, topic=""),),
        )
    ]


def test_sip_dtmf_received() -> None:
    model = joined(ALICE)
    out = model.apply(ev.SipDtmfReceived(code=5, digit="5", participant_identity="alice"))
    assert out == [("sip_dtmf_received", (SipDTMF(5, "5", model.remote["alice"]),))]


def test_transcription_received() -> None:
    model = joined(ALICE)
    segment = ev.TranscriptionSegment(
        id="s1", text="hello", start_time=10, end_time=20, final=True, language="en"
    )
    out = model.apply(
        ev.TranscriptionReceived(
            participant_identity="agent",
            transcribed_participant_identity="alice",
            track_id="TR_1",
            segments=(segment,),
        )
    )
    expected = [TranscriptionSegment("s1", "hello", 10, 20, True, "en")]
    assert out == [("transcription_received", (expected, model.remote["alice"], None))]
    about_me = model.apply(
        ev.TranscriptionReceived(
            participant_identity="agent",
            transcribed_participant_identity="me",
            track_id="TR_2",
            segments=(),
        )
    )
    assert about_me == [("transcription_received", ([], model.local, None))]


# -- session state ------------------------------------------------------------------------------


def test_set_state_emits_only_on_change() -> None:
    model = joined()
    assert model.set_state(ConnectionState.CONN_CONNECTED) == [
        ("connection_state_changed", (ConnectionState.CONN_CONNECTED,))
    ]
    assert model.set_state(ConnectionState.CONN_CONNECTED) == []
    assert model.connection_state is ConnectionState.CONN_CONNECTED


def test_reconnecting_once_per_interruption_then_reconnected() -> None:
    model = joined()
    model.set_state(ConnectionState.CONN_CONNECTED)
    resume = ev.Reconnecting(mode=ReconnectMode.RESUME, reason=DisconnectReason.MIGRATION)
    assert model.apply(resume) == [
        ("connection_state_changed", (ConnectionState.CONN_RECONNECTING,)),
        ("reconnecting", ()),
    ]
    # The resume becoming a full reconnect is the same interruption for livekit.rtc users.
    full = ev.Reconnecting(mode=ReconnectMode.FULL, reason=DisconnectReason.STATE_MISMATCH)
    assert model.apply(full) == []
    done = ev.Reconnected(mode=ReconnectMode.FULL, attempts=2, duration=0.5)
    assert model.apply(done) == [
        ("connection_state_changed", (ConnectionState.CONN_CONNECTED,)),
        ("reconnected", ()),
    ]


def test_disconnected_after_connected() -> None:
    model = joined()
    model.set_state(ConnectionState.CONN_CONNECTED)
    out = model.apply(ev.Disconnected(reason=DisconnectReason.SERVER_SHUTDOWN, message="bye"))
    assert out == [
        ("connection_state_changed", (ConnectionState.CONN_DISCONNECTED,)),
        ("disconnected", (DisconnectReason.SERVER_SHUTDOWN,)),
    ]
    assert model.connection_state is ConnectionState.CONN_DISCONNECTED


def test_disconnected_before_connected_changes_no_state() -> None:
    model = RoomModel()
    out = model.apply(ev.Disconnected(reason=DisconnectReason.JOIN_FAILURE))
    assert out == [("disconnected", (DisconnectReason.JOIN_FAILURE,))]


def test_token_refreshed() -> None:
    assert joined().apply(ev.TokenRefreshed(token="new.jwt.value")) == [("token_refreshed", ())]


@pytest.mark.parametrize(
    "event",
    [
        ev.MetadataUpdateCompleted(request_id=1),
        ev.MetadataUpdateFailed(request_id=2, reason=3, message="denied"),
        ev.ChatMessageReceived(participant_identity="alice", id="c1", timestamp=1, message="hi"),
        ev.PacketDropped(reason="malformed", channel=Channel.RELIABLE),
    ],
    ids=lambda e: type(e).__name__,
)
def test_events_without_a_livekit_rtc_emission(event: ev.Event) -> None:
    model = joined(ALICE)
    assert model.apply(event) == []
    assert list(model.remote) == ["alice"]


# -- EventEmitter -------------------------------------------------------------------------------


def test_on_with_a_callback_returns_it_and_receives_args() -> None:
    emitter = EventEmitter()
    calls: list[tuple[object, ...]] = []

    def callback(*args: object) -> None:
        calls.append(args)

    assert emitter.on("room_updated", callback) is callback
    emitter.emit("room_updated", 1, "two")
    emitter.emit("room_updated")
    emitter.emit("disconnected", "not for it")
    assert calls == [(1, "two"), ()]


def test_on_as_a_decorator() -> None:
    emitter = EventEmitter()
    calls: list[object] = []

    @emitter.on("participant_connected")
    def connected(participant: object) -> None:
        calls.append(participant)

    assert callable(connected) and connected.__name__ == "connected"
    emitter.emit("participant_connected", "p1")
    assert calls == ["p1"]


def test_once_runs_for_the_next_emission_only() -> None:
    emitter = EventEmitter()
    calls: list[str] = []
    emitter.once("reconnecting", lambda: calls.append("callback"))

    @emitter.once("reconnecting")
    def decorated() -> None:
        calls.append("decorated")

    emitter.emit("reconnecting")
    emitter.emit("reconnecting")
    assert calls == ["callback", "decorated"]
    decorated()  # the decorator returns the plain function
    assert calls == ["callback", "decorated", "decorated"]


def test_off_removes_one_registration() -> None:
    emitter = EventEmitter()
    calls: list[str] = []

    def callback() -> None:
        calls.append("x")

    emitter.on("connected", callback)
    emitter.on("connected", callback)
    emitter.off("connected", callback)
    emitter.emit("connected")
    assert calls == ["x"]
    emitter.off("connected", callback)
    emitter.off("connected", callback)  # not registered any more: no error
    emitter.off("disconnected", callback)
    emitter.emit("connected")
    assert calls == ["x"]


def test_callbacks_run_in_registration_order_and_may_unsubscribe() -> None:
    emitter = EventEmitter()
    calls: list[str] = []

    def first() -> None:
        calls.append("first")
        emitter.off("connected", second)

    def second() -> None:
        calls.append("second")

    emitter.on("connected", first)
    emitter.on("connected", second)
    emitter.emit("connected")  # a snapshot: second still runs this time
    emitter.emit("connected")
    assert calls == ["first", "second", "first"]


def test_callback_exceptions_are_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    emitter = EventEmitter()
    calls: list[str] = []

    def broken(*args: object) -> None:
        raise ValueError("handler bug")

    emitter.on("data_received", broken)
    emitter.on("data_received", lambda *a: calls.append("after"))
    with caplog.at_level(logging.ERROR, logger="lkproto.transports"):
        emitter.emit("data_received", "packet")
    assert calls == ["after"]
    (record,) = caplog.records
    assert record.name == "lkproto.transports"
    assert record.levelno == logging.ERROR
    assert record.getMessage() == "a 'data_received' callback raised"
    assert record.exc_info is not None and isinstance(record.exc_info[1], ValueError)


def test_coroutine_callbacks_are_refused_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    emitter = EventEmitter()
    ran: list[str] = []

    async def handler() -> None:
        ran.append("ran")  # pragma: no cover - never awaited

    emitter.on("connected", handler)
    with caplog.at_level(logging.ERROR, logger="lkproto.transports"):
        emitter.emit("connected")
    assert ran == []
    (record,) = caplog.records
    assert record.getMessage() == (
        "'connected' callbacks must be plain functions; start a task instead"
    )
