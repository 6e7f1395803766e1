"""Helpers for the `lkproto` command line that need no connection: file names for received
files, loading a user's RPC handler, and showing untrusted text on one line."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from ._config import CliError, ExitCode

__all__ = [
    "create_unique",
    "load_handler",
    "one_line",
    "printable",
    "safe_filename",
    "show_bytes",
]

_MAX_NAME_BYTES = 200  # well under the usual 255-byte file name limit, leaving room for "-N"
_CLIP = 500  # characters of a payload shown on one line


def _escape(ch: str, keep: str) -> str:
    if ch in keep:
        return ch
    if ch == "\n":
        return "\\n"
    if ch == "\r":
        return "\\r"
    if ch == "\t":
        return "\\t"
    if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") and ch != "\u200d":
        return f"\\x{ord(ch):02x}" if ord(ch) < 256 else f"\\u{ord(ch):04x}"
    return ch


def one_line(text: str, limit: int = _CLIP) -> str:
    """`text` with control characters escaped (`\\n`, `\\x1b`, ...) and clipped to `limit`.

    Remote participants choose this text: escaping keeps them from moving the cursor or
    sending terminal commands (ESC sequences), and from faking extra output lines.
    """
    out = "".join(_escape(ch, "") for ch in text[:limit])
    if len(text) > limit:
        out += f"... ({len(text)} characters)"
    return out


def printable(text: str) -> str:
    """`text` with control characters escaped, except line feeds and tabs (streamed prose)."""
    return "".join(_escape(ch, "\n\t") for ch in text)


def show_bytes(data: bytes) -> str:
    """UTF-8 text on one line, or `<N bytes>` for binary data."""
    try:
        return one_line(data.decode("utf-8"))
    except UnicodeDecodeError:
        return f"<{len(data)} bytes of binary data>"


def _trim(name: str, limit: int) -> str:
    while len(name.encode("utf-8")) > limit:
        stem, dot, ext = name.rpartition(".")
        if dot and stem and len(ext) < 16:
            name = f"{stem[:-1]}.{ext}" if len(stem) > 1 else name[:-1]
        else:
            name = name[:-1]
    return name


def _clean(name: str) -> str:
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if ch.isprintable() and ch not in '<>:"|?*')
    return _trim(base.strip().lstrip(". ").rstrip(" "), _MAX_NAME_BYTES)


def safe_filename(name: str, fallback: str = "file") -> str:
    """A file name that stays inside the save directory, whatever the sender wrote.

    Only the last path component is kept (`/` and `\\` both count), control and reserved
    characters are dropped, leading dots and spaces are removed (no `..`, no hidden files),
    and the result is at most 200 UTF-8 bytes. An empty result becomes `fallback`, cleaned
    the same way (or `file`).
    """
    return _clean(name) or _clean(fallback) or "file"


def create_unique(directory: Path, name: str) -> tuple[Path, BinaryIO]:
    """Create and open a new file `name` in `directory`, or `stem-1.ext`, `stem-2.ext`, ...

    The file is created exclusively, so an existing file (or a symlink planted there) is never
    written through.
    """
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        stem, ext = name, ""
    for n in range(10_000):
        candidate = name if n == 0 else (f"{stem}-{n}.{ext}" if ext else f"{stem}-{n}")
        path = directory / candidate
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            continue
        return path, os.fdopen(fd, "wb")
    raise OSError(f"no free file name for {name!r} in {directory}")


Handler = Callable[..., object]


def load_handler(spec: str) -> tuple[Handler, bool]:
    """Load `module:function` or `path/to/file.py:function`.

    Returns the function and whether it takes the room as a second argument (it is then
    called as `function(data, room)`, else `function(data)`).
    """
    target, sep, attr = spec.rpartition(":")
    if not sep or not target or not attr:
        raise CliError(
            f"bad --handler {spec!r}: use module:function or path/to/file.py:function",
            ExitCode.USAGE,
        )
    try:
        if target.endswith(".py") or "/" in target or os.sep in target:
            path = Path(target)
            if not path.is_file():
                raise CliError(f"--handler: no such file: {target}", ExitCode.USAGE)
            name = f"_lkproto_handler_{path.stem}"
            module_spec = importlib.util.spec_from_file_location(name, path)
            if module_spec is None or module_spec.loader is None:
                raise CliError(f"--handler: cannot load {target}", ExitCode.USAGE)
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[name] = module
            module_spec.loader.exec_module(module)
        else:
            if os.getcwd() not in sys.path:
                sys.path.insert(0, os.getcwd())
            module = importlib.import_module(target)
    except CliError:
        raise
    except Exception as exc:
        raise CliError(
            f"cannot load handler {spec!r}: {type(exc).__name__}: {exc}", ExitCode.USAGE
        ) from None
    fn = getattr(module, attr, None)
    if fn is None or not callable(fn):
        raise CliError(f"cannot load handler {spec!r}: no function {attr!r}", ExitCode.USAGE)
    return fn, _takes_two(fn)


def _takes_two(fn: Handler) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [
        p
        for p in params
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    return len(positional) >= 2 or any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params)
