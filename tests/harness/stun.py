"""A minimal STUN responder inside the confinement, named in the server's `rtc.stun_servers`.

The server hands its `stun_servers` to every client in `JoinResponse.ice_servers`. Without a
responder there, each client's ICE agent retransmits binding requests into the void before it
finishes gathering (aioice waits about 5 s), which would distort join times. This answers every
RFC 5389 Binding request with the sender's address (XOR-MAPPED-ADDRESS), which inside the
namespace is simply the client's host address. Nothing is ever sent outside the confinement.
"""

from __future__ import annotations

import contextlib
import socket
import threading

from aioice import stun


class StunResponder:
    def __init__(self, host: str) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.address: tuple[str, int] = self.sock.getsockname()
        self.answered = 0
        self._thread = threading.Thread(target=self._serve, name="stun-responder", daemon=True)

    def start(self) -> StunResponder:
        self._thread.start()
        return self

    def _serve(self) -> None:
        while True:
            try:
                data, peer = self.sock.recvfrom(2048)
            except OSError:
                return  # closed
            with contextlib.suppress(ValueError):
                request = stun.parse_message(data)
                if (
                    request.message_method == stun.Method.BINDING
                    and request.message_class == stun.Class.REQUEST
                ):
                    response = stun.Message(
                        message_method=stun.Method.BINDING,
                        message_class=stun.Class.RESPONSE,
                        transaction_id=request.transaction_id,
                    )
                    response.attributes["XOR-MAPPED-ADDRESS"] = peer
                    self.sock.sendto(bytes(response), peer)
                    self.answered += 1

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._thread.join(2)
