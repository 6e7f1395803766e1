"""Our metadata, name and attribute updates, and their answers (protocol-reference E.1).

Theory of operation
- Each `set_metadata`/`set_name`/`set_attributes` sends one `UpdateParticipantMetadata`
  with a fresh `request_id` (1, 2, 3, ...). Like the Rust SDK it always carries the current
  name and metadata, so that one update never clears the other; attributes are merged by the
  server, "" deleting a key.
- The server answers with `RequestResponse` for that id: reason 0 is
  `MetadataUpdateCompleted`, anything else `MetadataUpdateFailed` with the server's reason
  and message. An answer for an id not pending (not ours, or already timed out) is ignored.
- Without an answer within `Config.metadata_request_timeout` the request fails with
  `MetadataUpdateFailed(reason=TIMEOUT)`; at most `Config.max_pending_metadata_requests` are
  pending at once (more raise `LocalProtocolError`, nothing sent).
"""

from __future__ import annotations

from collections.abc import Mapping

from lkproto import commands as cmd
from lkproto import events as ev
from lkproto._context import Context, Timer
from lkproto._pb import signal_pb2 as spb
from lkproto.errors import LocalProtocolError
from lkproto.models import Participant

__all__ = ["MetadataRequests"]


class MetadataRequests:
    __slots__ = ("_ctx", "_next_id", "pending")

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._next_id = 1
        self.pending: set[int] = set()

    def request(
        self,
        call: str,
        local: Participant,
        now: float,
        *,
        name: str | None = None,
        metadata: str | None = None,
        attributes: Mapping[str, str] | None = None,
    ) -> int:
        """Send an update for `local`; returns its request id."""
        ctx = self._ctx
        if len(self.pending) >= ctx.config.max_pending_metadata_requests:
            raise LocalProtocolError(
                f"{call}: {len(self.pending)} metadata updates are already pending "
                f"(Config.max_pending_metadata_requests)",
                call=call,
                state=ctx.state.name,
            )
        request_id = self._next_id
        self._next_id += 1
        ctx.commands.append(
            cmd.SendSignal(
                data=ctx.codec.update_metadata(
                    request_id=request_id,
                    name=local.name if name is None else name,
                    metadata=local.metadata if metadata is None else metadata,
                    attributes=attributes or {},
                )
            )
        )
        self.pending.add(request_id)
        timeout = ctx.config.metadata_request_timeout
        ctx.deadlines.set((Timer.METADATA, request_id), now + timeout)
        return request_id

    def answered(self, response: spb.RequestResponse) -> None:
        request_id = response.request_id
        if request_id not in self.pending:
            return  # not ours (or already timed out): nothing is waiting for it
        self.pending.discard(request_id)
        self._ctx.deadlines.cancel((Timer.METADATA, request_id))
        if response.reason == 0:
            self._ctx.events.append(ev.MetadataUpdateCompleted(request_id=request_id))
        else:
            self._ctx.events.append(
                ev.MetadataUpdateFailed(
                    request_id=request_id, reason=response.reason, message=response.message
                )
            )

    def timed_out(self, request_id: int) -> None:
        """`(Timer.METADATA, request_id)` fired; an answer cancels it, so it is pending."""
        self.pending.discard(request_id)
        self._ctx.events.append(
            ev.MetadataUpdateFailed(
                request_id=request_id,
                reason=ev.MetadataUpdateFailed.TIMEOUT,
                message=f"no response within {self._ctx.config.metadata_request_timeout:g}s",
            )
        )
