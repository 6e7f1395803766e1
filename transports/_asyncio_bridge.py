"""aiortc behind a thread: an asyncio loop on a helper thread, for trio and threaded apps.

aiortc and aioice are asyncio-only. `AsyncioThreadBridge` runs an `AiortcPeer` in a private
event loop on a daemon thread and presents the same `PeerPort`:
- `submit()` hands each command to that loop with `call_soon_threadsafe`, which is FIFO, so
  commands keep the core's order;
- every outcome the peer reports is posted back to the caller's side through `post`, a
  thread-safe, non-blocking "run this soon over there" (trio's `TrioToken.run_sync_soon`,
  or a queue a threaded adapter drains), also FIFO.
Nothing else crosses threads: the core and the pump stay on the caller's side. Media frames
cross through the session's `MediaRouter` (thread-safe bounded queues, transports/_media.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future

import anyio.to_thread

from lkproto import commands as cmd
from lkproto.models import Channel, IceServer, PeerState, PeerTarget, SdpType

from ._aiortc import AiortcPeer
from ._media import MediaRouter
from ._ports import PeerCommand, PeerListener
from ._rtc_config import IcePolicy

__all__ = ["AsyncioThreadBridge"]

Post = Callable[[Callable[[], None]], None]


class _PostingListener:
    """A `PeerListener` that forwards each report to the other side through `post`."""

    def __init__(self, target: PeerListener, post: Post) -> None:
        self._target = target
        self._post = post

    def _send(self, fn: Callable[[], None]) -> None:
        with contextlib.suppress(RuntimeError):  # the other side has already gone away
            self._post(fn)

    def on_local_description(
        self,
        target: PeerTarget,
        sdp: str,
        sdp_type: SdpType,
        offer_id: int = 0,
        slot_mids: Mapping[int, str] | None = None,
    ) -> None:
        self._send(
            lambda: self._target.on_local_description(target, sdp, sdp_type, offer_id, slot_mids)
        )

    def on_ice_candidate(self, target: PeerTarget, candidate_init: str | None) -> None:
        self._send(lambda: self._target.on_ice_candidate(target, candidate_init))

    def on_peer_state(self, target: PeerTarget, state: PeerState) -> None:
        self._send(lambda: self._target.on_peer_state(target, state))

    def on_channel_open(self, channel: Channel, max_message_size: int | None) -> None:
        self._send(lambda: self._target.on_channel_open(channel, max_message_size))

    def on_channel_closed(self, channel: Channel) -> None:
        self._send(lambda: self._target.on_channel_closed(channel))

    def on_data(self, channel: Channel, data: bytes) -> None:
        self._send(lambda: self._target.on_data(channel, data))

    def on_writable(self, channel: Channel) -> None:
        self._send(lambda: self._target.on_writable(channel))

    def on_reliable_delivered(self, sequence: int) -> None:
        self._send(lambda: self._target.on_reliable_delivered(sequence))

    def on_command_failed(self, command: cmd.Command, message: str) -> None:
        self._send(lambda: self._target.on_command_failed(command, message))

    def on_remote_description(self, target: PeerTarget, offer_id: int) -> None:
        self._send(lambda: self._target.on_remote_description(target, offer_id))


class AsyncioThreadBridge:
    """A `PeerPort` whose aiortc peer lives in an asyncio loop on its own thread."""

    def __init__(
        self,
        listener: PeerListener,
        post: Post,
        *,
        host_addresses: Sequence[str] | None = None,
        ice_servers: Sequence[IceServer] | None = None,
        media: MediaRouter | None = None,
        ice_policy: IcePolicy | None = None,
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="lkproto-aiortc", daemon=True
        )
        self._peer = AiortcPeer(
            _PostingListener(listener, post),
            host_addresses=host_addresses,
            ice_servers=ice_servers,
            media=media,
            ice_policy=ice_policy,
        )
        self._closed = False
        self._thread.start()

    def submit(self, command: PeerCommand) -> None:
        if not self._closed:
            self._loop.call_soon_threadsafe(self._peer.submit, command)

    def buffered_amount(self, channel: Channel) -> int:
        return self._peer.buffered_amount(channel)  # an int read: safe across threads

    def set_low_threshold(self, channel: Channel, threshold: int) -> None:
        if not self._closed:
            self._loop.call_soon_threadsafe(self._peer.set_low_threshold, channel, threshold)

    async def drain(self, timeout: float) -> bool:
        """`AiortcPeer.drain` on the helper loop, awaited without blocking the caller's loop."""
        if self._closed:
            return True
        future = asyncio.run_coroutine_threadsafe(self._peer.drain(timeout), self._loop)

        def wait() -> bool:
            try:
                return future.result(timeout + 1)
            except Exception:  # the helper loop stopped or the drain outlived its bound
                return False

        return await anyio.to_thread.run_sync(wait)

    def close_soon(self) -> Future[None]:
        """Close the peer connections and stop the loop; the future completes when done."""
        done: Future[None] = Future()
        if self._closed:
            done.set_result(None)
            return done
        self._closed = True

        async def shutdown() -> None:
            try:
                await self._peer.aclose()
            finally:
                self._loop.call_soon(self._loop.stop)

        def start() -> None:
            task = self._loop.create_task(shutdown())
            task.add_done_callback(lambda _: done.set_result(None))

        self._loop.call_soon_threadsafe(start)
        return done

    def join(self, timeout: float | None = None) -> None:
        """Wait for the helper thread to finish, then release the loop (blocking)."""
        self._thread.join(timeout)
        if not self._thread.is_alive() and not self._loop.is_closed():
            self._loop.close()

    async def aclose(self) -> None:
        """Close from an async caller on any backend, without blocking its loop."""
        future = self.close_soon()

        def wait() -> None:
            with contextlib.suppress(TimeoutError):
                future.result(10)
            self.join(10)

        await anyio.to_thread.run_sync(wait)
