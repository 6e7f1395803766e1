"""Signal keepalive: ping every `ping_interval`, give up after `ping_timeout` of silence.

Theory of operation (protocol-reference G)
- The `JoinResponse` sets `ping_interval` and `ping_timeout` (seconds); 0 for either turns
  keepalive off, as in client-sdk-js. A resume restarts both timers.
- Every `ping_interval` a `Ping` goes out with our wall-clock milliseconds and the last RTT;
  the server's `pong_resp` echoes the timestamp, and the difference is the RTT.
- Stamps strictly increase (a second ping within one millisecond is stamped one later), so a
  pong names its ping: `Simulator` sends one with `send_ping` and waits for its own pong, not
  for the pong of a keepalive ping sent before it.
- Any message from the server pushes the `ping_timeout` deadline back (`heard`). When it
  passes, nothing came for that long: the owner treats the signal as lost (`Timer.PONG`).
"""

from __future__ import annotations

from lkproto import commands as cmd
from lkproto._context import Context, Timer

__all__ = ["Keepalive"]


class Keepalive:
    __slots__ = ("_ctx", "_last_stamp", "interval", "rtt_ms", "timeout")

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._last_stamp = 0  # the timestamp of the last ping we sent
        self.interval = 0.0
        self.timeout = 0.0
        self.rtt_ms = 0  # the latest round-trip time (0: unknown)

    def configure(self, interval: int, timeout: int, now: float) -> None:
        """Take over a `JoinResponse`'s `ping_interval` and `ping_timeout`, and start."""
        self.interval = float(max(interval, 0))
        self.timeout = float(max(timeout, 0))
        self.start(now)

    def start(self, now: float) -> None:
        if self.interval > 0 and self.timeout > 0:
            self._ctx.deadlines.set(Timer.PING, now + self.interval)
            self._ctx.deadlines.set(Timer.PONG, now + self.timeout)

    def stop(self) -> None:
        self._ctx.deadlines.cancel(Timer.PING)
        self._ctx.deadlines.cancel(Timer.PONG)

    def heard(self, now: float) -> None:
        """A message came from the server."""
        if self.timeout > 0:
            self._ctx.deadlines.set(Timer.PONG, now + self.timeout)

    def ping(self, now: float) -> None:
        """`Timer.PING` fired: send a ping and arm the next one."""
        self.send_ping(now)
        self._ctx.deadlines.set(Timer.PING, now + self.interval)

    def send_ping(self, now: float) -> int:
        """Send a ping now; return its timestamp, which no earlier ping of ours had."""
        ctx = self._ctx
        self._last_stamp = max(ctx.wall_ms(now), self._last_stamp + 1)
        ctx.commands.append(cmd.SendSignal(data=ctx.codec.ping(self._last_stamp, self.rtt_ms)))
        return self._last_stamp

    def pong(self, last_ping_timestamp: int, now: float) -> None:
        if last_ping_timestamp > 0:
            self.rtt_ms = max(0, self._ctx.wall_ms(now) - last_ping_timestamp)
