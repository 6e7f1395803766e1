"""RPC on a session: the handlers by method, the calls we are waiting on, the invocations
our handlers are working on.

A call (`perform`) waits for the core's `RpcSucceeded`/`RpcFailed`; the core owns every
deadline (ack 7 s by default, the response timeout), so nothing here keeps time. A cancelled
caller leaves its entry behind, marked abandoned, to be dropped when the core resolves it.
An invocation runs its handler (sync or async) as a task of the session; the core's
`RpcInvocationCancelled` cancels that task. A handler's `RpcError` answers with its code, any
other exception with the generic 1500 (the details stay in our log).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import TypeAlias, assert_never

import anyio
import attrs

from lkproto import events as ev
from lkproto._repr import plain_repr
from lkproto.rpc import RpcError, RpcInvocationData

from ._errors import TransportClosedError
from ._pump import SessionHost

__all__ = ["Rpc", "RpcEvent", "RpcHandler"]

log = logging.getLogger("lkproto.transports")

RpcHandler: TypeAlias = Callable[[RpcInvocationData], str | Awaitable[str | None] | None]
RpcEvent: TypeAlias = (
    ev.RpcSucceeded | ev.RpcFailed | ev.RpcInvoked | ev.RpcInvocationCancelled | ev.RpcDropped
)


@attrs.define
@plain_repr
class _Call:
    done: anyio.Event = attrs.field(factory=anyio.Event)
    payload: str = ""
    error: RpcError | None = None
    abandoned: bool = False  # the caller was cancelled; drop the result when it comes


class Rpc:
    """The RPC side of one session."""

    def __init__(self, host: SessionHost) -> None:
        self._host = host
        self.handlers: dict[str, RpcHandler] = {}
        self._calls: dict[str, _Call] = {}
        self._invocations: dict[str, anyio.CancelScope] = {}

    def register(self, method: str, handler: RpcHandler) -> None:
        """A second registration replaces the handler, as in livekit.rtc."""
        known = method in self.handlers
        self.handlers[method] = handler
        conn = self._host.conn
        if known:
            log.debug("RPC method %r registered again: the new handler replaces the old", method)
        elif conn is not None:
            conn.register_rpc_method(method)

    def unregister(self, method: str) -> None:
        conn = self._host.conn
        if self.handlers.pop(method, None) is not None and conn is not None:
            conn.unregister_rpc_method(method)

    def attach(self) -> None:
        """Give the methods registered so far to the core (just made by `connect()`)."""
        conn = self._host.conn
        assert conn is not None
        for method in self.handlers:
            conn.register_rpc_method(method)

    async def perform(
        self,
        destination: str,
        method: str,
        payload: str,
        response_timeout: float | None,
        max_round_trip_latency: float | None,
    ) -> str:
        pump, conn = self._host.live("perform_rpc")
        request_id = pump.call(
            conn.perform_rpc,
            destination_identity=destination,
            method=method,
            payload=payload,
            now=pump.now(),
            response_timeout=response_timeout,
            max_round_trip_latency=max_round_trip_latency,
        )
        call = self._calls.setdefault(request_id, _Call())  # may have resolved already
        try:
            await call.done.wait()
        finally:
            # A cancelled caller leaves the entry to be dropped when the core resolves it.
            if call.done.is_set():
                self._calls.pop(request_id, None)
            else:
                call.abandoned = True
        if call.error is not None:
            raise call.error
        return call.payload

    def respond(self, request_id: str, result: str | Exception | None) -> None:
        """Answer an invocation (an exception other than `RpcError` becomes a generic 1500)."""
        try:
            pump, conn = self._host.live("respond_rpc")
        except TransportClosedError:
            return  # the session ended: the caller hears of it from the server
        if isinstance(result, Exception) and not isinstance(result, RpcError):
            pump.call(conn.respond_rpc_exception, request_id, result, now=pump.now())
        else:
            pump.call(conn.respond_rpc, request_id, result, now=pump.now())

    def cancel_invocations(self) -> None:
        """Before leaving: cancel our running handlers and answer their callers 1503, as
        livekit.rtc does, instead of leaving them to time out."""
        for request_id, scope in list(self._invocations.items()):
            scope.cancel()
            self.respond(request_id, RpcError.built_in(RpcError.ErrorCode.RECIPIENT_DISCONNECTED))

    def on_event(self, event: RpcEvent) -> None:
        match event:
            case ev.RpcSucceeded() | ev.RpcFailed():
                # No entry yet: the call resolved inside perform's own pump.call.
                call = self._calls.setdefault(event.request_id, _Call())
                if call.abandoned:
                    del self._calls[event.request_id]
                    return
                if isinstance(event, ev.RpcFailed):
                    call.error = event.error
                else:
                    call.payload = event.payload
                call.done.set()
            case ev.RpcInvoked():
                invocation, tg = event.invocation, self._host.tg
                handler = self.handlers.get(invocation.method)
                if handler is None or tg is None:
                    unsupported = RpcError.built_in(RpcError.ErrorCode.UNSUPPORTED_METHOD)
                    self.respond(invocation.request_id, unsupported)
                else:
                    tg.start_soon(self._run_handler, handler, invocation)
            case ev.RpcInvocationCancelled():
                scope = self._invocations.pop(event.request_id, None)
                if scope is not None:
                    scope.cancel()
            case ev.RpcDropped():
                log.debug("dropped an RPC message: %s %s", event.reason, event.detail)
            case _:
                assert_never(event)

    async def _run_handler(self, handler: RpcHandler, invocation: RpcInvocationData) -> None:
        with anyio.CancelScope() as scope:
            self._invocations[invocation.request_id] = scope
            try:
                result = handler(invocation)
                if inspect.isawaitable(result):
                    result = await result
            except Exception as exc:
                log.debug("RPC handler for %r raised", invocation.method, exc_info=True)
                self.respond(invocation.request_id, exc)
            else:
                if result is not None and not isinstance(result, str):
                    result = str(result)
                self.respond(invocation.request_id, result)
            finally:
                self._invocations.pop(invocation.request_id, None)
