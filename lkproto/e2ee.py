"""End-to-end encryption of data: keys, the ratchet and AES-GCM for data packets and data-track
frames. Sans-I/O, usable alone.

Theory of operation (protocol-reference-2 §2 and §1.7; behaviour read in webrtc-sdk
`frame_crypto_transformer` (native: Rust, Python) and client-sdk-js `ParticipantKeyHandler`,
`DataCryptor`):

- Keys. The application gives key *material* (any bytes): one key for the whole room
  (`KeyProviderOptions.shared_key`, `set_shared_key`) or one per participant (`set_key`,
  for every remote identity and for our own, since we encrypt with our own identity's key).
  Each participant has a ring of `key_ring_size` slots (16; native clamps and JS requires
  1..256). A key index given locally is taken modulo the ring size, and the slot set or
  ratcheted last is the one we encrypt with (`current_key_index`). A key index received from
  a peer is not reduced: one outside the ring is a missing key, as in JS and native (whose u8
  `EncryptedPacket.key_index` truncates 256 and above; no SDK sends such an index).
- Derivation (§2.2). The AES-128-GCM key of a material is KDF(material, ratchet_salt,
  16 bytes): PBKDF2-HMAC-SHA256 with 100 000 iterations (the default) or HKDF-SHA256 with 128
  zero bytes of info. A ratchet replaces a material by KDF(material, ratchet_salt, 32 bytes)
  with the same KDF; the key index stays. client-sdk-js's snapshot test "ratchets keys
  predictably" pins both (tests/core/test_e2ee_vectors.py reproduces its 10 ciphertexts).
- Shared-key mode (§2.5). An identity reads the shared ring until something happens to its
  own keys: a ratchet that decrypted one of its packets, `ratchet_key`, `set_key`, or a
  failure counted against `failure_tolerance`. It then gets its own copy of the ring. Native
  clones on first use; cloning on first change looks the same from outside, and a ratchet
  after a failure still affects only that participant. `set_shared_key` and
  `ratchet_shared_key` write the slot in the shared ring and in every copy. Copies are bounded
  (`max_cloned_identities`, the least recently used is forgotten and reads the shared ring
  again) and `forget_participant` drops one when its participant leaves. `set_shared_key`
  on a provider made without a shared key switches it to shared-key mode (native ignores the
  call there).
- Cipher (§2.3). AES-GCM with a 12-byte IV, the 16-byte tag appended, no AAD, for data packets
  and data-track frames alike. No IV is drawn here: the caller passes one, or gives
  `DataCryptor` an `iv_source`. Receivers never parse IVs, so 12 random bytes from the adapter
  (`os.urandom(12)`) are fine; native and JS send random u32 || ms || ms - count.
- Decryption (§2.5). Try the slot's key. On failure, ratchet up to `ratchet_window_size`
  times and try each result. A success keeps the ratcheted material in that participant's
  slot and makes it its current index, as native and JS do. If every attempt fails, the slot
  keeps its initial material. Nothing a peer sends raises: a failure is a `DecryptionFailed`
  value with a reason. (client-sdk-js's DataCryptor retries with the stored key instead of
  the ratcheted one, so a JS receiver never follows a sender's ratchet on data.)
- The CPU bound. A ratchet step is two KDF runs. With PBKDF2 each run is about 12 ms here, so
  one failed window of 16 costs about 0.4 s of CPU. Native and JS pay that for every
  undecryptable packet, so a peer with the wrong key, or a hostile one, could stall the core.
  Here:
  1. ratchet results are cached by material: `max_cached_ratchets` successors, least
     recently used forgotten, shared by every participant, so a shared-key room derives one
     chain;
  2. after a window from a material fails, the next `ratchet_retry_interval` failing packets
     from that material search only what is cached and derive nothing. Only after that may a
     window derive again (if the cache lost part of it).
  A failing packet therefore costs at most `ratchet_window_size + 1` AES-GCM tag checks
  (microseconds). KDF runs happen at most once per window per material per
  `ratchet_retry_interval` failing packets, and only for what the cache no longer holds. A
  legitimate ratchet by the sender is still found during the retry interval, since the
  failed window cached its successors. `ratchet_retry_interval=0` restores native behaviour.
  3. `try_decrypt_packet` and `try_decrypt_frame` never run a KDF at all: where the window
     needs a ratchet not cached yet, they return `RatchetsNeeded` (the material and how many
     steps), the caller derives them wherever it likes (`RatchetsNeeded.derive()`, the pure
     `ratchet_chain`: a worker thread, so an event loop never waits ~1 s for PBKDF2), hands
     them to `KeyProvider.add_ratchets` and tries again. `Connection` works this way.
- failure_tolerance (§2.5, -1 = never). When >= 0, a participant's slot is invalid once more
  than that many of its packets have failed in a row. Its packets are then dropped untried
  (KEY_INVALID, as native media does) until that key is set or ratcheted again.
- Data packets (§2.4). `encrypt_packet` puts the value of an encrypted kind (`ENCRYPTED_KINDS`:
  user, chat_message, rpc_request, rpc_ack, rpc_response, stream_header, stream_chunk,
  stream_trailer) into an `EncryptedPacketPayload` and encrypts its serialization. The result
  is a DataPacket carrying `encrypted_packet` {GCM, iv, key_index, encrypted_value}. kind,
  participant_identity, destination_identities, sequence and participant_sid stay in clear on
  the outer packet, so targeted delivery (RPC) needs the outer destination_identities. The
  clear kinds (`CLEAR_KINDS`: speaker, sip_dtmf, transcription, metrics) come back untouched.
  `decrypt_packet` uses the key of the outer participant_identity at key_index, accepts any
  encryption_type (JS sends NONE, §2.7) and returns the DataPacket with its plain value. A
  packet without `encrypted_packet` comes back as it is, with `EncryptionType.NONE`.
- Data-track frames (§1.7). A whole frame's payload (before packetization) is encrypted
  like a data-packet payload, with the publisher's identity and current key index, no AAD,
  the tag appended; the E2EE extension on each of its packets carries key_index as a u8
  (the ring has at most 256 slots) and the IV. The receiver decrypts the reassembled
  payload with the key of the track's publisher (`Connection` does both: `_encryption`).
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Final

import attrs
from google.protobuf.message import DecodeError

from lkproto._pb import data_pb2 as dpb
from lkproto._repr import plain_repr
from lkproto.errors import LocalProtocolError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "CLEAR_KINDS",
    "DEFAULT_FAILURE_TOLERANCE",
    "DEFAULT_KEY_RING_SIZE",
    "DEFAULT_MAX_CACHED_RATCHETS",
    "DEFAULT_MAX_CLONED_IDENTITIES",
    "DEFAULT_RATCHET_RETRY_INTERVAL",
    "DEFAULT_RATCHET_SALT",
    "DEFAULT_RATCHET_WINDOW_SIZE",
    "ENCRYPTED_KINDS",
    "HKDF_INFO",
    "IV_LENGTH",
    "KEY_LENGTH",
    "MAX_KEY_RING_SIZE",
    "PBKDF2_ITERATIONS",
    "RATCHET_LENGTH",
    "TAG_LENGTH",
    "DataCryptor",
    "Decrypted",
    "DecryptedPacket",
    "DecryptionFailed",
    "DecryptionFailure",
    "E2EEOptions",
    "Encrypted",
    "EncryptionState",
    "EncryptionType",
    "KeyDerivationFunction",
    "KeyProvider",
    "KeyProviderOptions",
    "RatchetsNeeded",
    "aes_gcm_decrypt",
    "aes_gcm_encrypt",
    "derive_bits",
    "derive_encryption_key",
    "hkdf_sha256",
    "pbkdf2_sha256",
    "ratchet_chain",
    "ratchet_material",
]

DEFAULT_RATCHET_SALT: Final = b"LKFrameEncryptionKey"
DEFAULT_RATCHET_WINDOW_SIZE: Final = 16  # Rust/Python; JS KEY_PROVIDER_DEFAULTS has 8
DEFAULT_FAILURE_TOLERANCE: Final = -1  # never mark a key invalid
DEFAULT_KEY_RING_SIZE: Final = 16
MAX_KEY_RING_SIZE: Final = 256  # native MAX_KEYRING_SIZE; the data-track extension's u8 index
PBKDF2_ITERATIONS: Final = 100_000
HKDF_INFO: Final = bytes(128)  # native DeriveHkdfSha256FromSecret, JS getAlgoOptions('HKDF')
KEY_LENGTH: Final = 16  # AES-128
RATCHET_LENGTH: Final = 32  # a ratcheted material is 256 bits
IV_LENGTH: Final = 12
TAG_LENGTH: Final = 16
#: Failing packets from a material after its failed window that only search cached ratchets.
DEFAULT_RATCHET_RETRY_INTERVAL: Final = 1000
#: Ratchet results (material -> successor) kept: 64 windows of 16 (a few hundred KiB).
DEFAULT_MAX_CACHED_RATCHETS: Final = 1024
#: Identities with their own copy of the shared ring (shared-key mode).
DEFAULT_MAX_CLONED_IDENTITIES: Final = 1024

#: DataPacket values sent inside `encrypted_packet` (EncryptedPacketPayload's oneof).
ENCRYPTED_KINDS: Final = frozenset(
    {
        "user",
        "chat_message",
        "rpc_request",
        "rpc_ack",
        "rpc_response",
        "stream_header",
        "stream_chunk",
        "stream_trailer",
    }
)
#: DataPacket values that stay in clear in an encrypted room (Rust and JS agree).
CLEAR_KINDS: Final = frozenset({"speaker", "sip_dtmf", "transcription", "metrics"})


class KeyDerivationFunction(enum.IntEnum):
    """How key material becomes an AES key and is ratcheted; numbered as livekit.rtc's enum."""

    PBKDF2 = 0
    HKDF = 1


