"""`lkproto`: a LiveKit data-plane client on the command line.

Subcommands:
  token       print an access token minted with the API key and secret
  join        stay in a room; print participants, data, text and byte streams, RPC calls
  listen      as join, and save received files under --save DIR
  rpc call    call a method on a participant; print its response (or the error)
  rpc serve   stay in a room and answer RPC calls (echo, or a Python handler)
  send-text   send text (an argument, or stdin streamed as it comes) as a text stream
  send-file   send a file as a byte stream, with a progress bar

Configuration: --url, --api-key and --api-secret, else the environment variables LIVEKIT_URL,
LIVEKIT_API_KEY and LIVEKIT_API_SECRET (flags win). With the key and secret, a token is
minted for --room and --identity; or pass --token (it names the room and identity itself).
The token and the secret are never printed (except by `lkproto token`, whose job it is).

ICE host addresses: WebRTC gathers candidates only on the --host-address values (repeatable;
`any` lifts the restriction). By default, when the server is on this machine (the URL's host
is a loopback address, `localhost`, or an address of this host or network namespace), only
that address is used, so a session with a local server never touches another interface;
for a remote server every interface is used.

Output: each event or result is one line on stdout, flushed as it happens; errors, notices
and progress bars go to stderr. Progress shows percent, bytes, rate (MiB/s) and ETA: one
line redrawn on a terminal, or a plain line at each quarter otherwise (--progress).

Exit codes:
  0    success; join/listen/rpc serve also exit 0 when stopped by --duration, SIGINT or SIGTERM
  1    the RPC's destination answered with an error: `error <code>: <message>` on stderr
  2    bad input: usage, missing credentials or URL, bad URL, no such file, bad handler
  3    could not connect: the server refused the token, could not be reached, or timed out
  4    unknown participant: a --to destination did not appear within --wait seconds, or the
       call failed with 1401 (recipient not found) or 1503 (recipient disconnected)
  5    the session ended or a transfer failed after connecting
  130  a one-shot command was interrupted (SIGINT or SIGTERM)
Every failure prints one line on stderr, never a traceback (--verbose adds library logs).
"""

from __future__ import annotations

import argparse
import asyncio
import codecs
import contextlib
import hashlib
import inspect
import logging
import os
import secrets
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import NoReturn

import anyio
import anyio.abc

from lkproto import events as ev
from lkproto.errors import LkProtocolError
from lkproto.streams import DropReason, StreamError

from ._cli_config import (
    CliError,
    Credentials,
    ExitCode,
    parse_grants,
    resolve_credentials,
    resolve_host_addresses,
)
from ._cli_progress import Console, ProgressBar, ProgressMode, format_progress
from ._cli_util import (
    create_unique,
    load_handler,
    one_line,
    printable,
    safe_filename,
    show_bytes,
)
from ._errors import redact
from .anyio import (
    ByteStreamReader,
    ConnectError,
    Room,
    RoomOptions,
    RpcError,
    RpcInvocationData,
    RtcConfiguration,
    TextStreamReader,
)

__all__ = ["CliError", "ExitCode", "build_parser", "format_progress", "main"]

PROG = "lkproto"
DEFAULT_TOPICS = ("", "lk.chat", "files")
DEFAULT_WAIT = 5.0  # seconds a command waits for its --to participants to appear
_LEAVE_TIMEOUT = 10.0
_STDIN_READ = 64 * 1024


class _Exit(Exception):
    """Leave with `code`; the line explaining it was printed already."""

    def __init__(self, code: ExitCode) -> None:
        super().__init__(int(code))
        self.code = code


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit code 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(ExitCode.USAGE, f"{self.prog}: error: {message} (see --help)\n")


# -- the command-line grammar ---------------------------------------------------------------


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds: {text!r}")
    return value


def _connection_options() -> _Parser:
    common = _Parser(add_help=False)
    group = common.add_argument_group("connection")
    group.add_argument("--url", help="server URL, ws(s):// or http(s):// (env LIVEKIT_URL)")
    group.add_argument("--api-key", help="API key to mint a token with (env LIVEKIT_API_KEY)")
    group.add_argument(
        "--api-secret", help="API secret to mint a token with (env LIVEKIT_API_SECRET)"
    )
    group.add_argument("--token", help="a ready access token instead of key and secret")
    group.add_argument("--room", help="room to join (with key and secret)")
    group.add_argument(
        "--identity", help="our identity (with key and secret; default lkproto-<random>)"
    )
    group.add_argument("--name", help="our display name (with key and secret)")
    group.add_argument(
        "--host-address",
        action="append",
        metavar="ADDR",
        help="gather ICE candidates on ADDR only (repeatable; 'any' for every interface; "
        "default: the server's address when it is on this machine, else any)",
    )
    group.add_argument(
        "--connect-timeout",
        type=_positive,
        default=10.0,
        metavar="SECONDS",
        help="give up joining after this long (default 10)",
    )
    out = common.add_argument_group("output")
    out.add_argument(
        "--progress",
        choices=("auto", "bar", "lines", "none"),
        default="auto",
        help="progress display: a redrawn bar, a line per quarter, or none (default: bar "
        "on a terminal, else lines)",
    )
    out.add_argument("-v", "--verbose", action="store_true", help="show library logs on stderr")
    return common


