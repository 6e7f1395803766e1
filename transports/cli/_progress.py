"""Terminal output for the `lkproto` command line: the console and the progress bar.

`format_progress` is a pure function (tested with literal values). `Console` owns stdout and
stderr: every line is flushed at once (a pipe must see each line as it happens), a progress
bar on a terminal is one stderr line redrawn with `\\r` and cleared before any other line is
printed, and a closed stdout (`lkproto join | head`) ends output quietly.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Literal, TextIO, TypeAlias

__all__ = ["Console", "ProgressBar", "ProgressMode", "format_progress", "format_size"]

ProgressMode: TypeAlias = Literal["auto", "bar", "lines", "none"]

MIB = 1024 * 1024
_BAR_WIDTH = 20
_UNITS = (("GiB", 1024**3), ("MiB", MIB), ("KiB", 1024))
_REDRAW_EVERY = 0.1  # seconds between two redraws of a terminal bar
_LINE_STEPS = 4  # plain-line mode prints at 25 %, 50 %, 75 % and 100 %


def _unit(total: int) -> tuple[str, int]:
    for name, size in _UNITS:
        if total >= size:
            return name, size
    return "B", 1


def format_size(nbytes: int) -> str:
    """`512 B`, `1.50 KiB`, `4.00 MiB`, `1.25 GiB`."""
    name, size = _unit(nbytes)
    return f"{nbytes} B" if size == 1 else f"{nbytes / size:.2f} {name}"


def _clock(seconds: float) -> str:
    whole = math.ceil(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_progress(done: int, total: int | None, elapsed: float) -> str:
    """One progress line: bar, percent, bytes, average rate and time left.

    `done` and `total` are bytes (`total` None when unknown), `elapsed` seconds since the
    transfer started. The rate is the average so far, in MiB/s; the ETA assumes it holds.
    With nothing measured yet (no bytes or no time) the rate and ETA show dashes.

    >>> format_progress(1048576, 4194304, 0.5)
    '[#####---------------]  25%  1.00/4.00 MiB  2.00 MiB/s  ETA 0:02'
    """
    rate = done / elapsed if elapsed > 0 and done > 0 else None
    rate_text = "-- MiB/s" if rate is None else f"{rate / MIB:.2f} MiB/s"
    if total is None:
        return f"{format_size(done)}  {rate_text}"
    done = min(max(done, 0), total)
    fraction = 1.0 if total == 0 else done / total
    percent = 100 if done == total else min(99, math.floor(fraction * 100))
    filled = _BAR_WIDTH if done == total else min(_BAR_WIDTH - 1, int(fraction * _BAR_WIDTH))
    bar = "#" * filled + "-" * (_BAR_WIDTH - filled)
    unit, size = _unit(total)
    amounts = f"{done}/{total} B" if size == 1 else f"{done / size:.2f}/{total / size:.2f} {unit}"
    if done == total:
        eta = "0:00"
    elif rate is None:
        eta = "--:--"
    else:
        eta = _clock((total - done) / rate)
    return f"[{bar}] {percent:3d}%  {amounts}  {rate_text}  ETA {eta}"


class Console:
    """Flushed lines on stdout and stderr, sharing the terminal with at most one live bar."""

    def __init__(self, out: TextIO, err: TextIO) -> None:
        self.out = out
        self.err = err
        self._bar = ""  # the bar text currently drawn on a terminal's last line, if any
        self._out_closed = False

    def print(self, text: str) -> None:
        """A line on stdout (the command's results and the room's traffic)."""
        self.write(text + "\n")

    def write(self, text: str) -> None:
        """Text on stdout, flushed (a line may be built from several writes)."""
        if self._out_closed:
            return
        self._clear_bar()
        try:
            self.out.write(text)
            self.out.flush()
        except BrokenPipeError:
            self._out_closed = True
        self._redraw_bar()

    def error(self, text: str) -> None:
        """A line on stderr (errors, notices and progress lines)."""
        self._clear_bar()
        self.err.write(text + "\n")
        self.err.flush()
        self._redraw_bar()

    def draw_bar(self, text: str) -> None:
        """Draw (or redraw) the live bar on the terminal's last line."""
        pad = " " * max(0, len(self._bar) - len(text))
        self._bar = text
        self.err.write("\r" + text + pad)
        self.err.flush()

    def end_bar(self, text: str) -> None:
        """Draw the bar a last time and move on to a new line."""
        self.draw_bar(text)
        self._bar = ""
        self.err.write("\n")
        self.err.flush()

    def _clear_bar(self) -> None:
        if self._bar:
            self.err.write("\r" + " " * len(self._bar) + "\r")
            self.err.flush()

    def _redraw_bar(self) -> None:
        if self._bar:
            self.err.write(self._bar)
            self.err.flush()

    def is_terminal(self) -> bool:
        isatty = getattr(self.err, "isatty", None)
        return bool(isatty and isatty())


class ProgressBar:
    """Progress of one transfer on stderr: `label` then `format_progress(...)`.

    Modes: "bar" redraws one line (at most every 0.1 s) on a terminal; "lines" prints a plain
    line at each quarter of the total (only the last one when the total is unknown); "none"
    prints nothing; "auto" is "bar" when stderr is a terminal, else "lines".
    """

    def __init__(
        self,
        console: Console,
        label: str,
        total: int | None,
        *,
        mode: ProgressMode = "auto",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if mode == "auto":
            mode = "bar" if console.is_terminal() else "lines"
        self._console = console
        self._label = label
        self._total = total
        self._mode = mode
        self._clock = clock
        self._start = clock()
        self._last_draw = -math.inf
        self._step = 0  # quarters printed so far, in "lines" mode
        self._done = 0
        self._finished = False

    def _text(self, done: int) -> str:
        return f"{self._label}  {format_progress(done, self._total, self._clock() - self._start)}"

    def update(self, done: int) -> None:
        self._done = done
        if self._finished or self._mode == "none":
            return
        if self._mode == "bar":
            now = self._clock()
            if now - self._last_draw >= _REDRAW_EVERY:
                self._last_draw = now
                self._console.draw_bar(self._text(done))
            return
        total = self._total
        if total is None or total <= 0:
            return
        step = min(_LINE_STEPS, done * _LINE_STEPS // total)
        if step > self._step:
            self._step = step
            self._console.error(self._text(done))
            if step == _LINE_STEPS:
                self._finished = True

    def finish(self, done: int | None = None) -> None:
        """The transfer ended (successfully or not): show where it got to, once."""
        if done is not None:
            self._done = done
        if self._finished:
            return
        self._finished = True
        if self._mode == "bar":
            self._console.end_bar(self._text(self._done))
        elif self._mode == "lines":
            self._console.error(self._text(self._done))
