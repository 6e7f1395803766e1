"""What a Room (anyio, trio-facade or memory) emits, as (name, args), with an awaitable
condition: `wait_for` wakes on each emitted event instead of polling."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import anyio

T = TypeVar("T")


class Recorder:
    """Records the events `names` of `room`. `timeout`: the default of `wait_for`, in seconds
    of the running clock (a virtual one in the memory tests)."""

    def __init__(self, room: Any, *names: str, timeout: float = 15) -> None:
        self.records: list[tuple[str, tuple[Any, ...]]] = []
        self.timeout = timeout
        self._changed: anyio.Event | None = None
        for name in names:
            room.on(name, functools.partial(self._add, name))

    def _add(self, name: str, *args: Any) -> None:
        self.records.append((name, args))
        if self._changed is not None:
            self._changed.set()

    def of(self, name: str) -> list[tuple[Any, ...]]:
        """The arguments of every `name` event, in order."""
        return [args for n, args in self.records if n == name]

    def names(self) -> list[str]:
        """The name of every recorded event, in order."""
        return [n for n, _ in self.records]

    async def wait_for(self, predicate: Callable[[], T | None], timeout: float | None = None) -> T:
        """The first truthy value of `predicate`, evaluated now and after each event; a
        `TimeoutError` naming everything emitted so far if none comes within `timeout`."""
        limit = self.timeout if timeout is None else timeout
        with anyio.move_on_after(limit):
            while not (value := predicate()):
                self._changed = anyio.Event()
                await self._changed.wait()
            return value
        raise TimeoutError(f"not within {limit}s; the room emitted {self.names()}")
