"""Known-answer tests for lkproto.e2ee: the client-sdk-js ratchet snapshot, RFC 5869 (HKDF),
RFC 7914 §11 (PBKDF2-HMAC-SHA256), and LiveKit's derivation parameters checked against
independent implementations (hashlib, and HKDF written here from RFC 5869 with hmac)."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from lkproto.e2ee import (
    DEFAULT_RATCHET_SALT,
    HKDF_INFO,
    DataCryptor,
    Decrypted,
    KeyDerivationFunction,
    KeyProvider,
    KeyProviderOptions,
    aes_gcm_decrypt,
    aes_gcm_encrypt,
    derive_bits,
    derive_encryption_key,
    hkdf_sha256,
    pbkdf2_sha256,
    ratchet_material,
)

# client-sdk-js src/e2ee/worker/__snapshots__/ParticipantKeyHandler.test.ts.snap, test
# "ParticipantKeyHandler > ratchetKey > ratchets keys predictably": key material "password",
# PBKDF2 with the default salt, IV 12 zero bytes, no AAD, plaintext 0..16, and one ratchet
# between consecutive ciphertexts.
JS_SNAPSHOT_CIPHERTEXTS = [
    bytes.fromhex(h)
    for h in (
        "2ae25e3198124f0137befa508f1386dac837576675d982300b423f667390755ce8",
        "04a4784cace1110eb0ba6f050ab01d2a13d748e3cb8bdb93554e3ebfba7bf83c93",
        "3aad55a2d3c8c857d641da5c4a358fb73af21327e2b4cc7f6ddb9c98679ebaf0a1",
        "2e896b08eff8d9d66aea67226cb312ba05211f150930c2cdce8806b340967eaf84",
        "f97b56b31209952a6e701dc1d03f30760fba1b65171f6f98c1eb5919a1f6e7c67e",
        "3886c4c3f20abb7a6fb393ce4a992df4587719720b029579e3db270b0dafb6a860",
        "240c779d922a2b6b3d2bf2a60bb49427b1f8c2a6c935c0393e4625fcf39c8cb92a",
        "de7f20e463c61f9ec0655281af99702b39cff6367fa563fe04b22835425c0d4500",
        "f9b5b5a81b30ddddaebb1099909ca4e8b9ca843a4b9ce8eebf21091f972be088be",
        "3a63109794838a5ee65f265189a24e3df3cfff6d30f8d98785f8384a2971996cca",
    )
]
PLAINTEXT = bytes(range(17))
ZERO_IV = bytes(12)


def test_the_js_snapshot_vector_has_ten_ciphertexts_of_33_bytes() -> None:
    assert len(JS_SNAPSHOT_CIPHERTEXTS) == 10
    assert {len(c) for c in JS_SNAPSHOT_CIPHERTEXTS} == {33}  # 17 bytes + the 16-byte tag
    assert JS_SNAPSHOT_CIPHERTEXTS[0][:8] == bytes.fromhex("2ae25e3198124f01")


def test_the_pure_functions_reproduce_the_js_snapshot() -> None:
    material = b"password"
    produced = []
    for _ in range(10):
        key = derive_encryption_key(material)
        produced.append(aes_gcm_encrypt(key, ZERO_IV, PLAINTEXT))
        material = ratchet_material(material)
    assert produced == JS_SNAPSHOT_CIPHERTEXTS


def test_the_key_provider_and_cryptor_reproduce_the_js_snapshot() -> None:
    keys = KeyProvider(KeyProviderOptions(shared_key=b"password"))
    cryptor = DataCryptor(keys)
    produced = []
    for _ in range(10):
        sealed = cryptor.encrypt("me", PLAINTEXT, iv=ZERO_IV)
        assert (sealed.key_index, sealed.iv) == (0, ZERO_IV)
        produced.append(sealed.data)
        keys.ratchet_shared_key(0)
    assert produced == JS_SNAPSHOT_CIPHERTEXTS
    assert keys.derivations == 1 + 2 * 10  # the key of "password", then 10 ratchets


def test_a_receiver_ratchets_through_the_js_snapshot_to_read_each_ciphertext() -> None:
    """Ciphertext k needs k ratchets from "password": found within the window, kept after."""
    keys = KeyProvider(KeyProviderOptions(shared_key=b"password"))
    cryptor = DataCryptor(keys)
    for k in (0, 3, 9):
        opened = cryptor.decrypt("js", 0, ZERO_IV, JS_SNAPSHOT_CIPHERTEXTS[k])
        previous = {0: 0, 3: 0, 9: 3}[k]
        assert opened == Decrypted(plaintext=PLAINTEXT, key_index=0, ratchets=k - previous)
    # The participant's slot moved; the shared key did not.
    assert keys.export_key("js", 0) == _ratchet_n(b"password", 9)
    assert keys.export_shared_key(0) == b"password"


def _ratchet_n(material: bytes, n: int) -> bytes:
    for _ in range(n):
        material = hashlib.pbkdf2_hmac("sha256", material, DEFAULT_RATCHET_SALT, 100_000, 32)
    return material


# -- RFC 5869 appendix A.1-A.3 (HKDF-SHA256) --------------------------------------------------

RFC5869 = [
    (
        b"\x0b" * 22,
        bytes(range(0x0D)),
        bytes(range(0xF0, 0xFA)),
        42,
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
    ),
    (
        bytes(range(0x50)),
        bytes(range(0x60, 0xB0)),
        bytes(range(0xB0, 0x100)),
        82,
        "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
        "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
        "cc30c58179ec3e87c14c01d5c1f3434f1d87",
    ),
    (
        b"\x0b" * 22,
        b"",
        b"",
        42,
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
    ),
]


@pytest.mark.parametrize(("ikm", "salt", "info", "length", "okm"), RFC5869)
def test_hkdf_sha256_matches_rfc5869(
    ikm: bytes, salt: bytes, info: bytes, length: int, okm: str
) -> None:
    assert hkdf_sha256(ikm, salt, length, info).hex() == okm


# -- RFC 7914 §11 (PBKDF2-HMAC-SHA256) ----------------------------------------------------------


def test_pbkdf2_sha256_matches_rfc7914() -> None:
    assert pbkdf2_sha256(b"passwd", b"salt", 64, iterations=1).hex() == (
        "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
        "49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783"
    )
    assert pbkdf2_sha256(b"Password", b"NaCl", 64, iterations=80_000).hex() == (
        "4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56"
        "a1d425a1225833549adb841b51c9b3176a272bdebba1d078478f62b397f33c8d"
    )


# -- LiveKit's parameters against independent implementations --------------------------------


def _rfc5869(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    okm, block, counter = b"", b"", 1
    while len(okm) < length:
        block = hmac.new(prk, block + info + bytes((counter,)), hashlib.sha256).digest()
        okm, counter = okm + block, counter + 1
    return okm[:length]


def test_pbkdf2_derivation_uses_100000_iterations_of_sha256_and_the_salt() -> None:
    expected = hashlib.pbkdf2_hmac("sha256", b"secret", b"LKFrameEncryptionKey", 100_000, 16)
    assert derive_encryption_key(b"secret") == expected
    assert derive_bits(KeyDerivationFunction.PBKDF2, b"secret", b"pepper", 32) == (
        hashlib.pbkdf2_hmac("sha256", b"secret", b"pepper", 100_000, 32)
    )
    assert ratchet_material(b"secret") == _ratchet_n(b"secret", 1)


def test_hkdf_derivation_uses_128_zero_bytes_of_info_and_the_salt() -> None:
    assert bytes(128) == HKDF_INFO
    hkdf = KeyDerivationFunction.HKDF
    assert derive_encryption_key(b"secret", kdf=hkdf) == _rfc5869(
        b"secret", b"LKFrameEncryptionKey", bytes(128), 16
    )
    assert ratchet_material(b"secret", b"pepper", hkdf) == _rfc5869(
        b"secret", b"pepper", bytes(128), 32
    )
    assert derive_encryption_key(b"secret", kdf=hkdf).hex() == "aa171dcc5706c0ca29b39846258af84b"


def test_aes_gcm_round_trip_and_a_flipped_bit_fails() -> None:
    key = bytes(range(16))
    sealed = aes_gcm_encrypt(key, ZERO_IV, b"hello")
    assert len(sealed) == 5 + 16
    assert aes_gcm_decrypt(key, ZERO_IV, sealed) == b"hello"
    assert aes_gcm_decrypt(key, ZERO_IV, sealed[:-1] + bytes((sealed[-1] ^ 1,))) is None
    assert aes_gcm_decrypt(key, ZERO_IV, sealed[:15]) is None


def test_pure_functions_refuse_bad_lengths() -> None:
    with pytest.raises(ValueError, match="IV must be 12 bytes, not 8"):
        aes_gcm_encrypt(bytes(16), bytes(8), b"")
    with pytest.raises(ValueError, match="IV must be 12 bytes, not 13"):
        aes_gcm_decrypt(bytes(16), bytes(13), bytes(16))
    with pytest.raises(ValueError, match="positive int, not 0"):
        hkdf_sha256(b"x", b"y", 0)
    with pytest.raises(ValueError, match="positive int, not True"):
        pbkdf2_sha256(b"x", b"y", True)
    with pytest.raises(ValueError):
        derive_bits(7, b"x", b"y", 16)  # type: ignore[arg-type]
