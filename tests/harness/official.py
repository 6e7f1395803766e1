"""The official `livekit` SDK as the other participant, usable from asyncio and trio tests.

`livekit.rtc` needs asyncio, so every official participant lives on one asyncio loop running
in a helper thread (`OfficialLoop`). An `OfficialPeer` records what its room emits as plain
tuples under a lock; tests wait for a predicate over that record without polling (a
`threading.Condition`, waited on from a worker thread), whichever anyio backend they run on.
"""

from __future__ import annotations

import asyncio
import gc
import os
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from livekit import rtc

from harness.peer_records import PeerRecords

T = TypeVar("T")


_FORK_SAFE = False


def _hold_the_ffi_queue_lock_across_fork() -> None:
    """The SDK's native threads deliver every event under one lock (`FfiQueue._lock`), often
    (the audit has them forward their debug logs). A fork that lands while one of them holds
    it leaves the child a lock nobody will release, and the first inherited `rtc.Room` the
    child's garbage collector finalizes blocks on it forever (`Room.__del__` unsubscribes).
    So the forking thread takes the lock for the fork, as `logging` does with its own, and
    both sides release it. Registered once per process."""
    global _FORK_SAFE
    if _FORK_SAFE:
        return
    from livekit.rtc._ffi_client import FfiClient

    lock = FfiClient.instance.queue._lock
    os.register_at_fork(
        before=lock.acquire, after_in_parent=lock.release, after_in_child=lock.release
    )
    # More generally, nothing the child inherits is finalized by its garbage collector: an
    # inherited SDK object's `__del__` calls into the SDK's native library (a handle's drop),
    # whose locks a native thread of the parent may have held at the fork, and the child has
    # no such thread to release them. `gc.freeze()` parks every object that exists at the fork
    # outside the collector's reach; the parent takes them back at once. (CI run N2: a fork
    # child hung before its own code ran, with no stacks; that this was the cause is our
    # reading, not verified.)
    os.register_at_fork(before=gc.freeze, after_in_parent=gc.unfreeze)
    _FORK_SAFE = True


class OfficialLoop:
    """An asyncio loop on a daemon thread, hosting official SDK rooms."""

    def __init__(self) -> None:
        _hold_the_ffi_queue_lock_across_fork()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    async def run(self, factory: Callable[[], Awaitable[T]], timeout: float = 30) -> T:
        future = asyncio.run_coroutine_threadsafe(_call(factory), self.loop)
        return await anyio.to_thread.run_sync(future.result, timeout, abandon_on_cancel=True)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


async def _call(factory: Callable[[], Awaitable[T]]) -> T:
    return await factory()


class OfficialPeer(PeerRecords):
    """One official `rtc.Room`, driven from any backend, with a thread-safe event record."""

    LABEL = "official peer"

    def __init__(self, loop: OfficialLoop) -> None:
        super().__init__()
        self._loop = loop
        self.room: rtc.Room | None = None
        self.tasks: set[asyncio.Future[None]] = set()  # keeps handler tasks alive
        self.data_tracks: dict[str, rtc.RemoteDataTrack] = {}  # by SID, as published
        # More listeners to install before connecting (e.g. harness/audio.py's track events).
        self.on_room: list[Callable[[rtc.Room], None]] = []

    def spawn(self, coro: Awaitable[None]) -> None:
        """Start a task on the official loop (from official-side code) and keep it alive."""
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def connect(self, url: str, token: str, **options: Any) -> None:
        async def go() -> None:
            room = self.room = rtc.Room()
            on = room.on
            on("participant_connected", lambda p: self._record("joined", p.identity))
            on("participant_disconnected", lambda p: self._record("left", p.identity))
            on(
                "participant_attributes_changed",
                lambda changed, p: self._record("attributes", p.identity, dict(changed)),
            )
            on(
                "participant_metadata_changed",
                lambda p, old, new: self._record("metadata", p.identity, old, new),
            )
            on(
                "participant_name_changed",
                lambda p, old, new: self._record("name", p.identity, old, new),
            )
            on(
                "data_received",
                lambda d: self._record(
                    "data",
                    d.participant.identity if d.participant else None,
                    bytes(d.data),
                    d.topic,
                    int(d.kind),
                ),
            )
            on("data_track_published", self._data_track_published)
            on("data_track_unpublished", lambda sid: self._record("data_track_unpublished", sid))
            on("reconnecting", lambda: self._record("reconnecting"))
            on("reconnected", lambda: self._record("reconnected"))
            for install in self.on_room:
                install(room)
            options.setdefault("auto_subscribe", False)
            await room.connect(url, token, rtc.RoomOptions(**options))
            # Participants already present count as joined, so tests can wait on either.
            for identity in room.remote_participants:
                self._record("joined", identity)

        await self._loop.run(go)

    def _data_track_published(self, track: rtc.RemoteDataTrack) -> None:
        self.data_tracks[track.info.sid] = track
        info = track.info
        self._record("data_track_published", info.sid, info.name, track.publisher_identity)

    async def subscribe_data_track(self, sid: str) -> None:
        """Subscribe to the remote data track `sid`; record each frame as ("frame", sid,
        payload, user_timestamp) and the end as ("frames_ended", sid, error or None)."""

        async def go() -> None:
            stream = self.data_tracks[sid].subscribe()

            async def read() -> None:
                error: str | None = None
                try:
                    async for frame in stream:
                        self._record("frame", sid, bytes(frame.payload), frame.user_timestamp)
                except Exception as exc:
                    error = f"{type(exc).__name__}: {getattr(exc, 'message', exc)}"
                self._record("frames_ended", sid, error)

            self.spawn(read())

        await self._loop.run(go)

    async def do(self, fn: Callable[[rtc.Room], Awaitable[T]], timeout: float = 30) -> T:
        """Run `fn(room)` on the official loop and return its result."""
        room = self.room
        assert room is not None
        return await self._loop.run(lambda: fn(room), timeout)

    async def disconnect(self) -> None:
        if self.room is not None:
            room = self.room
            await self._loop.run(room.disconnect)
