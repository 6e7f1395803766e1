"""End-to-end encryption on the data path: `lkproto.e2ee` composed into the session.

Theory of operation (protocol-reference-2 §1.7, §2.1, §2.4, §2.5, §2.7):
- On when the `Connection` is made with `encryption=E2EEOptions(...)`. The key provider then
  exists (its bounds from `Config.e2ee_*`) and decrypts what arrives whether or not we
  encrypt, as Rust's DataPacketCryptor does. We encrypt our own packets only with
  `data_channel_encryption` (livekit.rtc: `RoomOptions.encryption` does, the deprecated
  `RoomOptions.e2ee` does not, §2.1), and our data-track frames always (Rust gives its
  data-track managers a cryptor whenever its E2EE manager is enabled, whichever option made
  it: `livekit/src/room/mod.rs`). `attach` makes it and wires it into the data path's
  seams, named below.
- Sending (`seal`, the `DataSender`'s seam between stamping and serializing): a packet of an
  encrypted kind (user, chat_message, rpc_request/ack/response, stream_header/chunk/trailer)
  leaves as a DataPacket whose `encrypted_packet` holds {GCM, iv, key_index,
  AES-GCM(EncryptedPacketPayload)}; kind, participant_identity, destination_identities,
  sequence and participant_sid stay in clear on the outer packet, so the server routes
  (RPC reaches its one destination) and sequences as before, the size limit is checked on
  the bytes actually sent, and a resume replays those very bytes. The clear kinds (DTMF,
  transcriptions) pass unchanged. We encrypt with our own identity's current key; the 12-byte
  IVs come from the injected `iv_factory` (adapters: `os.urandom(12)`), so the core draws no
  randomness. No key to encrypt with is the caller's error (`LocalProtocolError`, nothing
  sent).
- Receiving (`receive`, the `DataReceiver`'s filter, after de-duplication, which reads only
  the clear outer fields): an `encrypted_packet` is read with the key of the OUTER
  participant_identity, the one the server stamps (any `encryption_type` is accepted: JS
  sends NONE, §2.7), then dispatched as the packet it holds, marked GCM (data streams check
  that a stream's packets agree, as Rust does). Anything else is dispatched as is, marked
  NONE. A packet that cannot be read is dropped and reported (`PacketDropped` with the
  `DecryptionFailure` as reason, and the participant); nothing raises, the session goes on.
- The CPU. A key change derives once, in the key verb (one PBKDF2 run, ~15 ms). A failed
  decryption may need a ratchet window: up to 2 x `ratchet_window_size` PBKDF2 runs, ~1 s
  for 16. That never runs here: `DataCryptor.try_decrypt_packet` returns `RatchetsNeeded`,
  and this part asks the adapter to derive them (`commands.DeriveRatchets`, one request per
  key material however many senders wait on it; the adapters use a worker thread). Until
  `ratchets_derived` answers, that sender's packets wait in arrival order (so a stream is
  never reordered), within `Config.e2ee_max_waiting_bytes` altogether; then they are read
  again. A failed window is cached, so a sender with the wrong key costs one derivation per
  key, then AES tag checks only (`Config.e2ee_ratchet_retry_interval`,
  `e2ee_max_cached_ratchets`). A retried packet that needs ratchets again (the cache lost
  them meanwhile) fails rather than asking twice.
- Data tracks (§1.7; Rust `livekit/src/room/e2ee/data_track.rs` and the local and remote
  pipelines of `livekit-datatrack`). The `_datatracks.DataTracks` part knows no keys: it has
  two seams the Connection fills with this part's methods. `track_uses_e2ee`: our tracks
  are published with `encryption: GCM` (asking for a clear one is refused: clear frames in
  an encrypted room). `seal_frame` (at `push_data_track_frame`, before the frame is queued
  and packetized): the whole payload, and nothing else (no AAD; the user timestamp and the
  packet headers stay in clear), is AES-GCM encrypted with our identity's current key and an
  IV from `iv_factory`; the frame queued is ciphertext || tag, and the E2EE extension
  {key_index (u8: the ring has at most 256 slots), iv} goes on every one of its packets (the
  packetizer repeats it). An empty payload becomes a tag alone and is sent, as in Rust,
  where encryption comes before packetization. `receive_frame` (a reassembled frame of a
  remote track whose `DataTrackInfo.encryption` is GCM; the manager has already dropped one
  without the extension): decrypted with the key of the track's publisher at the
  extension's key index and IV, then reported as `DataTrackFrameReceived` with the plain
  payload and `e2ee` None. One that does not decrypt is dropped and reported as
  `DataTrackFrameDropped(DECRYPTION_FAILED)`, with the `DecryptionFailure` in its detail,
  beside the sender's `E2eeStateChanged`; nothing raises. Frames share the ratchet search
  with data packets: a publisher's frames wait behind its packets (and the reverse) while
  its ratchets are derived, within the same `Config.e2ee_max_waiting_bytes`
  (`DataTrackFrameDropped(E2EE_BACKLOG)` beyond). Frames of a clear track pass as they are,
  as in Rust, even if one carries an E2EE extension.
- `E2eeStateChanged` reports each change of a sender's state (OK, KEY_RATCHETED,
  DECRYPTION_FAILED, MISSING_KEY): livekit.rtc's `e2ee_state_changed`, for data packets and
  data-track frames alike.
- A participant leaving forgets its copy of the shared ring and its state; the session
  ending forgets what waits and what was asked for (a late answer is ignored).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence

import attrs

from lkproto import commands as cmd
from lkproto import events as ev
from lkproto._context import Context
from lkproto._data import DataReceiver, DataSender
from lkproto._datatracks import DataTracks
from lkproto._pb import data_pb2 as dpb
from lkproto._roster import Roster
from lkproto.datatracks import (
    DataTrackFrame,
    DataTrackFrameReceived,
    E2eeExtension,
    FrameDropReason,
)
from lkproto.e2ee import (
    DataCryptor,
    DecryptionFailed,
    DecryptionFailure,
    E2EEOptions,
    EncryptionState,
    EncryptionType,
    KeyProvider,
    RatchetsNeeded,
)
from lkproto.errors import LocalProtocolError
from lkproto.models import Channel

__all__ = ["Dispatch", "Encryption", "attach"]

#: Where readable packets go: `DataReceiver.dispatch(packet, channel, now, encryption)`.
Dispatch = Callable[[dpb.DataPacket, Channel, float, int], None]

#: What a sender sent that may wait for ratchets: a data packet, or a data-track frame.
_Item = dpb.DataPacket | DataTrackFrameReceived


class _Waiting:
    """One sender's packets and frames held for ratchets, oldest first (with their channel
    and size); the material whose ratchets the oldest one waits for, and every material asked
    for on its behalf."""

    __slots__ = ("asked", "material", "packets")

    def __init__(self) -> None:
        self.packets: deque[tuple[_Item, Channel, int]] = deque()
        self.material = b""
        self.asked: set[bytes] = set()


class Encryption:
    """E2EE for one session (see the module docstring)."""

    __slots__ = (
        "_ctx",
        "_dispatch",
        "_material",
        "_next_request",
        "_requests",
        "_roster",
        "_states",
        "_waiting",
        "_waiting_bytes",
        "cryptor",
        "encrypt_data",
        "key_provider",
    )

    def __init__(
        self,
        ctx: Context,
        options: E2EEOptions,
        *,
        roster: Roster,
        dispatch: Dispatch,
        encrypt_data: bool,
        iv_factory: Callable[[], bytes] | None,
    ) -> None:
        c = ctx.config
        self._ctx = ctx
        self._roster = roster
        self._dispatch = dispatch
        self.encrypt_data = encrypt_data
        self.key_provider = KeyProvider(
            options.key_provider_options,
            ratchet_retry_interval=c.e2ee_ratchet_retry_interval,
            max_cached_ratchets=c.e2ee_max_cached_ratchets,
            max_cloned_identities=c.e2ee_max_cloned_identities,
        )
        self.cryptor = DataCryptor(self.key_provider, iv_source=iv_factory)
        self._states: dict[str, EncryptionState] = {}
        self._waiting: dict[str, _Waiting] = {}  # by sender identity
        self._waiting_bytes = 0
        self._requests: dict[int, bytes] = {}  # request id -> the material to ratchet
        self._material: dict[bytes, int] = {}  # material -> its request id
        self._next_request = 1

    # -- sending -------------------------------------------------------------------------------

    def seal(self, packet: dpb.DataPacket, call: str) -> dpb.DataPacket:
        """What to send for a stamped packet: it encrypted, if its kind is encrypted."""
        if not self.encrypt_data:
            return packet
        local = self._roster.local
        assert local is not None  # only joined sessions send data
        try:
            return self.cryptor.encrypt_packet(packet, participant_identity=local.identity)
        except LocalProtocolError as exc:
            raise self._ctx.misuse(call, f"cannot encrypt: {exc}") from None

    # -- receiving -----------------------------------------------------------------------------

    def receive(self, packet: dpb.DataPacket, channel: Channel, now: float) -> None:
        """A de-duplicated packet: dispatch it (decrypted), hold it, or drop and report it."""
        self._admit(packet.participant_identity, packet, channel, now)

    # -- data-track frames (protocol-reference-2 §1.7) ---------------------------------------

    def track_uses_e2ee(self, uses_e2ee: bool | None, call: str) -> bool:
        """Whether a data track we publish uses E2EE: it does (None, the default, or True);
        False is refused, as clear frames in an encrypted room (the SDKs cannot either)."""
        if uses_e2ee is False:
            raise self._ctx.misuse(
                call,
                "this Connection was made with encryption, so its data tracks are end-to-end "
                "encrypted: uses_e2ee=False would send clear frames into an encrypted room",
            )
        return True if uses_e2ee is None else uses_e2ee  # a non-bool: the manager refuses it

    def seal_frame(
        self, frame: DataTrackFrame, e2ee: E2eeExtension | None, uses_e2ee: bool
    ) -> tuple[DataTrackFrame, E2eeExtension | None]:
        """What to push for `frame` on our track: on a track that uses E2EE, its payload
        encrypted with our current key and the E2EE extension (key index, IV) to carry."""
        call = "push_data_track_frame"
        if e2ee is not None:
            raise self._ctx.misuse(
                call, "this Connection encrypts data-track frames itself: give no e2ee"
            )
        if not uses_e2ee or not isinstance(frame, DataTrackFrame):
            return frame, None  # not published (yet), or a bad frame: the manager says which
        local = self._roster.local
        assert local is not None  # only joined sessions push frames
        try:
            sealed = self.cryptor.encrypt_frame(local.identity, frame.payload)
        except LocalProtocolError as exc:
            raise self._ctx.misuse(call, f"cannot encrypt: {exc}") from None
        extension = E2eeExtension(key_index=sealed.key_index, iv=sealed.iv)
        return DataTrackFrame(sealed.data, frame.user_timestamp), extension

    def receive_frame(self, event: DataTrackFrameReceived) -> None:
        """A reassembled frame of an encrypted track (with its E2EE extension): report it
        decrypted, hold it, or drop and report it."""
        self._admit(event.publisher_identity, event, Channel.DATA_TRACK, None)

    def _admit(self, sender: str, item: _Item, channel: Channel, now: float | None) -> None:
        if sender in self._waiting:
            self._hold(sender, item, channel, None)  # behind its sender's waiting items
            return
        need = self._open(item, channel, now)
        if need is not None:
            self._hold(sender, item, channel, need)

    def ratchets_derived(
        self, request_id: int, chain: Sequence[tuple[bytes, bytes]], now: float
    ) -> None:
        """The adapter derived the ratchets of `DeriveRatchets(request_id)`: cache them and
        read the packets that waited for them. Raises `LocalProtocolError` (changing nothing)
        for a malformed chain; an unknown or stale request id is ignored."""
        material = self._requests.get(request_id)
        if material is None:
            return
        self.key_provider.add_ratchets(material, chain)
        self._forget_request(request_id)
        self._release(material, now, failure=None)

    def derivation_failed(self, request_id: int, message: str, now: float) -> None:
        """The adapter could not derive: the packet that asked fails, the next ones go on."""
        material = self._requests.get(request_id)
        if material is not None:
            self._forget_request(request_id)
            self._release(material, now, failure=f"deriving its ratchets failed: {message}")

    def participant_left(self, identity: str) -> None:
        self.key_provider.forget_participant(identity)
        self._states.pop(identity, None)

    def ended(self) -> None:
        self._waiting.clear()
        self._waiting_bytes = 0
        self._requests.clear()
        self._material.clear()
        self._states.clear()

    # -- internals -----------------------------------------------------------------------------

    def _open(self, item: _Item, channel: Channel, now: float | None) -> RatchetsNeeded | None:
        """Dispatch `item` decrypted, or drop and report it; or return the ratchets it needs
        that are not derived yet. (`now` is None only for frames, which need no clock.)"""
        if isinstance(item, DataTrackFrameReceived):
            return self._open_frame(item)
        if item.WhichOneof("value") != "encrypted_packet":
            assert now is not None
            self._dispatch(item, channel, now, EncryptionType.NONE)
            return None
        result = self.cryptor.try_decrypt_packet(item)
        if isinstance(result, RatchetsNeeded):
            return result
        if isinstance(result, DecryptionFailed):
            self._drop(result, item, channel)
            return None
        state = EncryptionState.KEY_RATCHETED if result.ratchets else EncryptionState.OK
        self._state(item.participant_identity, state)
        assert now is not None
        self._dispatch(result.packet, channel, now, EncryptionType.GCM)
        return None

    def _open_frame(self, event: DataTrackFrameReceived) -> RatchetsNeeded | None:
        """A frame, read with its publisher's key at the key index and IV of its extension."""
        e2ee = event.e2ee
        assert e2ee is not None  # only frames of encrypted tracks, which carry it, come here
        result = self.cryptor.try_decrypt_frame(
            event.publisher_identity, e2ee.key_index, e2ee.iv, event.frame.payload
        )
        if isinstance(result, RatchetsNeeded):
            return result
        if isinstance(result, DecryptionFailed):
            self._drop(result, event, Channel.DATA_TRACK)
            return None
        state = EncryptionState.KEY_RATCHETED if result.ratchets else EncryptionState.OK
        self._state(event.publisher_identity, state)
        frame = DataTrackFrame(result.plaintext, event.frame.user_timestamp)
        self._ctx.events.append(attrs.evolve(event, frame=frame, e2ee=None))
        return None

    def _drop(self, failure: DecryptionFailed, item: _Item, channel: Channel) -> None:
        self._state(failure.participant_identity, failure.reason.state)
        detail = f"key index {failure.key_index}: {failure.detail}"
        if isinstance(item, DataTrackFrameReceived):
            self._frame_dropped(
                item, FrameDropReason.DECRYPTION_FAILED, f"{failure.reason.value}, {detail}"
            )
            return
        self._ctx.events.append(
            ev.PacketDropped(
                reason=failure.reason.value,
                channel=channel,
                detail=detail,
                participant_identity=failure.participant_identity,
            )
        )

    def _frame_dropped(
        self, event: DataTrackFrameReceived, reason: FrameDropReason, detail: str
    ) -> None:
        self._ctx.events.append(
            ev.DataTrackFrameDropped(
                sid=event.sid,
                publisher_identity=event.publisher_identity,
                frame_number=event.frame_number,
                reason=reason,
                received=1,
                expected=None,
                detail=detail,
            )
        )

    def _state(self, identity: str, state: EncryptionState) -> None:
        if self._states.get(identity, EncryptionState.NEW) is not state:
            self._states[identity] = state
            self._ctx.events.append(ev.E2eeStateChanged(participant_identity=identity, state=state))

    def _hold(
        self,
        sender: str,
        item: _Item,
        channel: Channel,
        need: RatchetsNeeded | None,
    ) -> None:
        """Keep `item` until its sender's ratchets are derived (asking for them if `need`)."""
        if isinstance(item, DataTrackFrameReceived):
            size = len(item.frame.payload)
        else:
            size = item.ByteSize()
        limit = self._ctx.config.e2ee_max_waiting_bytes
        if self._waiting_bytes + size > limit:
            detail = (
                f"{self._waiting_bytes} bytes already wait for key ratchets "
                f"(Config.e2ee_max_waiting_bytes={limit})"
            )
            if isinstance(item, DataTrackFrameReceived):
                self._frame_dropped(item, FrameDropReason.E2EE_BACKLOG, detail)
                return
            self._ctx.events.append(
                ev.PacketDropped(
                    reason="e2ee_backlog",
                    channel=channel,
                    detail=detail,
                    participant_identity=sender,
                )
            )
            return
        waiting = self._waiting.get(sender)
        if waiting is None:
            waiting = self._waiting[sender] = _Waiting()
        waiting.packets.append((item, channel, size))
        self._waiting_bytes += size
        if need is not None:
            waiting.material = self._ask(need)
            waiting.asked.add(need.material)

    def _ask(self, need: RatchetsNeeded) -> bytes:
        """Ask for ratchets of `need.material` (once, however many senders wait on it); returns
        that material. The window is searched in growing steps, 1, 1, 2, 4, 8 for 16, so a
        sender's single ratchet costs one step (2 KDF runs), not the whole window."""
        if need.material not in self._material:
            depth = self.key_provider.options.ratchet_window_size - need.steps  # cached already
            request_id = self._next_request
            self._next_request += 1
            self._requests[request_id] = need.material
            self._material[need.material] = request_id
            self._ctx.commands.append(
                cmd.DeriveRatchets(
                    request_id=request_id,
                    material=need.material,
                    steps=min(need.steps, max(1, depth)),
                    salt=need.salt,
                    kdf=need.kdf,
                )
            )
        return need.material

    def _forget_request(self, request_id: int) -> None:
        del self._material[self._requests.pop(request_id)]

    def _release(self, material: bytes, now: float, *, failure: str | None) -> None:
        """Read again, in order, the packets and frames of every sender whose oldest one
        waited for the ratchets of `material` (the derivation failed: that oldest one fails)."""
        for sender, waiting in list(self._waiting.items()):
            if waiting.material != material:
                continue
            if failure is not None:
                self._fail_oldest(sender, waiting, failure)
            while waiting.packets:
                item, channel, size = waiting.packets[0]
                need = self._open(item, channel, now)
                if need is None:
                    waiting.packets.popleft()
                    waiting.asked.clear()
                    self._waiting_bytes -= size
                elif need.material in waiting.asked:
                    # Derived, then evicted before this retry: never ask twice for an item.
                    evicted = "its ratchets were derived, then evicted (e2ee_max_cached_ratchets)"
                    self._fail_oldest(sender, waiting, evicted)
                else:  # more of the window, or another key: wait again
                    waiting.material = self._ask(need)
                    waiting.asked.add(need.material)
                    break
            else:
                del self._waiting[sender]

    def _fail_oldest(self, sender: str, waiting: _Waiting, detail: str) -> None:
        item, channel, size = waiting.packets.popleft()
        waiting.asked.clear()
        self._waiting_bytes -= size
        if isinstance(item, DataTrackFrameReceived):
            assert item.e2ee is not None
            key_index = item.e2ee.key_index
        else:
            key_index = item.encrypted_packet.key_index
        failure = DecryptionFailed(
            participant_identity=sender,
            key_index=key_index,
            reason=DecryptionFailure.DECRYPTION_FAILED,
            detail=detail,
        )
        self._drop(failure, item, channel)


