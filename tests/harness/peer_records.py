"""What a peer of the interop suites saw, as (name, args) records, and waiting on them.

The official Python SDK and the JavaScript peer (harness/official.py, harness/jspeer.py) report
their events from threads of their own (the official SDK's loop, the browser driver's reader);
the tests wait on them from whichever backend they run on. `PeerRecords` is the one
thread-safe record both keep: `_record` appends and wakes the waiters, `wait_for` waits in a
worker thread (so any async backend may await it) until a predicate over the records holds.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import anyio.to_thread

T = TypeVar("T")
Record = tuple[str, tuple[Any, ...]]

__all__ = ["PeerRecords", "Record"]


class PeerRecords:
    """A thread-safe list of (name, args) records that tests wait on."""

    LABEL = "peer"  # names the peer in a timeout's message

    def __init__(self) -> None:
        self.records: list[Record] = []
        self._cond = threading.Condition()

    def _record(self, name: str, *args: Any) -> None:
        with self._cond:
            self.records.append((name, args))
            self._cond.notify_all()

    async def wait_for(
        self, predicate: Callable[[list[Record]], T | None], timeout: float = 15
    ) -> T:
        """Wait until `predicate(records)` is truthy; return its value."""
        box: list[T] = []

        def check() -> bool:
            value = predicate(self.records)
            if value:
                box.append(value)
                return True
            return False

        def wait() -> bool:
            with self._cond:
                return self._cond.wait_for(check, timeout)

        if not await anyio.to_thread.run_sync(wait, abandon_on_cancel=True):
            raise TimeoutError(
                f"{self.LABEL}: condition not met within {timeout}s; saw {self.records[-8:]!r}"
            )
        return box[0]

    def of(self, kind: str) -> list[tuple[Any, ...]]:
        with self._cond:
            return [args for name, args in self.records if name == kind]