def _stay_options(
    parser: argparse.ArgumentParser, *, save_required: bool = False, default_method: str = ""
) -> None:
    parser.add_argument(
        "--method",
        action="append",
        dest="methods",
        metavar="NAME",
        help="answer RPC calls to NAME and print them (repeatable; default "
        + (default_method or "none: calls are answered 1400 by the library, unseen")
        + ")",
    )
    parser.add_argument(
        "--handler",
        metavar="SPEC",
        help="answer with module:function or path/to/file.py:function instead of echoing",
    )
    parser.add_argument(
        "--topic",
        action="append",
        dest="topics",
        metavar="TOPIC",
        help="show text and byte streams on TOPIC (repeatable; default: no topic, lk.chat "
        "and files)",
    )
    parser.add_argument(
        "--save",
        metavar="DIR",
        required=save_required,
        help="save received files under DIR (created if missing)",
    )
    parser.add_argument(
        "--duration",
        type=_positive,
        metavar="SECONDS",
        help="leave after this long (default: until SIGINT or SIGTERM)",
    )


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be zero or more seconds: {text!r}")
    return value


def _to_options(parser: argparse.ArgumentParser, *, many: bool) -> None:
    if many:
        parser.add_argument(
            "--to",
            action="append",
            metavar="IDENTITY",
            help="destination participant (repeatable; default: everyone in the room)",
        )
    else:
        parser.add_argument(
            "--to", required=True, metavar="IDENTITY", help="the participant to call"
        )
    parser.add_argument(
        "--wait",
        type=_seconds,
        default=DEFAULT_WAIT,
        metavar="SECONDS",
        help=f"wait this long for the destination to appear (default {DEFAULT_WAIT:g})",
    )


