"""Session-wide harness: confinement first, then one real livekit-server for the e2e tests.

`pytest_configure` confines the whole test process before any thread exists (see
harness/netns.py). Every test that talks to the server gets a fresh, unique room name, so one
server process serves the whole session. Set LKPROTO_FORCE_LOOPBACK=1 to test the non-root
loopback confinement while running as root.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator

import pytest

from harness import Confinement, LiveKitServer, confine, mint_token
from harness.netns import release
from harness.official import OfficialLoop

pytest_plugins = ["harness.secrets_audit"]  # the whole session is audited for leaked secrets
_CONFINEMENT_KEY = pytest.StashKey[Confinement]()
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


@pytest.fixture(scope="session")
def confinement(pytestconfig: pytest.Config) -> Confinement:
    return pytestconfig.stash[_CONFINEMENT_KEY]


@pytest.fixture(scope="session")
def livekit_server(confinement: Confinement) -> Iterator[LiveKitServer]:
    server = LiveKitServer(confinement)
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
def anyio_backend() -> str:
    """The official SDK is asyncio-only; tests that also run on trio override this."""
    return "asyncio"
