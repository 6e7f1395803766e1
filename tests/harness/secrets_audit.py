"""A pytest plugin that watches the whole session for leaked credentials.

Registered from tests/conftest.py (`pytest_plugins`). For the whole session it:
- records every token minted in this process (it wraps `lkproto.tokens.mint_token`, which
  the harness's `mint_token` and the `make_token` fixture use, as does the server-API client)
  and every token the server hands out (`TokenRefreshed`), and every TURN password the
  server hands lkproto (it wraps `lkproto.models.IceServer.from_pb`, which the core reads
  the join and reconnect responses' `ice_servers` with);
- attaches a DEBUG handler to the root logger and lowers the root, `lkproto`, `livekit`,
  `aiortc` and `aioice` loggers to DEBUG (and sets LIVEKIT_RTC_DEBUG, so the official SDK
  forwards its native debug records too), and checks every record: its message, and its
  formatted exception and stack if any;
- checks the message of every exception of lkproto, lkproto.transports and livekit.rtc as it
  is created (raised or not, caught or not), the free text of the events that carry some
  (`Disconnected`, `MetadataUpdateFailed`, `StreamFailed`, `StreamDropped`, `PacketDropped`,
  `RpcDropped`), every warning, and every test report's failure text and captured
  stdout/stderr.

"Leaked" means the text contains the API secret (`harness.tokens.API_SECRET`) or any 20
consecutive characters of a recorded TURN password or token's signature (so the whole token,
the bare signature, or a piece of it cut at 20 characters or more). Checking is incremental and
cheap: base64url runs of 20+ characters are looked up in a set of signature pieces.

`tests/e2e/test_zz_secrets.py` runs last among the e2e files and asserts that nothing leaked
and that the audit saw a large number of records and tokens.

Under pytest-xdist every worker process audits itself. Its tests are marked `last`
(harness/phases.py): they run on one worker after every other worker has exited, each of
those having left a snapshot of what it saw (counts, hit descriptions, its number of tokens,
never a token) in the scheduler's directory; that worker absorbs them all before its first
`last` test, so the check covers the whole session.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import json
import logging
import os
import re
import sys
import threading
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from harness import phases
from harness.tokens import API_SECRET
from lkproto import events as ev
from lkproto import models, tokens

WINDOW = 20
_RUNS = re.compile(rf"[A-Za-z0-9_-]{{{WINDOW},}}")
_DEBUG_LOGGERS = ("lkproto", "livekit", "aiortc", "aioice", "harness")
_EXCEPTION_MODULES = (
    "lkproto",
    "lkproto.errors",
    "lkproto.rpc",
    "lkproto.streams",
    "lkproto.transports._errors",
    "lkproto.transports.anyio",
    "lkproto.transports.trio",
    "lkproto.transports.threaded",
    "lkproto.transports.api",
    "livekit.rtc",
)
_TEXT_EVENTS: dict[type[Any], tuple[str, ...]] = {
    ev.Disconnected: ("message", "exc"),
    ev.MetadataUpdateFailed: ("message",),
    ev.StreamFailed: ("message",),
    ev.StreamDropped: ("detail",),
    ev.PacketDropped: ("detail",),
    ev.RpcDropped: ("detail",),
}


class Auditor:
    """What was seen, and what leaked. Thread-safe."""

    def __init__(self, api_secret: str = API_SECRET) -> None:
        # Reentrant: building a hit or a piece may run the garbage collector, whose finalizers
        # may log (asyncio's do), and that record comes back here on the same thread. The
        # log handler has no lock of its own (`_Handler.createLock`), so this is the only
        # lock on the audit's path: no thread holds it while waiting for another.
        self._lock = threading.RLock()
        self.api_secret = api_secret
        self.tokens: list[str] = []
        self._pieces: set[str] = set()
        self.counts = {
            "records": 0,
            "exceptions": 0,
            "events": 0,
            "warnings": 0,
            "reports": 0,
            "e2e_tests": 0,
        }
        self.hits: list[str] = []
        self.loggers: Counter[str] = Counter()  # records per top-level logger name
        self.e2e_files: set[str] = set()  # the e2e test files collected this session
        self.other_tokens = 0  # tokens recorded by the other xdist workers (`absorb`)
        self.turn_passwords = 0  # TURN passwords recorded in this process
        self._add_pieces(api_secret)

    @property
    def token_count(self) -> int:
        """Tokens recorded in this process, plus those the absorbed workers recorded."""
        return len(self.tokens) + self.other_tokens

    # -- across xdist workers ---------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """What this process saw, as JSON-able data for another worker to `absorb`: counts,
        hit descriptions (which name no secret) and the number of tokens, never a token."""
        with self._lock:
            return {
                "counts": dict(self.counts),
                "hits": list(self.hits),
                "loggers": dict(self.loggers),
                "tokens": self.token_count,
            }

    def absorb(self, snapshot: dict[str, Any]) -> None:
        """Add what another worker saw (its `snapshot`) to this audit."""
        with self._lock:
            for kind, n in snapshot["counts"].items():
                self.counts[kind] += n
            self.hits.extend(snapshot["hits"])
            self.loggers.update(snapshot["loggers"])
            self.other_tokens += snapshot["tokens"]

    # -- what is secret ---------------------------------------------------------------------

    def _add_pieces(self, secret: str) -> None:
        self._pieces.update(_windows(secret))

    def add_token(self, token: str) -> None:
        """A credential: its signature (and so the whole token) must never show."""
        pieces = _windows(token.rsplit(".", 1)[-1])
        with self._lock:
            self.tokens.append(token)
            self._pieces.update(pieces)

    def add_turn_password(self, password: str) -> None:
        """A TURN server's password (an `ICEServer.credential`): it must never show."""
        if not password:
            return
        pieces = _windows(password)
        with self._lock:
            self.turn_passwords += 1
            self._pieces.update(pieces)

    # -- checking ---------------------------------------------------------------------------

    def leaks(self, text: str) -> list[str]:
        """What in `text` is secret: "API secret" and/or pieces of token signatures."""
        found = ["API secret"] if self.api_secret in text else []
        pieces = self._pieces
        for run in _RUNS.finditer(text):
            word = run.group()
            for start in range(len(word) - WINDOW + 1):
                piece = word[start : start + WINDOW]
                if piece in pieces:
                    found.append(f"secret piece {piece[:4]}...")
                    break
        return found

    def check(self, text: str, where: str, kind: str) -> None:
        found = self.leaks(text)
        with self._lock:
            self.counts[kind] += 1
            if found:
                self.hits.append(f"{where}: {', '.join(found)}")

    def count(self, kind: str) -> None:
        with self._lock:
            self.counts[kind] += 1