class EncryptionType(enum.IntEnum):
    """`Encryption.Type` of the wire and of livekit.rtc."""

    NONE = 0
    GCM = 1
    CUSTOM = 2


class EncryptionState(enum.IntEnum):
    """livekit.rtc's `EncryptionState` (native FrameCryptionState)."""

    NEW = 0
    OK = 1
    ENCRYPTION_FAILED = 2
    DECRYPTION_FAILED = 3
    MISSING_KEY = 4
    KEY_RATCHETED = 5
    INTERNAL_ERROR = 6


class DecryptionFailure(enum.Enum):
    """Why something a peer encrypted could not be read."""

    #: The IV is not 12 bytes, or the data is shorter than the 16-byte tag.
    MALFORMED_ENVELOPE = "malformed_envelope"
    #: No key for that participant at that key index (or the index is outside the ring).
    MISSING_KEY = "missing_key"
    #: The key failed more than `failure_tolerance` times in a row; not tried.
    KEY_INVALID = "key_invalid"
    #: The tag check failed with the key and with every ratchet of the window.
    DECRYPTION_FAILED = "decryption_failed"
    #: Decrypted, but not an `EncryptedPacketPayload` with a value this schema knows.
    MALFORMED_PAYLOAD = "malformed_payload"

    @property
    def state(self) -> EncryptionState:
        """The livekit.rtc `EncryptionState` to report for it."""
        if self is DecryptionFailure.MISSING_KEY:
            return EncryptionState.MISSING_KEY
        return EncryptionState.DECRYPTION_FAILED


