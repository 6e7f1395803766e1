"""One Room, joined with a command's settings, and the printing of what it sees."""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import anyio
import anyio.abc

from lkproto import events as ev
from lkproto.errors import LkProtocolError
from lkproto.streams import DropReason, StreamError

from ..anyio import (
    ByteStreamReader,
    ConnectError,
    Room,
    RoomOptions,
    RtcConfiguration,
    TextStreamReader,
)
from ._config import (
    CliError,
    Credentials,
    ExitCode,
    resolve_credentials,
    resolve_host_addresses,
)
from ._context import DEFAULT_TOPICS, PROG, Context
from ._progress import ProgressBar
from ._util import (
    create_unique,
    one_line,
    safe_filename,
    show_bytes,
)

__all__ = ["Session", "topic_suffix"]

_LEAVE_TIMEOUT = 10.0


def _default_identity() -> str:
    return f"lkproto-{secrets.token_hex(3)}"


def _credentials(ctx: Context) -> Credentials:
    a = ctx.args
    if a.api_secret:
        ctx.secrets.append(a.api_secret)
    if os.environ.get("LIVEKIT_API_SECRET"):
        ctx.secrets.append(os.environ["LIVEKIT_API_SECRET"])
    if a.token:
        ctx.secrets.append(a.token)
    identity = a.identity
    if a.token is None and not identity:
        identity = _default_identity()
    creds = resolve_credentials(
        url=a.url,
        token=a.token,
        api_key=a.api_key,
        api_secret=a.api_secret,
        room=a.room,
        identity=identity,
        name=a.name,
        env=os.environ,
    )
    ctx.secrets.append(creds.token)
    return creds


def _connect_failure(where: str, reason: str) -> str:
    """One line; the server's address once (the transport's reason may name it already)."""
    reason = " ".join(reason.split())
    prefix = "could not reach the server: "
    if reason.startswith(prefix) and "could not connect to " in reason:
        return reason[len(prefix) :]
    return f"{where}: {reason}"


def topic_suffix(topic: str | None) -> str:
    return f" topic={one_line(topic, 100)}" if topic else ""


