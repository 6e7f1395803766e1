"""aiortc's SCTP receiver, made to deliver ordered messages whose TSNs are not in SSN order.

An SCTP receiver delivers the messages of an ordered stream by their stream sequence number
(SSN, RFC 9260 section 6.6); the TSN only orders reliability. aiortc 1.16's `InboundStream`
keeps the received chunks sorted by TSN and, in `pop_messages`, stops at the first chunk that
is not the next SSN: it assumes a sender assigns TSNs in SSN order. livekit-server's SCTP
(pion) does not always: when several goroutines write to one participant's `_reliable` channel
at once (one per sender of a broadcast, `utils.ParallelExec` in the server's room code), one
can take its SSN before another and enqueue its chunks after it, so SSN 99 goes out with a
lower TSN than SSN 98. aiortc then acknowledges both and delivers neither, nor anything after
them on that stream, for the life of the association: a reliable channel that silently
stops. Seen with 100 participants broadcasting at once (issue 26: the head of one stalled
stream read `(tsn …826, ssn 99), (tsn …827, ssn 98)` with SSN 98 expected; up to 96 of 99
packets never delivered to one participant, 0 lost by the server or the core).

`OrderedInboundStream.pop_messages` looks past chunks that are not yet due: an ordered
message is delivered when its first fragment carries the expected SSN and its fragments are
complete (consecutive TSNs, RFC 9260 section 6.9), wherever it sits in TSN order; after each
ordered delivery it looks again from the start, since a message it passed may now be due.
Unordered messages, stale SSNs (delivered at once, as aiortc does) and `prune_chunks` for a
FORWARD TSN keep aiortc's behaviour. `install()` makes aiortc create this stream class for
every association in the process (aiortc looks the class up in its module when it first sees
a stream id); the fix changes nothing for a sender that keeps TSN and SSN in step.

`install()` also puts `_sctp_fast.FastSctpTransport` (bundled DATA chunks, no idle scans of
the sent queue, delayed SACK; its docstring gives the why and the RFC sections) in place of
aiortc's `RTCSctpTransport` for every peer connection created afterwards, by replacing the
name `aiortc.rtcpeerconnection` looks up when it creates a peer connection's SCTP transport.
The subclass overrides private methods, so it is used only with an aiortc release it was
tested with (`TESTED_AIORTC`) whose module still has every name it relies on
(`_sctp_fast.REQUIRED`); otherwise, and when the environment variable
`LKPROTO_SCTP_FAST_PATH` is `0` (to compare with stock aiortc), aiortc's own transport is
used, with one warning logged on `lkproto.transports` for a mismatch.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import aiortc
from aiortc import rtcsctptransport as _sctp

__all__ = ["TESTED_AIORTC", "OrderedInboundStream", "fast_path_problem", "install"]

TESTED_AIORTC = frozenset({"1.16.0"})
"""aiortc releases `FastSctpTransport` was tested with (its overrides read private names)."""

log = logging.getLogger("lkproto.transports")
_warned = False


def _ssn_after(a: int, b: int) -> bool:
    """True if SSN `a` comes after `b` (16-bit serial number arithmetic, RFC 1982)."""
    return a != b and ((a - b) & 0xFFFF) < 0x8000


class OrderedInboundStream(_sctp.InboundStream):
    """aiortc's `InboundStream`, delivering ordered messages by SSN whatever their TSN order."""

    def pop_messages(self) -> Iterator[tuple[int, int, bytes]]:
        pos = 0
        start_pos: int | None = None
        ordered = True
        expected_tsn = 0
        while pos < len(self.reassembly):
            chunk = self.reassembly[pos]
            if start_pos is None:
                ordered = not (chunk.flags & _sctp.SCTP_DATA_UNORDERED)
                if not (chunk.flags & _sctp.SCTP_DATA_FIRST_FRAG):
                    pos += 1  # the middle of a message whose start is missing or passed
                    continue
                if ordered and _ssn_after(chunk.stream_seq, self.sequence_number):
                    pos += 1  # not due yet: an earlier SSN may sit at a higher TSN
                    continue
                expected_tsn = chunk.tsn
                start_pos = pos
            elif chunk.tsn != expected_tsn:
                start_pos = None  # a fragment is missing: look at this chunk afresh
                continue

            if chunk.flags & _sctp.SCTP_DATA_LAST_FRAG:
                fragments = self.reassembly[start_pos : pos + 1]
                user_data = b"".join(c.user_data for c in fragments)
                del self.reassembly[start_pos : pos + 1]
                if ordered and chunk.stream_seq == self.sequence_number:
                    self.sequence_number = (self.sequence_number + 1) & 0xFFFF
                # After an ordered delivery a message passed over may be due: start again.
                pos = 0 if ordered else start_pos
                start_pos = None
                yield (chunk.stream_id, chunk.protocol, user_data)
                continue
            pos += 1
            expected_tsn = (expected_tsn + 1) & 0xFFFFFFFF


def fast_path_problem() -> str | None:
    """Why `FastSctpTransport` cannot be used with the installed aiortc, or None if it can."""
    version = getattr(aiortc, "__version__", "unknown")
    if version not in TESTED_AIORTC:
        return f"aiortc {version} is not one the SCTP fast path was tested with"
    try:
        from ._sctp_fast import REQUIRED
    except (ImportError, AttributeError) as exc:  # a dependency or constant gone
        return f"the SCTP fast path cannot be imported with aiortc {version}: {exc}"

    base = getattr(_sctp, "RTCSctpTransport", None)
    missing = [n for n in REQUIRED["module"] if not hasattr(_sctp, n)]
    if base is not None:
        missing += [n for n in REQUIRED["methods"] if not callable(getattr(base, n, None))]
        assigned = set(base.__init__.__code__.co_names)
        missing += [n for n in REQUIRED["attributes"] if n not in assigned]
    if missing:
        return f"aiortc {version} lacks what the SCTP fast path uses: {', '.join(missing)}"
    return None


def install() -> None:
    """Make every aiortc SCTP association in this process use `OrderedInboundStream`, and
    `FastSctpTransport` when the installed aiortc is one it was tested with."""
    global _warned
    _sctp.InboundStream = OrderedInboundStream  # type: ignore[misc]

    from aiortc import rtcpeerconnection

    stock = _sctp.RTCSctpTransport
    wanted = os.environ.get("LKPROTO_SCTP_FAST_PATH", "1") != "0"
    problem = fast_path_problem() if wanted else None
    if wanted and problem is None:
        from ._sctp_fast import FastSctpTransport

        rtcpeerconnection.RTCSctpTransport = FastSctpTransport  # type: ignore[attr-defined]
        return
    rtcpeerconnection.RTCSctpTransport = stock  # type: ignore[attr-defined]
    if problem is not None and not _warned:
        _warned = True
        log.warning("%s; using aiortc's own SCTP transport (slower for small messages)", problem)