# -- pure functions ---------------------------------------------------------------------------


def _positive_length(length: int) -> int:
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise ValueError(f"a derived length must be a positive int, not {length!r}")
    return length


def pbkdf2_sha256(
    secret: bytes, salt: bytes, length: int, iterations: int = PBKDF2_ITERATIONS
) -> bytes:
    """PBKDF2-HMAC-SHA256 of `secret` (the password) with `salt`: `length` bytes."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

    return PBKDF2HMAC(hashes.SHA256(), _positive_length(length), salt, iterations).derive(secret)


def hkdf_sha256(secret: bytes, salt: bytes, length: int, info: bytes = HKDF_INFO) -> bytes:
    """HKDF-SHA256 (RFC 5869) of `secret` (the IKM) with `salt` and `info`: `length` bytes."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(hashes.SHA256(), _positive_length(length), salt, info).derive(secret)


def derive_bits(kdf: KeyDerivationFunction, secret: bytes, salt: bytes, length: int) -> bytes:
    """`length` bytes from `secret` and `salt` by `kdf`, with LiveKit's parameters.

    PBKDF2: 100 000 iterations of HMAC-SHA256; HKDF: SHA-256 with 128 zero bytes of info.
    """
    if KeyDerivationFunction(kdf) is KeyDerivationFunction.HKDF:
        return hkdf_sha256(secret, salt, length)
    return pbkdf2_sha256(secret, salt, length)


def derive_encryption_key(
    material: bytes,
    salt: bytes = DEFAULT_RATCHET_SALT,
    kdf: KeyDerivationFunction = KeyDerivationFunction.PBKDF2,
) -> bytes:
    """The 16-byte AES-GCM key of key `material` (native `DeriveKeys(.., 128)`)."""
    return derive_bits(kdf, material, salt, KEY_LENGTH)


def ratchet_material(
    material: bytes,
    salt: bytes = DEFAULT_RATCHET_SALT,
    kdf: KeyDerivationFunction = KeyDerivationFunction.PBKDF2,
) -> bytes:
    """The 32-byte material that one ratchet makes of `material`."""
    return derive_bits(kdf, material, salt, RATCHET_LENGTH)


def ratchet_chain(
    material: bytes,
    steps: int,
    salt: bytes = DEFAULT_RATCHET_SALT,
    kdf: KeyDerivationFunction = KeyDerivationFunction.PBKDF2,
) -> tuple[tuple[bytes, bytes], ...]:
    """The `steps` ratchets that follow `material`, each as (material, its 16-byte AES key):
    two KDF runs a step, so with PBKDF2 about 25-50 ms each. Pure: run it on any thread
    (`cryptography` releases the GIL while deriving)."""
    out: list[tuple[bytes, bytes]] = []
    for _ in range(_positive_length(steps)):
        material = ratchet_material(material, salt, kdf)
        out.append((material, derive_encryption_key(material, salt, kdf)))
    return tuple(out)


def _check_iv(iv: bytes) -> None:
    if len(iv) != IV_LENGTH:
        raise ValueError(f"an AES-GCM IV must be {IV_LENGTH} bytes, not {len(iv)}")


def aes_gcm_encrypt(key: bytes, iv: bytes, plaintext: bytes) -> bytes:
    """AES-GCM without AAD: ciphertext || 16-byte tag. Raises ValueError for a bad key or IV."""
    _check_iv(iv)
    return _aead(key).encrypt(iv, plaintext, None)


def aes_gcm_decrypt(key: bytes, iv: bytes, data: bytes) -> bytes | None:
    """The plaintext of `data` (ciphertext || tag), or None if the tag does not match."""
    _check_iv(iv)
    return _open(_aead(key), iv, data)


def _aead(key: bytes) -> AESGCM:
    """An AES-GCM cipher of `key`. `cryptography` is imported here, at the first key, not with
    the module: a session without E2EE never loads it (issue 25, start-up)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return AESGCM(key)


def _open(aead: AESGCM, iv: bytes, data: bytes) -> bytes | None:
    from cryptography.exceptions import InvalidTag

    try:
        return aead.decrypt(iv, data, None)
    except InvalidTag:
        return None


# -- values -----------------------------------------------------------------------------------


def _optional_bytes(value: object) -> bytes | None:
    return None if value is None else _to_bytes(value)


def _to_bytes(value: object) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise TypeError(f"expected bytes, not {type(value).__name__}")


def _int_at_least(low: int, high: int | None = None) -> Callable[[object, object, object], None]:
    def check(instance: object, attribute: object, value: object) -> None:
        name = getattr(attribute, "name", "value")
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, not {type(value).__name__}")
        if value < low or (high is not None and value > high):
            bounds = f"{low}..{high}" if high is not None else f">= {low}"
            raise ValueError(f"{name} must be {bounds}, not {value}")

    return check


@attrs.frozen
@plain_repr
class KeyProviderOptions:
    """Key settings, named, ordered and defaulted as livekit.rtc 1.2.0's `KeyProviderOptions`.

    - `shared_key`: the room's key material (bytes); None for per-participant keys. It never
      appears in the repr.
    - `ratchet_salt`: the salt of every derivation (b"LKFrameEncryptionKey").
    - `ratchet_window_size`: ratchets tried when a packet does not decrypt (16; 0 = none).
    - `failure_tolerance`: failed packets in a row before a key is invalid (-1 = never).
    - `key_ring_size`: key slots per participant, 1..256 (16).
    - `key_derivation_function`: PBKDF2 (0, the default) or HKDF (1); livekit.rtc's proto
      enum values are accepted.

    Raises TypeError or ValueError for a value of the wrong type or out of range.
    """

    shared_key: bytes | None = attrs.field(default=None, converter=_optional_bytes, repr=False)
    ratchet_salt: bytes = attrs.field(default=DEFAULT_RATCHET_SALT, converter=_to_bytes)
    ratchet_window_size: int = attrs.field(
        default=DEFAULT_RATCHET_WINDOW_SIZE, validator=_int_at_least(0)
    )
    failure_tolerance: int = attrs.field(
        default=DEFAULT_FAILURE_TOLERANCE, validator=_int_at_least(-1)
    )
    key_ring_size: int = attrs.field(
        default=DEFAULT_KEY_RING_SIZE, validator=_int_at_least(1, MAX_KEY_RING_SIZE)
    )
    key_derivation_function: KeyDerivationFunction = attrs.field(
        default=KeyDerivationFunction.PBKDF2, converter=KeyDerivationFunction
    )


def _gcm_only(value: int) -> EncryptionType:
    kind = EncryptionType(value)
    if kind is not EncryptionType.GCM:
        raise ValueError(f"encryption_type must be GCM (AES-GCM is the only cipher), not {kind!r}")
    return kind


def _key_provider_options(instance: object, attribute: object, value: object) -> None:
    if not isinstance(value, KeyProviderOptions):
        raise TypeError(
            f"key_provider_options must be KeyProviderOptions, not {type(value).__name__}"
        )


@attrs.frozen
@plain_repr
class E2EEOptions:
    """End-to-end encryption settings, as livekit.rtc 1.2.0's `E2EEOptions`: the key
    provider's options and the cipher (GCM, the only one; anything else is a ValueError)."""

    key_provider_options: KeyProviderOptions = attrs.field(
        factory=KeyProviderOptions, validator=_key_provider_options
    )
    encryption_type: EncryptionType = attrs.field(default=EncryptionType.GCM, converter=_gcm_only)


