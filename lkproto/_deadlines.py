"""A set of named deadlines on the caller's monotonic clock, read through `get_timer()`.

Timers are state, not commands (as in aioquic): the adapter sleeps until the earliest deadline
and calls `handle_timer(now)`, which may be early or repeated. A heap with lazy deletion keeps
`earliest()` cheap however many RPCs or requests are pending.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable

__all__ = ["Deadlines"]


class Deadlines:
    def __init__(self) -> None:
        self._when: dict[Hashable, float] = {}
        self._heap: list[tuple[float, int, Hashable]] = []
        self._tiebreak = 0

    def set(self, key: Hashable, when: float) -> None:
        self._when[key] = when
        self._tiebreak += 1
        heapq.heappush(self._heap, (when, self._tiebreak, key))

    def cancel(self, key: Hashable) -> None:
        self._when.pop(key, None)

    def clear(self) -> None:
        self._when.clear()
        self._heap.clear()

    def _prune(self) -> None:
        heap = self._heap
        while heap and self._when.get(heap[0][2]) != heap[0][0]:
            heapq.heappop(heap)

    def earliest(self) -> float | None:
        self._prune()
        return self._heap[0][0] if self._heap else None

    def pop_earliest(self) -> Hashable:
        """Remove and return the key of `earliest()` (there must be one). One at a time, so
        that firing one can still cancel others due at the same moment."""
        self._prune()
        _, _, key = heapq.heappop(self._heap)
        del self._when[key]
        return key

    def pop_due(self, now: float) -> list[Hashable]:
        """Remove and return every key due at `now`, earliest first."""
        due: list[Hashable] = []
        while True:
            self._prune()
            if not self._heap or self._heap[0][0] > now:
                return due
            _, _, key = heapq.heappop(self._heap)
            del self._when[key]
            due.append(key)