class Session:
    """One Room, joined with the command's settings, and the printing of what it sees."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.console = ctx.console
        self.creds = _credentials(ctx)
        self.host_addresses = resolve_host_addresses(ctx.args.host_address, self.creds.url)
        self.room = Room()
        self.announced: set[str] = set()
        self.save_dir: Path | None = None
        self.ready = anyio.Event()
        self.ended: ev.Disconnected | None = None
        self.ended_event = anyio.Event()
        self.leaving = False

    # -- setup (before connect) -------------------------------------------------------------

    def prepare_save_dir(self, directory: str | None) -> None:
        if directory is None:
            return
        path = Path(directory)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CliError(
                f"cannot use --save {directory}: {exc.strerror or exc}", ExitCode.USAGE
            ) from None
        if not os.access(path, os.W_OK | os.X_OK):
            raise CliError(f"cannot write to --save {directory}", ExitCode.USAGE)
        self.save_dir = path

    def show_streams(self, topics: Sequence[str] | None) -> None:
        for topic in DEFAULT_TOPICS if topics is None else dict.fromkeys(topics):
            self.room.register_text_stream_handler(topic, self._on_text)
            self.room.register_byte_stream_handler(topic, self._on_bytes)

    # -- joining and leaving ----------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def joined(self, *, watch: bool) -> AsyncIterator[Room]:
        """Connect (exit code 3 on failure); leave on exit, even when cancelled."""
        async with anyio.create_task_group() as tg:
            if watch:
                tg.start_soon(self._watch_events)
                await anyio.sleep(0)  # let the watcher subscribe before the join starts
            try:
                await self._connect()
                yield self.room
            finally:
                self.leaving = True
                with anyio.CancelScope(shield=True), anyio.move_on_after(_LEAVE_TIMEOUT):
                    await self.room.disconnect()
                tg.cancel_scope.cancel()

    async def _connect(self) -> None:
        timeout = float(self.ctx.args.connect_timeout)
        options = RoomOptions(
            auto_subscribe=False,
            rtc_config=RtcConfiguration(host_addresses=self.host_addresses),
            connect_timeout=timeout,
            peer_connection_timeout=timeout,
        )
        where = f"could not connect to {self.creds.url}"
        try:
            with anyio.fail_after(2 * timeout + 5):
                await self.room.connect(self.creds.url, self.creds.token, options)
        except ConnectError as exc:
            raise CliError(_connect_failure(where, exc.message), ExitCode.CONNECT) from None
        except TimeoutError:
            raise CliError(
                f"{where}: no join within {2 * timeout + 5:g}s",
                ExitCode.CONNECT,
            ) from None
        except LkProtocolError as exc:
            raise CliError(_connect_failure(where, str(exc)), ExitCode.CONNECT) from None

    def announce(self) -> None:
        """Print the join and who is here; the printed events start after this."""
        room = self.room
        self.console.print(f"joined room {room.name} as {room.local_participant.identity}")
        for identity in sorted(room.remote_participants):
            self.announced.add(identity)
            self.console.print(f"participant present {identity}")
        self.ready.set()

    async def wait_for_participants(self, identities: Sequence[str], timeout: float) -> None:
        """Wait up to `timeout` for each identity to be in the room; exit code 4 if not.

        The server announces a participant to the others a few seconds after it joins, so a
        destination that has only just joined may need a moment.
        """
        room = self.room
        changed = anyio.Event()

        def on_joined(*_: object) -> None:
            changed.set()

        room.on("participant_connected", on_joined)
        try:
            with anyio.move_on_after(max(0.0, timeout)):
                while missing := [i for i in identities if i not in room.remote_participants]:
                    await changed.wait()
                    changed = anyio.Event()
        finally:
            room.off("participant_connected", on_joined)
        missing = [i for i in identities if i not in room.remote_participants]
        if missing:
            raise CliError(
                f"unknown participant {missing[0]!r}: not in room {room.name!r} "
                f"(waited {timeout:g}s)",
                ExitCode.UNKNOWN_PARTICIPANT,
            )

    async def stay(self, duration: float | None) -> None:
        """Until `duration` passes, a signal arrives, or the server ends the session."""
        with anyio.move_on_after(float("inf") if duration is None else duration):
            await self.ended_event.wait()
        if self.ended is not None:
            reason = self.ended.reason.name
            message = " ".join(self.ended.message.split())
            text = f"{message} ({reason})" if message and reason not in message else message
            raise CliError(f"disconnected: {text or reason}", ExitCode.FAILED)

    # -- printing -------------------------------------------------------------------------------

    async def _watch_events(self) -> None:
        async for event in self.room.events():
            if isinstance(event, ev.Disconnected):
                if not self.leaving:
                    self.ended = event
                    self.ended_event.set()
                continue
            await self.ready.wait()
            self._show(event)

    def _show(self, event: ev.Event) -> None:
        say = self.console.print
        if isinstance(event, ev.ParticipantConnected):
            identity = event.participant.identity
            if identity not in self.announced:
                self.announced.add(identity)
                say(f"participant joined {identity}")
        elif isinstance(event, ev.ParticipantDisconnected):
            self.announced.discard(event.participant.identity)
            say(f"participant left {event.participant.identity}")
        elif isinstance(event, ev.DataReceived):
            who = event.participant_identity or "the server"
            say(f"data from {who}{topic_suffix(event.topic)}: {show_bytes(event.payload)}")
        elif isinstance(event, ev.ChatMessageReceived):
            say(f"chat from {event.participant_identity}: {one_line(event.message)}")
        elif isinstance(event, ev.ParticipantAttributesChanged):
            changed = ", ".join(f"{k}={v}" for k, v in sorted(event.changed.items()))
            say(f"participant {event.participant.identity} attributes {one_line(changed)}")
        elif isinstance(event, ev.ParticipantNameChanged):
            p = event.participant
            say(f"participant {p.identity} name {one_line(p.name)}")
        elif isinstance(event, ev.ParticipantMetadataChanged):
            p = event.participant
            say(f"participant {p.identity} metadata {one_line(p.metadata)}")
        elif isinstance(event, ev.RoomMetadataChanged):
            say(f"room metadata {one_line(event.metadata)}")
        elif isinstance(event, ev.SipDtmfReceived):
            say(f"dtmf from {event.participant_identity}: {event.digit}")
        elif isinstance(event, ev.TranscriptionReceived):
            text = " ".join(s.text for s in event.segments)
            say(f"transcription from {event.participant_identity}: {one_line(text)}")
        elif isinstance(event, ev.StreamDropped) and event.reason is DropReason.NO_HANDLER:
            say(f"ignored a stream from {event.sender_identity}: {event.detail} (see --topic)")

    async def _on_text(self, reader: TextStreamReader, sender: str) -> None:
        info = reader.info
        try:
            text = await reader.read_all()
        except StreamError as exc:
            self.console.error(f"{PROG}: text stream from {sender} failed: {exc}")
            return
        self.console.print(f"text stream from {sender}{topic_suffix(info.topic)}: {one_line(text)}")

    async def _on_bytes(self, reader: ByteStreamReader, sender: str) -> None:
        info = reader.info
        shown = one_line(info.name, 80) or info.stream_id
        bar = ProgressBar(
            self.console, f"receiving {shown} from {sender}", info.size, mode=self.ctx.progress
        )
        digest, size = hashlib.sha256(), 0
        target: Path | None = None
        try:
            if self.save_dir is None:
                async for chunk in reader:
                    digest.update(chunk)
                    size += len(chunk)
                    bar.update(size)
            else:
                name = safe_filename(info.name, f"stream-{info.stream_id}")
                target, raw = create_unique(self.save_dir, name)
                async with anyio.wrap_file(raw) as f:
                    async for chunk in reader:
                        digest.update(chunk)
                        size += len(chunk)
                        await f.write(chunk)
                        bar.update(size)
        except (StreamError, OSError) as exc:
            bar.finish(size)
            await reader.aclose()  # discard the rest instead of buffering it
            if target is not None:
                with contextlib.suppress(OSError):
                    target.unlink()
            self.console.error(f"{PROG}: file {shown} from {sender} failed: {exc}")
            return
        bar.finish(size)
        topic = topic_suffix(info.topic)
        if target is None:
            self.console.print(
                f"file from {sender}{topic} name={shown}: {size} bytes sha256={digest.hexdigest()}"
            )
        else:
            self.console.print(
                f"saved {target} from {sender}{topic}: {size} bytes sha256={digest.hexdigest()}"
            )


# -- commands -------------------------------------------------------------------------------
