"""Virtual time for asyncio: `VirtualTimeLoop`, whose clock jumps to the next timer whenever
nothing is ready (trio's `MockClock(autojump_threshold=0)`, for asyncio)."""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import FileDescriptorLike

__all__ = ["VirtualTimeLoop"]


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0


class _AutojumpSelector(selectors.BaseSelector):
    """A selector that, when nothing is ready, jumps the clock over the wait instead."""

    def __init__(self, clock: _Clock) -> None:
        self._inner = selectors.DefaultSelector()
        self._clock = clock

    def register(
        self, fileobj: FileDescriptorLike, events: int, data: object = None
    ) -> selectors.SelectorKey:
        return self._inner.register(fileobj, events, data)

    def unregister(self, fileobj: FileDescriptorLike) -> selectors.SelectorKey:
        return self._inner.unregister(fileobj)

    def modify(
        self, fileobj: FileDescriptorLike, events: int, data: object = None
    ) -> selectors.SelectorKey:
        return self._inner.modify(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._inner.select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:  # nothing scheduled: only another thread can wake us
            return self._inner.select(None)
        self._clock.now += timeout
        return []

    def get_map(self) -> Mapping[FileDescriptorLike, selectors.SelectorKey]:
        return self._inner.get_map()

    def close(self) -> None:
        self._inner.close()


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An asyncio event loop whose clock starts at 0 and jumps to the next timer whenever
    nothing is ready: `await asyncio.sleep(3600)` returns at once, with `loop.time()` an
    hour later. For tests without real I/O (e.g. against a `MemoryServer`)."""

    def __init__(self) -> None:
        self._virtual = _Clock()
        super().__init__(_AutojumpSelector(self._virtual))

    def time(self) -> float:
        """The loop's virtual clock: jumps to the next timer when every task waits."""
        return self._virtual.now
