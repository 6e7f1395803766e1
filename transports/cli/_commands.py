"""The `lkproto` subcommands: token, join/listen/rpc serve, rpc call, send-text, send-file."""

from __future__ import annotations

import codecs
import hashlib
import inspect
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import anyio.abc
import anyio.to_thread

from lkproto import Config
from lkproto.errors import LkProtocolError
from lkproto.streams import StreamError

from ..anyio import (
    RemoteParticipant,
    RpcError,
    RpcInvocationData,
    TextStreamReader,
)
from ._config import (
    CliError,
    ExitCode,
    parse_grants,
)
from ._context import PROG, Context, Exit
from ._progress import ProgressBar
from ._session import RECEIPT_ATTRIBUTE, RECEIPT_METHOD, Session, topic_suffix
from ._util import (
    Handler,
    load_handler,
    one_line,
    printable,
)

__all__ = ["cmd_rpc_call", "cmd_send_file", "cmd_send_text", "cmd_stay", "cmd_token"]

_STDIN_READ = 64 * 1024
_START_RECEIPT_WAIT = 5.0  # seconds, after the send, for the receiver's first receipt
_AFTER_LEAVE_WAIT = 3.0  # seconds a receipt may still come after its sender left
_HANDLER_THREADS = anyio.CapacityLimiter(64)  # plain --handler calls running at once
_BUSY = [0]  # plain handlers still running on their threads
_BUSY_LOCK = threading.Lock()


def busy_handlers() -> int:
    """Plain --handler calls still running (abandoned by a cancelled call or a signal)."""
    with _BUSY_LOCK:
        return _BUSY[0]


async def cmd_token(ctx: Context) -> int:
    a = ctx.args
    key = a.api_key or os.environ.get("LIVEKIT_API_KEY", "")
    secret = a.api_secret or os.environ.get("LIVEKIT_API_SECRET", "")
    if secret:
        ctx.secrets.append(secret)
    if not key or not secret:
        raise CliError(
            "missing credentials: give --api-key and --api-secret "
            "(or set LIVEKIT_API_KEY and LIVEKIT_API_SECRET)",
            ExitCode.USAGE,
        )
    if a.ttl <= 0:
        raise CliError(f"bad --ttl {a.ttl}: must be positive", ExitCode.USAGE)
    attributes: dict[str, str] = {}
    for item in a.attribute:
        k, sep, v = item.partition("=")
        if not sep or not k:
            raise CliError(f"bad --attribute {item!r}: use KEY=VALUE", ExitCode.USAGE)
        attributes[k] = v
    from lkproto.tokens import mint_token

    token = mint_token(
        key,
        secret,
        now=int(time.time()),
        grants=parse_grants(a.room, a.grant),
        identity=a.identity,
        name=a.name,
        metadata=a.metadata,
        attributes=attributes or None,
        kind=a.kind,
        ttl=a.ttl,
    )
    ctx.console.print(token)
    return ExitCode.OK


async def cmd_stay(ctx: Context) -> int:
    """join, listen and rpc serve: stay in the room, print, save, answer calls."""
    a = ctx.args
    methods: list[str] = list(dict.fromkeys(a.methods or a.default_methods))
    if a.handler is not None:
        if not methods:
            raise CliError("--handler needs --method NAME (the method it answers)", ExitCode.USAGE)
        fn, with_room = load_handler(a.handler)
    else:
        fn, with_room = _echo, False
    session = Session(ctx)
    session.prepare_save_dir(a.save)
    session.show_streams(a.topics)
    console, room = ctx.console, session.room

    async def serve(data: RpcInvocationData) -> str:
        who, method = one_line(data.caller_identity, 200), one_line(data.method, 100)
        console.print(f"rpc from {who} method={method} payload={one_line(data.payload)}")
        try:
            result = await run_handler(fn, data, room, with_room=with_room)
        except RpcError as exc:
            console.print(f"rpc error to {who} method={method}: {exc.code} {one_line(exc.message)}")
            raise
        except Exception as exc:
            detail = one_line(f"{type(exc).__name__}: {exc}")
            console.print(f"rpc error to {who} method={method}: 1500 the handler raised {detail}")
            raise
        text = "" if result is None else str(result)
        console.print(f"rpc reply to {who} method={method}: {one_line(text)}")
        return text

    for method in methods:
        room.local_participant.register_rpc_method(method, serve)
    ctx.stay = True
    async with session.joined(watch=True):
        session.announce()
        if methods:
            console.print(f"serving rpc methods: {', '.join(methods)}")
        if session.save_dir is not None:
            console.print(f"saving files to {session.save_dir}")
        try:
            await session.stay(a.duration)
        finally:
            console.print(f"left room {room.name}")
    return ExitCode.OK