@attrs.frozen(kw_only=True)
@plain_repr
class Encrypted:
    """What was encrypted: the key index used, the IV, and ciphertext || 16-byte tag."""

    key_index: int
    iv: bytes
    data: bytes


@attrs.frozen(kw_only=True)
@plain_repr
class Decrypted:
    """A successful decryption. `ratchets` > 0: the key was ratcheted that many times to read
    it, and the participant's slot now holds the ratcheted key (report KEY_RATCHETED)."""

    plaintext: bytes
    key_index: int
    ratchets: int = 0


@attrs.frozen(kw_only=True)
@plain_repr
class DecryptedPacket:
    """A received DataPacket with its plain value in place.

    `encryption_type` is GCM if it came in `encrypted_packet` (whatever that envelope's
    `encryption_type` said) and NONE if it was sent in clear; `key_index` is None then.
    """

    packet: dpb.DataPacket
    encryption_type: EncryptionType
    key_index: int | None = None
    ratchets: int = 0


@attrs.frozen(kw_only=True)
@plain_repr
class DecryptionFailed:
    """Something `participant_identity` encrypted under `key_index` could not be read: drop
    it and report it (its `reason.state` is the `EncryptionState`). Never contains a key."""

    participant_identity: str
    key_index: int
    reason: DecryptionFailure
    detail: str = ""


@attrs.frozen(kw_only=True)
@plain_repr
class RatchetsNeeded:
    """Reading what `participant_identity` sent under `key_index` needs ratchets that are not
    derived yet (returned by the `try_decrypt_*` methods, which never run a KDF).

    Derive them wherever the CPU may be spent (`derive()`: two KDF runs a step), give them
    to `KeyProvider.add_ratchets(material, ...)`, then try again. `material` is key material:
    never in a repr.
    """

    participant_identity: str
    key_index: int
    material: bytes = attrs.field(repr=False)
    steps: int
    salt: bytes
    kdf: KeyDerivationFunction

    def derive(self) -> tuple[tuple[bytes, bytes], ...]:
        """The `steps` ratchets after `material` (`ratchet_chain`)."""
        return ratchet_chain(self.material, self.steps, self.salt, self.kdf)


# -- the key provider -------------------------------------------------------------------------


class _Node:
    """One key material of a ratchet chain, its AES-GCM key, and its retry countdown."""

    __slots__ = ("aead", "cooldown", "material")

    def __init__(self, material: bytes, key: bytes) -> None:
        self.material = material
        self.aead = _aead(key)
        #: Failing packets from this material that may still only search cached ratchets.
        self.cooldown = 0


class _Ring:
    """One participant's key ring (or the shared one): a node or None per slot."""

    __slots__ = ("current", "failures", "nodes")

    def __init__(self, size: int) -> None:
        self.nodes: list[_Node | None] = [None] * size
        self.failures = [0] * size  # failed packets in a row, per slot
        self.current = 0  # the slot set or ratcheted last: the one we encrypt with

    def copy(self) -> _Ring:
        ring = _Ring(len(self.nodes))
        ring.nodes[:] = self.nodes
        ring.current = self.current
        return ring

    def install(self, index: int, node: _Node) -> None:
        self.nodes[index] = node
        self.failures[index] = 0
        self.current = index


def _check_identity(call: str, identity: object) -> str:
    if not isinstance(identity, str):
        raise LocalProtocolError(
            f"{call}: participant_identity must be str, not {type(identity).__name__}", call=call
        )
    return identity


def _check_bytes(call: str, what: str, value: object) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise LocalProtocolError(f"{call}: {what} must be bytes, not {type(value).__name__}", call=call)


def _check_index(call: str, key_index: object) -> int:
    if isinstance(key_index, bool) or not isinstance(key_index, int) or key_index < 0:
        raise LocalProtocolError(
            f"{call}: key_index must be an int >= 0, not {key_index!r}", call=call
        )
    return key_index