def _windows(secret: str) -> set[str]:
    return {secret[start : start + WINDOW] for start in range(len(secret) - WINDOW + 1)}


class _Handler(logging.Handler):
    def __init__(self, auditor: Auditor) -> None:
        super().__init__(logging.DEBUG)
        self.auditor = auditor

    def createLock(self) -> None:
        """No handler lock: `emit` is thread-safe through the auditor's own lock. With one
        (logging takes it around `emit`), a thread logging from the official SDK's callback
        held it while waiting for the auditor's lock, which the test's thread held while a
        garbage-collector finalizer logged and waited for the handler's: a deadlock that hung
        a worker (tests/fuzz under xdist)."""
        self.lock = None  # type: ignore[assignment]

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # a broken format string: check its parts
            text = f"{record.msg} {record.args}"
        if record.exc_info:
            text += "".join(traceback.format_exception(*record.exc_info))
        if record.stack_info:
            text += record.stack_info
        self.auditor.check(text, f"log record {record.name}:{record.lineno}", "records")
        self.auditor.loggers[record.name.split(".", 1)[0]] += 1


class Installation:
    """Everything `install` changed, so `uninstall` can put it back."""

    def __init__(self) -> None:
        self.undo: list[Callable[[], None]] = []

    def setattr(self, target: Any, name: str, value: Any) -> None:
        had = name in vars(target)
        old = vars(target).get(name)
        setattr(target, name, value)
        self.undo.append(lambda: setattr(target, name, old) if had else delattr(target, name))

    def uninstall(self) -> None:
        while self.undo:
            self.undo.pop()()


def _exception_classes() -> list[type[BaseException]]:
    for name in _EXCEPTION_MODULES:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    found = []
    for module_name, module in list(sys.modules.items()):
        if not module_name.startswith(("lkproto", "livekit")) or module is None:
            continue
        for value in list(vars(module).values()):
            if (
                isinstance(value, type)
                and issubclass(value, BaseException)
                and value.__module__ == module_name
                and value not in found
            ):
                found.append(value)
    return found


_DEPTH = threading.local()


def _watch_exception(
    install: Installation, auditor: Auditor, cls: type[BaseException], defines: dict[type, bool]
) -> None:
    """Check `str(exc)` once `cls.__init__` has run, in the outermost watched `__init__` only
    (a subclass's runs its base's inside). A class without its own `__init__` is covered by
    its nearest base's if that one is watched; otherwise (a built-in's) it gets a wrapper."""
    original = vars(cls)["__init__"] if defines[cls] else None
    if original is None:
        nearest = next(
            base
            for base in cls.__mro__[1:]
            if defines.get(base, False) or (base not in defines and "__init__" in vars(base))
        )
        if nearest in defines:
            return

    def __init__(self: BaseException, *args: Any, **kwargs: Any) -> None:
        depth = getattr(_DEPTH, "value", 0)
        _DEPTH.value = depth + 1
        try:
            if original is not None:
                original(self, *args, **kwargs)
            else:
                super(cls, self).__init__(*args, **kwargs)  # type: ignore[misc]
        finally:
            _DEPTH.value = depth
        if depth:
            return
        try:
            text = f"{type(self).__name__}: {self}"
        except Exception:
            text = repr(args)
        auditor.check(text, f"exception {type(self).__qualname__}", "exceptions")

    install.setattr(cls, "__init__", __init__)


