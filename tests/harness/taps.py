"""Vantage points on a Room the tests read from: its raw data-channel messages, its frames.

- `record_raw_data(room)`: every message the Room's data channels deliver, as bytes, before
  the core decodes it (an eavesdropper without the E2EE key checks what it could read).
- `eavesdropper(url, token, host)`: a keyless anyio Room (whatever the adapter under test: it
  is only a vantage point) that records its raw data-channel messages; `envelopes(raw)` sorts
  them into `DataPacket`s by sender.
- `FrameReader(stream)`: reads one `DataTrackStream` in the background (`run` in a task
  group); `frames` grows as frames come, `error` keeps what ended the stream early, and
  `within(predicate, timeout)` waits, without polling, for a predicate over them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio

from lkproto._pb import data_pb2 as dpb
from lkproto.transports import anyio as lk_anyio
from lkproto.transports.anyio import DataTrackFrame, RoomOptions, RtcConfiguration

__all__ = ["FrameReader", "eavesdropper", "envelopes", "record_raw_data"]


def record_raw_data(room: lk_anyio.Room) -> list[bytes]:
    """A list that receives every data-channel message `room` (connected) gets from now on."""
    raw: list[bytes] = []
    pump = room._session.pump
    assert pump is not None, "record_raw_data needs a connected Room"
    deliver = pump.on_data

    def record(channel: Any, data: bytes) -> None:
        raw.append(bytes(data))
        deliver(channel, data)

    pump.on_data = record  # type: ignore[method-assign]
    return raw


async def eavesdropper(url: str, token: str, host: str) -> tuple[lk_anyio.Room, list[bytes]]:
    """A participant without the E2EE key, connected, and the raw messages it receives."""
    eve = lk_anyio.Room()
    options = RoomOptions(auto_subscribe=False, rtc_config=RtcConfiguration(host_addresses=[host]))
    await eve.connect(url, token, options)
    return eve, record_raw_data(eve)


def envelopes(raw: list[bytes]) -> dict[str, list[dpb.DataPacket]]:
    """The data packets in `raw`, by sender."""
    by_sender: dict[str, list[dpb.DataPacket]] = {}
    for message in raw:
        packet = dpb.DataPacket.FromString(message)
        by_sender.setdefault(packet.participant_identity, []).append(packet)
    return by_sender


class FrameReader:
    """Reads one lkproto `DataTrackStream` in the background; `frames` grows as they come."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.frames: list[DataTrackFrame] = []
        self.error: BaseException | None = None
        self.ended = anyio.Event()
        self._changed = anyio.Event()

    async def run(self) -> None:
        try:
            async for frame in self.stream:
                self.frames.append(frame)
                self._changed.set()
        except Exception as exc:
            self.error = exc
        finally:
            self.ended.set()
            self._changed.set()

    async def within(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Whether `predicate()` holds within `timeout` seconds."""
        with anyio.move_on_after(timeout):
            while not predicate():
                self._changed = anyio.Event()
                await self._changed.wait()
        return predicate()
