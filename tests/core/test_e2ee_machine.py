"""Hypothesis drives lkproto.e2ee's KeyProvider and DataCryptor through random sequences of
verbs and peer packets, against a model of the key rings written from protocol-reference-2
§2.5 (native semantics): shared ring, per-participant rings, copies made on first change,
set_shared_key/ratchet_shared_key writing every ring, the ratchet window, and restore on
failure. After every step each identity's keys, current index and the shared ring must equal
the model's."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from lkproto.e2ee import (
    DataCryptor,
    Decrypted,
    DecryptionFailed,
    DecryptionFailure,
    KeyDerivationFunction,
    KeyProvider,
    KeyProviderOptions,
    aes_gcm_encrypt,
    derive_encryption_key,
    ratchet_material,
)
from lkproto.errors import LocalProtocolError

HKDF = KeyDerivationFunction.HKDF
SALT = b"model salt"
SIZE = 4
WINDOW = 3
IV = bytes(range(12))
IDENTITIES = ("me", "alice", "bob", "carol")
KEYS = (b"k0", b"k1", b"k2")

identities = st.sampled_from(IDENTITIES)
keys = st.sampled_from(KEYS)
local_indexes = st.integers(0, 2 * SIZE + 1)
remote_indexes = st.integers(0, SIZE + 1)

_Ring = tuple[list[bytes | None], list[int]]  # slots, [current]


def _ratchet(material: bytes, times: int = 1) -> bytes:
    for _ in range(times):
        material = ratchet_material(material, SALT, HKDF)
    return material


def _seal(material: bytes, plaintext: bytes) -> bytes:
    return aes_gcm_encrypt(derive_encryption_key(material, SALT, HKDF), IV, plaintext)


def _new_ring() -> _Ring:
    return [None] * SIZE, [0]


def _copy(ring: _Ring) -> _Ring:
    return list(ring[0]), list(ring[1])


def _put(ring: _Ring, index: int, material: bytes) -> None:
    ring[0][index] = material
    ring[1][0] = index


class KeyRingMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        opts = KeyProviderOptions(
            ratchet_salt=SALT,
            ratchet_window_size=WINDOW,
            key_ring_size=SIZE,
            key_derivation_function=HKDF,
        )
        self.keys = KeyProvider(opts, max_cloned_identities=100, max_cached_ratchets=10_000)
        self.cryptor = DataCryptor(self.keys)
        self.shared: _Ring | None = None
        self.own: dict[str, _Ring] = {}
        self.copies: dict[str, _Ring] = {}

    # -- the model

    def view(self, identity: str) -> _Ring | None:
        return self.own.get(identity) or self.copies.get(identity) or self.shared

    def writable(self, identity: str) -> _Ring:
        ring = self.own.get(identity) or self.copies.get(identity)
        if ring is None:
            assert self.shared is not None
            ring = self.copies[identity] = _copy(self.shared)
        return ring

    def all_rings(self) -> list[_Ring]:
        return [*([self.shared] if self.shared else []), *self.own.values(), *self.copies.values()]

    # -- local verbs

    @rule(key=keys, index=local_indexes)
    def set_shared_key(self, key: bytes, index: int) -> None:
        self.keys.set_shared_key(key, index)
        if self.shared is None:
            self.shared = _new_ring()
        for ring in self.all_rings():
            _put(ring, index % SIZE, key)

    @rule(identity=identities, key=keys, index=local_indexes)
    def set_key(self, identity: str, key: bytes, index: int) -> None:
        self.keys.set_key(identity, key, index)
        ring = self.own.get(identity) or self.copies.pop(identity, None)
        if ring is None:
            ring = _copy(self.shared) if self.shared else _new_ring()
        self.own[identity] = ring
        _put(ring, index % SIZE, key)

    @rule(index=local_indexes)
    def ratchet_shared_key(self, index: int) -> None:
        slot = index % SIZE
        material = self.shared[0][slot] if self.shared else None
        if material is None:
            with pytest.raises(LocalProtocolError, match="no shared key"):
                self.keys.ratchet_shared_key(index)
            return
        new = _ratchet(material)
        assert self.keys.ratchet_shared_key(index) == new
        for ring in self.all_rings():
            _put(ring, slot, new)

    @rule(identity=identities, index=local_indexes)
    def ratchet_key(self, identity: str, index: int) -> None:
        slot = index % SIZE
        ring = self.view(identity)
        material = ring[0][slot] if ring else None
        if material is None:
            with pytest.raises(LocalProtocolError, match="no key for"):
                self.keys.ratchet_key(identity, index)
            return
        new = _ratchet(material)
        assert self.keys.ratchet_key(identity, index) == new
        _put(self.writable(identity), slot, new)

    @rule(identity=identities)
    def forget_participant(self, identity: str) -> None:
        self.keys.forget_participant(identity)
        self.copies.pop(identity, None)

    @rule(identity=identities, plaintext=st.binary(max_size=40))
    def encrypt_and_read_back(self, identity: str, plaintext: bytes) -> None:
        ring = self.view(identity)
        index = ring[1][0] if ring else 0
        material = ring[0][index] if ring else None
        if material is None:
            with pytest.raises(LocalProtocolError, match="to encrypt with"):
                self.cryptor.encrypt(identity, plaintext, iv=IV)
            return
        sealed = self.cryptor.encrypt(identity, plaintext, iv=IV)
        assert (sealed.key_index, sealed.data) == (index, _seal(material, plaintext))
        opened = self.cryptor.decrypt(identity, index, IV, sealed.data)
        assert opened == Decrypted(plaintext=plaintext, key_index=index)

    # -- what peers send

    @rule(
        identity=identities,
        index=remote_indexes,
        ratchets=st.integers(0, WINDOW + 2),
        plaintext=st.binary(max_size=40),
        tamper=st.booleans(),
    )
    def peer_packet(
        self, identity: str, index: int, ratchets: int, plaintext: bytes, tamper: bool
    ) -> None:
        ring = self.view(identity)
        material = ring[0][index] if ring and index < SIZE else None
        data = _seal(_ratchet(material or b"unknown", ratchets), plaintext)
        if tamper:
            data = data[:-1] + bytes((data[-1] ^ 0x80,))
        result = self.cryptor.decrypt(identity, index, IV, data)
        if material is None:
            assert isinstance(result, DecryptionFailed)
            assert result.reason is DecryptionFailure.MISSING_KEY
        elif tamper or ratchets > WINDOW:
            assert isinstance(result, DecryptionFailed)
            assert result.reason is DecryptionFailure.DECRYPTION_FAILED
        else:
            assert result == Decrypted(plaintext=plaintext, key_index=index, ratchets=ratchets)
            if ratchets:
                _put(self.writable(identity), index, _ratchet(material, ratchets))

    # -- the invariant

    @invariant()
    def keys_match_the_model(self) -> None:
        for identity in (*IDENTITIES, "stranger"):
            ring = self.view(identity)
            assert self.keys.current_key_index(identity) == (ring[1][0] if ring else 0)
            for index in range(SIZE):
                expected = ring[0][index] if ring else None
                if expected is None:
                    with pytest.raises(LocalProtocolError):
                        self.keys.export_key(identity, index)
                else:
                    assert self.keys.export_key(identity, index) == expected
        for index in range(SIZE):
            expected = self.shared[0][index] if self.shared else None
            if expected is None:
                with pytest.raises(LocalProtocolError):
                    self.keys.export_shared_key(index)
            else:
                assert self.keys.export_shared_key(index) == expected
        assert self.keys.shared_key_mode == (self.shared is not None)
        assert self.keys.cloned_identities == len(self.copies)


KeyRingMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestKeyRing = KeyRingMachine.TestCase
