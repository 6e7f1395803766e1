"""A TCP gate in front of a server's signal port, so a test can order two clients' reconnects.

`TcpGate(host, upstream)` listens on `host` (the run's confinement address) on a free port
and carries each connection to `upstream` (the server's signal address). A client that dials
`gate.url` instead of the server's URL reaches the same server, through a path the test can
hold:

- `hold()` drops every connection in the gate (the client sees its socket closed, as when a
  reconnect attempt fails) and keeps the new ones waiting, accepted but not yet carried;
- `release()` carries the waiting ones and every later one.

Why: after a cut longer than the ping timeout, livekit-server drops reliable data addressed to
a participant whose peer connection is still failed (`PCTransport.sendDataMessage` returns
`ErrTransportFailure`, pkg/rtc/transport.go), and nothing replays it. Which of two clients
comes back first is a race of TCP SYN retransmissions; the gate lets a test decide it.

Only the signal connection passes the gate; media and data go to the server directly.
"""

from __future__ import annotations

import contextlib
import socket
import threading

__all__ = ["TcpGate"]


class TcpGate:
    """TCP from `host`:<free port> to `upstream`, held or carried (see the module doc)."""

    def __init__(self, host: str, upstream: tuple[str, int]) -> None:
        self.host = host
        self.upstream = upstream
        self._listener = socket.create_server((host, 0))
        self.port: int = self._listener.getsockname()[1]
        self._open = threading.Event()
        self._open.set()
        self._closed = False
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._thread = threading.Thread(target=self._accept, name="tcp-gate", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def hold(self) -> None:
        """Drop the connections in the gate; keep new ones waiting until `release()`."""
        self._open.clear()
        with self._lock:
            doomed, self._sockets = self._sockets, set()
        for s in doomed:
            _close(s)

    def release(self) -> None:
        self._open.set()

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        self.hold()
        self._open.set()  # the waiting ones see `_closed` and drop their client
        self._thread.join(5)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._carry, args=(client,), daemon=True).start()

    def _carry(self, client: socket.socket) -> None:
        self._open.wait()
        if self._closed:
            _close(client)
            return
        with self._lock:
            self._sockets.add(client)
        try:
            upstream = socket.create_connection(self.upstream, timeout=10)
            upstream.settimeout(None)
        except OSError:
            self._forget(client)
            return
        with self._lock:
            if client not in self._sockets:  # held while it dialled
                _close(upstream)
                return
            self._sockets.add(upstream)
        for src, dst in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    def _forget(self, *sockets: socket.socket) -> None:
        with self._lock:
            self._sockets.difference_update(sockets)
        for s in sockets:
            _close(s)

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        self._forget(src, dst)


def _close(s: socket.socket) -> None:
    with contextlib.suppress(OSError):
        s.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        s.close()
