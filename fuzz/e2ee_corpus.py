"""Writes the seed corpus of the `e2ee` fuzz target: `python -m fuzz.e2ee_corpus`.

No captured session has encrypted traffic yet (lkproto joins encrypted rooms only once issue
22 is integrated), so these seeds are built: packets that a peer holding the fuzz room's key
really encrypted (every encrypted kind; ratcheted within and beyond the window), hostile
envelopes (wrong key, cut tags, short IVs, key indexes outside the ring or near 2**32,
every encryption_type), payloads that decrypt to garbage, data-track frames, our own
packets read back, and the key verbs around them. The output is deterministic: the same
files every run (tests/fuzz checks that the committed corpus is exactly this).
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

from fuzz._framing import Record, encode, field
from fuzz._targets import (
    E2EE_IV,
    E2EE_KEYS,
    OPS,
    e2ee_payload,
    e2ee_ratchet,
    e2ee_seal,
)
from lkproto._pb import data_pb2 as dpb
from lkproto.e2ee import ENCRYPTED_KINDS

__all__ = ["main", "seeds"]

_OPS = OPS["e2ee"]
_ROOM = E2EE_KEYS[0]
_KIND_SEL = {kind: i for i, kind in enumerate(sorted(ENCRYPTED_KINDS))}


def _op(name: str, payload: bytes = b"") -> Record:
    return Record(_OPS.index(name), 0, payload)


def _packet(
    identity: str,
    value: bytes,
    *,
    key_index: int = 0,
    iv: bytes = E2EE_IV,
    encryption_type: int = 1,
) -> Record:
    packet = dpb.DataPacket(
        participant_identity=identity,
        destination_identities=["lk"],
        sequence=7,
        participant_sid="PA_" + identity,
        encrypted_packet=dpb.EncryptedPacket(
            encryption_type=encryption_type,  # type: ignore[arg-type]
            iv=iv,
            key_index=key_index,
            encrypted_value=value,
        ),
    )
    return _op("packet", packet.SerializeToString())


def _sealed_packet(identity: str, kind: str, body: bytes, *, ratchets: int = 0) -> Record:
    plaintext = e2ee_payload(_KIND_SEL[kind], body)
    return _packet(identity, e2ee_seal(e2ee_ratchet(_ROOM, ratchets), plaintext))


def _clear(**value: object) -> bytes:
    return dpb.DataPacket(participant_identity="alice", **value).SerializeToString()  # type: ignore[arg-type]


def seeds() -> list[bytes]:
    """Every seed, as fuzz inputs."""
    out: list[list[Record]] = []
    # A packet of every encrypted kind, from a peer with the room key.
    for kind in sorted(_KIND_SEL):
        out.append([_sealed_packet("alice", kind, b"hello " + kind.encode())])
    # Ratchets: within the window (kept), again from there, and beyond it (restored).
    out.append(
        [
            _sealed_packet("bob", "user", b"one", ratchets=1),
            _sealed_packet("bob", "user", b"three", ratchets=3),
            _sealed_packet("bob", "user", b"beyond", ratchets=8),
            _sealed_packet("carol", "user", b"shared"),
        ]
    )
    # A wrong key, again and again (the cooldown), then the right one; and the tolerance.
    wrong = e2ee_seal(E2EE_KEYS[1], e2ee_payload(0, b"x"))
    out.append([*[_packet("dave", wrong) for _ in range(6)], _sealed_packet("dave", "user", b"ok")])
    # Malformed envelopes.
    good = e2ee_seal(_ROOM, e2ee_payload(0, b"payload"))
    out.append(
        [
            _packet("alice", good[:15]),
            _packet("alice", b""),
            _packet("alice", good, iv=E2EE_IV[:11]),
            _packet("alice", good, iv=b""),
            _packet("alice", good, key_index=4),
            _packet("alice", good, key_index=2**32 - 1),
            _packet("alice", good, key_index=1),
        ]
    )
    out.append([_packet("alice", good, encryption_type=t) for t in (0, 2, 5)])
    # Payloads that decrypt to something that is not an EncryptedPacketPayload value.
    out.append(
        [
            _packet("alice", e2ee_seal(_ROOM, b"\xff")),
            _packet("alice", e2ee_seal(_ROOM, b"")),
            _packet("alice", e2ee_seal(_ROOM, b"\x12\x00")),
        ]
    )
    # The structured operations: envelope, sealed, frame.
    out.append(
        [
            _op("envelope", bytes((0, 1)) + (3).to_bytes(4, "little") + field(E2EE_IV, good)),
            _op("envelope", bytes((1, 4)) + (9).to_bytes(4, "little") + field(E2EE_IV[:8], good)),
            _op("sealed", bytes((0, 0, 0)) + b"user"),
            _op("sealed", bytes((1, 2, 4)) + b"ratcheted twice"),
            _op("sealed", bytes((2, 0, 0x30 | 0x40)) + b"cut"),
            _op("sealed", bytes((3, 0, 1)) + b"other key"),
            _op("sealed", bytes((4, 0, 2)) + b"\xff\xff"),
        ]
    )
    out.append(
        [
            _op("frame", bytes((128, 0)) + field(E2EE_IV, b"frame payload")),
            _op("frame", bytes((1, 0)) + field(E2EE_IV, e2ee_seal(_ROOM, b"frame"))),
            _op("frame", bytes((2, 200)) + field(E2EE_IV, bytes(40))),
        ]
    )
    # Key verbs, then packets under the new keys.
    out.append(
        [
            _op("set_key", bytes((0,)) + b"alice's own key"),
            _op("sealed", bytes((0, 0, 0)) + b"per participant"),
            _op("ratchet_key", bytes((1,))),
            _op("sealed", bytes((1, 1, 0)) + b"after ratchet_key"),
            _op("forget", bytes((1,))),
            _op("set_shared_key", bytes((5 << 2,)) + b"second room key"),
            _op("ratchet_shared_key", bytes((5 << 2,))),
            _op(
                "encrypt", dpb.DataPacket(user=dpb.UserPacket(payload=b"mine")).SerializeToString()
            ),
            _op("set_key", bytes((128 | 2 << 2,)) + b"my own key"),
            _op("encrypt", dpb.DataPacket(rpc_ack=dpb.RpcAck(request_id="r")).SerializeToString()),
        ]
    )
    # Our own packets, every kind, and clear kinds both ways.
    own = [
        _op("encrypt", _clear(user=dpb.UserPacket(payload=b"u", topic="t"))),
        _op("encrypt", _clear(chat_message=dpb.ChatMessage(id="c", message="hi"))),
        _op("encrypt", _clear(rpc_request=dpb.RpcRequest(id="r", method="m", payload="p"))),
        _op("encrypt", _clear(rpc_response=dpb.RpcResponse(request_id="r", payload="p"))),
        _op("encrypt", _clear(stream_header=dpb.DataStream.Header(stream_id="s", topic="t"))),
        _op("encrypt", _clear(stream_chunk=dpb.DataStream.Chunk(stream_id="s", content=b"c"))),
        _op("encrypt", _clear(stream_trailer=dpb.DataStream.Trailer(stream_id="s"))),
        _op("encrypt", _clear(sip_dtmf=dpb.SipDTMF(code=1, digit="1"))),
        _op("packet", _clear(sip_dtmf=dpb.SipDTMF(code=1, digit="1"))),
    ]
    out.append(own)
    return [encode(records) for records in out]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parent / "corpus" / "e2ee"
    parser.add_argument("--out", type=Path, default=default, help="directory to rewrite")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for old in args.out.iterdir():
        old.unlink()
    for seed in seeds():
        (args.out / hashlib.sha1(seed).hexdigest()).write_bytes(seed)
    print(f"wrote {len(seeds())} seeds to {args.out}")


if __name__ == "__main__":
    main()
