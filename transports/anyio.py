"""`lkproto.transports.anyio`: the `livekit.rtc` API (data plane and audio) on anyio.

Code written for `livekit.rtc`'s data plane runs after changing only the import:

    from lkproto.transports.anyio import Room, RoomOptions   # was: from livekit.rtc import ...

How it works: one background session per connected room (transports/_session.py) runs three
tasks in a task group (a signal reader, a single FIFO writer and a timer sleeping until the
core's deadline) around the shared synchronous `Pump`. The WebSocket is wsproto over anyio
streams (TLS for `wss://`). WebRTC is aiortc: in this loop on asyncio, and in an asyncio loop
on a helper thread on trio. The session's tasks are detached from the caller (a loop task on
asyncio, a system task on trio) and end when the room does. `connect()` returns once the join
succeeded and the reliable data channel is open, so the first `publish_data` is never lost.

Divergences from `livekit.rtc` (deliberate, for a production client):
- `set_metadata`/`set_name`/`set_attributes` raise `MetadataUpdateError` when the server
  refuses (e.g. no `canUpdateOwnMetadata`); `livekit.rtc` 1.2 returns silently.
- `async for event in room.events()` yields lkproto's typed events as well.
- Audio tracks follow `livekit.rtc` (`AudioSource`, `LocalAudioTrack`, `publish_track`,
  `AudioStream`); aiortc sends plain Opus (no DTX, RED or noise cancellation), and
  `AudioStream` yields 20 ms frames unless `frame_size_ms` is given.
- Video tracks follow `livekit.rtc` (`VideoSource`, `LocalVideoTrack`, `VideoStream`,
  `VideoFrame.convert`); aiortc sends one VP8 or H.264 layer (`simulcast=True` is accepted),
  and a `VideoStream` keeps at most `Config.video_stream_capacity` frames (the oldest go).
"""

from __future__ import annotations

from lkproto import Config

from . import _exports
from ._async_room import AsyncRoom
from ._audio import AudioSource
from ._datatracks import DataTrackStream, LocalDataTrack, RemoteDataTrack
from ._exports import *  # noqa: F403 - the names every adapter exports (one list)
from ._participant import LocalParticipant
from ._runtime import AnyioRuntime
from ._streams import ByteStreamReader, ByteStreamWriter, TextStreamReader, TextStreamWriter
from ._tracks import AudioStream, LocalTrackPublication, VideoStream
from ._video import VideoSource

__all__ = [
    "AudioSource",
    "AudioStream",
    "ByteStreamReader",
    "ByteStreamWriter",
    "DataTrackStream",
    "LocalDataTrack",
    "LocalParticipant",
    "LocalTrackPublication",
    "RemoteDataTrack",
    "Room",
    "TextStreamReader",
    "TextStreamWriter",
    "VideoSource",
    "VideoStream",
]
__all__ += _exports.__all__


class Room(AsyncRoom):
    """A LiveKit room, as `livekit.rtc.Room` for the data plane, on asyncio or trio."""

    def __init__(self, loop: object = None, *, config: Config | None = None) -> None:
        del loop  # accepted for signature compatibility with livekit.rtc.Room
        super().__init__(config, AnyioRuntime())
