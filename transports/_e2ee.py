"""End-to-end encryption in the adapters: `livekit.rtc`'s `E2EEManager` and `KeyProvider`.

What the core does (lkproto/_encryption.py): it encrypts our data packets and data-track
frames and decrypts what peers encrypted, with the keys of an `lkproto.e2ee.KeyProvider`.
What the adapters add:
- the options: `RoomOptions(encryption=E2EEOptions(...))` encrypts data packets and
  data-track frames; the deprecated `RoomOptions(e2ee=...)` warns (DeprecationWarning) and,
  as in livekit.rtc, encrypts media and data tracks only (media lkproto refuses to publish
  then): keys are held and peers' encrypted packets are read, our data packets go in clear
  (`connection_settings`). IVs are `os.urandom(12)`.
- `room.e2ee_manager`: `enabled`, `set_enabled` (as in livekit.rtc it switches media frame
  encryption only, so here it only records the flag: data packets and data-track frames
  stay encrypted whenever the room connected with `encryption`), `key_provider` (None
  without E2EE) and `frame_cryptors()` (none: media is not encrypted). Its `KeyProvider`
  has livekit.rtc 1.2.0's verbs, with the same names and arguments, synchronous as there; a
  key change derives once (one PBKDF2 run, ~15 ms). They run on the session's thread: directly when
  called there (the async adapters), else through its event loop (the threaded adapter's
  I/O thread), blocking.
- `RatchetWorker`, the session's `WorkPort`: the core's `DeriveRatchets` (a ratchet search
  after a failed decryption: up to ~1 s of PBKDF2) runs in a worker thread, never on the
  event loop, and its result goes back through the pump.
- `e2ee_state_changed(participant, state)` is emitted by the room model from the core's
  `E2eeStateChanged` (for data packets and data-track frames; livekit.rtc raises it for
  media frames).
  `participant_encryption_status_changed` is not: it says whether all of a participant's
  published media tracks are encrypted, and media is never encrypted here (publishing a
  track with encryption on is refused).
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Callable
from typing import Protocol, TypeVar

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread

from lkproto import commands as cmd
from lkproto import e2ee
from lkproto.e2ee import E2EEOptions, KeyProviderOptions

from ._errors import TransportClosedError
from ._pump import SessionHost
from ._room import RoomOptions

__all__ = [
    "E2EEManager",
    "KeyProvider",
    "RatchetWorker",
    "Run",
    "connection_settings",
    "new_iv",
    "session_key_provider",
]

T = TypeVar("T")


def new_iv() -> bytes:
    """A fresh AES-GCM IV: 12 random bytes (receivers never parse it, §2.3)."""
    return os.urandom(e2ee.IV_LENGTH)


def connection_settings(options: RoomOptions) -> tuple[E2EEOptions | None, bool]:
    """(the core's `encryption`, `data_channel_encryption`) for these room options, as
    livekit.rtc 1.2.0 reads them: `encryption` wins; `e2ee` is deprecated and media only."""
    if options.e2ee is not None:
        warnings.warn(
            "options.e2ee is deprecated, use options.encryption instead",
            DeprecationWarning,
            stacklevel=4,
        )
    chosen = options.encryption or options.e2ee
    if chosen is not None and not isinstance(chosen, E2EEOptions):
        raise TypeError(f"RoomOptions encryption must be E2EEOptions, not {type(chosen).__name__}")
    return chosen, options.encryption is not None


class Run(Protocol):
    """Runs `fn` on the core's key provider, on the session's thread (`call` names the verb
    for errors). Raises `TransportClosedError` when the room is not connected."""

    def __call__(self, call: str, fn: Callable[[e2ee.KeyProvider], T]) -> T: ...


def _key(call: str, key: object) -> bytes:
    if not isinstance(key, bytes | bytearray | memoryview):
        raise TypeError(f"{call}: key must be bytes, not {type(key).__name__}")
    return bytes(key)


def _index(call: str, key_index: object) -> int:
    if isinstance(key_index, bool) or not isinstance(key_index, int):
        raise TypeError(f"{call}: key_index must be an int, not {type(key_index).__name__}")
    if key_index < 0:
        raise ValueError(f"{call}: key_index must be >= 0, not {key_index}")
    return key_index


def _identity(call: str, identity: object) -> str:
    if not isinstance(identity, str):
        raise TypeError(f"{call}: participant_identity must be str, not {type(identity).__name__}")
    return identity


class KeyProvider:
    """`livekit.rtc.KeyProvider`: the room's end-to-end encryption keys.

    A key index is taken modulo `options.key_ring_size`; the key set or ratcheted last is the
    one we encrypt with. Wrong argument types raise TypeError, a negative index ValueError,
    a key that is not there (export, ratchet) `LocalProtocolError`; after the room
    disconnected, `TransportClosedError`. Keys never appear in reprs or errors.
    """

    def __init__(self, options: KeyProviderOptions, run: Run) -> None:
        self._options = options
        self._run = run

    @property
    def options(self) -> KeyProviderOptions:
        """The options the provider was made with (shared key, ratchet salt and window, ...)."""
        return self._options

    def set_shared_key(self, key: bytes, key_index: int) -> None:
        """Set the key every participant uses (shared-key mode) at `key_index`."""
        call = "set_shared_key"
        material, index = _key(call, key), _index(call, key_index)
        self._run(call, lambda keys: keys.set_shared_key(material, index))

    def export_shared_key(self, key_index: int) -> bytes:
        """The shared key at `key_index`, as set or ratcheted since."""
        call = "export_shared_key"
        index = _index(call, key_index)
        return self._run(call, lambda keys: keys.export_shared_key(index))

    def ratchet_shared_key(self, key_index: int) -> bytes:
        """Ratchet the shared key at `key_index` for everyone; returns the new key."""
        call = "ratchet_shared_key"
        index = _index(call, key_index)
        return self._run(call, lambda keys: keys.ratchet_shared_key(index))

    def set_key(self, participant_identity: str, key: bytes, key_index: int) -> None:
        """Set `participant_identity`'s key at `key_index` (per-participant mode; set ours
        too: we encrypt with our own identity's key)."""
        call = "set_key"
        identity = _identity(call, participant_identity)
        material, index = _key(call, key), _index(call, key_index)
        self._run(call, lambda keys: keys.set_key(identity, material, index))

    def export_key(self, participant_identity: str, key_index: int) -> bytes:
        """`participant_identity`'s key at `key_index` (the shared one unless it has its own)."""
        call = "export_key"
        identity, index = _identity(call, participant_identity), _index(call, key_index)
        return self._run(call, lambda keys: keys.export_key(identity, index))

    def ratchet_key(self, participant_identity: str, key_index: int) -> bytes:
        """Ratchet `participant_identity`'s key at `key_index`; returns the new key."""
        call = "ratchet_key"
        identity, index = _identity(call, participant_identity), _index(call, key_index)
        return self._run(call, lambda keys: keys.ratchet_key(identity, index))

    def __repr__(self) -> str:
        return f"KeyProvider(options={self._options!r})"


class E2EEManager:
    """`livekit.rtc.E2EEManager`: `room.e2ee_manager` (see the module docstring)."""

    def __init__(self, options: E2EEOptions | None, key_provider: KeyProvider | None) -> None:
        self.options = options
        self._enabled = options is not None
        self._key_provider = key_provider

    @property
    def key_provider(self) -> KeyProvider | None:
        """The keys, or None if the room did not connect with E2EE options."""
        return self._key_provider

    @property
    def enabled(self) -> bool:
        """Whether our data is being encrypted (and others' expected encrypted)."""
        return self._enabled

    def set_enabled(self, enabled: bool) -> None:
        """Record whether E2EE is enabled. As in livekit.rtc this switches media frame
        encryption, which lkproto does not have; data packets and data-track frames are
        not affected."""
        if not isinstance(enabled, bool):
            raise TypeError(f"set_enabled: enabled must be bool, not {type(enabled).__name__}")
        self._enabled = enabled

    def frame_cryptors(self) -> list[object]:
        """Media frame cryptors: none (lkproto does not encrypt its media tracks)."""
        return []


def session_key_provider(host: SessionHost, options: KeyProviderOptions) -> KeyProvider:
    """A `KeyProvider` for `host`'s core, made on the session's thread: its verbs run there
    directly, and from any other thread (the threaded adapter's callers) through the
    session's event loop, blocking until done."""
    token = anyio.lowlevel.current_token()
    owner = threading.get_ident()

    def run(call: str, fn: Callable[[e2ee.KeyProvider], T]) -> T:
        if threading.get_ident() != owner:
            try:
                return anyio.from_thread.run_sync(lambda: run(call, fn), token=token)
            except RuntimeError:  # the loop is gone: the room was disconnected
                raise TransportClosedError(f"{call}: the room is not connected") from None
        conn = host.conn
        if conn is None or host.ended is not None or conn.key_provider is None:
            raise TransportClosedError(f"{call}: the room is not connected")
        return fn(conn.key_provider)

    return KeyProvider(options, run)


class RatchetWorker:
    """The session's `WorkPort`: each `DeriveRatchets` runs in a worker thread (PBKDF2
    releases the GIL, so the event loop keeps running), then reports through the pump."""

    def __init__(self, host: SessionHost) -> None:
        self._host = host

    def submit(self, command: cmd.DeriveRatchets) -> None:
        tg = self._host.tg
        if tg is not None:
            tg.start_soon(self._derive, command)

    async def _derive(self, command: cmd.DeriveRatchets) -> None:
        chain: tuple[tuple[bytes, bytes], ...] = ()
        message = ""
        try:
            chain = await anyio.to_thread.run_sync(command.run, abandon_on_cancel=True)
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"
        try:
            pump, _ = self._host.live("derive_ratchets")
        except TransportClosedError:
            return  # the session ended meanwhile
        if message:
            pump.on_command_failed(command, message)
        else:
            pump.on_ratchets_derived(command.request_id, chain)
