"""TURN for aiortc: every TURN URL tried in order (UDP, TCP, TLS), a trusted TLS context, relay
only on request.

aioice allocates from one TURN server only: aiortc passes it the first `turn:`/`turns:` URL
of the configuration. LiveKit's join response lists its TURN server's URLs in one entry,
`turn:<host>:3478?transport=udp` first and `turns:<host>:443?transport=tcp` next, so behind
a firewall that drops UDP aioice would wait for its UDP allocation and gather no relay
candidate, though TURN over TLS on 443 would pass. So while a peer's configuration names TURN
servers, `create_turn_endpoint` (aioice's, replaced here once, as transports/_aiortc.py
replaces `get_host_addresses`) ignores the one server it is given and tries the peer's whole
list, the server's order kept (happy eyeballs): the next URL starts when the previous one
failed or after `TURN_STAGGER` seconds without an answer, whichever comes first; the first
allocation made wins, the others are cancelled (an allocation already made is closed). The
list lives in a context variable the peer's worker task sets (`use_turn`), so it reaches the
gathering tasks aiortc starts from that task and no other peer's.

`turns:` URLs are verified with the peer's TLS context (`IcePolicy.tls_context`) if it has
one, else with the system's trust store (aioice's `ssl=True`); verification is never turned
off. URLs aioice cannot use (`turns:` over UDP, i.e. DTLS; unknown transports) are skipped.
The TURN password is never logged and never part of an error.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import ssl
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from lkproto._repr import plain_repr
from lkproto.models import IceServer

from ._rtc_config import IcePolicy

if TYPE_CHECKING:
    from aiortc import RTCIceTransportPolicy

__all__ = [
    "TURN_CLOSE_WAIT",
    "TURN_STAGGER",
    "TurnEndpoint",
    "ice_transport_policy",
    "settle_turn",
    "turn_endpoints",
    "use_turn",
]

log = logging.getLogger("lkproto.transports")

TURN_STAGGER = 0.5
"""Seconds a TURN URL gets to answer before the next one is tried alongside it (aioice gives
all of a component's candidate gathering 5 s)."""
TURN_CLOSE_WAIT = 1.0
"""Seconds a closing peer waits for its TURN allocations' deletion (aioice deletes them in a
task of its own; a loop closed under it leaves 'Event loop is closed' on stderr)."""


@attrs.frozen
@plain_repr
class TurnEndpoint:
    """One TURN URL, ready for aioice."""

    host: str
    port: int
    transport: str  # "udp" or "tcp"
    tls: bool
    username: str = attrs.field(repr=False)
    password: str = attrs.field(repr=False)

    def describe(self) -> str:
        scheme = "turns" if self.tls else "turn"
        return f"{scheme}:{self.host}:{self.port}?transport={self.transport}"


@attrs.frozen
@plain_repr
class _Plan:
    endpoints: tuple[TurnEndpoint, ...]
    tls_context: ssl.SSLContext | None = attrs.field(repr=False)


_PLAN: contextvars.ContextVar[_Plan | None] = contextvars.ContextVar(
    "lkproto_turn_plan", default=None
)
_installed: list[Callable[..., Any]] = []  # aioice's own create_turn_endpoint, once replaced
_made: weakref.WeakSet[Any] = weakref.WeakSet()  # the TurnTransports allocated here


def turn_endpoints(servers: Sequence[IceServer]) -> tuple[TurnEndpoint, ...]:
    """Every TURN URL aioice can use, in the servers' order."""
    from aiortc.rtcicetransport import parse_stun_turn_uri

    out = []
    for server in servers:
        for url in server.urls:
            if not url.startswith(("turn:", "turns:")):
                continue
            try:
                parsed = parse_stun_turn_uri(url)
            except ValueError:
                continue
            tls = parsed["scheme"] == "turns"
            transport = parsed["transport"]
            if transport not in ("udp", "tcp") or (tls and transport != "tcp"):
                continue
            out.append(
                TurnEndpoint(
                    host=parsed["host"],
                    port=int(parsed["port"]),
                    transport=transport,
                    tls=tls,
                    username=server.username,
                    password=server.credential,
                )
            )
    return tuple(out)


def ice_transport_policy(policy: IcePolicy | None) -> RTCIceTransportPolicy:
    """aiortc's `iceTransportPolicy`: RELAY for relay-only ICE, else ALL."""
    from aiortc import RTCIceTransportPolicy

    if policy is not None and policy.relay_only:
        return RTCIceTransportPolicy.RELAY
    return RTCIceTransportPolicy.ALL


def use_turn(servers: Sequence[IceServer], policy: IcePolicy | None) -> None:
    """Make the current context's TURN allocations try `servers`' TURN URLs in order. Call it
    from the task that creates the peer connection (its gathering tasks inherit it)."""
    _install()
    endpoints = turn_endpoints(servers)
    tls_context = None if policy is None else policy.tls_context
    _PLAN.set(_Plan(endpoints, tls_context) if endpoints else None)


def _install() -> None:
    if _installed:
        return
    import aioice.turn

    _installed.append(aioice.turn.create_turn_endpoint)
    aioice.turn.create_turn_endpoint = _create_turn_endpoint


async def _create_turn_endpoint(
    protocol_factory: Callable[[], Any],
    server_addr: tuple[str, int],
    username: str | None,
    password: str | None,
    *args: Any,
    **kwargs: Any,
) -> Any:
    original = _installed[0]
    plan = _PLAN.get()
    if plan is None:
        return await original(protocol_factory, server_addr, username, password, *args, **kwargs)
    return await _first_allocation(original, plan, protocol_factory)


async def _allocate(
    original: Callable[..., Any],
    endpoint: TurnEndpoint,
    tls_context: ssl.SSLContext | None,
    protocol_factory: Callable[[], Any],
) -> Any:
    tls: bool | ssl.SSLContext | None = None
    if endpoint.tls:
        tls = tls_context if tls_context is not None else True
    return await original(
        protocol_factory,
        server_addr=(endpoint.host, endpoint.port),
        username=endpoint.username or None,
        password=endpoint.password or None,
        ssl=tls,
        transport=endpoint.transport,
    )


async def _first_allocation(
    original: Callable[..., Any], plan: _Plan, protocol_factory: Callable[[], Any]
) -> Any:
    waiting = list(plan.endpoints)
    running: dict[asyncio.Task[Any], TurnEndpoint] = {}
    failures: list[str] = []
    try:
        while waiting or running:
            if waiting:
                endpoint = waiting.pop(0)
                task = asyncio.ensure_future(
                    _allocate(original, endpoint, plan.tls_context, protocol_factory)
                )
                running[task] = endpoint
            done, _ = await asyncio.wait(
                running,
                timeout=TURN_STAGGER if waiting else None,
                return_when=asyncio.FIRST_COMPLETED,
            )
            # Among the allocations made, the earliest listed wins.
            for task in sorted(done, key=lambda t: plan.endpoints.index(running[t])):
                endpoint = running.pop(task)
                exc = task.exception()
                if exc is None:
                    log.debug("TURN allocation through %s", endpoint.describe())
                    result = task.result()
                    _made.add(result[0])
                    return result
                failures.append(f"{endpoint.describe()}: {type(exc).__name__}: {exc}")
                log.debug("TURN through %s failed: %s", endpoint.describe(), type(exc).__name__)
    finally:
        await _abandon(running)
    raise ConnectionError("no TURN allocation: " + "; ".join(failures))


async def _abandon(running: dict[asyncio.Task[Any], TurnEndpoint]) -> None:
    """Cancel the allocations still running; close any that was made meanwhile."""
    tasks = list(running)
    running.clear()
    for task in tasks:
        task.cancel()
    for result in await asyncio.gather(*tasks, return_exceptions=True):
        if isinstance(result, tuple):
            _made.add(result[0])  # its deletion is awaited by `settle_turn`
            result[0].close()


async def settle_turn(timeout: float = TURN_CLOSE_WAIT) -> None:
    """Wait, at most `timeout` s, for the deletion of the TURN allocations closed in this loop
    (aioice's `TurnTransport.close()` starts it and returns); cancel what is left."""
    loop = asyncio.get_running_loop()
    tasks = []
    for transport in list(_made):
        task = getattr(transport, "_TurnTransport__close_task", None)
        if isinstance(task, asyncio.Task) and not task.done() and task.get_loop() is loop:
            tasks.append(task)
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=timeout)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