def _echo(data: RpcInvocationData) -> str:
    return data.payload


async def run_handler(
    fn: Handler, data: RpcInvocationData, room: object, *, with_room: bool
) -> object:
    """Run a --handler: an async one on the event loop, a plain one on a worker thread (as
    the threaded adapter does), so a slow or blocking handler never stalls the session, its
    keepalive or other calls. A cancelled call abandons the thread (it cannot be stopped)."""
    args = (data, room) if with_room else (data,)
    result: object
    if inspect.iscoroutinefunction(fn):
        result = fn(*args)
    else:

        def call() -> object:
            with _BUSY_LOCK:
                _BUSY[0] += 1
            try:
                return fn(*args)
            finally:
                with _BUSY_LOCK:
                    _BUSY[0] -= 1

        result = await anyio.to_thread.run_sync(
            call, abandon_on_cancel=True, limiter=_HANDLER_THREADS
        )
    if inspect.isawaitable(result):
        result = await result
    return result


async def _read_stdin() -> AsyncIterator[str]:
    """stdin as text, piece by piece as it arrives (invalid UTF-8 is replaced)."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    fd = sys.stdin.fileno()
    while True:
        data: bytes = await anyio.to_thread.run_sync(
            os.read, fd, _STDIN_READ, abandon_on_cancel=True
        )
        text = decoder.decode(data, final=not data)
        if text:
            yield text
        if not data:
            return


async def cmd_rpc_call(ctx: Context) -> int:
    a = ctx.args
    destination: str = a.to
    payload: str = a.payload
    check_method(a.method)
    if not destination:
        raise CliError("bad --to: it is empty", ExitCode.USAGE)
    if payload == "-":
        payload = "".join([piece async for piece in _read_stdin()])
    session = Session(ctx)
    console, room = ctx.console, session.room
    following = 0
    idle = anyio.Event()
    idle.set()

    async with anyio.create_task_group() as tg:

        async def print_stream(reader: TextStreamReader, sender: str) -> None:
            nonlocal following, idle
            try:
                console.write(f"text stream from {sender}{topic_suffix(reader.info.topic)}: ")
                async for chunk in reader:
                    console.write(printable(chunk))
            except StreamError as exc:
                console.error(f"{PROG}: text stream from {sender} failed: {exc}")
            finally:
                console.write("\n")
                following -= 1
                if following == 0:
                    idle.set()

        def on_text(reader: TextStreamReader, sender: str) -> None:
            nonlocal following, idle
            if sender != destination:
                tg.start_soon(reader.aclose)
                return
            following += 1
            idle = anyio.Event()
            tg.start_soon(print_stream, reader, sender)

        if a.follow is not None:
            room.register_text_stream_handler(a.follow, on_text)
        try:
            async with session.joined(watch=False):
                if destination == room.local_participant.identity:
                    raise CliError(
                        f"bad --to {one_line(destination, 200)}: that is us (a participant "
                        "cannot call itself)",
                        ExitCode.USAGE,
                    )
                await session.wait_for_participants([destination], a.wait)
                try:
                    response = await room.local_participant.perform_rpc(
                        destination_identity=destination,
                        method=a.method,
                        payload=payload,
                        response_timeout=a.timeout,
                    )
                except RpcError as exc:
                    console.error(f"error {exc.code}: {one_line(exc.message)}")
                    gone = (
                        RpcError.ErrorCode.RECIPIENT_NOT_FOUND,
                        RpcError.ErrorCode.RECIPIENT_DISCONNECTED,
                    )
                    raise Exit(
                        ExitCode.UNKNOWN_PARTICIPANT if exc.code in gone else ExitCode.RPC_ERROR
                    ) from None
                with anyio.move_on_after(a.timeout):
                    await idle.wait()
                console.print(response)
        finally:
            tg.cancel_scope.cancel()
    return ExitCode.OK


async def cmd_send_text(ctx: Context) -> int:
    a = ctx.args
    destinations: list[str] = list(a.to or [])
    session = Session(ctx)
    console, room = ctx.console, session.room
    async with session.joined(watch=False):
        _check_can_publish(session)
        await session.wait_for_participants(destinations, a.wait)
        local = room.local_participant
        to = ",".join(one_line(d, 200) for d in destinations) or "the room"
        try:
            if a.text is not None and a.text != "-":
                await local.send_text(a.text, destination_identities=destinations, topic=a.topic)
                count = len(a.text)
            else:
                if sys.stdin.isatty():
                    console.error(f"{PROG}: sending what you type; end with Ctrl-D")
                writer = await local.stream_text(destination_identities=destinations, topic=a.topic)
                count = 0
                async with writer:
                    async for piece in _read_stdin():
                        await writer.write(piece)
                        count += len(piece)
        except LkProtocolError as exc:
            raise CliError(f"send-text failed: {exc}", ExitCode.FAILED) from None
        # The server acknowledges nothing end to end: say only what we know.
        console.print(f"sent {count} characters to the server for {to}{topic_suffix(a.topic)}")
    return ExitCode.OK


def check_method(method: str) -> None:
    """An RPC method name the library will accept (exit 2 before connecting otherwise)."""
    limit = Config().max_rpc_method_bytes
    if not method:
        raise CliError("bad --method: it is empty", ExitCode.USAGE)
    if len(method.encode()) > limit:
        raise CliError(f"bad --method: over {limit} bytes of UTF-8", ExitCode.USAGE)


def _check_can_publish(session: Session) -> None:
    permissions = session.room.local_participant.permissions
    if not permissions.can_publish_data:
        raise CliError(
            "the token does not allow sending data (its canPublishData grant is false); "
            "the server would drop it",
            ExitCode.USAGE,
        )


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


async def cmd_send_file(ctx: Context) -> int:
    a = ctx.args
    path = Path(a.path)
    if not path.exists():
        raise CliError(f"no such file: {a.path}", ExitCode.USAGE)
    if not path.is_file():
        raise CliError(f"not a regular file: {a.path}", ExitCode.USAGE)
    try:
        digest = await anyio.to_thread.run_sync(_sha256_file, path)
    except OSError as exc:
        raise CliError(f"cannot read {a.path}: {exc.strerror or exc}", ExitCode.USAGE) from None
    destinations: list[str] = list(a.to or [])
    session = Session(ctx)
    console, room = ctx.console, session.room
    receipts = Receipts(destinations[0]) if len(destinations) == 1 else None
    attributes: dict[str, str] = {}
    if receipts is not None:
        room.local_participant.register_rpc_method(RECEIPT_METHOD, receipts.on_receipt)
        room.on("participant_disconnected", receipts.on_left)
        attributes[RECEIPT_ATTRIBUTE] = RECEIPT_METHOD
    async with session.joined(watch=False):
        _check_can_publish(session)
        await session.wait_for_participants(destinations, a.wait)
        size = path.stat().st_size
        bar = ProgressBar(console, f"sending {path.name}", size, mode=ctx.progress)
        sent = 0

        def progress(done: int, total: int | None) -> None:
            nonlocal sent
            sent = done
            bar.update(done)

        stream_id = uuid.uuid4().hex
        if receipts is not None:
            receipts.stream_id = stream_id
        try:
            await room.local_participant.send_file(
                path,
                destination_identities=destinations,
                topic=a.topic,
                on_progress=progress,
                attributes=attributes or None,
                stream_id=stream_id,
            )
        except (LkProtocolError, OSError) as exc:
            bar.finish(sent)
            raise CliError(f"send-file failed: {exc}", ExitCode.FAILED) from None
        bar.finish(size)
        to = ",".join(one_line(d, 200) for d in destinations) or "the room"
        what = f"{path.name} to {to}{topic_suffix(a.topic)}: {size} bytes sha256={digest}"
        if receipts is None:
            console.print(f"sent {what} (to the server; delivery is not confirmed)")
            return ExitCode.OK
        final = await receipts.wait(float(a.receipt_timeout))
        if final is None and not receipts.receiving.is_set():
            console.print(
                f"sent {what} (to the server; no receipt: this receiver does not confirm "
                "deliveries)"
            )
            return ExitCode.OK
        if final is None:
            why = "it left" if receipts.left else f"none within {a.receipt_timeout:g}s"
            raise CliError(
                f"no receipt from {to} ({why}): {path.name} was sent to the server, its "
                "delivery is not confirmed",
                ExitCode.FAILED,
            )
        if final.get("status") != "received":
            error = one_line(str(final.get("error", "no reason given")))
            raise CliError(f"{to} did not receive {path.name}: {error}", ExitCode.FAILED)
        if final.get("sha256") != digest or final.get("size") != size:
            raise CliError(
                f"{to} received {path.name} damaged: {final.get('size')} bytes "
                f"sha256={one_line(str(final.get('sha256')), 80)}",
                ExitCode.FAILED,
            )
        console.print(f"delivered {what} (confirmed by {to})")
    return ExitCode.OK


class Receipts:
    """The sender's side of `lkproto.receipt` (see the package docstring, "Delivery")."""

    def __init__(self, destination: str) -> None:
        self.destination = destination
        self.stream_id = ""
        self.receiving = anyio.Event()  # the receiver confirmed the stream's start
        self.done = anyio.Event()
        self.final: dict[str, object] | None = None
        self.left = False
        self._gone = anyio.Event()

    def on_receipt(self, data: RpcInvocationData) -> str:
        if data.caller_identity != self.destination:
            raise RpcError(RpcError.ErrorCode.APPLICATION_ERROR, "not a receiver of ours")
        try:
            receipt = json.loads(data.payload)
        except ValueError:
            raise RpcError(RpcError.ErrorCode.APPLICATION_ERROR, "not JSON") from None
        if not isinstance(receipt, dict) or receipt.get("stream_id") != self.stream_id:
            raise RpcError(RpcError.ErrorCode.APPLICATION_ERROR, "not one of our streams")
        self.receiving.set()
        if receipt.get("status") != "receiving":
            self.final = receipt
            self.done.set()
        return "ok"

    def on_left(self, participant: RemoteParticipant) -> None:
        if participant.identity == self.destination:
            self.left = True
            self._gone.set()

    async def wait(self, timeout: float) -> dict[str, object] | None:
        """The final receipt; None if the receiver never confirmed the start within a few
        seconds of the end of the send, left, or sent no final receipt within `timeout`."""
        with anyio.move_on_after(min(_START_RECEIPT_WAIT, timeout)):
            await self.receiving.wait()
        if not self.receiving.is_set():
            return None
        with anyio.move_on_after(timeout):
            async with anyio.create_task_group() as tg:

                async def after_leave() -> None:
                    await self._gone.wait()
                    await anyio.sleep(_AFTER_LEAVE_WAIT)  # a receipt the leave overtook
                    tg.cancel_scope.cancel()

                tg.start_soon(after_leave)
                await self.done.wait()
                tg.cancel_scope.cancel()
        return self.final
