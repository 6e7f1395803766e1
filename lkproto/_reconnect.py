"""The reconnect schedule: how long to wait before each attempt (protocol-reference D.8).

Theory of operation
- Attempt 1 is immediate: most interruptions (a dropped WebSocket, a server `LeaveRequest`)
  are over by the time they are noticed.
- Attempt n >= 2 waits min(`reconnect_base_delay` * (n - 1)^2, `reconnect_max_delay`):
  0, 0.3, 1.2, 2.7, 4.8, 7, 7, ... s with the defaults, client-sdk-js's DefaultReconnectPolicy.
- From attempt 3 on, `draw` (a number in [0, 1) from the Connection's injected random source)
  times `reconnect_jitter` is added, so that many clients cut off by one event spread out.
- After `Config.reconnect_attempts` attempts the session ends (the Connection counts them).
"""

from __future__ import annotations

from lkproto.config import Config

__all__ = ["reconnect_delay"]


def reconnect_delay(config: Config, attempt: int, draw: float) -> float:
    """Seconds to wait before attempt number `attempt` (1-based)."""
    if attempt <= 1:
        return 0.0
    nominal = min(config.reconnect_base_delay * (attempt - 1) ** 2, config.reconnect_max_delay)
    jitter = config.reconnect_jitter * min(max(draw, 0.0), 1.0) if attempt >= 3 else 0.0
    return nominal + jitter
