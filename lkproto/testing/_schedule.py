"""The MemoryRoom's virtual clock: one queue of actions ordered by (time, order of scheduling).

Theory of operation
- Every delivery (a signal message, a data packet, a close) and every server timer (the
  participant-update batch, the room-update tick, a departure) is an action scheduled at a
  virtual time. Actions due at the same time run in the order they were scheduled, so a run is
  a pure function of its inputs: the same inputs give the same trace, every time.
- Nothing here reads a clock: time moves only when the owner pops an action (`pop_due`), to
  that action's time. A cancelled action stays in the heap and is skipped when it surfaces.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

__all__ = ["Handle", "Scheduler"]

Action = Callable[[], None]


class Handle:
    """A scheduled action; `cancel()` keeps it from running."""

    __slots__ = ("action", "cancelled", "when")

    def __init__(self, when: float, action: Action) -> None:
        self.when = when
        self.action = action
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Scheduler:
    def __init__(self, now: float) -> None:
        self.now = now
        self._heap: list[tuple[float, int, Handle]] = []
        self._order = 0

    def call_at(self, when: float, action: Action) -> Handle:
        """Run `action` at `when` (never before now: a past time means now)."""
        handle = Handle(max(when, self.now), action)
        self._order += 1
        heapq.heappush(self._heap, (handle.when, self._order, handle))
        return handle

    def call_soon(self, action: Action) -> Handle:
        """Run `action` at the current time, after everything already due now."""
        return self.call_at(self.now, action)

    def next_time(self) -> float | None:
        """When the next pending action is due, or None."""
        heap = self._heap
        while heap and heap[0][2].cancelled:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def pop_due(self, limit: float) -> Action | None:
        """The next action due at or before `limit`, with the clock moved to its time."""
        when = self.next_time()
        if when is None or when > limit:
            return None
        _, _, handle = heapq.heappop(self._heap)
        self.now = max(self.now, when)
        return handle.action
