"""A recording TCP relay for the signal WebSocket, to observe what really crosses it.

Participants connect to the relay instead of the server. Bytes are forwarded unchanged in both
directions; a passive RFC 6455 frame parser copies every complete binary message out, so a test
can decode the SignalRequests (client to server) and SignalResponses (server to client) that
were exchanged, e.g. to check every ICE candidate for confinement. A message compressed with
permessage-deflate (RFC 7692: RSV1 on its first frame; browsers offer it and livekit-server
accepts) is inflated.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import struct
import zlib
from dataclasses import dataclass, field

_CANDIDATE_RE = re.compile(r"candidate:\S+ \d+ (?:udp|tcp|UDP|TCP) \d+ (\S+) (\d+) typ (\w+)")


def candidate_addresses(text: str) -> list[tuple[str, str]]:
    """(address, type) for every ICE candidate line found in an SDP or a candidate string."""
    return [(m.group(1), m.group(3)) for m in _CANDIDATE_RE.finditer(text)]


class FrameParser:
    """Incremental passive WebSocket parser: HTTP upgrade head, then frames."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._head_done = False
        self._fragments = bytearray()
        self._opcode = 0
        self._compressed = False
        # One inflater per direction: right with and without context takeover (RFC 7692 7.2.2).
        self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        self.messages: list[tuple[int, bytes]] = []  # (opcode, payload)

    def feed(self, data: bytes) -> None:
        self._buf += data
        if not self._head_done:
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                return
            del self._buf[: end + 4]
            self._head_done = True
        while self._frame():
            pass

    def _frame(self) -> bool:
        b = self._buf
        if len(b) < 2:
            return False
        b0 = b[0]
        fin, opcode = b0 & 0x80, b0 & 0x0F
        masked, length = b[1] & 0x80, b[1] & 0x7F
        pos = 2
        if length == 126:
            if len(b) < 4:
                return False
            (length,) = struct.unpack_from("!H", b, 2)
            pos = 4
        elif length == 127:
            if len(b) < 10:
                return False
            (length,) = struct.unpack_from("!Q", b, 2)
            pos = 10
        mask = b""
        if masked:
            if len(b) < pos + 4:
                return False
            mask = bytes(b[pos : pos + 4])
            pos += 4
        if len(b) < pos + length:
            return False
        payload = bytes(b[pos : pos + length])
        del b[: pos + length]
        if mask:
            payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
        if opcode >= 0x8:  # control frames: close/ping/pong, not messages
            return True
        if opcode != 0:
            self._opcode = opcode
            self._compressed = bool(b0 & 0x40)  # RSV1 of a message's first frame
        self._fragments += payload
        if fin:
            message = bytes(self._fragments)
            if self._compressed:
                message = self._inflater.decompress(message + b"\x00\x00\xff\xff")
            self.messages.append((self._opcode, message))
            self._fragments.clear()
        return True


@dataclass
class Recording:
    to_server: list[bytes] = field(default_factory=list)
    to_client: list[bytes] = field(default_factory=list)


class SignalRecorder:
    """`async with SignalRecorder(host, server_host, server_port) as rec:` then use rec.url."""

    def __init__(self, host: str, server_host: str, server_port: int) -> None:
        self.host, self.server_host, self.server_port = host, server_host, server_port
        self.recording = Recording()
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"ws://{self.host}:{port}"

    async def __aenter__(self) -> SignalRecorder:
        self._server = await asyncio.start_server(self._handle, self.host, 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(self.server_host, self.server_port)
        to_server, to_client = FrameParser(), FrameParser()

        async def pump(
            src: asyncio.StreamReader,
            dst: asyncio.StreamWriter,
            parser: FrameParser,
            sink: list[bytes],
        ) -> None:
            try:
                while data := await src.read(65536):
                    parser.feed(data)
                    sink.extend(p for op, p in parser.messages if op == 0x2)
                    parser.messages.clear()
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                with contextlib.suppress(Exception):
                    dst.close()

        for coro in (
            pump(reader, up_writer, to_server, self.recording.to_server),
            pump(up_reader, writer, to_client, self.recording.to_client),
        ):
            task = asyncio.create_task(coro)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
