"""The exceptions lkproto raises, and the only ones.

- `LocalProtocolError`: the application used the API wrongly (a verb in the wrong state, an
  argument out of bounds). Raised synchronously by the call; the connection is unchanged.
- `RemoteProtocolError`: the server sent something we cannot accept. Never raised out of a
  `receive_*` method; it is carried by the `Disconnected` event that ends the session.
"""

from __future__ import annotations

__all__ = [
    "DataPacketTooLargeError",
    "LkProtocolError",
    "LocalProtocolError",
    "RemoteProtocolError",
]


class LkProtocolError(Exception):
    """Base class of every lkproto error."""


class LocalProtocolError(LkProtocolError):
    """The application called `call` while the connection was in `state`, or with bad input.

    Nothing was sent and no state changed.
    """

    def __init__(self, message: str, *, call: str = "", state: str = "") -> None:
        super().__init__(message)
        self.call = call
        self.state = state


class DataPacketTooLargeError(LocalProtocolError):
    """A data packet would exceed the data channel's message size limit.

    The limit is min(`Config.max_data_message_size`, the remote SCTP max-message-size): an
    oversized message can abort the whole SCTP association, so it is refused before sending.
    The channel keeps working and no sequence number was consumed.
    """

    def __init__(self, *, size: int, limit: int, call: str = "publish_data") -> None:
        super().__init__(
            f"{call}: the encoded data packet is {size} bytes, over the {limit}-byte limit",
            call=call,
            state="",
        )
        self.size = size
        self.limit = limit


class RemoteProtocolError(LkProtocolError):
    """The server violated the protocol; the session ended with this as the cause."""
