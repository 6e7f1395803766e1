"""How a fuzz input is split into a sequence of operations, and how seeds are written.

An input is a sequence of records, each `op (1 byte) | dt (1 byte) | length (2 bytes, little
endian) | payload (length bytes)`, read with `atheris.FuzzedDataProvider` from the front
(`ConsumeUInt`, `ConsumeBytes`). `op` is taken modulo the target's number of operations, so
every byte string is a valid input; `dt` advances the clock by dt/16 s before the operation
runs (up to ~16 s, enough to cross every timer of the fuzz configurations); a short final
record takes what is left. `encode` writes exactly what `decode` reads, so seeds made from
recorded traffic replay that traffic (tests/fuzz checks the round trip).

Payloads that carry several fields use `split_field`: a one-byte length, that many bytes,
and the rest.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import atheris
import attrs

__all__ = ["TICK", "Record", "decode", "encode", "field", "split_field", "text"]

#: Seconds per unit of a record's `dt`.
TICK = 1 / 16
_MAX_PAYLOAD = 0xFFFF


@attrs.frozen
class Record:
    op: int
    dt: int
    payload: bytes


def decode(data: bytes, n_ops: int) -> Iterator[Record]:
    """The records of `data`, ops reduced modulo `n_ops`."""
    fdp = atheris.FuzzedDataProvider(data)
    while fdp.remaining_bytes() > 0:
        op = fdp.ConsumeUInt(1) % n_ops
        dt = fdp.ConsumeUInt(1)
        length = fdp.ConsumeUInt(2)
        yield Record(op, dt, fdp.ConsumeBytes(length))


def encode(records: Sequence[Record]) -> bytes:
    """The input that `decode` reads back as `records` (op, dt < 256; payload <= 65535)."""
    out = bytearray()
    for record in records:
        if not (0 <= record.op < 256 and 0 <= record.dt < 256):
            raise ValueError(f"op and dt must fit a byte: {record}")
        if len(record.payload) > _MAX_PAYLOAD:
            raise ValueError(f"payload over {_MAX_PAYLOAD} bytes")
        out += bytes((record.op, record.dt)) + len(record.payload).to_bytes(2, "little")
        out += record.payload
    return bytes(out)


def split_field(payload: bytes) -> tuple[bytes, bytes]:
    """(field, rest): the field is `payload[1:1 + payload[0]]`."""
    if not payload:
        return b"", b""
    n = payload[0]
    return payload[1 : 1 + n], payload[1 + n :]


def field(value: bytes | str, rest: bytes | str = b"") -> bytes:
    """The inverse of `split_field` (values over 255 bytes are cut)."""
    raw = value.encode() if isinstance(value, str) else value
    tail = rest.encode() if isinstance(rest, str) else rest
    raw = raw[:255]
    return bytes((len(raw),)) + raw + tail


def text(raw: bytes) -> str:
    """Remote-looking text from fuzz bytes (invalid UTF-8 replaced)."""
    return raw.decode("utf-8", "replace")
