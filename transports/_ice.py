"""aioice's ICE connection: `connect()` returns as soon as the check list completes, and
consent freshness survives a busy receiver.

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

Consent freshness (RFC 7675): aioice sends a binding request on the nominated pair every
4-6 s with no retransmission, so each check fails if its response is not read within STUN's
initial RTO (0.5 s), and six failed checks in a row close the connection. Under load the
answer can be seconds late: with six busy test workers on two cores, livekit-server (pion)
answered lkproto's checks 1 to 13 s after they were sent while lkproto's own event loop lagged
under 0.3 s and its socket queues were empty (measured with the send and receive of each
check timestamped), and a participant moving encrypted 5 MiB files lost its peer connection
after 39 s without an answer in time; the session then had to be rebuilt and the transfer
failed. RFC 7675 section 5.1 has consent expire 30 s after the last response, and each check
retransmitted with STUN's back-off. `EagerConnection.query_consent` does that: each check is
retransmitted `CONSENT_RETRANSMISSIONS` times (at 0.5, 1.5, 3.5, 7.5 and 15.5 s; its answer
is taken until 31.5 s, so an answer as late as the consent timeout itself still counts). Under
heavier load the server's answers came 24 to 34 s late while its data kept arriving, so
packets from the peer count too, as they do for the server's own ICE agent (pion marks the
remote candidate seen on every packet, and its disconnected and failed timers run from the
last one): the connection closes only when, for `CONSENT_TIMEOUT` seconds, no check has been
answered and nothing else has arrived from the peer. A peer that is gone sends neither.

`install()` makes aiortc create this class for every ICE gatherer (aiortc's
`rtcicetransport` looks `Connection` up in its module), when aioice has the method it hooks;
otherwise it logs a WARNING and leaves aioice as it is (connections then take the 20 ms).
"""

from __future__ import annotations

import asyncio
import logging
import random

import aioice
import aioice.ice
from aioice import stun
from aiortc import rtcicetransport

__all__ = ["EagerConnection", "install"]

log = logging.getLogger("lkproto.transports")

CONSENT_TIMEOUT = 30.0  # RFC 7675 section 5.1: consent expires 30 s after the last response
CONSENT_RETRANSMISSIONS = 5  # sent at 0, 0.5, 1.5, 3.5, 7.5 and 15.5 s; given up at 31.5 s


class EagerConnection(aioice.Connection):
    """aioice's `Connection`, whose `connect()` returns when the check list completes."""

    _lk_completed: asyncio.Event | None = None
    _lk_connect: asyncio.Task[None] | None = None
    _lk_heard = False  # a datagram other than STUN came from the peer since the last check

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

    def data_received(self, data: bytes, component: int) -> None:
        self._lk_heard = True  # the peer is there: its packets keep consent (as pion's do)
        super().data_received(data, component)

    async def query_consent(self) -> None:
        """Consent freshness (RFC 7675): a retransmitted check every 4-6 s; the connection
        closes once no check has been answered and nothing has arrived from the peer for
        `CONSENT_TIMEOUT` seconds."""
        assert self.remote_password is not None
        key = self.remote_password.encode("utf8")
        loop = asyncio.get_running_loop()
        alive = loop.time()
        while True:
            await asyncio.sleep(aioice.ice.CONSENT_INTERVAL * (0.8 + 0.4 * random.random()))
            for pair in list(self._nominated.values()):
                request = self.build_request(pair, nominate=False)
                try:
                    await pair.protocol.request(
                        request,
                        pair.remote_addr,
                        integrity_key=key,
                        retransmissions=CONSENT_RETRANSMISSIONS,
                    )
                except stun.TransactionError:
                    pass
                else:
                    alive = loop.time()
            if self._lk_heard:
                self._lk_heard = False
                alive = loop.time()
            if loop.time() - alive >= CONSENT_TIMEOUT:
                log.info(
                    "ICE consent expired: nothing from the peer for %.0f s", loop.time() - alive
                )
                self._query_consent_task = None
                await self.close()
                return

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
    methods = ("_check_list_maybe_complete", "build_request", "data_received", "query_consent")
    fits = all(callable(getattr(aioice.Connection, name, None)) for name in methods)
    fits = fits and "_nominated" in aioice.Connection.__init__.__code__.co_names
    if not fits or not hasattr(aioice.ice, "CONSENT_INTERVAL"):
        log.warning(
            "aioice %s lacks the internals lkproto hooks (it was tested with 0.13): ICE "
            "connections keep aioice's 20 ms wait after the first check and its consent "
            "checks without retransmission",
            getattr(aioice, "__version__", "?"),
        )
        return
    rtcicetransport.Connection = EagerConnection  # type: ignore[attr-defined]