def _watch_event(install: Installation, auditor: Auditor, cls: type[Any], fields: tuple[str, ...]):
    original = cls.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        text = " ".join(str(getattr(self, name)) for name in fields)
        auditor.check(text, f"event {cls.__name__}", "events")

    install.setattr(cls, "__init__", __init__)


def install(auditor: Auditor) -> Installation:
    done = Installation()
    # Tokens: wrap the one minting function, wherever it was imported by name.
    original_mint = tokens.mint_token

    def mint_token(*args: Any, **kwargs: Any) -> str:
        token = original_mint(*args, **kwargs)
        auditor.add_token(token)
        return token

    for module in list(sys.modules.values()):
        if module is not None and vars(module).get("mint_token") is original_mint:
            done.setattr(module, "mint_token", mint_token)
    refreshed = ev.TokenRefreshed.__init__

    def token_refreshed(self: ev.TokenRefreshed, *args: Any, **kwargs: Any) -> None:
        refreshed(self, *args, **kwargs)
        auditor.add_token(self.token)

    done.setattr(ev.TokenRefreshed, "__init__", token_refreshed)
    # TURN passwords: the core reads every ICE server the server hands out with `from_pb`.
    from_pb = models.IceServer.from_pb

    @functools.wraps(from_pb)
    def ice_server_from_pb(server: Any) -> models.IceServer:
        value = from_pb(server)
        auditor.add_turn_password(value.credential)
        return value

    done.setattr(models.IceServer, "from_pb", staticmethod(ice_server_from_pb))
    # Logging: everything, at DEBUG.
    handler = _Handler(auditor)
    root = logging.getLogger()
    root.addHandler(handler)
    done.undo.append(lambda: root.removeHandler(handler))
    for name in ("", *_DEBUG_LOGGERS):
        logger = logging.getLogger(name)
        level = logger.level
        logger.setLevel(logging.DEBUG)
        done.undo.append(lambda logger=logger, level=level: logger.setLevel(level))
    previous = os.environ.get("LIVEKIT_RTC_DEBUG")
    os.environ["LIVEKIT_RTC_DEBUG"] = "1"
    done.undo.append(
        lambda: (
            os.environ.pop("LIVEKIT_RTC_DEBUG", None)
            if previous is None
            else os.environ.__setitem__("LIVEKIT_RTC_DEBUG", previous)
        )
    )
    os.register_at_fork(
        before=functools.partial(_hold_for_fork, auditor),
        after_in_parent=functools.partial(_release_after_fork, auditor),
        after_in_child=functools.partial(_release_after_fork, auditor, in_child=True),
    )
    # Exceptions and the events that carry text.
    classes = _exception_classes()
    defines = {cls: "__init__" in vars(cls) for cls in classes}  # before any is wrapped
    for cls in classes:
        _watch_exception(done, auditor, cls, defines)
    for event_cls, fields in _TEXT_EVENTS.items():
        _watch_event(done, auditor, event_cls, fields)
    return done


# -- fork ---------------------------------------------------------------------------------------
# A fork child (test_threaded_interop) has one thread and a copy of every lock as it was at
# the fork. `logging` gives the child fresh handler locks, but a handler's *stream* has a lock
# of its own (a BufferedWriter's): if another thread was writing a record when the parent
# forked, the child's first record waits on it for ever. With the audit's DEBUG flood that is
# likely (the official SDK forwards its native records from its own threads into pytest's
# log-file handler, /dev/null by default), and it hung the fork child in CI. So the parent
# holds every handler's lock, and the auditor's, across the fork: no record is half-written
# when it happens. (A program that forks while threads log has the same hazard; the threaded
# adapter's docstring says so.)

_HELD: list[logging.Handler] = []


def _handlers() -> list[logging.Handler]:
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    found: dict[int, logging.Handler] = {}
    for logger in loggers:
        for handler in getattr(logger, "handlers", ()):  # PlaceHolders have none
            found.setdefault(id(handler), handler)
    return list(found.values())


def _hold_for_fork(auditor: Auditor) -> None:
    # The auditor's lock first: a thread holding it may still log (a finalizer), so it must
    # be able to take any handler's lock until the forking thread has the auditor's.
    auditor._lock.acquire()
    for handler in _handlers():
        handler.acquire()
        _HELD.append(handler)