def _check_bound(name: str, value: int, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"KeyProvider {name} must be an int >= {low}, not {value!r}")
    return value


class KeyProvider:
    """The key rings of one local participant: livekit.rtc's `KeyProvider` verbs, sans I/O.

    Local verbs raise `LocalProtocolError` for bad arguments or a key that is not there, and
    then change nothing. Key material never appears in a repr or an error message.
    """

    def __init__(
        self,
        options: KeyProviderOptions | None = None,
        *,
        ratchet_retry_interval: int = DEFAULT_RATCHET_RETRY_INTERVAL,
        max_cached_ratchets: int = DEFAULT_MAX_CACHED_RATCHETS,
        max_cloned_identities: int = DEFAULT_MAX_CLONED_IDENTITIES,
    ) -> None:
        """Keys per `options` (defaults: `KeyProviderOptions()`); the bounds of the module
        docstring:

        - `ratchet_retry_interval`: after a ratchet window from a material failed, how many
          failing packets from it search only cached ratchets (1000; 0 = always derive).
        - `max_cached_ratchets`: ratchet results cached, by material (1024).
        - `max_cloned_identities`: participants with their own copy of the shared ring (1024).

        With `options.shared_key` set, it is installed at key index 0 (one KDF run). Raises
        TypeError for options that are not `KeyProviderOptions`, ValueError for a bound out
        of range.
        """
        if options is None:
            options = KeyProviderOptions()
        if not isinstance(options, KeyProviderOptions):
            raise TypeError(f"options must be KeyProviderOptions, not {type(options).__name__}")
        self._options = options
        self.ratchet_retry_interval = _check_bound(
            "ratchet_retry_interval", ratchet_retry_interval, 0
        )
        self.max_cached_ratchets = _check_bound("max_cached_ratchets", max_cached_ratchets, 1)
        self.max_cloned_identities = _check_bound("max_cloned_identities", max_cloned_identities, 1)
        self._size = options.key_ring_size
        self._shared: _Ring | None = None
        self._own: dict[str, _Ring] = {}  # set_key'd identities (never forgotten)
        self._copies: OrderedDict[str, _Ring] = OrderedDict()  # copies of the shared ring
        self._successors: OrderedDict[bytes, _Node] = OrderedDict()  # material -> ratchet
        self._derivations = 0
        if options.shared_key is not None:
            self.set_shared_key(options.shared_key, 0)

    @property
    def options(self) -> KeyProviderOptions:
        """The options given at construction."""
        return self._options

    @property
    def shared_key_mode(self) -> bool:
        """Whether a shared key is set (every identity without its own keys reads it)."""
        return self._shared is not None

    @property
    def derivations(self) -> int:
        """KDF runs so far (PBKDF2 or HKDF): what the CPU bound limits."""
        return self._derivations

    @property
    def cloned_identities(self) -> int:
        """Identities holding a copy of the shared ring (at most `max_cloned_identities`)."""
        return len(self._copies)

    @property
    def cached_ratchets(self) -> int:
        """Ratchet results cached (at most `max_cached_ratchets`)."""
        return len(self._successors)

    # -- livekit.rtc's verbs

    def set_shared_key(self, key: bytes, key_index: int) -> None:
        """Set the room's key at `key_index` (modulo the ring size) for every participant,
        including those with keys of their own, and make it current."""
        call = "set_shared_key"
        material = _check_bytes(call, "key", key)
        index = self._slot(call, key_index)
        node = self._install(material)
        if self._shared is None:
            self._shared = _Ring(self._size)
        for ring in self._rings():
            ring.install(index, node)

    def set_key(self, participant_identity: str, key: bytes, key_index: int) -> None:
        """Set `participant_identity`'s key at `key_index` (modulo the ring size), current.

        Our own identity needs one too in per-participant mode: we encrypt with it. In
        shared-key mode the participant keeps the shared ring's other slots.
        """
        call = "set_key"
        identity = _check_identity(call, participant_identity)
        material = _check_bytes(call, "key", key)
        index = self._slot(call, key_index)
        node = self._install(material)
        ring = self._own.get(identity)
        if ring is None:
            ring = self._copies.pop(identity, None)
            if ring is None:
                ring = self._shared.copy() if self._shared is not None else _Ring(self._size)
            self._own[identity] = ring
        ring.install(index, node)

    def ratchet_shared_key(self, key_index: int) -> bytes:
        """Ratchet the shared key at `key_index` for everyone; returns the new material."""
        call = "ratchet_shared_key"
        index = self._slot(call, key_index)
        node = self._shared.nodes[index] if self._shared is not None else None
        if node is None:
            raise LocalProtocolError(f"{call}: no shared key at key index {index}", call=call)
        successor = self._ratchet(node)
        for ring in self._rings():
            ring.install(index, successor)
        return successor.material

    def ratchet_key(self, participant_identity: str, key_index: int) -> bytes:
        """Ratchet `participant_identity`'s key at `key_index`; returns the new material."""
        call = "ratchet_key"
        identity = _check_identity(call, participant_identity)
        index = self._slot(call, key_index)
        ring = self._view(identity)
        node = ring.nodes[index] if ring is not None else None
        if node is None:
            raise LocalProtocolError(
                f"{call}: no key for {identity!r} at key index {index}", call=call
            )
        successor = self._ratchet(node)
        self._writable(identity).install(index, successor)
        return successor.material

    def export_shared_key(self, key_index: int) -> bytes:
        """The shared key material at `key_index` (as set, or ratcheted since)."""
        call = "export_shared_key"
        index = self._slot(call, key_index)
        node = self._shared.nodes[index] if self._shared is not None else None
        if node is None:
            raise LocalProtocolError(f"{call}: no shared key at key index {index}", call=call)
        return node.material

    def export_key(self, participant_identity: str, key_index: int) -> bytes:
        """`participant_identity`'s key material at `key_index`; in shared-key mode the shared
        key unless that participant has keys of its own."""
        call = "export_key"
        identity = _check_identity(call, participant_identity)
        index = self._slot(call, key_index)
        ring = self._view(identity)
        node = ring.nodes[index] if ring is not None else None
        if node is None:
            raise LocalProtocolError(
                f"{call}: no key for {identity!r} at key index {index}", call=call
            )
        return node.material

    # -- lkproto's additions

    def current_key_index(self, participant_identity: str) -> int:
        """The key index `participant_identity` encrypts with: the slot set or ratcheted last
        (0 before any key)."""
        ring = self._view(_check_identity("current_key_index", participant_identity))
        return ring.current if ring is not None else 0

    def forget_participant(self, participant_identity: str) -> None:
        """Drop a departed participant's copy of the shared ring (its ratchets and failure
        counts). Keys given with `set_key` stay."""
        self._copies.pop(_check_identity("forget_participant", participant_identity), None)

    def add_ratchets(self, material: bytes, chain: Sequence[tuple[bytes, bytes]]) -> None:
        """Cache ratchets derived elsewhere (`RatchetsNeeded.derive`, `ratchet_chain`):
        `chain[0]` is what one ratchet makes of `material`, each next entry one ratchet of
        the one before, each a (32-byte material, 16-byte AES key) pair. Successors already
        cached are kept. Raises `LocalProtocolError` (caching nothing) for a malformed chain.
        """
        call = "add_ratchets"
        previous = _check_bytes(call, "material", material)
        checked: list[tuple[bytes, bytes]] = []
        for entry in chain:
            if not (isinstance(entry, tuple) and len(entry) == 2):
                raise LocalProtocolError(
                    f"{call}: each entry must be a (material, key) pair", call=call
                )
            step = _check_bytes(call, "a ratcheted material", entry[0])
            key = _check_bytes(call, "a key", entry[1])
            if len(step) != RATCHET_LENGTH or len(key) != KEY_LENGTH:
                raise LocalProtocolError(
                    f"{call}: a ratchet is a {RATCHET_LENGTH}-byte material and a "
                    f"{KEY_LENGTH}-byte key, not {len(step)} and {len(key)} bytes",
                    call=call,
                )
            checked.append((step, key))
        for step, key in checked:
            successor = self._successors.get(previous)
            if successor is None:
                successor = self._successors[previous] = _Node(step, key)
                if len(self._successors) > self.max_cached_ratchets:
                    self._successors.popitem(last=False)
            else:
                self._successors.move_to_end(previous)
            previous = successor.material

    # -- used by DataCryptor

    def _seal(self, call: str, identity: str, plaintext: bytes, iv: bytes) -> Encrypted:
        ring = self._view(identity)
        index = ring.current if ring is not None else 0
        node = ring.nodes[index] if ring is not None else None
        if node is None:
            raise LocalProtocolError(
                f"{call}: no key for {identity!r} at key index {index} to encrypt with "
                "(set_shared_key, or set_key for our own identity)",
                call=call,
            )
        return Encrypted(key_index=index, iv=iv, data=node.aead.encrypt(iv, plaintext, None))

    def _unseal(
        self, identity: str, key_index: int, iv: bytes, data: bytes, *, offload: bool = False
    ) -> Decrypted | DecryptionFailed | RatchetsNeeded:
        def failed(reason: DecryptionFailure, detail: str) -> DecryptionFailed:
            return DecryptionFailed(
                participant_identity=identity, key_index=key_index, reason=reason, detail=detail
            )

        if len(iv) != IV_LENGTH or len(data) < TAG_LENGTH:
            return failed(
                DecryptionFailure.MALFORMED_ENVELOPE,
                f"IV of {len(iv)} bytes (not {IV_LENGTH}), {len(data)} bytes of data "
                f"(a tag alone is {TAG_LENGTH})",
            )
        if key_index >= self._size:
            return failed(
                DecryptionFailure.MISSING_KEY,
                f"key index {key_index} is outside the key ring of {self._size}",
            )
        ring = self._view(identity)
        node = ring.nodes[key_index] if ring is not None else None
        if ring is None or node is None:
            return failed(DecryptionFailure.MISSING_KEY, "no key for this participant and index")
        tolerance = self._options.failure_tolerance
        if 0 <= tolerance < ring.failures[key_index]:
            return failed(
                DecryptionFailure.KEY_INVALID,
                f"the key failed more than failure_tolerance={tolerance} times in a row",
            )
        plaintext = _open(node.aead, iv, data)
        if plaintext is not None:
            ring.failures[key_index] = 0
            return Decrypted(plaintext=plaintext, key_index=key_index)
        derive = node.cooldown == 0
        tried, step = 0, node
        window = self._options.ratchet_window_size
        for ratchets in range(1, window + 1):
            successor = self._successor(step, derive=derive and not offload)
            if successor is None:
                if derive and offload:  # nothing counted: the caller derives, then retries
                    return RatchetsNeeded(
                        participant_identity=identity,
                        key_index=key_index,
                        material=step.material,
                        steps=window - ratchets + 1,
                        salt=self._options.ratchet_salt,
                        kdf=self._options.key_derivation_function,
                    )
                break
            tried = ratchets
            plaintext = _open(successor.aead, iv, data)
            if plaintext is not None:
                self._writable(identity).install(key_index, successor)
                return Decrypted(plaintext=plaintext, key_index=key_index, ratchets=ratchets)
            step = successor
        if not derive:
            node.cooldown -= 1
        elif self._options.ratchet_window_size:
            node.cooldown = self.ratchet_retry_interval
        if tolerance >= 0:
            self._writable(identity).failures[key_index] += 1
        return failed(
            DecryptionFailure.DECRYPTION_FAILED,
            f"the key and {tried} of {self._options.ratchet_window_size} ratchets failed"
            + ("" if derive else " (retrying cached ratchets only)"),
        )

    # -- internals

    def _slot(self, call: str, key_index: object) -> int:
        return _check_index(call, key_index) % self._size

    def _derive(self, secret: bytes, length: int) -> bytes:
        self._derivations += 1
        options = self._options
        return derive_bits(options.key_derivation_function, secret, options.ratchet_salt, length)

    def _install(self, material: bytes) -> _Node:
        return _Node(material, self._derive(material, KEY_LENGTH))

    def _successor(self, node: _Node, *, derive: bool) -> _Node | None:
        """The node one ratchet after `node`: cached, derived (if `derive`), or None."""
        if derive:
            return self._ratchet(node)
        successor = self._successors.get(node.material)
        if successor is not None:
            self._successors.move_to_end(node.material)
        return successor

    def _ratchet(self, node: _Node) -> _Node:
        """The node one ratchet after `node`, from the cache or derived (two KDF runs)."""
        successor = self._successors.get(node.material)
        if successor is not None:
            self._successors.move_to_end(node.material)
            return successor
        material = self._derive(node.material, RATCHET_LENGTH)
        successor = _Node(material, self._derive(material, KEY_LENGTH))
        self._successors[node.material] = successor
        if len(self._successors) > self.max_cached_ratchets:
            self._successors.popitem(last=False)
        return successor

    def _rings(self) -> list[_Ring]:
        shared = [self._shared] if self._shared is not None else []
        return [*shared, *self._own.values(), *self._copies.values()]

    def _view(self, identity: str) -> _Ring | None:
        """The ring `identity` reads: its own, its copy, or the shared one."""
        ring = self._own.get(identity)
        if ring is not None:
            return ring
        ring = self._copies.get(identity)
        if ring is not None:
            self._copies.move_to_end(identity)
            return ring
        return self._shared

    def _writable(self, identity: str) -> _Ring:
        """The ring of `identity` to change, copying the shared one first if need be.

        Only called once `_view(identity)` found a key, so one of the three exists.
        """
        ring = self._own.get(identity) or self._copies.get(identity)
        if ring is not None:
            return ring
        if self._shared is None:
            raise AssertionError("a key was found for an identity with no ring")
        ring = self._copies[identity] = self._shared.copy()
        if len(self._copies) > self.max_cloned_identities:
            self._copies.popitem(last=False)
        return ring


