"""End-to-end encryption on the data path: `lkproto.e2ee` composed into the session.

Theory of operation (protocol-reference-2 §2.1, §2.4, §2.5, §2.7):
- On when the `Connection` is made with `encryption=E2EEOptions(...)`. The key provider then
  exists (its bounds from `Config.e2ee_*`) and decrypts what arrives whether or not we
  encrypt, as Rust's DataPacketCryptor does. We encrypt our own packets only with
  `data_channel_encryption` (livekit.rtc: `RoomOptions.encryption` does, the deprecated
  `RoomOptions.e2ee` does not, §2.1).
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
- `E2eeStateChanged` reports each change of a sender's state (OK, KEY_RATCHETED,
  DECRYPTION_FAILED, MISSING_KEY): livekit.rtc's `e2ee_state_changed`, for data.
- A participant leaving forgets its copy of the shared ring and its state; the session
  ending forgets what waits and what was asked for (a late answer is ignored).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence

from lkproto import commands as cmd
from lkproto import events as ev
from lkproto._context import Context
from lkproto._pb import data_pb2 as dpb
from lkproto._roster import Roster
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

__all__ = ["Dispatch", "Encryption"]

#: Where readable packets go: `DataReceiver.dispatch(packet, channel, now, encryption)`.
Dispatch = Callable[[dpb.DataPacket, Channel, float, int], None]


class _Waiting:
    """One sender's packets held for ratchets, oldest first; the material whose ratchets the
    oldest one waits for, and every material asked for on its behalf."""

    __slots__ = ("asked", "material", "packets")

    def __init__(self) -> None:
        self.packets: deque[tuple[dpb.DataPacket, Channel, int]] = deque()
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
        sender = packet.participant_identity
        if sender in self._waiting:
            self._hold(sender, packet, channel, None)  # behind its sender's waiting packets
            return
        need = self._open(packet, channel, now)
        if need is not None:
            self._hold(sender, packet, channel, need)

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

    def _open(self, packet: dpb.DataPacket, channel: Channel, now: float) -> RatchetsNeeded | None:
        """Dispatch `packet` decrypted, or drop and report it; or return the ratchets it needs
        that are not derived yet."""
        if packet.WhichOneof("value") != "encrypted_packet":
            self._dispatch(packet, channel, now, EncryptionType.NONE)
            return None
        result = self.cryptor.try_decrypt_packet(packet)
        if isinstance(result, RatchetsNeeded):
            return result
        if isinstance(result, DecryptionFailed):
            self._drop(result, channel)
            return None
        state = EncryptionState.KEY_RATCHETED if result.ratchets else EncryptionState.OK
        self._state(packet.participant_identity, state)
        self._dispatch(result.packet, channel, now, EncryptionType.GCM)
        return None

    def _drop(self, failure: DecryptionFailed, channel: Channel) -> None:
        self._state(failure.participant_identity, failure.reason.state)
        self._ctx.events.append(
            ev.PacketDropped(
                reason=failure.reason.value,
                channel=channel,
                detail=f"key index {failure.key_index}: {failure.detail}",
                participant_identity=failure.participant_identity,
            )
        )

    def _state(self, identity: str, state: EncryptionState) -> None:
        if self._states.get(identity, EncryptionState.NEW) is not state:
            self._states[identity] = state
            self._ctx.events.append(ev.E2eeStateChanged(participant_identity=identity, state=state))

    def _hold(
        self,
        sender: str,
        packet: dpb.DataPacket,
        channel: Channel,
        need: RatchetsNeeded | None,
    ) -> None:
        """Keep `packet` until its sender's ratchets are derived (asking for them if `need`)."""
        size = packet.ByteSize()
        limit = self._ctx.config.e2ee_max_waiting_bytes
        if self._waiting_bytes + size > limit:
            self._ctx.events.append(
                ev.PacketDropped(
                    reason="e2ee_backlog",
                    channel=channel,
                    detail=f"{self._waiting_bytes} bytes already wait for key ratchets "
                    f"(Config.e2ee_max_waiting_bytes={limit})",
                    participant_identity=sender,
                )
            )
            return
        waiting = self._waiting.get(sender)
        if waiting is None:
            waiting = self._waiting[sender] = _Waiting()
        waiting.packets.append((packet, channel, size))
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
        """Read again, in order, the packets of every sender whose oldest packet waited for
        the ratchets of `material` (the derivation failed: that oldest packet fails)."""
        for sender, waiting in list(self._waiting.items()):
            if waiting.material != material:
                continue
            if failure is not None:
                self._fail_oldest(sender, waiting, failure)
            while waiting.packets:
                packet, channel, size = waiting.packets[0]
                need = self._open(packet, channel, now)
                if need is None:
                    waiting.packets.popleft()
                    waiting.asked.clear()
                    self._waiting_bytes -= size
                elif need.material in waiting.asked:
                    # Derived, then evicted before this retry: never ask twice for a packet.
                    evicted = "its ratchets were derived, then evicted (e2ee_max_cached_ratchets)"
                    self._fail_oldest(sender, waiting, evicted)
                else:  # more of the window, or another key: wait again
                    waiting.material = self._ask(need)
                    waiting.asked.add(need.material)
                    break
            else:
                del self._waiting[sender]

    def _fail_oldest(self, sender: str, waiting: _Waiting, detail: str) -> None:
        packet, channel, size = waiting.packets.popleft()
        waiting.asked.clear()
        self._waiting_bytes -= size
        failure = DecryptionFailed(
            participant_identity=sender,
            key_index=packet.encrypted_packet.key_index,
            reason=DecryptionFailure.DECRYPTION_FAILED,
            detail=detail,
        )
        self._drop(failure, channel)
