"""The local participant on a session: `livekit.rtc.LocalParticipant`, async.

The anyio and trio Rooms hand out this class; the threaded Room wraps each method in a
blocking twin (transports/threaded.py). Every verb goes through the session: publishing and
stream writes wait on the channel's watermarks, metadata updates on the server's answer, RPC
calls on the core's outcome, track publishing on the server's answer (transports/_media.py).
"""

from __future__ import annotations

import contextlib
import mimetypes
import os
from collections.abc import Callable, Mapping, Sequence
from typing import TypeAlias, TypeVar, overload

import anyio

from lkproto import events as ev
from lkproto.models import Channel, Participant
from lkproto.streams import StreamKind

from ._checks import (
    check_callable,
    check_identities,
    check_identity,
    check_payload,
    check_rpc_method,
    check_str,
    check_string_map,
)
from ._datatracks import LocalDataTrack
from ._room import LocalParticipantInfo, Transcription
from ._rpc import RpcHandler
from ._session import Session
from ._streams import ByteStreamInfo, ByteStreamWriter, TextStreamInfo, TextStreamWriter
from ._tracks import (
    LocalTrack,
    LocalTrackPublication,
    ParticipantTrackPermission,
    TrackPublishOptions,
)

__all__ = ["LocalParticipant", "ProgressCallback"]

H = TypeVar("H", bound=RpcHandler)  # a handler, returned as it was by the decorator
ProgressCallback: TypeAlias = Callable[[int, int | None], object]
_FILE_READ = 4 * 15_000  # send_file reads this much per write: four chunks