def _release_after_fork(auditor: Auditor, *, in_child: bool = False) -> None:
    held = list(_HELD)
    _HELD.clear()
    if not in_child:  # in the child, `logging` has already replaced these locks
        for handler in reversed(held):
            handler.release()
    auditor._lock.release()


AUDITOR: Auditor | None = None
_ABSORBED = False
_KEY = pytest.StashKey[Installation]()


@contextlib.contextmanager
def planted(auditor: Auditor) -> Iterator[list[str]]:
    """For the self-check: yields the hits recorded inside the block, then forgets them."""
    before = len(auditor.hits)
    new: list[str] = []
    try:
        yield new
    finally:
        with auditor._lock:
            new.extend(auditor.hits[before:])
            del auditor.hits[before:]


# -- pytest hooks ---------------------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    global AUDITOR
    AUDITOR = Auditor()
    config.stash[_KEY] = install(AUDITOR)


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """pytest formats and keeps every record it captures: keep its capture where it was
    (WARNING, the root logger's default) rather than storing the audit's DEBUG flood twice.
    `caplog.set_level`/`at_level` still lower it for the tests that ask. (The logging plugin
    registers itself late in pytest_configure, hence here.)"""
    capture = session.config.pluginmanager.get_plugin("logging-plugin")
    installation = session.config.stash.get(_KEY, None)
    if capture is not None and installation is not None and capture.log_level is None:
        installation.setattr(capture, "log_level", logging.WARNING)
    # Its log file, when none is set, is /dev/null: formatting the flood for it is waste.
    if (
        capture is not None
        and installation is not None
        and capture.log_file_level is None
        and capture.log_file_handler.baseFilename == os.devnull
    ):
        installation.setattr(capture, "log_file_level", logging.WARNING)


def pytest_unconfigure(config: pytest.Config) -> None:
    installation = config.stash.get(_KEY, None)
    if installation is not None:
        installation.uninstall()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if AUDITOR is not None:
        AUDITOR.e2e_files = {
            item.nodeid.split("::", 1)[0] for item in items if item.nodeid.startswith("tests/e2e/")
        }


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    auditor = AUDITOR
    if auditor is None:
        return
    text = _report_text(report.longrepr)
    for title, content in report.sections:
        if not title.startswith("Captured log"):  # those records were checked as they came
            text += content
    auditor.check(text, f"report {report.nodeid} ({report.when})", "reports")
    if report.when == "call" and report.nodeid.startswith("tests/e2e/"):
        auditor.count("e2e_tests")


def _report_text(longrepr: Any) -> str:
    """A failure report without the values of each frame's arguments, which pytest's long
    tracebacks print ("token = 'eyJ...'" for a test helper taking a token). Those are the
    test's own values, not anything lkproto said; its exception texts are checked as they
    are made (`_watch_exception`), and its log records as they are emitted."""
    if not longrepr:
        return ""
    text = str(longrepr)
    for reprtraceback, _, _ in getattr(longrepr, "chain", ()):
        for entry in getattr(reprtraceback, "reprentries", ()):
            funcargs = getattr(entry, "reprfuncargs", None)
            for name, value in getattr(funcargs, "args", ()):
                text = text.replace(f"{name} = {value}", f"{name} = <argument>")
    return text


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Under the phased xdist scheduler (harness/phases.py), each worker leaves what it saw
    for the worker that runs the `last` tests (the audit's own check)."""
    where = phases.phases_dir(session.config)
    if AUDITOR is not None and where is not None:
        target = where / f"audit-{phases.worker_id(session.config)}.json"
        target.with_suffix(".tmp").write_text(json.dumps(AUDITOR.snapshot()))
        target.with_suffix(".tmp").replace(target)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Every test starts audited at DEBUG: a test that reconfigures logging in-process (the
    CLI's `main()` sets "lkproto", "aiortc" and "aioice" to ERROR and leaves them so) must not
    blind the audit for whatever this worker runs after it, in whatever order.

    Before this worker's first `last` test: every other worker has exited (the scheduler
    sends `last` tests only then), so absorb what each of them saw, once."""
    global _ABSORBED
    if AUDITOR is not None:
        for name in ("", *_DEBUG_LOGGERS):
            logging.getLogger(name).setLevel(logging.DEBUG)
    where = phases.phases_dir(item.config)
    if AUDITOR is None or where is None or _ABSORBED or phases.phase_of(item) != phases.LAST:
        return
    _ABSORBED = True
    own = f"audit-{phases.worker_id(item.config)}.json"
    for path in sorted(where.glob("audit-*.json")):
        if path.name != own:
            AUDITOR.absorb(json.loads(path.read_text()))


def pytest_warning_recorded(warning_message: Any, when: str, nodeid: str) -> None:
    if AUDITOR is not None:
        AUDITOR.check(str(warning_message.message), f"warning {nodeid}", "warnings")
