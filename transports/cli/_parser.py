"""The `lkproto` command-line grammar: subcommands, options and their defaults.

Each subcommand's `run` is looked up in its module (`_commands`, `_audio`) when it runs, so
`lkproto --help` and usage errors import neither the anyio adapter nor what it brings
(issue 25: `--help` under 300 ms).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Awaitable, Callable
from typing import NoReturn

from ._config import ExitCode
from ._context import PROG, Context

__all__ = ["DEFAULT_RECEIPT_TIMEOUT", "DEFAULT_WAIT", "build_parser"]

DEFAULT_WAIT = 5.0  # seconds a command waits for its --to participants to appear
DEFAULT_RECEIPT_TIMEOUT = 120.0  # seconds send-file waits for a receipt once all is sent


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit code 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(ExitCode.USAGE, f"{self.prog}: error: {message} (see --help)\n")


def _command(module: str, name: str) -> Callable[[Context], Awaitable[int]]:
    """The subcommand `name` of `module` (relative to this package), imported when it runs."""

    async def run(ctx: Context) -> int:
        command: Callable[[Context], Awaitable[int]]
        command = getattr(importlib.import_module(module, __package__), name)
        return await command(ctx)

    run.__name__ = run.__qualname__ = name
    return run


cmd_token = _command("._commands", "cmd_token")
cmd_stay = _command("._commands", "cmd_stay")
cmd_rpc_call = _command("._commands", "cmd_rpc_call")
cmd_send_text = _command("._commands", "cmd_send_text")
cmd_send_file = _command("._commands", "cmd_send_file")
cmd_publish_audio = _command("._audio", "cmd_publish_audio")
cmd_record = _command("._audio", "cmd_record")


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
    group.add_argument(
        "--token",
        help="a ready access token instead of key and secret (visible in `ps`: prefer "
        "--token-file or LIVEKIT_TOKEN)",
    )
    group.add_argument(
        "--token-file",
        metavar="PATH",
        help="read a ready access token from PATH ('-': stdin); or set LIVEKIT_TOKEN",
    )
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
    doc = sys.modules[__package__].__doc__ or ""  # the package's: the command line's manual
    epilog = doc[doc.index("Configuration:") :]
    parser = _Parser(
        prog=PROG,
        description="A LiveKit data-plane client: RPC, text and byte streams, data packets.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from lkproto._version import __version__

    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
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
    token.set_defaults(run=cmd_token)

    join = sub.add_parser(
        "join",
        parents=[common],
        help="stay in a room and print what happens",
        description="Join a room and print participants, data packets, text and byte "
        "streams, and calls to the --method names (answered by echoing, or by --handler), "
        "as they happen, until --duration, SIGINT or SIGTERM.",
    )
    _stay_options(join)
    join.set_defaults(run=cmd_stay, default_methods=[])

    listen = sub.add_parser(
        "listen",
        parents=[common],
        help="as join, saving received files",
        description="As join, and save every received byte stream (file) under --save DIR. "
        "File names are cleaned: only the last path component is kept.",
    )
    _stay_options(listen, save_required=True)
    listen.set_defaults(run=cmd_stay, default_methods=[])

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
    call.set_defaults(run=cmd_rpc_call)
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
    serve.set_defaults(run=cmd_stay, default_methods=["echo"])

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
    send_text.set_defaults(run=cmd_send_text)

    send_file = sub.add_parser(
        "send-file",
        parents=[common],
        help="send a file as a byte stream",
        description="Send the file at PATH as a byte stream, with a progress bar.",
    )
    send_file.add_argument("path", metavar="PATH")
    _to_options(send_file, many=True)
    send_file.add_argument("--topic", default="files", help="(default files)")
    send_file.add_argument(
        "--receipt-timeout",
        type=_positive,
        default=DEFAULT_RECEIPT_TIMEOUT,
        metavar="SECONDS",
        help="with one --to: how long to wait, once sent, for the receiver's receipt "
        f"(default {DEFAULT_RECEIPT_TIMEOUT:g}; see Delivery below)",
    )
    send_file.set_defaults(run=cmd_send_file)

    publish_audio = sub.add_parser(
        "publish-audio",
        parents=[common],
        help="publish a WAV file as an audio track",
        description="Publish the 16-bit PCM WAV file at PATH (mono or stereo, 8 to 192 kHz "
        "in steps of 100 Hz) as a microphone track in real time, with a progress bar; "
        "unpublish and leave once it was all sent.",
    )
    publish_audio.add_argument("path", metavar="PATH")
    publish_audio.add_argument(
        "--track-name", default="audio", help="the track's name (default audio)"
    )
    publish_audio.add_argument(
        "--wait-for-subscriber",
        action="store_true",
        help="start playing once another participant subscribed to the track",
    )
    publish_audio.set_defaults(run=cmd_publish_audio)

    record = sub.add_parser(
        "record",
        parents=[common],
        help="record a participant's audio to a WAV file",
        description="Subscribe to the audio track of --participant (its microphone first) "
        "and write it to --out as a 16-bit WAV file, until --duration, the end of the "
        "track, SIGINT or SIGTERM.",
    )
    record.add_argument("--participant", required=True, metavar="IDENTITY")
    record.add_argument("--out", required=True, metavar="FILE.wav")
    record.add_argument(
        "--rate", type=int, default=48000, help="sample rate of the file (default 48000)"
    )
    record.add_argument(
        "--channels", type=int, default=1, choices=(1, 2), help="1 or 2 (default 1)"
    )
    record.add_argument(
        "--duration",
        type=_positive,
        metavar="SECONDS",
        help="stop after this much audio (default: until the track ends or a signal)",
    )
    record.add_argument(
        "--wait",
        type=_seconds,
        default=10.0,
        metavar="SECONDS",
        help="wait this long for the participant and its audio track (default 10)",
    )
    record.set_defaults(run=cmd_record)
    return parser
