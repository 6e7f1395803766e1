"""aioice's ICE connection, returning from `connect()` as soon as the check list completes.

aioice (0.13) paces its connectivity checks like RFC 8445's Ta timer: `Connection.connect()`
starts a check, sleeps a fixed 20 ms, and reads the check list's outcome only when that sleep
is over. A check that succeeds at once (about 1 ms to a server on the same network) is
therefore reported 20 ms late, and DTLS, SCTP and the data channels wait for it: 20 of the
about 70 ms from the join response to an open data channel (benchmarks/bench_startup.py
--trace, "ICE completed" at +0.5 ms, the ICE transport's "completed" at +21 ms).

`EagerConnection.connect` runs aioice's `connect()` as a task and returns as soon as the
check list is complete (every component has a nominated pair: `_check_list_maybe_complete`
returned True); the task finishes by itself when its sleep ends, exactly as it would have
(it takes the outcome, cancels the checks still running, starts consent freshness). Until
completion, and for every failure, the outcome is aioice's own. `close()` first cancels that
task if it is still sleeping, so it cannot start consent checks on a closed connection.

`install()` makes aiortc create this class for every ICE gatherer (aiortc's
`rtcicetransport` looks `Connection` up in its module), when aioice has the method it hooks;
otherwise it logs a WARNING and leaves aioice as it is (connections then take the 20 ms).
"""

from __future__ import annotations

import asyncio
import logging

import aioice
from aiortc import rtcicetransport

__all__ = ["EagerConnection", "install"]

log = logging.getLogger("lkproto.transports")


class EagerConnection(aioice.Connection):
    """aioice's `Connection`, whose `connect()` returns when the check list completes."""

    _lk_completed: asyncio.Event | None = None
    _lk_connect: asyncio.Task[None] | None = None

    def _check_list_maybe_complete(self) -> bool:
        complete = super()._check_list_maybe_complete()
        if complete and self._lk_completed is not None:
            self._lk_completed.set()
        return complete

    async def connect(self) -> None:
        completed = self._lk_completed = asyncio.Event()
        task = self._lk_connect = asyncio.ensure_future(super().connect())
        task.add_done_callback(_retrieve)
        waiter = asyncio.ensure_future(completed.wait())
        try:
            await asyncio.wait((task, waiter), return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # cancelled: so is aioice's connect, as it would have been
            task.cancel()
            raise
        finally:
            waiter.cancel()
        if task.done():
            task.result()  # aioice's outcome: ConnectionError if ICE failed
        # Otherwise the check list is complete and aioice's connect() ends on its own soon.

    async def close(self) -> None:
        task = self._lk_connect
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait((task,))
        await super().close()


def _retrieve(task: asyncio.Task[None]) -> None:
    """Nobody awaits the task after an early return: take its outcome so asyncio does not
    report it as never retrieved."""
    if not task.cancelled() and task.exception() is not None:
        log.debug("ICE connect ended with an error", exc_info=task.exception())


def install() -> None:
    """Make aiortc use `EagerConnection` for every ICE connection in this process."""
    if not callable(getattr(aioice.Connection, "_check_list_maybe_complete", None)):
        log.warning(
            "aioice %s has no Connection._check_list_maybe_complete (lkproto was tested with "
            "0.13); ICE connections keep aioice's 20 ms wait after the first check",
            getattr(aioice, "__version__", "?"),
        )
        return
    rtcicetransport.Connection = EagerConnection  # type: ignore[attr-defined]
