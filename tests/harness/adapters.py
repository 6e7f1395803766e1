"""The adapter matrix: the interop suites run once per adapter, unchanged.

A suite opts in by importing the three fixtures below into its module (pytest finds
fixtures in module globals):

    from harness.adapters import adapter, adapter_room, anyio_backend  # noqa: F401

Each test then runs once per adapter in `ADAPTERS`, on the anyio backend that adapter's
test code needs, and the module's global `Room` is swapped for that adapter's class for the
duration of the test (so `Room()` in a test builds the adapter under test):
- "anyio-asyncio", "anyio-trio": `lkproto.transports.anyio.Room` on each backend;
- "trio": `lkproto.transports.trio.Room` (trio-native lifetime, nursery-hosted session);
- "threaded": `lkproto.transports.threaded.Room` behind `harness.threaded_facade`, which
  awaits each blocking call in a worker thread so the async test code drives it unchanged.
"""

from __future__ import annotations

import importlib

import pytest

ADAPTERS = ("anyio-asyncio", "anyio-trio", "trio", "threaded")
BACKEND = {"anyio-asyncio": "asyncio", "anyio-trio": "trio", "trio": "trio", "threaded": "asyncio"}
_ROOM = {
    "anyio-asyncio": ("lkproto.transports.anyio", "Room"),
    "anyio-trio": ("lkproto.transports.anyio", "Room"),
    "trio": ("lkproto.transports.trio", "Room"),
    "threaded": ("harness.threaded_facade", "FacadeRoom"),
}


def room_class(name: str) -> type:
    module, attribute = _ROOM[name]
    cls = getattr(importlib.import_module(module), attribute)
    assert isinstance(cls, type)
    return cls


@pytest.fixture(params=ADAPTERS)
def adapter(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def anyio_backend(adapter: str) -> str:
    return BACKEND[adapter]


@pytest.fixture(autouse=True)
def adapter_room(
    adapter: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(request.module, "Room", room_class(adapter))


def threaded(room: object) -> bool:
    """True for the threaded adapter, whose handlers run on worker threads: they cannot be
    interrupted, and event callbacks run on their own thread (so not ordered with calls)."""
    return type(room).__name__ == "FacadeRoom"
