"""`lkproto`: a LiveKit client on the command line (data, RPC, streams and audio).

Subcommands:
  token       print an access token minted with the API key and secret
  join        stay in a room; print participants, data, text and byte streams, RPC calls
  listen      as join, and save received files under --save DIR
  rpc call    call a method on a participant; print its response (or the error)
  rpc serve   stay in a room and answer RPC calls (echo, or a Python handler)
  send-text   send text (an argument, or stdin streamed as it comes) as a text stream
  send-file   send a file as a byte stream, with a progress bar
  publish-audio  publish a 16-bit WAV file as an audio track in real time, with progress
  record      record a participant's audio track to a WAV file, with progress

Configuration: --url, --api-key and --api-secret, else the environment variables LIVEKIT_URL,
LIVEKIT_API_KEY and LIVEKIT_API_SECRET (flags win). With the key and secret, a token is
minted for --room and --identity; or give a ready token (it names the room and identity
itself) with --token-file PATH ('-': stdin), the environment variable LIVEKIT_TOKEN (used
when no key, secret, --room or --identity flag is given), or --token (visible to other users
in `ps`: prefer the others). The token and the secret are never printed (except by
`lkproto token`, whose job it is).

Delivery: send-file to exactly one --to waits for that receiver's receipt: an lkproto
receiver (join or listen) answers the RPC method `lkproto.receipt` with the size and sha256
it got, or with its error, and the sender prints "delivered ... (confirmed by IDENTITY)".
A receiver that sends no receipts (another SDK) is reported as "sent ... to the server for
IDENTITY (no receipt: this receiver does not confirm deliveries)": the data left this
machine, nothing more is known. send-text and sends to several or all participants say
"sent ... to the server": the server acknowledges nothing end to end.

ICE host addresses: WebRTC gathers candidates only on the --host-address values (repeatable;
`any` lifts the restriction). By default, when the server is on this machine (the URL's host
is a loopback address, `localhost`, or an address of this host or network namespace), only
that address is used, so a session with a local server never touches another interface;
for a remote server every interface is used.

Output: each event or result is one line on stdout, flushed as it happens; errors, notices
and progress bars go to stderr. Progress shows percent, bytes, rate (MiB/s) and ETA: one
line redrawn on a terminal, or a plain line at each quarter otherwise (--progress).

Exit codes:
  0    success; join/listen/rpc serve also exit 0 when stopped by --duration, SIGINT, SIGTERM
       or SIGHUP (they leave the room first); send-file: delivered and confirmed, or handed to
       the server for a receiver that sends no receipts (the output line says which)
  1    the RPC's destination answered with an error: `error <code>: <message>` on stderr
  2    bad input: usage, missing credentials or URL, bad URL, no such file, bad handler
  3    could not connect: the server refused the token, could not be reached, or timed out
  4    unknown participant: a --to destination did not appear within --wait seconds, or the
       call failed with 1401 (recipient not found) or 1503 (recipient disconnected)
  5    the session ended or a transfer failed after connecting; send-file: the receiver
       reported a failure, left, or sent no receipt within --receipt-timeout
  130  a one-shot command was interrupted (SIGINT, SIGTERM or SIGHUP), or listen/join was
       stopped while a file was arriving (the partial file is removed). A second signal
       ends the program at once.
Every failure prints one line on stderr, never a traceback (--verbose adds library logs).
Received files are written as NAME.part and renamed to NAME once whole and checked, so an
interrupted transfer never leaves a file that looks complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from ._config import CliError, ExitCode
from ._context import PROG, Context, Exit
from ._progress import Console, format_progress

if TYPE_CHECKING:
    import argparse

    import anyio

__all__ = ["CliError", "ExitCode", "build_parser", "format_progress", "main"]

# The signals that stop a command: SIGHUP too (the terminal closed), so `join` leaves the
# room instead of vanishing from it.
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def build_parser() -> argparse.ArgumentParser:
    """The whole command-line grammar (for tests and documentation). Imported on demand; a
    subcommand's module (and with it the anyio adapter) is imported only when it runs, and
    aiortc and PyAV only when it creates a peer connection."""
    from ._parser import build_parser as build

    return build()


def _redact(text: str, *secrets: str) -> str:
    from .._errors import redact

    return redact(text, *secrets)


class _OneLine(logging.Formatter):
    """Log records as one line, without tracebacks (unless --verbose), secrets redacted."""

    def __init__(self, ctx: Context, verbose: bool) -> None:
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
        return _redact(text, *self._ctx.secrets)


def _setup_logging(ctx: Context, verbose: bool) -> logging.Handler:
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
    try:
        # The imports come here, where a Ctrl-C during them is caught: a console script's own
        # imports run before any handler exists. The heavier ones come later, also caught:
        # the anyio adapter when the subcommand runs (`anyio.run` below), aiortc and PyAV
        # when it creates a peer connection.
        import anyio

        parser = build_parser()
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else ExitCode.USAGE
    except KeyboardInterrupt:
        console.error(f"{PROG}: interrupted")
        return ExitCode.INTERRUPTED
    ctx = Context(args, console)
    handler = _setup_logging(ctx, bool(getattr(args, "verbose", False)))
    try:
        code = int(anyio.run(_amain, ctx, backend="asyncio"))
        from ._commands import busy_handlers

        if busy_handlers():
            # A plain --handler is still running on its thread (it cannot be stopped, and
            # Python would wait for it at exit): end the process now, as the user asked.
            logging.getLogger().removeHandler(handler)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        return code
    except KeyboardInterrupt:
        console.error(f"{PROG}: interrupted")
        return ExitCode.INTERRUPTED
    except BaseException as exc:  # one line, never a traceback
        leaf = _leaf(exc)
        if isinstance(leaf, Exit):
            return leaf.code
        if isinstance(leaf, CliError):
            console.error(_redact(f"{PROG}: {leaf.message}", *ctx.secrets))
            return leaf.code
        if isinstance(leaf, KeyboardInterrupt):
            console.error(f"{PROG}: interrupted")
            return ExitCode.INTERRUPTED
        if isinstance(leaf, SystemExit):
            return leaf.code if isinstance(leaf.code, int) else ExitCode.FAILED
        text = " ".join(f"{type(leaf).__name__}: {leaf}".split())
        console.error(_redact(f"{PROG}: internal error: {text}", *ctx.secrets))
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


async def _amain(ctx: Context) -> int:
    import anyio

    run: Callable[[Context], Awaitable[int]] = ctx.args.run
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
        if ctx.stay and not ctx.cut_short:
            return ExitCode.OK
        ctx.console.error(f"{PROG}: interrupted")
        return ExitCode.INTERRUPTED
    return code


async def _watch_signals(ctx: Context, work: anyio.CancelScope) -> None:
    import anyio

    with anyio.open_signal_receiver(*_STOP_SIGNALS) as signals:
        async for signum in signals:
            if ctx.signalled is None:  # the first stops the work (leaving the room)
                ctx.signalled = int(signum)
                work.cancel()
            else:  # a second one ends the program at once, whatever is still running
                ctx.console.error(f"{PROG}: interrupted again; exiting now")
                sys.stdout.flush()
                os._exit(ExitCode.INTERRUPTED)
