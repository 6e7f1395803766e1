"""One Room, joined with a command's settings, and the printing of what it sees."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import anyio
import anyio.abc

from lkproto import Config
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

__all__ = ["RECEIPT_ATTRIBUTE", "RECEIPT_METHOD", "Session", "topic_suffix"]

#: The CLI's `Config.leave_drain_timeout`: a one-shot `send-file` or `send-text` leaves right
#: after its writer returns, with up to 1 MiB still queued (the adapters' high mark), which
#: is what the user asked to send; 2 s (the library's default) cut it off on a loaded machine.
#: A leave waits only while data is unacknowledged, so this costs a quiet session nothing.
_LEAVE_DRAIN = 30.0
_LEAVE_TIMEOUT = _LEAVE_DRAIN + 5.0  # the whole leave, drain included
#: The RPC method an lkproto receiver calls on a file's sender, when the stream's header
#: carries RECEIPT_ATTRIBUTE naming it: {"stream_id", "status": "receiving"} at the start,
#: then {"stream_id", "status": "received", "size", "sha256"} or {..., "status": "failed",
#: "error"} (the package docstring's "Delivery").
RECEIPT_METHOD = "lkproto.receipt"
RECEIPT_ATTRIBUTE = "lkproto.receipt"
_RECEIPT_TIMEOUT = 10.0


def who(identity: str) -> str:
    """A peer-chosen identity, printable on one line (escaped, clipped)."""
    return one_line(identity, 200)


def _default_identity() -> str:
    return f"lkproto-{secrets.token_hex(3)}"


def _read_token(path: str) -> str:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else "unreadable"
        raise CliError(f"cannot read --token-file {path}: {detail}", ExitCode.USAGE) from None
    return text.strip()


def given_token(ctx: Context) -> str | None:
    """The ready token, if any: --token, else --token-file, else LIVEKIT_TOKEN when no key,
    secret, room or identity flag asks for a minted one."""
    a = ctx.args
    if a.token is not None:
        return str(a.token)
    if getattr(a, "token_file", None):
        return _read_token(a.token_file)
    minting = a.api_key or a.api_secret or a.room or a.identity or a.name
    env = os.environ.get("LIVEKIT_TOKEN", "")
    return env if env and not minting else None


def _credentials(ctx: Context) -> Credentials:
    a = ctx.args
    if a.api_secret:
        ctx.secrets.append(a.api_secret)
    if os.environ.get("LIVEKIT_API_SECRET"):
        ctx.secrets.append(os.environ["LIVEKIT_API_SECRET"])
    token = given_token(ctx)
    if token:
        ctx.secrets.append(token)
    identity = a.identity
    if token is None and not identity:
        identity = _default_identity()
    creds = resolve_credentials(
        url=a.url,
        token=token,
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
        self.room = Room(config=Config(leave_drain_timeout=_LEAVE_DRAIN))
        self.announced: set[str] = set()
        self.save_dir: Path | None = None
        self.ready = anyio.Event()
        self.ended: ev.Disconnected | None = None
        self.ended_event = anyio.Event()
        self.leaving = False
        self.tg: anyio.abc.TaskGroup | None = None

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
            self.tg = tg
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
        me = who(room.local_participant.identity)
        self.console.print(f"joined room {one_line(room.name, 200)} as {me}")
        for identity in sorted(room.remote_participants):
            self.announced.add(identity)
            self.console.print(f"participant present {who(identity)}")
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
                f"unknown participant {who(missing[0])!r}: not in room "
                f"{one_line(room.name, 200)!r} (waited {timeout:g}s)",
                ExitCode.UNKNOWN_PARTICIPANT,
            )

    async def stay(self, duration: float | None) -> None:
        """Until `duration` passes, a signal arrives, or the server ends the session."""
        with anyio.move_on_after(float("inf") if duration is None else duration):
            await self.ended_event.wait()
        if self.ended is not None:
            reason = self.ended.reason.name
            message = one_line(" ".join(self.ended.message.split()))
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
        # Every string a peer or the server chose is escaped (`who`, `one_line`): no
        # terminal escape sequences, no forged output lines.
        say = self.console.print
        if isinstance(event, ev.ParticipantConnected):
            identity = event.participant.identity
            if identity not in self.announced:
                self.announced.add(identity)
                say(f"participant joined {who(identity)}")
        elif isinstance(event, ev.ParticipantDisconnected):
            self.announced.discard(event.participant.identity)
            say(f"participant left {who(event.participant.identity)}")
        elif isinstance(event, ev.DataReceived):
            sender = who(event.participant_identity) or "the server"
            say(f"data from {sender}{topic_suffix(event.topic)}: {show_bytes(event.payload)}")
        elif isinstance(event, ev.ChatMessageReceived):
            say(f"chat from {who(event.participant_identity)}: {one_line(event.message)}")
        elif isinstance(event, ev.ParticipantAttributesChanged):
            changed = ", ".join(f"{k}={v}" for k, v in sorted(event.changed.items()))
            say(f"participant {who(event.participant.identity)} attributes {one_line(changed)}")
        elif isinstance(event, ev.ParticipantNameChanged):
            p = event.participant
            say(f"participant {who(p.identity)} name {one_line(p.name)}")
        elif isinstance(event, ev.ParticipantMetadataChanged):
            p = event.participant
            say(f"participant {who(p.identity)} metadata {one_line(p.metadata)}")
        elif isinstance(event, ev.RoomMetadataChanged):
            say(f"room metadata {one_line(event.metadata)}")
        elif isinstance(event, ev.SipDtmfReceived):
            say(f"dtmf from {who(event.participant_identity)}: {one_line(event.digit, 10)}")
        elif isinstance(event, ev.TranscriptionReceived):
            text = " ".join(s.text for s in event.segments)
            say(f"transcription from {who(event.participant_identity)}: {one_line(text)}")
        elif isinstance(event, ev.StreamDropped) and event.reason is DropReason.NO_HANDLER:
            detail = one_line(event.detail)
            say(f"ignored a stream from {who(event.sender_identity)}: {detail} (see --topic)")

    async def _on_text(self, reader: TextStreamReader, sender: str) -> None:
        info = reader.info
        try:
            text = await reader.read_all()
        except StreamError as exc:
            self.console.error(
                f"{PROG}: text stream from {who(sender)} failed: {one_line(str(exc))}"
            )
            return
        topic = topic_suffix(info.topic)
        self.console.print(f"text stream from {who(sender)}{topic}: {one_line(text)}")

    def _receipt(
        self, sender: str, info_attributes: dict[str, str], receipt: dict[str, object]
    ) -> None:
        """Tell the sender how its file went, if it asked (RECEIPT_ATTRIBUTE)."""
        if info_attributes.get(RECEIPT_ATTRIBUTE) != RECEIPT_METHOD or self.tg is None:
            return
        payload = json.dumps(receipt)

        async def call() -> None:
            with contextlib.suppress(LkProtocolError):  # RpcError, or the room closing
                await self.room.local_participant.perform_rpc(
                    destination_identity=sender,
                    method=RECEIPT_METHOD,
                    payload=payload,
                    response_timeout=_RECEIPT_TIMEOUT,
                )

        self.tg.start_soon(call)

    async def _on_bytes(self, reader: ByteStreamReader, sender: str) -> None:
        info = reader.info
        shown = one_line(info.name, 80) or info.stream_id
        bar = ProgressBar(
            self.console, f"receiving {shown} from {who(sender)}", info.size, mode=self.ctx.progress
        )
        attributes = dict(info.attributes or {})
        self._receipt(sender, attributes, {"stream_id": info.stream_id, "status": "receiving"})
        digest, size = hashlib.sha256(), 0
        part: Path | None = None
        saved: Path | None = None
        error: str | None = None
        try:
            if self.save_dir is None:
                async for chunk in reader:
                    digest.update(chunk)
                    size += len(chunk)
                    bar.update(size)
            else:
                # Written as NAME.part and renamed once whole: an interrupted transfer never
                # leaves a file that looks complete under its real name.
                name = safe_filename(info.name, f"stream-{info.stream_id}")
                part, raw = create_unique(self.save_dir, f"{name}.part")
                async with anyio.wrap_file(raw) as f:
                    async for chunk in reader:
                        digest.update(chunk)
                        size += len(chunk)
                        await f.write(chunk)
                        bar.update(size)
                final, placeholder = create_unique(self.save_dir, name)
                placeholder.close()
                os.replace(part, final)
                saved, part = final, None
        except (StreamError, OSError) as exc:
            error = str(exc)
            await reader.aclose()  # discard the rest instead of buffering it
        finally:
            if part is not None:  # failed, or cancelled: remove what we wrote
                with contextlib.suppress(OSError):
                    part.unlink()
            if error is None and saved is None and self.save_dir is not None:
                error = "interrupted"  # cancelled: the finally of a cancelled task
            if error is not None:
                bar.finish(size)
                if self.leaving:
                    self.ctx.cut_short = True
                removed = "; the partial file was removed" if self.save_dir is not None else ""
                self.console.error(
                    f"{PROG}: file {shown} from {who(sender)} failed after {size} bytes: "
                    f"{one_line(error)}{removed}"
                )
                self._receipt(
                    sender,
                    attributes,
                    {"stream_id": info.stream_id, "status": "failed", "error": error},
                )
        if error is not None:
            return
        bar.finish(size)
        topic = topic_suffix(info.topic)
        sha = digest.hexdigest()
        self._receipt(
            sender,
            attributes,
            {"stream_id": info.stream_id, "status": "received", "size": size, "sha256": sha},
        )
        if saved is None:
            self.console.print(
                f"file from {who(sender)}{topic} name={shown}: {size} bytes sha256={sha}"
            )
        else:
            self.console.print(
                f"saved {saved} from {who(sender)}{topic}: {size} bytes sha256={sha}"
            )


# -- commands -------------------------------------------------------------------------------