def build_parser() -> argparse.ArgumentParser:
    """The whole grammar (exposed for tests and documentation)."""
    doc = __doc__ or ""
    epilog = doc[doc.index("Configuration:") :]
    parser = _Parser(
        prog=PROG,
        description="A LiveKit data-plane client: RPC, text and byte streams, data packets.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = _connection_options()

    token = sub.add_parser(
        "token",
        help="print an access token",
        description="Mint an access token with the API key and secret; print it on stdout.",
    )
    token.add_argument("--api-key", help="(env LIVEKIT_API_KEY)")
    token.add_argument("--api-secret", help="(env LIVEKIT_API_SECRET)")
    token.add_argument("--identity", required=True)
    token.add_argument("--room", required=True)
    token.add_argument("--name")
    token.add_argument("--metadata")
    token.add_argument("--kind", help="participant kind, e.g. standard or agent")
    token.add_argument(
        "--attribute", action="append", default=[], metavar="KEY=VALUE", help="(repeatable)"
    )
    token.add_argument(
        "--grant",
        action="append",
        default=[],
        metavar="NAME[=BOOL]",
        help="set a video grant, e.g. can_publish=false or room_admin (repeatable; "
        "room_join is on)",
    )
    token.add_argument(
        "--ttl", type=int, default=6 * 3600, metavar="SECONDS", help="lifetime (default 6 h)"
    )
    token.set_defaults(run=_cmd_token)

    join = sub.add_parser(
        "join",
        parents=[common],
        help="stay in a room and print what happens",
        description="Join a room and print participants, data packets, text and byte "
        "streams, and calls to the --method names (answered by echoing, or by --handler), "
        "as they happen, until --duration, SIGINT or SIGTERM.",
    )
    _stay_options(join)
    join.set_defaults(run=_cmd_stay, default_methods=[])

    listen = sub.add_parser(
        "listen",
        parents=[common],
        help="as join, saving received files",
        description="As join, and save every received byte stream (file) under --save DIR. "
        "File names are cleaned: only the last path component is kept.",
    )
    _stay_options(listen, save_required=True)
    listen.set_defaults(run=_cmd_stay, default_methods=[])

    rpc = sub.add_parser("rpc", help="call or serve RPC methods")
    rpc_sub = rpc.add_subparsers(dest="rpc_command", required=True, metavar="COMMAND")
    call = rpc_sub.add_parser(
        "call",
        parents=[common],
        help="call a method and print the response",
        description="Call METHOD on a participant; print the response on stdout (exit 0), "
        "or `error <code>: <message>` on stderr (exit 1).",
    )
    _to_options(call, many=False)
    call.add_argument("--method", required=True)
    call.add_argument("--payload", default="", help="the request payload ('-' reads stdin)")
    call.add_argument(
        "--timeout",
        type=_positive,
        default=15.0,
        metavar="SECONDS",
        help="response timeout (default 15)",
    )
    call.add_argument(
        "--follow",
        metavar="TOPIC",
        help="also print, as they stream, text streams the destination sends us on TOPIC "
        "during the call (e.g. a handler that streams its answer)",
    )
    call.set_defaults(run=_cmd_rpc_call)
    serve = rpc_sub.add_parser(
        "serve",
        parents=[common],
        help="answer RPC calls",
        description="Stay in the room and answer calls to each --method (default echo): "
        "echo the payload back, or run --handler. A handler is `fn(data)` or "
        "`fn(data, room)` (data: RpcInvocationData; room: the lkproto Room), sync or "
        "async, returning the response string; raising RpcError sends that error.",
    )
    _stay_options(serve, default_method="echo")
    serve.set_defaults(run=_cmd_stay, default_methods=["echo"])

    send_text = sub.add_parser(
        "send-text",
        parents=[common],
        help="send a text stream",
        description="Send TEXT as a text stream; without TEXT (or with '-'), stream stdin "
        "as it comes.",
    )
    send_text.add_argument("text", nargs="?", metavar="TEXT")
    _to_options(send_text, many=True)
    send_text.add_argument("--topic", default="lk.chat", help="(default lk.chat)")
    send_text.set_defaults(run=_cmd_send_text)

    send_file = sub.add_parser(
        "send-file",
        parents=[common],
        help="send a file as a byte stream",
        description="Send the file at PATH as a byte stream, with a progress bar.",
    )
    send_file.add_argument("path", metavar="PATH")
    _to_options(send_file, many=True)
    send_file.add_argument("--topic", default="files", help="(default files)")
    send_file.set_defaults(run=_cmd_send_file)
    return parser


# -- running a command ----------------------------------------------------------------------


class _Context:
    """What every command gets: the parsed arguments, the console and the secrets to hide."""

    def __init__(self, args: argparse.Namespace, console: Console) -> None:
        self.args = args
        self.console = console
        self.secrets: list[str] = []
        self.stay = False  # join/listen/serve: a signal is the normal way to stop
        self.signalled: int | None = None

    @property
    def progress(self) -> ProgressMode:
        mode: ProgressMode = getattr(self.args, "progress", "auto")
        return mode


class _OneLine(logging.Formatter):
    """Log records as one line, without tracebacks (unless --verbose), secrets redacted."""

    def __init__(self, ctx: _Context, verbose: bool) -> None:
        super().__init__(f"{PROG}: log: %(levelname)s %(name)s: %(message)s")
        self._ctx = ctx
        self._verbose = verbose

    def formatException(self, ei: object) -> str:
        return super().formatException(ei) if self._verbose else ""  # type: ignore[arg-type]

    def formatStack(self, stack_info: str) -> str:
        return stack_info if self._verbose else ""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if not self._verbose:
            text = " ".join(text.split())
        return redact(text, *self._ctx.secrets)


def _setup_logging(ctx: _Context, verbose: bool) -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLine(ctx, verbose))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.WARNING)
    if not verbose:
        # The library reports remote misbehaviour it survives at INFO/WARNING; a CLI user
        # sees what matters as output lines instead.
        for name in ("lkproto", "aioice", "aiortc"):
            logging.getLogger(name).setLevel(logging.ERROR)
    return handler


def main(argv: Sequence[str] | None = None) -> int:
    """The `lkproto` console script. Returns the exit code (see the module docstring)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
    console = Console(sys.stdout, sys.stderr)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else ExitCode.USAGE
    ctx = _Context(args, console)
    handler = _setup_logging(ctx, bool(getattr(args, "verbose", False)))
    try:
        return int(anyio.run(_amain, ctx, backend="asyncio"))
    except KeyboardInterrupt:
        console.error(f"{PROG}: interrupted")
        return ExitCode.INTERRUPTED
    except BaseException as exc:  # one line, never a traceback
        leaf = _leaf(exc)
        if isinstance(leaf, _Exit):
            return leaf.code
        if isinstance(leaf, CliError):
            console.error(redact(f"{PROG}: {leaf.message}", *ctx.secrets))
            return leaf.code
        if isinstance(leaf, KeyboardInterrupt):
            console.error(f"{PROG}: interrupted")
            return ExitCode.INTERRUPTED
        if isinstance(leaf, SystemExit):
            return leaf.code if isinstance(leaf.code, int) else ExitCode.FAILED
        text = " ".join(f"{type(leaf).__name__}: {leaf}".split())
        console.error(redact(f"{PROG}: internal error: {text}", *ctx.secrets))
        return ExitCode.FAILED
    finally:
        logging.getLogger().removeHandler(handler)


def _leaf(exc: BaseException) -> BaseException:
    """The first meaningful exception inside (nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup):
        inner = list(exc.exceptions)
        preferred = [e for e in inner if not isinstance(e, asyncio.CancelledError)]
        exc = (preferred or inner)[0]
    return exc


