"""lkproto.e2ee: options, the key provider's verbs, the ratchet window and its CPU bound,
failure tolerance, the DataPacket envelope for every kind, and data-track frames.

Most tests use HKDF (microseconds per derivation); PBKDF2 is covered by
test_e2ee_vectors.py and by the tests that say so.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import attrs
import pytest
from livekit.rtc import e2ee as official
from livekit.rtc._proto import e2ee_pb2 as official_proto

from lkproto._pb import data_pb2 as dpb
from lkproto._pb import metrics_pb2 as mpb
from lkproto.e2ee import (
    CLEAR_KINDS,
    DEFAULT_MAX_CACHED_RATCHETS,
    DEFAULT_MAX_CLONED_IDENTITIES,
    DEFAULT_RATCHET_RETRY_INTERVAL,
    ENCRYPTED_KINDS,
    DataCryptor,
    Decrypted,
    DecryptedPacket,
    DecryptionFailed,
    DecryptionFailure,
    E2EEOptions,
    Encrypted,
    EncryptionState,
    EncryptionType,
    KeyDerivationFunction,
    KeyProvider,
    KeyProviderOptions,
    RatchetsNeeded,
    aes_gcm_encrypt,
    derive_encryption_key,
    ratchet_chain,
    ratchet_material,
)
from lkproto.errors import LocalProtocolError

HKDF = KeyDerivationFunction.HKDF
SALT = b"LKFrameEncryptionKey"
IV = bytes(range(12))
KEY = b"correct horse battery staple"


def options(**fields: object) -> KeyProviderOptions:
    fields.setdefault("key_derivation_function", HKDF)
    return KeyProviderOptions(**fields)  # type: ignore[arg-type]


def shared(key: bytes = KEY, *, window: int = 16, **bounds: int) -> KeyProvider:
    return KeyProvider(options(shared_key=key, ratchet_window_size=window), **bounds)


def material_after(material: bytes, ratchets: int) -> bytes:
    for _ in range(ratchets):
        material = ratchet_material(material, SALT, HKDF)
    return material


def sealed_by(material: bytes, plaintext: bytes, *, ratchets: int = 0, iv: bytes = IV) -> bytes:
    """What a peer holding `material`, ratcheted `ratchets` times, sends."""
    key = derive_encryption_key(material_after(material, ratchets), SALT, HKDF)
    return aes_gcm_encrypt(key, iv, plaintext)


# -- options ----------------------------------------------------------------------------------


def test_options_have_livekit_rtc_names_order_and_defaults() -> None:
    theirs = [(f.name, f.default) for f in dataclasses.fields(official.KeyProviderOptions)]
    ours = KeyProviderOptions()
    assert [(name, getattr(ours, name)) for name, _ in theirs] == theirs
    assert [name for name, _ in theirs] == [
        "shared_key",
        "ratchet_salt",
        "ratchet_window_size",
        "failure_tolerance",
        "key_ring_size",
        "key_derivation_function",
    ]
    positional = KeyProviderOptions(b"k", b"salt", 4, 2, 8, 1)
    assert positional.key_derivation_function is KeyDerivationFunction.HKDF
    assert positional.key_ring_size == 8


def test_enums_have_the_official_numbers() -> None:
    assert {m.name: int(m) for m in KeyDerivationFunction} == dict(
        official_proto.KeyDerivationFunction.items()
    )
    assert {m.name: int(m) for m in EncryptionType} == dict(official_proto.EncryptionType.items())
    assert {m.name: int(m) for m in EncryptionState} == dict(official_proto.EncryptionState.items())
    assert dict(dpb.Encryption.Type.items()) == {m.name: int(m) for m in EncryptionType}


def test_options_accept_the_proto_enum_ints_and_bytes_likes() -> None:
    opts = KeyProviderOptions(
        shared_key=bytearray(b"k"),
        ratchet_salt=memoryview(b"s"),
        key_derivation_function=official_proto.KeyDerivationFunction.HKDF,
    )
    assert opts.shared_key == b"k" and type(opts.shared_key) is bytes
    assert opts.ratchet_salt == b"s"
    assert opts.key_derivation_function is KeyDerivationFunction.HKDF


@pytest.mark.parametrize(
    ("fields", "error", "message"),
    [
        ({"key_ring_size": 0}, ValueError, "key_ring_size must be 1..256, not 0"),
        ({"key_ring_size": 257}, ValueError, "key_ring_size must be 1..256, not 257"),
        ({"ratchet_window_size": -1}, ValueError, "ratchet_window_size must be >= 0, not -1"),
        ({"failure_tolerance": -2}, ValueError, "failure_tolerance must be >= -1, not -2"),
        ({"key_ring_size": True}, TypeError, "key_ring_size must be an int, not bool"),
        ({"ratchet_window_size": 1.5}, TypeError, "must be an int, not float"),
        ({"shared_key": "text"}, TypeError, "expected bytes, not str"),
        ({"ratchet_salt": None}, TypeError, "expected bytes, not NoneType"),
        ({"key_derivation_function": 2}, ValueError, "2 is not a valid KeyDerivationFunction"),
    ],
)
def test_options_refuse_bad_values(
    fields: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        KeyProviderOptions(**fields)  # type: ignore[arg-type]


def test_no_key_material_in_reprs() -> None:
    keys = shared(b"top-secret-material")
    cryptor = DataCryptor(keys, iv_source=lambda: IV)
    for value in (keys.options, keys, cryptor):
        assert "top-secret" not in repr(value)
    assert repr(keys.options).startswith("KeyProviderOptions(ratchet_salt=b'LKFrameEncryptionKey'")


def test_key_provider_bounds_are_checked() -> None:
    assert KeyProvider().ratchet_retry_interval == DEFAULT_RATCHET_RETRY_INTERVAL == 1000
    assert KeyProvider().max_cached_ratchets == DEFAULT_MAX_CACHED_RATCHETS == 1024
    assert KeyProvider().max_cloned_identities == DEFAULT_MAX_CLONED_IDENTITIES == 1024
    with pytest.raises(ValueError, match="ratchet_retry_interval must be an int >= 0, not -1"):
        KeyProvider(ratchet_retry_interval=-1)
    with pytest.raises(ValueError, match="max_cached_ratchets must be an int >= 1, not 0"):
        KeyProvider(max_cached_ratchets=0)
    with pytest.raises(ValueError, match="max_cloned_identities must be an int >= 1, not False"):
        KeyProvider(max_cloned_identities=False)
    with pytest.raises(TypeError, match="options must be KeyProviderOptions, not dict"):
        KeyProvider({"shared_key": b"k"})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="key_provider must be a KeyProvider, not NoneType"):
        DataCryptor(None)  # type: ignore[arg-type]


# -- the key provider -------------------------------------------------------------------------


def test_the_shared_key_is_installed_at_index_0_for_everyone() -> None:
    keys = shared()
    assert keys.shared_key_mode
    assert keys.derivations == 1
    assert keys.export_shared_key(0) == KEY
    assert keys.export_key("anyone", 0) == KEY
    assert keys.current_key_index("anyone") == 0
    assert keys.options.shared_key == KEY


def test_key_indexes_are_taken_modulo_the_ring_size() -> None:
    keys = KeyProvider(options(key_ring_size=4))
    keys.set_shared_key(b"k6", 6)
    assert keys.current_key_index("me") == 2
    assert keys.export_shared_key(2) == keys.export_shared_key(10) == b"k6"
    keys.set_key("bob", b"b5", 5)
    assert keys.current_key_index("bob") == 1
    assert keys.export_key("bob", 1) == b"b5"
    assert keys.export_key("bob", 2) == b"k6"  # shared-key mode: bob keeps the other slots


def test_per_participant_keys_need_every_identity() -> None:
    keys = KeyProvider(options())
    assert not keys.shared_key_mode
    assert keys.current_key_index("me") == 0
    keys.set_key("me", b"mine", 3)
    keys.set_key("bob", b"his", 0)
    assert keys.export_key("me", 3) == b"mine"
    assert keys.current_key_index("me") == 3
    with pytest.raises(LocalProtocolError, match=r"export_key: no key for 'carol' at key index 0"):
        keys.export_key("carol", 0)
    with pytest.raises(LocalProtocolError, match=r"export_key: no key for 'me' at key index 0"):
        keys.export_key("me", 0)
    with pytest.raises(LocalProtocolError, match="export_shared_key: no shared key at key index"):
        keys.export_shared_key(0)
    with pytest.raises(LocalProtocolError, match="ratchet_shared_key: no shared key at key index"):
        keys.ratchet_shared_key(0)
    with pytest.raises(LocalProtocolError, match=r"ratchet_key: no key for 'carol' at key index 1"):
        keys.ratchet_key("carol", 1)


def test_ratchet_shared_key_returns_the_new_material_and_updates_everyone() -> None:
    keys = shared()
    keys.set_key("bob", b"bob's own", 1)
    keys.ratchet_key("carol", 0)  # carol gets her own copy
    assert keys.cloned_identities == 1
    new = keys.ratchet_shared_key(0)
    assert new == ratchet_material(KEY, SALT, HKDF)
    assert len(new) == 32
    for who in ("anyone", "bob", "carol"):
        assert keys.export_key(who, 0) == new
    assert keys.export_key("bob", 1) == b"bob's own"
    assert keys.export_shared_key(0) == new


def test_ratchet_key_affects_one_participant() -> None:
    keys = shared()
    new = keys.ratchet_key("carol", 0)
    assert new == material_after(KEY, 1)
    assert keys.export_key("carol", 0) == new
    assert keys.export_key("dave", 0) == keys.export_shared_key(0) == KEY
    assert keys.ratchet_key("carol", 0) == material_after(KEY, 2)


def test_set_shared_key_overwrites_that_slot_of_every_participant() -> None:
    keys = KeyProvider(options())
    keys.set_key("bob", b"bob0", 0)
    keys.set_key("bob", b"bob1", 1)
    keys.set_shared_key(b"room", 1)  # a per-participant provider switches to shared-key mode
    assert keys.shared_key_mode
    assert keys.export_key("bob", 1) == b"room"
    assert keys.export_key("bob", 0) == b"bob0"
    assert keys.current_key_index("bob") == 1
    assert keys.export_key("someone else", 1) == b"room"
    with pytest.raises(LocalProtocolError, match="no key for 'someone else' at key index 0"):
        keys.export_key("someone else", 0)


def test_set_key_promotes_a_copy_and_forget_participant_drops_only_copies() -> None:
    keys = shared()
    keys.ratchet_key("carol", 0)
    assert keys.cloned_identities == 1
    keys.set_key("carol", b"carol1", 1)  # her copy becomes her own keys, ratchet included
    assert keys.cloned_identities == 0
    assert keys.export_key("carol", 0) == material_after(KEY, 1)
    keys.forget_participant("carol")
    assert keys.export_key("carol", 1) == b"carol1"
    keys.ratchet_key("dave", 0)
    keys.forget_participant("dave")
    keys.forget_participant("nobody")
    assert keys.cloned_identities == 0
    assert keys.export_key("dave", 0) == KEY  # reads the shared ring again


def test_copies_of_the_shared_ring_are_bounded_least_recently_used_first() -> None:
    keys = shared(max_cloned_identities=2)
    keys.ratchet_key("a", 0)
    keys.ratchet_key("b", 0)
    assert keys.export_key("a", 0) == material_after(KEY, 1)  # touches a: b is now the oldest
    keys.ratchet_key("c", 0)
    assert keys.cloned_identities == 2
    assert keys.export_key("b", 0) == KEY  # forgotten
    assert keys.export_key("a", 0) == keys.export_key("c", 0) == material_after(KEY, 1)


@pytest.mark.parametrize(
    ("call", "args", "message"),
    [
        ("set_key", ("bob", b"k", -1), "set_key: key_index must be an int >= 0, not -1"),
        ("set_key", ("bob", b"k", True), "set_key: key_index must be an int >= 0, not True"),
        ("set_key", (b"bob", b"k", 0), "set_key: participant_identity must be str, not bytes"),
        ("set_key", ("bob", "k", 0), "set_key: key must be bytes, not str"),
        ("set_shared_key", (None, 0), "set_shared_key: key must be bytes, not NoneType"),
        ("set_shared_key", (b"k", "0"), "set_shared_key: key_index must be an int >= 0, not '0'"),
        ("export_key", (1, 0), "export_key: participant_identity must be str, not int"),
        ("current_key_index", (None,), "current_key_index: participant_identity must be str"),
        ("forget_participant", (3,), "forget_participant: participant_identity must be str"),
    ],
)
def test_local_verbs_refuse_bad_arguments(
    call: str, args: tuple[object, ...], message: str
) -> None:
    keys = KeyProvider(options())
    with pytest.raises(LocalProtocolError, match=message) as raised:
        getattr(keys, call)(*args)
    assert raised.value.call == call
    assert keys.derivations == 0


def test_errors_never_carry_key_material() -> None:
    keys = KeyProvider(options())
    keys.set_key("bob", b"SECRET-KEY", 0)
    cryptor = DataCryptor(keys, iv_source=lambda: IV)
    for attempt in (
        lambda: keys.export_key("bob", 1),
        lambda: keys.ratchet_key("bob", 2),
        lambda: cryptor.encrypt("me", b"x"),
        lambda: keys.set_key("bob", "SECRET-KEY", 0),  # type: ignore[arg-type]
    ):
        with pytest.raises(LocalProtocolError) as raised:
            attempt()
        assert "SECRET" not in str(raised.value)


# -- encryption -------------------------------------------------------------------------------


def test_encrypt_uses_the_current_key_and_the_injected_iv() -> None:
    keys = shared()
    drawn: list[bytes] = []

    def iv_source() -> bytes:
        drawn.append(bytes((len(drawn),)) * 12)
        return drawn[-1]

    cryptor = DataCryptor(keys, iv_source=iv_source)
    first = cryptor.encrypt("me", b"hello")
    assert first == Encrypted(
        key_index=0, iv=bytes(12), data=sealed_by(KEY, b"hello", iv=bytes(12))
    )
    keys.set_shared_key(b"second", 5)
    second = cryptor.encrypt("me", bytearray(b"hello"))  # type: ignore[arg-type]
    assert (second.key_index, second.iv) == (5, b"\x01" * 12)
    given = cryptor.encrypt("me", b"hello", iv=IV)
    assert given.iv == IV and len(drawn) == 2
    assert cryptor.key_provider is keys


def test_encrypt_refuses_a_missing_iv_key_or_bad_types() -> None:
    keys = KeyProvider(options())
    with pytest.raises(LocalProtocolError, match="encrypt: no iv given and this DataCryptor"):
        DataCryptor(keys).encrypt("me", b"x")
    cryptor = DataCryptor(keys, iv_source=lambda: b"short")
    with pytest.raises(LocalProtocolError, match="encrypt: the IV must be 12 bytes, not 5"):
        cryptor.encrypt("me", b"x")
    with pytest.raises(LocalProtocolError, match="encrypt: iv must be bytes, not str"):
        cryptor.encrypt("me", b"x", iv="x" * 12)  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError, match="encrypt: plaintext must be bytes, not str"):
        cryptor.encrypt("me", "x", iv=IV)  # type: ignore[arg-type]
    with pytest.raises(
        LocalProtocolError,
        match=r"encrypt: no key for 'me' at key index 0 to encrypt with \(set_shared_key, or "
        r"set_key for our own identity\)",
    ):
        cryptor.encrypt("me", b"x", iv=IV)
    keys.set_key("me", b"k", 2)
    keys.set_key("bob", b"k", 3)  # another identity's key does not move our index
    assert cryptor.encrypt("me", b"x", iv=IV).key_index == 2


# -- decryption, the ratchet window -----------------------------------------------------------


def test_decrypt_round_trip() -> None:
    alice, bob = shared(), shared()
    sealed = DataCryptor(alice).encrypt("alice", b"payload", iv=IV)
    opened = DataCryptor(bob).decrypt("alice", sealed.key_index, sealed.iv, sealed.data)
    assert opened == Decrypted(plaintext=b"payload", key_index=0, ratchets=0)
    assert bob.derivations == 1


@pytest.mark.parametrize(
    ("key_index", "iv", "data", "reason", "detail"),
    [
        (0, bytes(11), bytes(32), DecryptionFailure.MALFORMED_ENVELOPE, "IV of 11 bytes"),
        (0, IV, bytes(15), DecryptionFailure.MALFORMED_ENVELOPE, "15 bytes of data"),
        (16, IV, bytes(32), DecryptionFailure.MISSING_KEY, "key index 16 is outside the key"),
        (2**32 - 1, IV, bytes(32), DecryptionFailure.MISSING_KEY, "outside the key ring of 16"),
        (1, IV, bytes(32), DecryptionFailure.MISSING_KEY, "no key for this participant and"),
    ],
)
def test_decrypt_reports_malformed_envelopes_and_missing_keys(
    key_index: int, iv: bytes, data: bytes, reason: DecryptionFailure, detail: str
) -> None:
    keys = shared()
    failed = DataCryptor(keys).decrypt("peer", key_index, iv, data)
    assert isinstance(failed, DecryptionFailed)
    assert (failed.participant_identity, failed.key_index, failed.reason) == (
        "peer",
        key_index,
        reason,
    )
    assert detail in failed.detail
    assert keys.derivations == 1  # nothing derived


def test_an_unknown_participant_has_no_key_in_per_participant_mode() -> None:
    keys = KeyProvider(options())
    keys.set_key("alice", KEY, 0)
    failed = DataCryptor(keys).decrypt("mallory", 0, IV, sealed_by(KEY, b"x"))
    assert isinstance(failed, DecryptionFailed)
    assert failed.reason is DecryptionFailure.MISSING_KEY
    assert failed.reason.state is EncryptionState.MISSING_KEY
    opened = DataCryptor(keys).decrypt("alice", 0, IV, sealed_by(KEY, b"x"))
    assert opened == Decrypted(plaintext=b"x", key_index=0)


def test_failure_states_map_to_encryption_states() -> None:
    assert {r: r.state for r in DecryptionFailure} == {
        DecryptionFailure.MALFORMED_ENVELOPE: EncryptionState.DECRYPTION_FAILED,
        DecryptionFailure.MISSING_KEY: EncryptionState.MISSING_KEY,
        DecryptionFailure.KEY_INVALID: EncryptionState.DECRYPTION_FAILED,
        DecryptionFailure.DECRYPTION_FAILED: EncryptionState.DECRYPTION_FAILED,
        DecryptionFailure.MALFORMED_PAYLOAD: EncryptionState.DECRYPTION_FAILED,
    }


def test_decrypt_refuses_arguments_no_peer_could_send() -> None:
    cryptor = DataCryptor(shared())
    with pytest.raises(LocalProtocolError, match="decrypt: key_index must be an int >= 0, not -1"):
        cryptor.decrypt("p", -1, IV, bytes(16))
    with pytest.raises(LocalProtocolError, match="decrypt: iv must be bytes, not list"):
        cryptor.decrypt("p", 0, [0] * 12, bytes(16))  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError, match="decrypt: data must be bytes, not NoneType"):
        cryptor.decrypt("p", 0, IV, None)  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError, match="decrypt: participant_identity must be str"):
        cryptor.decrypt(None, 0, IV, bytes(16))  # type: ignore[arg-type]


def test_a_ratchet_within_the_window_is_found_and_kept() -> None:
    keys = shared(window=4)
    cryptor = DataCryptor(keys)
    opened = cryptor.decrypt("alice", 0, IV, sealed_by(KEY, b"m", ratchets=4))
    assert opened == Decrypted(plaintext=b"m", key_index=0, ratchets=4)
    assert keys.derivations == 1 + 2 * 4
    assert keys.export_key("alice", 0) == material_after(KEY, 4)  # kept for alice
    assert keys.export_shared_key(0) == KEY  # not for anyone else
    assert keys.cloned_identities == 1
    again = cryptor.decrypt("alice", 0, IV, sealed_by(KEY, b"n", ratchets=4))
    assert again == Decrypted(plaintext=b"n", key_index=0, ratchets=0)
    assert keys.derivations == 1 + 2 * 4  # nothing more to derive


def test_beyond_the_window_nothing_decrypts_and_the_initial_key_is_kept() -> None:
    keys = shared(window=4)
    failed = DataCryptor(keys).decrypt("alice", 0, IV, sealed_by(KEY, b"m", ratchets=5))
    assert failed == DecryptionFailed(
        participant_identity="alice",
        key_index=0,
        reason=DecryptionFailure.DECRYPTION_FAILED,
        detail="the key and 4 of 4 ratchets failed",
    )
    assert keys.export_key("alice", 0) == KEY  # restored (never replaced)
    assert keys.cloned_identities == 0  # nothing of alice's changed
    assert keys.export_shared_key(0) == KEY


def test_a_zero_window_never_ratchets() -> None:
    keys = shared(window=0)
    failed = DataCryptor(keys).decrypt("alice", 0, IV, sealed_by(KEY, b"m", ratchets=1))
    assert isinstance(failed, DecryptionFailed)
    assert failed.detail == "the key and 0 of 0 ratchets failed"
    assert keys.derivations == 1
    again = DataCryptor(keys).decrypt("alice", 0, IV, sealed_by(KEY, b"m", ratchets=1))
    assert isinstance(again, DecryptionFailed)
    assert again.detail == "the key and 0 of 0 ratchets failed"  # no cooldown either


def test_a_ratchet_after_a_failure_affects_only_that_participants_copy() -> None:
    keys = shared(window=4)
    cryptor = DataCryptor(keys)
    assert isinstance(cryptor.decrypt("alice", 0, IV, sealed_by(KEY, b"a", ratchets=1)), Decrypted)
    # alice moved on; bob still uses the shared key, and alice's old key no longer reads hers.
    assert cryptor.decrypt("bob", 0, IV, sealed_by(KEY, b"b")) == Decrypted(
        plaintext=b"b", key_index=0
    )
    stale = cryptor.decrypt("alice", 0, IV, sealed_by(KEY, b"a"))
    assert isinstance(stale, DecryptionFailed)
    assert stale.reason is DecryptionFailure.DECRYPTION_FAILED
    # set_shared_key resets every copy.
    keys.set_shared_key(KEY, 0)
    assert cryptor.decrypt("alice", 0, IV, sealed_by(KEY, b"a")) == Decrypted(
        plaintext=b"a", key_index=0
    )


def test_a_successful_ratchet_makes_that_index_current_for_the_participant() -> None:
    keys = shared(window=2)
    keys.set_shared_key(b"other", 3)
    assert keys.current_key_index("alice") == 3
    sealed = sealed_by(KEY, b"x", ratchets=1)
    assert DataCryptor(keys).decrypt("alice", 0, IV, sealed) == Decrypted(
        plaintext=b"x", key_index=0, ratchets=1
    )
    assert keys.current_key_index("alice") == 0  # as native SetKeyFromMaterial and JS do
    assert keys.current_key_index("bob") == 3


def test_pbkdf2_ratchet_window_and_the_derivation_cost() -> None:
    """With the default KDF: a sender one ratchet ahead costs 2 PBKDF2 runs, once."""
    keys = KeyProvider(KeyProviderOptions(shared_key=b"password"))
    sender = KeyProvider(KeyProviderOptions(shared_key=b"password"))
    sender.ratchet_shared_key(0)
    sealed = DataCryptor(sender).encrypt("alice", b"hi", iv=IV)
    cryptor = DataCryptor(keys)
    assert cryptor.decrypt("alice", 0, IV, sealed.data) == Decrypted(
        plaintext=b"hi", key_index=0, ratchets=1
    )
    assert keys.derivations == 3
    assert keys.export_key("alice", 0) == sender.export_shared_key(0)


# -- the CPU bound ------------------------------------------------------------------------------


def test_after_a_failed_window_failing_packets_derive_nothing() -> None:
    keys = shared(window=16)
    cryptor = DataCryptor(keys)
    garbage = sealed_by(b"wrong key", b"x")
    first = cryptor.decrypt("mallory", 0, IV, garbage)
    assert isinstance(first, DecryptionFailed)
    assert keys.derivations == 1 + 2 * 16
    for _ in range(50):
        again = cryptor.decrypt("mallory", 0, IV, garbage)
        assert isinstance(again, DecryptionFailed)
        assert (
            again.detail == "the key and 16 of 16 ratchets failed (retrying cached ratchets only)"
        )
    # Other identities share the cached chain: a shared-key room derives one window.
    assert isinstance(cryptor.decrypt("eve", 0, IV, garbage), DecryptionFailed)
    assert keys.derivations == 1 + 2 * 16
    assert keys.cached_ratchets == 16
    # A real ratchet by the sender is still found, from the cache.
    assert cryptor.decrypt("alice", 0, IV, sealed_by(KEY, b"ok", ratchets=3)) == Decrypted(
        plaintext=b"ok", key_index=0, ratchets=3
    )
    assert keys.derivations == 1 + 2 * 16


def test_the_retry_interval_bounds_rederivation_when_the_cache_lost_the_window() -> None:
    keys = shared(window=4, max_cached_ratchets=2, ratchet_retry_interval=2)
    cryptor = DataCryptor(keys)
    garbage = sealed_by(b"wrong key", b"x")
    counts, details = [], []
    for _ in range(7):
        failed = cryptor.decrypt("mallory", 0, IV, garbage)
        assert isinstance(failed, DecryptionFailed)
        counts.append(keys.derivations)
        details.append(failed.detail)
    # A window derives 8; the cache keeps 2 of its 4 steps, not the first: the next 2 failing
    # packets find nothing cached and derive nothing; the third derives the window again.
    assert counts == [9, 9, 9, 17, 17, 17, 25]
    assert details[:3] == [
        "the key and 4 of 4 ratchets failed",
        "the key and 0 of 4 ratchets failed (retrying cached ratchets only)",
        "the key and 0 of 4 ratchets failed (retrying cached ratchets only)",
    ]
    assert keys.cached_ratchets == 2


def test_a_zero_retry_interval_derives_again_for_every_failing_packet() -> None:
    keys = shared(window=2, max_cached_ratchets=1, ratchet_retry_interval=0)
    cryptor = DataCryptor(keys)
    for expected in (5, 9, 13):  # each step evicts the other: both are derived again
        assert isinstance(cryptor.decrypt("m", 0, IV, sealed_by(b"no", b"x")), DecryptionFailed)
        assert keys.derivations == expected


def test_setting_a_key_again_starts_without_a_cooldown() -> None:
    keys = shared(window=2)
    cryptor = DataCryptor(keys)
    garbage = sealed_by(b"wrong key", b"x")
    cryptor.decrypt("m", 0, IV, garbage)
    cooling = cryptor.decrypt("m", 0, IV, garbage)
    assert isinstance(cooling, DecryptionFailed)
    assert cooling.detail.endswith("(retrying cached ratchets only)")
    assert keys.derivations == 5
    keys.set_shared_key(KEY, 0)  # the same material, set again: its key is derived (1)
    failed = cryptor.decrypt("m", 0, IV, garbage)
    assert isinstance(failed, DecryptionFailed)
    assert failed.detail == "the key and 2 of 2 ratchets failed"  # no cooldown
    assert keys.derivations == 6  # the window itself was still cached


# -- failure tolerance --------------------------------------------------------------------------


def test_a_key_failing_more_than_the_tolerance_is_not_tried_until_set_again() -> None:
    keys = KeyProvider(options(shared_key=KEY, ratchet_window_size=1, failure_tolerance=1))
    cryptor = DataCryptor(keys)
    good, bad = sealed_by(KEY, b"good"), sealed_by(b"wrong", b"bad")
    reasons = []
    for data in (bad, good, bad, bad, good, bad):
        result = cryptor.decrypt("alice", 0, IV, data)
        reasons.append(result.reason if isinstance(result, DecryptionFailed) else "ok")
    assert reasons == [
        DecryptionFailure.DECRYPTION_FAILED,
        "ok",  # a success resets the count
        DecryptionFailure.DECRYPTION_FAILED,
        DecryptionFailure.DECRYPTION_FAILED,
        DecryptionFailure.KEY_INVALID,  # 2 failures in a row > 1: not even a good packet
        DecryptionFailure.KEY_INVALID,
    ]
    invalid = cryptor.decrypt("alice", 0, IV, good)
    assert isinstance(invalid, DecryptionFailed)
    assert invalid.detail == "the key failed more than failure_tolerance=1 times in a row"
    assert keys.cloned_identities == 1  # the count is alice's alone
    assert cryptor.decrypt("bob", 0, IV, good) == Decrypted(plaintext=b"good", key_index=0)
    keys.ratchet_key("alice", 0)  # setting or ratcheting the key makes it valid again
    assert cryptor.decrypt("alice", 0, IV, sealed_by(KEY, b"r", ratchets=1)) == Decrypted(
        plaintext=b"r", key_index=0
    )


def test_tolerance_minus_one_never_invalidates_or_copies() -> None:
    keys = shared(window=1)
    cryptor = DataCryptor(keys)
    for _ in range(5):
        assert isinstance(cryptor.decrypt("a", 0, IV, sealed_by(b"no", b"x")), DecryptionFailed)
    assert keys.cloned_identities == 0
    assert cryptor.decrypt("a", 0, IV, sealed_by(KEY, b"x")) == Decrypted(
        plaintext=b"x", key_index=0
    )


# -- the DataPacket envelope --------------------------------------------------------------------

VALUES: dict[str, object] = {
    "user": dpb.UserPacket(
        participant_identity="alice",
        destination_identities=["bob"],
        payload=b"PLAINTEXT-user",
        topic="t",
    ),
    "chat_message": dpb.ChatMessage(id="c1", timestamp=5, message="PLAINTEXT-chat"),
    "rpc_request": dpb.RpcRequest(
        id="r1", method="echo", payload="PLAINTEXT-rpc", response_timeout_ms=7000, version=1
    ),
    "rpc_ack": dpb.RpcAck(request_id="PLAINTEXT-ack"),
    "rpc_response": dpb.RpcResponse(request_id="r1", payload="PLAINTEXT-response"),
    "stream_header": dpb.DataStream.Header(
        stream_id="s1",
        topic="PLAINTEXT-topic",
        mime_type="text/plain",
        text_header=dpb.DataStream.TextHeader(),
    ),
    "stream_chunk": dpb.DataStream.Chunk(stream_id="s1", chunk_index=3, content=b"PLAINTEXT-c"),
    "stream_trailer": dpb.DataStream.Trailer(stream_id="s1", reason="PLAINTEXT-trailer"),
}


def outgoing(kind: str) -> dpb.DataPacket:
    packet = dpb.DataPacket(
        kind=dpb.DataPacket.LOSSY,
        participant_identity="alice",
        destination_identities=["bob", "carol"],
        sequence=42,
        participant_sid="PA_alice",
    )
    getattr(packet, kind).CopyFrom(VALUES[kind])
    return packet


def test_the_kinds_match_the_schema() -> None:
    payload_kinds = {f.name for f in dpb.EncryptedPacketPayload.DESCRIPTOR.oneofs[0].fields}
    packet_kinds = {f.name for f in dpb.DataPacket.DESCRIPTOR.oneofs[0].fields}
    assert payload_kinds == ENCRYPTED_KINDS == set(VALUES)
    assert packet_kinds == ENCRYPTED_KINDS | CLEAR_KINDS | {"encrypted_packet"}


@pytest.mark.parametrize("kind", sorted(ENCRYPTED_KINDS))
def test_every_encrypted_kind_round_trips_with_the_outer_fields_in_clear(kind: str) -> None:
    alice, bob = shared(), shared()
    packet = outgoing(kind)
    sealed = DataCryptor(alice, iv_source=lambda: IV).encrypt_packet(
        packet, participant_identity="alice"
    )
    assert sealed.WhichOneof("value") == "encrypted_packet"
    assert (sealed.kind, sealed.participant_identity, list(sealed.destination_identities)) == (
        dpb.DataPacket.LOSSY,
        "alice",
        ["bob", "carol"],
    )
    assert (sealed.sequence, sealed.participant_sid) == (42, "PA_alice")
    envelope = sealed.encrypted_packet
    assert (envelope.encryption_type, envelope.iv, envelope.key_index) == (
        dpb.Encryption.GCM,
        IV,
        0,
    )
    payload = dpb.EncryptedPacketPayload()
    getattr(payload, kind).CopyFrom(VALUES[kind])
    assert envelope.encrypted_value == sealed_by(KEY, payload.SerializeToString())
    assert b"PLAINTEXT" not in sealed.SerializeToString()
    assert packet == outgoing(kind)  # the input is not changed
    opened = DataCryptor(bob).decrypt_packet(sealed)
    assert opened == DecryptedPacket(
        packet=packet, encryption_type=EncryptionType.GCM, key_index=0, ratchets=0
    )


@pytest.mark.parametrize("kind", sorted(CLEAR_KINDS))
def test_clear_kinds_are_left_untouched(kind: str) -> None:
    cryptor = DataCryptor(shared(), iv_source=lambda: IV)
    packet = dpb.DataPacket(participant_identity="alice")
    clear_values = {
        "speaker": dpb.ActiveSpeakerUpdate(speakers=[dpb.SpeakerInfo(sid="PA", level=0.5)]),
        "sip_dtmf": dpb.SipDTMF(code=3, digit="3"),
        "transcription": dpb.Transcription(transcribed_participant_identity="alice"),
        "metrics": mpb.MetricsBatch(timestamp_ms=1),
    }
    getattr(packet, kind).CopyFrom(clear_values[kind])
    assert cryptor.encrypt_packet(packet, participant_identity="alice") is packet
    assert cryptor.decrypt_packet(packet) == DecryptedPacket(
        packet=packet, encryption_type=EncryptionType.NONE
    )


def test_an_empty_or_already_encrypted_packet_is_left_untouched() -> None:
    cryptor = DataCryptor(shared(), iv_source=lambda: IV)
    empty = dpb.DataPacket(participant_identity="alice")
    assert cryptor.encrypt_packet(empty, participant_identity="alice") is empty
    sealed = cryptor.encrypt_packet(outgoing("user"), participant_identity="alice")
    assert cryptor.encrypt_packet(sealed, participant_identity="alice") is sealed


@pytest.mark.parametrize("encryption_type", [0, 1, 2, 99])
def test_any_encryption_type_is_accepted(encryption_type: int) -> None:
    """JS leaves it at NONE (protocol-reference-2 §2.7): presence decides."""
    cryptor = DataCryptor(shared(), iv_source=lambda: IV)
    sealed = cryptor.encrypt_packet(outgoing("rpc_ack"), participant_identity="alice")
    sealed.encrypted_packet.encryption_type = encryption_type  # type: ignore[assignment]
    opened = cryptor.decrypt_packet(dpb.DataPacket.FromString(sealed.SerializeToString()))
    assert isinstance(opened, DecryptedPacket)
    assert opened.encryption_type is EncryptionType.GCM
    assert opened.packet == outgoing("rpc_ack")


def test_the_key_of_the_outer_identity_is_used() -> None:
    keys = KeyProvider(options())
    keys.set_key("alice", b"alice key", 0)
    keys.set_key("bob", b"bob key", 0)
    cryptor = DataCryptor(keys, iv_source=lambda: IV)
    sealed = cryptor.encrypt_packet(outgoing("user"), participant_identity="alice")
    assert isinstance(cryptor.decrypt_packet(sealed), DecryptedPacket)
    sealed.participant_identity = "bob"  # the server stamps identities; a forged one fails
    failed = cryptor.decrypt_packet(sealed)
    assert isinstance(failed, DecryptionFailed)
    assert (failed.participant_identity, failed.reason) == (
        "bob",
        DecryptionFailure.DECRYPTION_FAILED,
    )


def test_a_wrong_key_gives_a_failure_value_with_the_outer_identity_and_index() -> None:
    sender = KeyProvider(options())
    sender.set_key("alice", b"not the room key", 7)
    sealed = DataCryptor(sender, iv_source=lambda: IV).encrypt_packet(
        outgoing("user"), participant_identity="alice"
    )
    receiver = shared(window=2)
    receiver.set_shared_key(KEY, 7)
    failed = DataCryptor(receiver).decrypt_packet(sealed)
    assert failed == DecryptionFailed(
        participant_identity="alice",
        key_index=7,
        reason=DecryptionFailure.DECRYPTION_FAILED,
        detail="the key and 2 of 2 ratchets failed",
    )


def _envelope(plaintext: bytes) -> dpb.DataPacket:
    return dpb.DataPacket(
        participant_identity="alice",
        encrypted_packet=dpb.EncryptedPacket(
            iv=IV, key_index=0, encrypted_value=sealed_by(KEY, plaintext)
        ),
    )


@pytest.mark.parametrize(
    ("plaintext", "detail"),
    [
        (b"\xff", "the payload is not an EncryptedPacketPayload: Error parsing message"),
        (b"", "the payload carries no value this schema knows"),
        (b"\x12\x00", "the payload carries no value this schema knows"),  # field 2, unused
        (b"\x52\x01x", "the payload carries no value this schema knows"),  # a future field 10
    ],
)
def test_a_payload_that_is_not_an_encrypted_packet_payload_is_reported(
    plaintext: bytes, detail: str
) -> None:
    failed = DataCryptor(shared()).decrypt_packet(_envelope(plaintext))
    assert isinstance(failed, DecryptionFailed)
    assert (failed.reason, failed.key_index, failed.participant_identity) == (
        DecryptionFailure.MALFORMED_PAYLOAD,
        0,
        "alice",
    )
    assert failed.detail.startswith(detail)


def test_decrypt_packet_reports_a_ratcheted_key() -> None:
    packet = outgoing("stream_chunk")
    payload = dpb.EncryptedPacketPayload(stream_chunk=packet.stream_chunk)
    sealed = _envelope(b"")
    sealed.encrypted_packet.encrypted_value = sealed_by(
        KEY, payload.SerializeToString(), ratchets=2
    )
    opened = DataCryptor(shared()).decrypt_packet(sealed)
    assert isinstance(opened, DecryptedPacket)
    assert (opened.ratchets, opened.key_index) == (2, 0)
    assert opened.packet.stream_chunk == packet.stream_chunk


def test_packet_verbs_refuse_what_is_not_a_data_packet() -> None:
    cryptor = DataCryptor(shared(), iv_source=lambda: IV)
    with pytest.raises(LocalProtocolError, match="encrypt_packet: packet must be a DataPacket"):
        cryptor.encrypt_packet(b"raw", participant_identity="a")  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError, match="decrypt_packet: packet must be a DataPacket"):
        cryptor.decrypt_packet(dpb.UserPacket())  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError, match="encrypt_packet: participant_identity must be"):
        cryptor.encrypt_packet(outgoing("user"), participant_identity=None)  # type: ignore[arg-type]


# -- data-track frames ------------------------------------------------------------------------


def test_a_data_track_frame_round_trips_with_the_publishers_key() -> None:
    publisher, subscriber = shared(), shared()
    publisher.set_shared_key(b"frames", 200)
    subscriber.set_shared_key(b"frames", 200)
    frame = bytes(range(256)) * 768  # 196 608 bytes, the Rust data_track_test e2ee payload
    sealed = DataCryptor(publisher, iv_source=lambda: IV).encrypt_frame("pub", frame)
    assert sealed.key_index == 200 % 16
    assert len(sealed.data) == len(frame) + 16
    opened = DataCryptor(subscriber).decrypt_frame("pub", sealed.key_index, sealed.iv, sealed.data)
    assert opened == Decrypted(plaintext=frame, key_index=8)
    truncated = DataCryptor(subscriber).decrypt_frame("pub", 8, IV, sealed.data[:-1])
    assert isinstance(truncated, DecryptionFailed)
    assert truncated.reason is DecryptionFailure.DECRYPTION_FAILED


def test_frame_verbs_check_their_arguments() -> None:
    cryptor = DataCryptor(shared(), iv_source=lambda: IV)
    with pytest.raises(LocalProtocolError, match="encrypt_frame: plaintext must be bytes"):
        cryptor.encrypt_frame("pub", "text")  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError, match="decrypt_frame: payload must be bytes"):
        cryptor.decrypt_frame("pub", 0, IV, "text")  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError, match="decrypt_frame: key_index must be an int"):
        cryptor.decrypt_frame("pub", "0", IV, bytes(16))  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError, match="decrypt_frame: participant_identity must"):
        cryptor.decrypt_frame(0, 0, IV, bytes(16))  # type: ignore[arg-type]


# -- purity ---------------------------------------------------------------------------------------


def test_importing_the_e2ee_module_loads_nothing_and_the_first_cipher_loads_cryptography() -> None:
    """Beyond its lkproto dependencies (the schema, the errors): no I/O, clock or randomness,
    and not `cryptography` either (a session without E2EE never needs it: issue 25,
    start-up); the first cipher or KDF imports it. The package's `__init__` (which loads
    everything, e2ee included, through `commands` and `events`) is bypassed by an empty
    package module."""
    probe = (
        "import sys, types, importlib.util; spec = importlib.util.find_spec('lkproto'); "
        "pkg = types.ModuleType('lkproto'); pkg.__path__ = spec.submodule_search_locations; "
        "sys.modules['lkproto'] = pkg; import attrs, lkproto.errors, lkproto._pb.data_pb2; "
        "before = set(sys.modules); import lkproto.e2ee; "
        "print('\\n'.join(sorted(set(sys.modules) - before))); print('--'); "
        "lkproto.e2ee.aes_gcm_decrypt(bytes(16), bytes(12), bytes(16)); "
        "print('\\n'.join(sorted(set(sys.modules) - before)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    ).stdout.split()
    at_import = out[: out.index("--")]
    loaded = {m.split(".")[0] for m in at_import}
    assert "cryptography" not in loaded
    assert "cryptography" in {m.split(".")[0] for m in out[out.index("--") + 1 :]}
    # test_purity.py's list: nothing that does I/O, reads a clock or draws randomness.
    banned = {
        "asyncio", "anyio", "trio", "threading", "socket", "ssl", "select", "time", "random",
        "secrets", "uuid", "aiortc", "aioice", "wsproto", "websockets", "subprocess",
        "selectors", "multiprocessing", "concurrent", "io", "pathlib", "shutil", "tempfile",
        "logging", "datetime", "signal", "http",
    }  # fmt: skip
    assert sorted(loaded & banned) == []


# -- the ratchet search done elsewhere (try_decrypt_*, RatchetsNeeded, add_ratchets) ---------------


def test_ratchet_chain_is_the_successive_ratchets_with_their_keys() -> None:
    chain = ratchet_chain(KEY, 3, SALT, HKDF)
    assert [m for m, _ in chain] == [material_after(KEY, n) for n in (1, 2, 3)]
    assert [k for _, k in chain] == [derive_encryption_key(m, SALT, HKDF) for m, _ in chain]
    with pytest.raises(ValueError, match="a derived length must be a positive int, not 0"):
        ratchet_chain(KEY, 0)


def test_try_decrypt_never_derives_and_says_what_it_needs() -> None:
    keys = shared()
    cryptor = DataCryptor(keys)
    sender = DataCryptor(shared())
    sender.key_provider.ratchet_shared_key(0)
    sender.key_provider.ratchet_shared_key(0)
    frame = sender.encrypt_frame("pub", b"frame", iv=IV)
    derivations = keys.derivations
    need = cryptor.try_decrypt_frame("pub", 0, IV, frame.data)
    assert isinstance(need, RatchetsNeeded)
    assert (need.participant_identity, need.key_index, need.steps) == ("pub", 0, 16)
    assert (need.material, need.salt, need.kdf) == (KEY, SALT, HKDF)
    assert "material" not in repr(need) and KEY.decode() not in repr(need)
    assert keys.derivations == derivations and keys.cached_ratchets == 0
    keys.add_ratchets(need.material, need.derive()[:1])  # one step: not enough yet
    more = cryptor.try_decrypt_frame("pub", 0, IV, frame.data)
    assert isinstance(more, RatchetsNeeded)
    assert (more.material, more.steps) == (material_after(KEY, 1), 15)
    keys.add_ratchets(more.material, more.derive())
    opened = cryptor.try_decrypt_frame("pub", 0, IV, frame.data)
    assert opened == Decrypted(plaintext=b"frame", key_index=0, ratchets=2)
    assert keys.derivations == derivations  # every KDF run happened outside


def test_try_decrypt_packet_needs_ratchets_and_then_reads_the_packet() -> None:
    keys = shared()
    sender = DataCryptor(shared(), iv_source=lambda: IV)
    sender.key_provider.ratchet_shared_key(0)
    packet = sender.encrypt_packet(
        dpb.DataPacket(user=dpb.UserPacket(payload=b"hi"), participant_identity="alice"),
        participant_identity="alice",
    )
    need = DataCryptor(keys).try_decrypt_packet(packet)
    assert isinstance(need, RatchetsNeeded) and need.steps == 16
    keys.add_ratchets(need.material, need.derive())
    opened = DataCryptor(keys).try_decrypt_packet(packet)
    assert isinstance(opened, DecryptedPacket) and opened.ratchets == 1
    assert opened.packet.user.payload == b"hi"


def test_add_ratchets_refuses_a_malformed_chain_whole_and_keeps_what_it_had() -> None:
    keys = shared()
    chain = ratchet_chain(KEY, 2, SALT, HKDF)
    bad: list[object] = [
        [chain[0], (chain[1][0],)],
        [chain[0], [chain[1][0], chain[1][1]]],
        [chain[0], (chain[1][0], "text")],
        [(chain[0][0][:16], chain[0][1])],
    ]
    for entry in bad:
        with pytest.raises(LocalProtocolError, match=r"^add_ratchets: "):
            keys.add_ratchets(KEY, entry)  # type: ignore[arg-type]
        assert keys.cached_ratchets == 0
    keys.add_ratchets(KEY, chain[:1])
    first = keys._successors[KEY]
    keys.add_ratchets(KEY, chain)  # the first step is cached already: kept as it was
    assert keys._successors[KEY] is first and keys.cached_ratchets == 2
    assert keys.ratchet_shared_key(0) == chain[0][0] and keys.derivations == 1  # cached


def test_e2ee_options_are_the_official_ones() -> None:
    ours = [(f.name, f.default) for f in attrs.fields(E2EEOptions)]
    theirs = [(f.name, f.default) for f in dataclasses.fields(official.E2EEOptions)]
    assert [name for name, _ in ours] == [name for name, _ in theirs]
    assert E2EEOptions() == E2EEOptions(KeyProviderOptions(), EncryptionType.GCM)
    assert E2EEOptions(encryption_type=official_proto.EncryptionType.GCM).encryption_type is (
        EncryptionType.GCM
    )
    for bad in (EncryptionType.NONE, EncryptionType.CUSTOM):
        with pytest.raises(ValueError, match="encryption_type must be GCM"):
            E2EEOptions(encryption_type=bad)