def attach(
    ctx: Context,
    options: E2EEOptions | None,
    *,
    encrypt_data: bool,
    iv_factory: Callable[[], bytes] | None,
    roster: Roster,
    receiver: DataReceiver,
    sender: DataSender,
    datatracks: DataTracks,
) -> Encryption | None:
    """The session's `Encryption` wired into the data path's seams, or None without
    `options`. Raises TypeError for `options` that are not `E2EEOptions`, ValueError without
    an `iv_factory` (data-track frames are encrypted whatever `encrypt_data` says)."""
    if options is None:
        return None
    if not isinstance(options, E2EEOptions):
        raise TypeError(f"encryption must be E2EEOptions, not {type(options).__name__}")
    if iv_factory is None:
        raise ValueError("end-to-end encryption needs an iv_factory (12-byte IVs)")
    encryption = Encryption(
        ctx,
        options,
        roster=roster,
        dispatch=receiver.dispatch,
        encrypt_data=bool(encrypt_data),
        iv_factory=iv_factory,
    )
    receiver.filter = encryption.receive
    sender.seal = encryption.seal
    datatracks.seal_frame = encryption.seal_frame
    datatracks.decide_e2ee = encryption.track_uses_e2ee
    datatracks.open_frame = encryption.receive_frame
    return encryption
