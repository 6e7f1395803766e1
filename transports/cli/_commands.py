"""The `lkproto` subcommands: token, join/listen/rpc serve, rpc call, send-text, send-file."""

from __future__ import annotations

import codecs
import hashlib
import inspect
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import anyio.abc

from lkproto.errors import LkProtocolError
from lkproto.streams import StreamError

from ..anyio import (
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
from ._session import Session, topic_suffix
from ._util import (
    load_handler,
    one_line,
    printable,
)

__all__ = ["cmd_rpc_call", "cmd_send_file", "cmd_send_text", "cmd_stay", "cmd_token"]

_STDIN_READ = 64 * 1024


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
        who, method = data.caller_identity, one_line(data.method, 100)
        console.print(f"rpc from {who} method={method} payload={one_line(data.payload)}")
        try:
            result = fn(data, room) if with_room else fn(data)
            if inspect.isawaitable(result):
                result = await result
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
        await session.wait_for_participants(destinations, a.wait)
        local = room.local_participant
        to = ",".join(destinations) or "the room"
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
        console.print(f"sent {count} characters to {to}{topic_suffix(a.topic)}")
    return ExitCode.OK


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
    async with session.joined(watch=False):
        await session.wait_for_participants(destinations, a.wait)
        size = path.stat().st_size
        bar = ProgressBar(console, f"sending {path.name}", size, mode=ctx.progress)
        sent = 0

        def progress(done: int, total: int | None) -> None:
            nonlocal sent
            sent = done
            bar.update(done)

        try:
            await room.local_participant.send_file(
                path, destination_identities=destinations, topic=a.topic, on_progress=progress
            )
        except (LkProtocolError, OSError) as exc:
            bar.finish(sent)
            raise CliError(f"send-file failed: {exc}", ExitCode.FAILED) from None
        bar.finish(size)
        to = ",".join(destinations) or "the room"
        console.print(
            f"sent {path.name} to {to}{topic_suffix(a.topic)}: {size} bytes sha256={digest}"
        )
    return ExitCode.OK