class LocalParticipant(LocalParticipantInfo):
    """`livekit.rtc.LocalParticipant`."""

    def __init__(self, session: Session, info: Participant) -> None:
        super().__init__(info)
        self._session = session

    async def publish_data(
        self,
        payload: bytes | str,
        *,
        reliable: bool = True,
        destination_identities: Sequence[str] = (),
        topic: str = "",
    ) -> None:
        """Send a data packet; waits while the channel's send buffer is over its high mark.

        `payload` is bytes or str (sent as UTF-8). One packet carries at most
        `Config.max_data_message_size` bytes (64 000) including its framing, so a little less
        payload; larger data goes as a byte stream. Raises `TypeError`/`ValueError` for wrong
        arguments and `PublishDataError` when the packet cannot be sent.
        """
        call = "publish_data"
        data = check_payload(call, payload, self._session.config.max_data_message_size)
        destination_identities = check_identities(call, destination_identities)
        check_str(call, "topic", topic)
        await self._session.publish(
            "publish_data",
            Channel.RELIABLE if reliable else Channel.LOSSY,
            lambda conn, now: conn.publish_data(
                data,
                now=now,
                reliable=reliable,
                destination_identities=tuple(destination_identities),
                topic=topic or None,
            ),
        )

    async def publish_dtmf(self, *, code: int, digit: str) -> None:
        """Send a SIP DTMF tone (`code`, `digit`) to the room."""
        await self._session.publish(
            "publish_dtmf",
            Channel.RELIABLE,
            lambda conn, now: conn.publish_dtmf(code, digit, now=now),
        )

    async def publish_transcription(self, transcription: Transcription) -> None:
        """Send a legacy transcription (the server forwards it only from agents)."""
        segments = [
            ev.TranscriptionSegment(
                id=s.id,
                text=s.text,
                start_time=s.start_time,
                end_time=s.end_time,
                final=s.final,
                language=s.language,
            )
            for s in transcription.segments
        ]
        await self._session.publish(
            "publish_transcription",
            Channel.RELIABLE,
            lambda conn, now: conn.publish_transcription(
                now=now,
                transcribed_participant_identity=transcription.participant_identity,
                track_id=transcription.track_sid,
                segments=segments,
            ),
        )

    async def set_metadata(self, metadata: str) -> None:
        """Set our metadata; waits for the server's answer. Needs the token's
        `canUpdateOwnMetadata` grant, else raises `MetadataUpdateError`."""
        check_str("set_metadata", "metadata", metadata)
        await self._session.update("set_metadata", lambda c, now: c.set_metadata(metadata, now=now))

    async def set_name(self, name: str) -> None:
        """Set our name; needs `canUpdateOwnMetadata`, as `set_metadata`."""
        check_str("set_name", "name", name)
        await self._session.update("set_name", lambda c, now: c.set_name(name, now=now))

    async def set_attributes(self, attributes: Mapping[str, str]) -> None:
        """Merge `attributes` into ours; an empty value deletes that key.

        Needs the token's `canUpdateOwnMetadata` grant: without it the server refuses and
        this raises `MetadataUpdateError` (livekit.rtc returns silently).
        """
        attrs_ = check_string_map("set_attributes", attributes)
        await self._session.update(
            "set_attributes", lambda c, now: c.set_attributes(attrs_, now=now)
        )

    # -- media tracks -------------------------------------------------------------------------

    @property
    def track_publications(self) -> Mapping[str, LocalTrackPublication]:
        """Our publications by sid (a snapshot)."""
        return dict(self._publications)

    async def publish_track(
        self, track: LocalTrack, options: TrackPublishOptions | None = None
    ) -> LocalTrackPublication:
        """Publish `track` (a `LocalAudioTrack` or a `LocalVideoTrack`); returns once the
        server accepted it (then `local_track_published` is emitted). Raises
        `PublishTrackError` when the server refuses (no canPublish, a source not allowed:
        NOT_ALLOWED) or does not answer within `Config.track_publish_timeout`, TypeError for
        another kind of object, ValueError for a track already published, an unknown source
        or a video codec aiortc cannot encode (VP8 and H264 only), `LocalProtocolError` at
        `Config.max_published_tracks`."""
        publication = await self._session.media.publish_track(track, options)
        assert isinstance(publication, LocalTrackPublication)
        return publication

    async def unpublish_track(self, track_sid: str) -> None:
        """Unpublish our track `track_sid` (`local_track_unpublished` follows at once).
        Raises `UnpublishTrackError` for a sid that is not one of ours."""
        await self._session.media.unpublish_track(track_sid)

    def set_track_subscription_permissions(
        self,
        *,
        allow_all_participants: bool,
        participant_permissions: Sequence[ParticipantTrackPermission] | None = None,
    ) -> None:
        """Who may subscribe to our tracks; `participant_permissions` apply when
        `allow_all_participants` is False. The server enforces it (media stops at once for
        the others; livekit.rtc 1.2 emits no event on their side)."""
        self._session.media.set_permissions(allow_all_participants, participant_permissions or ())

    # -- data tracks ------------------------------------------------------------------------

    async def publish_data_track(self, *, name: str) -> LocalDataTrack:
        """Publish a data track; returns it once the server accepted it.

        `name` must be unique among this participant's tracks (1-256 bytes). Raises
        `PublishDataTrackError` with the server's reason (NOT_ALLOWED without canPublishData,
        DUPLICATE_NAME, INVALID_NAME; TIMEOUT after `Config.data_track_publish_timeout`;
        DISCONNECTED if the room goes first), `TypeError` for a name that is not str,
        `TransportClosedError` when not connected, and `LocalProtocolError` while a reconnect
        is under way or at `Config.max_published_data_tracks`. Cancelled while it waits, the
        publish is withdrawn.
        """
        return await self._session.datatracks.publish(name)

    # -- RPC --------------------------------------------------------------------------------

    async def perform_rpc(
        self,
        *,
        destination_identity: str,
        method: str,
        payload: str,
        response_timeout: float | None = None,
        max_round_trip_latency: float | None = None,
    ) -> str:
        """Call `method` on `destination_identity`; return its response or raise `RpcError`.

        `max_round_trip_latency` bounds the wait for the callee's ack (default 7 s).
        """
        call = "perform_rpc"
        check_identity(call, "destination_identity", destination_identity)
        check_rpc_method(call, method, self._session.config)
        check_str(call, "payload", payload)
        return await self._session.rpc.perform(
            destination_identity, method, payload, response_timeout, max_round_trip_latency
        )

    @overload
    def register_rpc_method(self, method_name: str, handler: None = None) -> Callable[[H], H]: ...
    @overload
    def register_rpc_method(self, method_name: str, handler: RpcHandler) -> None: ...
    def register_rpc_method(
        self, method_name: str, handler: RpcHandler | None = None
    ) -> Callable[[H], H] | None:
        """Register a handler (sync or async) for `method_name`; usable as a decorator.

        Allowed before `connect()`; registrations last for the Room's lifetime. Registering
        a method again replaces its handler, as in `livekit.rtc`. Raises `TypeError` or
        `ValueError` at once for a name that is not a non-empty str of at most
        `Config.max_rpc_method_bytes` (64) UTF-8 bytes, or a handler that is not callable.
        """
        call = "register_rpc_method"
        check_rpc_method(call, method_name, self._session.config)
        if handler is None:

            def register(fn: H) -> H:
                check_callable(call, "handler", fn)
                self._session.rpc.register(method_name, fn)
                return fn

            return register
        check_callable(call, "handler", handler)
        self._session.rpc.register(method_name, handler)
        return None

    def unregister_rpc_method(self, method: str) -> None:
        """Stop answering `method` (callers then get 1400 UNSUPPORTED_METHOD). Idempotent."""
        self._session.rpc.unregister(method)

    # -- data streams -----------------------------------------------------------------------

    async def stream_text(
        self,
        *,
        destination_identities: Sequence[str] | None = None,
        topic: str = "",
        attributes: Mapping[str, str] | None = None,
        stream_id: str | None = None,
        reply_to_id: str | None = None,
        total_size: int | None = None,
        sender_identity: str | None = None,
    ) -> TextStreamWriter:
        """Open a text stream; write with `await writer.write(text)`, end with `aclose()`.

        `sender_identity` is `livekit.rtc`'s override for agents publishing on behalf of
        another participant. The server honours it only for agents; for anyone else it
        overwrites the sender with the real identity, which is what this room sends. An agent
        asking for another identity gets `NotImplementedError`: lkproto's core sends every
        stream as the local participant.
        """
        info = self._session.streams.open(
            StreamKind.TEXT,
            topic=topic,
            destination_identities=destination_identities,
            attributes=attributes,
            stream_id=stream_id,
            reply_to_stream_id=reply_to_id,
            total_length=total_size,
            sender_identity=sender_identity,
        )
        assert isinstance(info, TextStreamInfo)
        await self._session.wait_writable(Channel.RELIABLE)
        return TextStreamWriter(self._session.streams, info)

    async def send_text(
        self,
        text: str,
        *,
        destination_identities: Sequence[str] | None = None,
        topic: str = "",
        attributes: Mapping[str, str] | None = None,
        reply_to_id: str | None = None,
        compress: bool = True,
    ) -> TextStreamInfo:
        """Send `text` as one text stream (inline and compressed where every peer can take it)."""
        info = await self._session.streams.send(
            StreamKind.TEXT,
            text,
            topic=topic,
            destination_identities=destination_identities,
            attributes=attributes,
            reply_to_stream_id=reply_to_id,
            compress=compress,
        )
        assert isinstance(info, TextStreamInfo)
        return info

    async def stream_bytes(
        self,
        name: str,
        *,
        total_size: int | None = None,
        mime_type: str = "application/octet-stream",
        attributes: Mapping[str, str] | None = None,
        stream_id: str | None = None,
        destination_identities: Sequence[str] | None = None,
        topic: str = "",
    ) -> ByteStreamWriter:
        """Open a byte stream; write with `await writer.write(data)`, end with `aclose()`."""
        info = self._session.streams.open(
            StreamKind.BYTES,
            topic=topic,
            destination_identities=destination_identities,
            attributes=attributes,
            stream_id=stream_id,
            total_length=total_size,
            mime_type=mime_type,
            name=name,
        )
        assert isinstance(info, ByteStreamInfo)
        await self._session.wait_writable(Channel.RELIABLE)
        return ByteStreamWriter(self._session.streams, info)

    async def send_bytes(
        self,
        data: bytes,
        *,
        topic: str = "",
        name: str | None = None,
        mime_type: str | None = None,
        destination_identities: Sequence[str] | None = None,
        attributes: Mapping[str, str] | None = None,
        stream_id: str | None = None,
        compress: bool = True,
    ) -> ByteStreamInfo:
        """Send `data` as one byte stream."""
        info = await self._session.streams.send(
            StreamKind.BYTES,
            data,
            topic=topic,
            destination_identities=destination_identities,
            attributes=attributes,
            name=name,
            mime_type=mime_type or "application/octet-stream",
            stream_id=stream_id,
            compress=compress,
        )
        assert isinstance(info, ByteStreamInfo)
        return info

    async def send_file(
        self,
        file_path: str | os.PathLike[str],
        *,
        topic: str = "",
        destination_identities: Sequence[str] | None = None,
        attributes: Mapping[str, str] | None = None,
        stream_id: str | None = None,
        compress: bool = True,
        on_progress: ProgressCallback | None = None,
    ) -> ByteStreamInfo:
        """Stream a file from disk, reading as the channel drains (memory stays bounded).

        `on_progress(sent_bytes, total_bytes)` is called after every write. Returns once the
        data is with the server, not the receivers (flow control ends at the SFU, as with
        livekit.rtc). Files are sent uncompressed; `compress` is accepted for compatibility.
        """
        del compress  # files are streamed in chunks; the one-shot paths compress
        path = anyio.Path(file_path)
        total = (await path.stat()).st_size
        mime = mimetypes.guess_type(str(file_path))[0] or "application/octet-stream"
        writer = await self.stream_bytes(
            path.name,
            total_size=total,
            mime_type=mime,
            attributes=attributes,
            stream_id=stream_id,
            destination_identities=destination_identities,
            topic=topic,
        )
        sent = 0
        try:
            async with await anyio.open_file(file_path, "rb") as f:
                while piece := await f.read(_FILE_READ):
                    await writer.write(piece)
                    sent += len(piece)
                    if on_progress is not None:
                        on_progress(sent, total)
        except BaseException as exc:
            # The reason every reader sees: plain words, no Python exception names.
            if isinstance(exc, anyio.get_cancelled_exc_class() | KeyboardInterrupt):
                reason = "the sender cancelled the transfer"
            elif isinstance(exc, OSError):
                reason = "the sender could not read the file"
            else:
                reason = "the sender's transfer failed"
            with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                await writer.aclose(reason=reason)
            raise
        await writer.aclose()
        return writer.info
