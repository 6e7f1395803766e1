"""Session-wide harness: confinement first, then one real livekit-server for the e2e tests.

`pytest_configure` confines the whole test process before any thread exists (see
harness/netns.py). Every test that talks to the server gets a fresh, unique room name, so one
server process serves the whole session. Set LKPROTO_FORCE_LOOPBACK=1 to test the non-root
loopback confinement while running as root.

Under pytest-xdist (`make test` runs `-n`, docs/testing.md) every worker is a process of its
own: it confines itself to a network namespace of its own (`lkproto-<its pid>`) and starts its
own server there, and harness/phases.py schedules the tests: `serial` ones alone first,
`xdist_group` ones one at a time on a worker of their own, the rest in parallel. A failed
test that used a server names that server's log file (kept in the pytest temporary
directory) in its report.

Coverage: lkproto's branch coverage is measured by the tests that need no server (the core,
the adapters' unit tests, the in-memory room); they reach 100% on their own, so the e2e tests
run with the tracer stopped (it cost them about a fifth of their CPU time, on a machine where
the suite is CPU-bound).

`ast.parse` runs with the garbage collector paused (`_parse_without_gc`), for a CPython 3.11
bug (gh-106905; pytest-dev/pytest#10763): the AST constructor keeps its recursion depth in
per-interpreter state, so a collection that runs a finalizer in the middle of a parse, one
that formats a traceback (which parses the source line for its carets), leaves the outer parse
with "SystemError: AST constructor recursion depth mismatch". The finalizers are aiortc's
tasks and generators left over from earlier e2e tests in the same worker; two full runs
failed that way (a core test's parse, and pytest formatting a failure).
"""

from __future__ import annotations

import ast
import gc
import itertools
import json
import os
import time
from collections.abc import Callable, Generator, Iterator
from typing import TYPE_CHECKING

import coverage
import pytest

from harness import Confinement, LiveKitServer, confine, mint_token
from harness.netns import release
from harness.official import OfficialLoop
from harness.procs import tree_cpu

if TYPE_CHECKING:
    from lkproto.transports.anyio import RoomOptions

_parse = ast.parse


def _parse_without_gc(*args: object, **kwargs: object) -> object:
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _parse(*args, **kwargs)  # type: ignore[call-overload]
    finally:
        if enabled:
            gc.enable()


ast.parse = _parse_without_gc  # type: ignore[assignment]

pytest_plugins = [
    "harness.phases",  # the xdist scheduler: `serial` tests alone, groups, parallel tests
    "harness.secrets_audit",  # the whole session is audited for leaked secrets
]
_CONFINEMENT_KEY = pytest.StashKey[Confinement]()
_FAILED = pytest.StashKey[bool]()  # a phase of the test failed (for the timeline)
_room_counter = itertools.count(1)


def pytest_configure(config: pytest.Config) -> None:
    confinement = confine(force_loopback=os.environ.get("LKPROTO_FORCE_LOOPBACK") == "1")
    config.stash[_CONFINEMENT_KEY] = confinement


def pytest_unconfigure(config: pytest.Config) -> None:
    confinement = config.stash.get(_CONFINEMENT_KEY, None)
    if confinement is not None:
        release(confinement)


def pytest_report_header(config: pytest.Config) -> str:
    c = config.stash[_CONFINEMENT_KEY]
    where = f"network namespace {c.namespace}" if c.namespace else "loopback only"
    return f"lkproto harness: confined to {where}, server address {c.host}"


# A test that uses one of these starts or talks to a real livekit-server: it is e2e.
SERVER_FIXTURES = ("livekit_server", "fault_server")


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that uses a server carries the `e2e` marker, so `-m "not e2e"` (`make
    check`) selects exactly the tests that need no server."""
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if item.get_closest_marker("e2e") is None and any(f in fixtures for f in SERVER_FIXTURES):
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(
    item: pytest.Item, nextitem: pytest.Item | None
) -> Generator[None, object, object]:
    """An e2e test (setup, call, teardown) runs with the coverage tracer stopped. With
    LKPROTO_TIMELINE set to a file, each test appends its worker, id, start and end to it."""
    tracer = coverage.Coverage.current() if item.get_closest_marker("e2e") else None
    if tracer is not None:
        tracer.stop()
    timeline = os.environ.get("LKPROTO_TIMELINE")
    cpu = tree_cpu() if timeline else (0.0, 0.0)
    started = time.time()
    try:
        return (yield)
    finally:
        if tracer is not None:
            tracer.start()
        if timeline:  # docs/testing.md: where the time goes
            worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
            own, tree = (now - then for now, then in zip(tree_cpu(), cpu, strict=True))
            row = [worker, item.nodeid, round(started, 3), round(time.time(), 3)]
            failed = item.stash.get(_FAILED, False)
            line = json.dumps([*row, round(own, 2), round(tree, 2), failed])
            with open(timeline, "a") as out:
                out.write(line + "\n")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failure names the log of every server the test used (and the xdist worker)."""
    report: pytest.TestReport = yield
    if report.failed:
        item.stash[_FAILED] = True
        funcargs = getattr(item, "funcargs", {})
        logs = [
            f"{name}: {server.log_path}"
            for name in SERVER_FIXTURES
            if isinstance(server := funcargs.get(name), LiveKitServer)
        ]
        if logs:
            worker = os.environ.get("PYTEST_XDIST_WORKER", "main process")
            report.sections.append((f"livekit-server log ({worker})", "\n".join(logs)))
    return report


@pytest.fixture(scope="session")
def confinement(pytestconfig: pytest.Config) -> Confinement:
    return pytestconfig.stash[_CONFINEMENT_KEY]


@pytest.fixture(scope="session")
def livekit_server(
    confinement: Confinement, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveKitServer]:
    """This process's server (one per xdist worker). Its log outlives the session, in the
    pytest temporary directory (`.../popen-gw<n>/livekit-server0/server.log` under xdist)."""
    server = LiveKitServer(confinement, log_dir=tmp_path_factory.mktemp("livekit-server"))
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def room_name(request: pytest.FixtureRequest) -> str:
    base = request.node.name.replace("[", "-").replace("]", "").replace("/", "-")[:40]
    return f"{base}-{os.getpid()}-{next(_room_counter)}"


TokenFactory = Callable[..., str]


@pytest.fixture
def make_token(room_name: str) -> TokenFactory:
    def make(identity: str, **kwargs: object) -> str:
        return mint_token(identity, str(kwargs.pop("room", room_name)), **kwargs)  # type: ignore[arg-type]

    return make


@pytest.fixture(scope="session")
def official_loop() -> Iterator[OfficialLoop]:
    """One asyncio loop thread hosting every official SDK participant (any anyio backend)."""
    loop = OfficialLoop()
    try:
        yield loop
    finally:
        loop.close()


@pytest.fixture
def options(confinement: Confinement) -> RoomOptions:
    """Room options for an e2e test: no automatic subscription, ICE on the confined network's
    host address only. Imported here, not at the top: most tests need no transport."""
    from lkproto.transports.anyio import RoomOptions, RtcConfiguration

    return RoomOptions(
        auto_subscribe=False, rtc_config=RtcConfiguration(host_addresses=[confinement.host])
    )


@pytest.fixture
def anyio_backend() -> str:
    """The official SDK is asyncio-only; tests that also run on trio override this."""
    return "asyncio"