# -- the cryptor ------------------------------------------------------------------------------


class DataCryptor:
    """Encrypts what we send and decrypts what peers send, with a `KeyProvider`'s keys.

    IVs come from the caller (`iv=`) or from `iv_source`, a callable returning 12 bytes that
    never repeat under one key (an adapter passes `lambda: os.urandom(12)`). Encryption is
    local: a missing key or IV raises `LocalProtocolError`. Decryption never raises for what a
    peer sent: it returns `DecryptionFailed`.
    """

    def __init__(
        self, key_provider: KeyProvider, *, iv_source: Callable[[], bytes] | None = None
    ) -> None:
        if not isinstance(key_provider, KeyProvider):
            raise TypeError(
                f"key_provider must be a KeyProvider, not {type(key_provider).__name__}"
            )
        self._keys = key_provider
        self._iv_source = iv_source

    @property
    def key_provider(self) -> KeyProvider:
        """The keys used."""
        return self._keys

    # -- raw data

    def encrypt(
        self, participant_identity: str, plaintext: bytes, *, iv: bytes | None = None
    ) -> Encrypted:
        """Encrypt `plaintext` with `participant_identity`'s current key (our own identity)."""
        return self._encrypt("encrypt", participant_identity, plaintext, iv)

    def decrypt(
        self, participant_identity: str, key_index: int, iv: bytes, data: bytes
    ) -> Decrypted | DecryptionFailed:
        """Decrypt `data` (ciphertext || tag) that `participant_identity` sent under
        `key_index` with `iv`, ratcheting within the window if need be."""
        call = "decrypt"
        identity = _check_identity(call, participant_identity)
        index = _check_index(call, key_index)
        return _settled(
            self._keys._unseal(
                identity, index, _check_bytes(call, "iv", iv), _check_bytes(call, "data", data)
            )
        )

    # -- data packets

    def encrypt_packet(
        self, packet: dpb.DataPacket, *, participant_identity: str, iv: bytes | None = None
    ) -> dpb.DataPacket:
        """`packet` with its value in `encrypted_packet`, if it is of an encrypted kind.

        A new DataPacket keeping kind, participant_identity, destination_identities, sequence
        and participant_sid in clear; `packet` itself is returned, unchanged, when its value
        is of a clear kind, `encrypted_packet` already, or unset. Encrypts with
        `participant_identity`'s (our own) current key.
        """
        call = "encrypt_packet"
        if not isinstance(packet, dpb.DataPacket):
            raise LocalProtocolError(
                f"{call}: packet must be a DataPacket, not {type(packet).__name__}", call=call
            )
        kind = packet.WhichOneof("value")
        if kind not in ENCRYPTED_KINDS:
            return packet
        payload = dpb.EncryptedPacketPayload()
        getattr(payload, kind).CopyFrom(getattr(packet, kind))
        sealed = self._encrypt(call, participant_identity, payload.SerializeToString(), iv)
        out = _outer(packet)
        out.encrypted_packet.CopyFrom(
            dpb.EncryptedPacket(
                encryption_type=dpb.Encryption.GCM,
                iv=sealed.iv,
                key_index=sealed.key_index,
                encrypted_value=sealed.data,
            )
        )
        return out

    def decrypt_packet(self, packet: dpb.DataPacket) -> DecryptedPacket | DecryptionFailed:
        """`packet` with the plain value of its `encrypted_packet`, read with the key of its
        outer participant_identity; a packet sent in clear comes back as it is."""
        result = self._decrypt_packet("decrypt_packet", packet, offload=False)
        assert not isinstance(result, RatchetsNeeded)  # KDF runs allowed: nothing left over
        return result

    def try_decrypt_packet(
        self, packet: dpb.DataPacket
    ) -> DecryptedPacket | DecryptionFailed | RatchetsNeeded:
        """As `decrypt_packet`, but never runs a KDF: `RatchetsNeeded` when the ratchet
        window needs what is not derived yet (derive it, `KeyProvider.add_ratchets`, retry)."""
        return self._decrypt_packet("try_decrypt_packet", packet, offload=True)

    def _decrypt_packet(
        self, call: str, packet: dpb.DataPacket, *, offload: bool
    ) -> DecryptedPacket | DecryptionFailed | RatchetsNeeded:
        if not isinstance(packet, dpb.DataPacket):
            raise LocalProtocolError(
                f"{call}: packet must be a DataPacket, not {type(packet).__name__}", call=call
            )
        if packet.WhichOneof("value") != "encrypted_packet":
            return DecryptedPacket(packet=packet, encryption_type=EncryptionType.NONE)
        envelope = packet.encrypted_packet
        identity = packet.participant_identity
        opened = self._keys._unseal(
            identity, envelope.key_index, envelope.iv, envelope.encrypted_value, offload=offload
        )
        if not isinstance(opened, Decrypted):
            return opened
        try:
            payload = dpb.EncryptedPacketPayload.FromString(opened.plaintext)
        except DecodeError as exc:
            detail = f"the payload is not an EncryptedPacketPayload: {exc}"
            kind = None
        else:
            kind = payload.WhichOneof("value")
            detail = "the payload carries no value this schema knows"
        if kind is None:
            return DecryptionFailed(
                participant_identity=identity,
                key_index=envelope.key_index,
                reason=DecryptionFailure.MALFORMED_PAYLOAD,
                detail=detail,
            )
        out = _outer(packet)
        getattr(out, kind).CopyFrom(getattr(payload, kind))
        return DecryptedPacket(
            packet=out,
            encryption_type=EncryptionType.GCM,
            key_index=opened.key_index,
            ratchets=opened.ratchets,
        )

    # -- data-track frames

    def encrypt_frame(
        self, publisher_identity: str, frame: bytes, *, iv: bytes | None = None
    ) -> Encrypted:
        """Encrypt a whole data-track frame (before packetization) with the publisher's (our)
        current key: the E2EE extension carries `key_index` (< 256) and `iv`, the packets
        carry `data`."""
        return self._encrypt("encrypt_frame", publisher_identity, frame, iv)

    def decrypt_frame(
        self, publisher_identity: str, key_index: int, iv: bytes, payload: bytes
    ) -> Decrypted | DecryptionFailed:
        """Decrypt a reassembled data-track frame with the key of the track's publisher, at
        the key index and IV of its E2EE extension."""
        return _settled(self._frame("decrypt_frame", publisher_identity, key_index, iv, payload))

    def try_decrypt_frame(
        self, publisher_identity: str, key_index: int, iv: bytes, payload: bytes
    ) -> Decrypted | DecryptionFailed | RatchetsNeeded:
        """As `decrypt_frame`, but never runs a KDF (see `try_decrypt_packet`)."""
        return self._frame(
            "try_decrypt_frame", publisher_identity, key_index, iv, payload, offload=True
        )

    def _frame(
        self,
        call: str,
        publisher_identity: str,
        key_index: int,
        iv: bytes,
        payload: bytes,
        *,
        offload: bool = False,
    ) -> Decrypted | DecryptionFailed | RatchetsNeeded:
        identity = _check_identity(call, publisher_identity)
        index = _check_index(call, key_index)
        iv = _check_bytes(call, "iv", iv)
        return self._keys._unseal(
            identity, index, iv, _check_bytes(call, "payload", payload), offload=offload
        )

    # -- internals

    def _encrypt(self, call: str, identity: object, plaintext: object, iv: object) -> Encrypted:
        checked = _check_identity(call, identity)
        data = _check_bytes(call, "plaintext", plaintext)
        if iv is None:
            if self._iv_source is None:
                raise LocalProtocolError(
                    f"{call}: no iv given and this DataCryptor has no iv_source", call=call
                )
            iv = self._iv_source()
        nonce = _check_bytes(call, "iv", iv)
        if len(nonce) != IV_LENGTH:
            raise LocalProtocolError(
                f"{call}: the IV must be {IV_LENGTH} bytes, not {len(nonce)}", call=call
            )
        return self._keys._seal(call, checked, data, nonce)


def _settled(result: Decrypted | DecryptionFailed | RatchetsNeeded) -> Decrypted | DecryptionFailed:
    assert not isinstance(result, RatchetsNeeded)  # KDF runs allowed: nothing left over
    return result


def _outer(packet: dpb.DataPacket) -> dpb.DataPacket:
    """A DataPacket with `packet`'s clear fields and no value."""
    return dpb.DataPacket(
        kind=packet.kind,
        participant_identity=packet.participant_identity,
        destination_identities=packet.destination_identities,
        sequence=packet.sequence,
        participant_sid=packet.participant_sid,
    )