async def _amain(ctx: _Context) -> int:
    run: Callable[[_Context], Awaitable[int]] = ctx.args.run
    code: int = ExitCode.OK
    try:
        async with anyio.create_task_group() as tg:
            try:
                with anyio.CancelScope() as work:
                    tg.start_soon(_watch_signals, ctx, work)
                    code = await run(ctx)
            finally:
                tg.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        leaf = _leaf(group)
        if isinstance(leaf, Exception):
            raise leaf from None
        raise
    if ctx.signalled is not None:
        if ctx.stay:
            return ExitCode.OK
        ctx.console.error(f"{PROG}: interrupted")
        return ExitCode.INTERRUPTED
    return code


async def _watch_signals(ctx: _Context, work: anyio.CancelScope) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            if ctx.signalled is None:  # the first stops the work; later ones are ignored
                ctx.signalled = int(signum)
                work.cancel()


# -- the room session -----------------------------------------------------------------------


def _default_identity() -> str:
    return f"lkproto-{secrets.token_hex(3)}"


def _credentials(ctx: _Context) -> Credentials:
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


def _topic_suffix(topic: str | None) -> str:
    return f" topic={one_line(topic, 100)}" if topic else ""


class _Session:
    """One Room, joined with the command's settings, and the printing of what it sees."""

    def __init__(self, ctx: _Context) -> None:
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
            say(f"data from {who}{_topic_suffix(event.topic)}: {show_bytes(event.payload)}")
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
        self.console.print(
            f"text stream from {sender}{_topic_suffix(info.topic)}: {one_line(text)}"
        )

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
        topic = _topic_suffix(info.topic)
        if target is None:
            self.console.print(
                f"file from {sender}{topic} name={shown}: {size} bytes sha256={digest.hexdigest()}"
            )
        else:
            self.console.print(
                f"saved {target} from {sender}{topic}: {size} bytes sha256={digest.hexdigest()}"
            )


# -- commands -------------------------------------------------------------------------------


async def _cmd_token(ctx: _Context) -> int:
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


async def _cmd_stay(ctx: _Context) -> int:
    """join, listen and rpc serve: stay in the room, print, save, answer calls."""
    a = ctx.args
    methods: list[str] = list(dict.fromkeys(a.methods or a.default_methods))
    if a.handler is not None:
        if not methods:
            raise CliError("--handler needs --method NAME (the method it answers)", ExitCode.USAGE)
        fn, with_room = load_handler(a.handler)
    else:
        fn, with_room = _echo, False
    session = _Session(ctx)
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


async def _cmd_rpc_call(ctx: _Context) -> int:
    a = ctx.args
    destination: str = a.to
    payload: str = a.payload
    if payload == "-":
        payload = "".join([piece async for piece in _read_stdin()])
    session = _Session(ctx)
    console, room = ctx.console, session.room
    following = 0
    idle = anyio.Event()
    idle.set()

    async with anyio.create_task_group() as tg:

        async def print_stream(reader: TextStreamReader, sender: str) -> None:
            nonlocal following, idle
            try:
                console.write(f"text stream from {sender}{_topic_suffix(reader.info.topic)}: ")
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
                    raise _Exit(
                        ExitCode.UNKNOWN_PARTICIPANT if exc.code in gone else ExitCode.RPC_ERROR
                    ) from None
                with anyio.move_on_after(a.timeout):
                    await idle.wait()
                console.print(response)
        finally:
            tg.cancel_scope.cancel()
    return ExitCode.OK


async def _cmd_send_text(ctx: _Context) -> int:
    a = ctx.args
    destinations: list[str] = list(a.to or [])
    session = _Session(ctx)
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
        console.print(f"sent {count} characters to {to}{_topic_suffix(a.topic)}")
    return ExitCode.OK


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


async def _cmd_send_file(ctx: _Context) -> int:
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
    session = _Session(ctx)
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
            f"sent {path.name} to {to}{_topic_suffix(a.topic)}: {size} bytes sha256={digest}"
        )
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
