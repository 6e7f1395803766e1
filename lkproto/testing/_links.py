"""Fault injection on one leg of the data path: drop, delay or duplicate packets, or cut it.

Theory of operation
- A MemoryRoom has one `Link` per (sender, receiver) pair for forwarded data packets, and
  one uplink per participant for the packets it sends the server. A link with no fault set
  delivers every packet at once, in order.
- Faults are deterministic, never random: `drop_next(n)` loses the next n packets,
  `duplicate_next(n)` delivers each of the next n packets twice in a row, `delay(s)` holds
  every packet for s seconds of virtual time from now on, `down()` loses everything until
  `up()`. Each takes a `channel` to apply to one data channel only.
- Delay keeps the reliable channel's order (protocol-reference A.3: `_reliable` is ordered):
  a reliable packet is never delivered before one sent earlier on the same link, even when
  the delay shrinks. Lossy packets (`_lossy` is unordered) may overtake each other. A real
  SCTP channel would never drop or duplicate a reliable packet; injecting it anyway checks
  what receivers do with a gap or a repeat (A.7 de-duplication, stream gap detection).
"""

from __future__ import annotations

from lkproto.models import Channel

__all__ = ["Link"]


class Link:
    """Faults on one leg of the data path. Methods return the link, so calls chain."""

    def __init__(self) -> None:
        self._drop: dict[Channel | None, int] = {}
        self._duplicate: dict[Channel | None, int] = {}
        self._delay: dict[Channel | None, float] = {}
        self._down: set[Channel | None] = set()
        self._last_reliable = float("-inf")  # when the last reliable packet is due

    def drop_next(self, n: int = 1, *, channel: Channel | None = None) -> Link:
        """Lose the next `n` packets (on `channel`, or on either)."""
        self._drop[channel] = self._drop.get(channel, 0) + _count(n)
        return self

    def duplicate_next(self, n: int = 1, *, channel: Channel | None = None) -> Link:
        """Deliver each of the next `n` packets twice."""
        self._duplicate[channel] = self._duplicate.get(channel, 0) + _count(n)
        return self

    def delay(self, seconds: float, *, channel: Channel | None = None) -> Link:
        """Hold every packet for `seconds` from now on (0 removes the delay)."""
        if not seconds >= 0:
            raise ValueError(f"a delay must be a non-negative number of seconds, not {seconds}")
        self._delay[channel] = float(seconds)
        return self

    def down(self, *, channel: Channel | None = None) -> Link:
        """Lose every packet until `up()`."""
        self._down.add(channel)
        return self

    def up(self, *, channel: Channel | None = None) -> Link:
        """Bring the link back up (for `channel`, or every channel); returns the link."""
        self._down.discard(channel)
        return self

    def plan(self, channel: Channel, now: float) -> tuple[int, float]:
        """How many copies of the next packet on `channel` to deliver (0: lost), and when.

        Consumes one drop or duplicate credit: the channel's own first, then the shared one.
        """
        if channel in self._down or None in self._down:
            return 0, now
        if self._take(self._drop, channel):
            return 0, now
        copies = 2 if self._take(self._duplicate, channel) else 1
        due = now + self._delay.get(channel, self._delay.get(None, 0.0))
        if channel is Channel.RELIABLE:
            due = max(due, self._last_reliable)
            self._last_reliable = due
        return copies, due

    @staticmethod
    def _take(credits: dict[Channel | None, int], channel: Channel) -> bool:
        for key in (channel, None):
            if credits.get(key, 0) > 0:
                credits[key] -= 1
                return True
        return False


def _count(n: int) -> int:
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"a packet count must be a non-negative int, not {n!r}")
    return n
