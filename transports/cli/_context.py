"""What every `lkproto` command gets, and how it leaves early."""

from __future__ import annotations

import argparse

from ._config import ExitCode
from ._progress import Console, ProgressMode

__all__ = ["DEFAULT_TOPICS", "PROG", "Context", "Exit"]

PROG = "lkproto"
DEFAULT_TOPICS = ("", "lk.chat", "files")  # the topics join/listen show without --topic


class Exit(Exception):
    """Leave with `code`; the line explaining it was printed already."""

    def __init__(self, code: ExitCode) -> None:
        super().__init__(int(code))
        self.code = code


class Context:
    """What every command gets: the parsed arguments, the console and the secrets to hide."""

    def __init__(self, args: argparse.Namespace, console: Console) -> None:
        self.args = args
        self.console = console
        self.secrets: list[str] = []
        self.stay = False  # join/listen/serve: a signal is the normal way to stop
        self.signalled: int | None = None
        self.cut_short = False  # a signal stopped a stay command while a file was arriving

    @property
    def progress(self) -> ProgressMode:
        mode: ProgressMode = getattr(self.args, "progress", "auto")
        return mode
