"""A livekit-server with its embedded TURN server, and a firewall to block what a test says.

`TurnServer` is a `LiveKitServer` whose config enables LiveKit's TURN (`turn:` section):
- TURN over UDP on `TURN_UDP_PORT` (3478) and TURN over TLS on `TURN_TLS_PORT` (443), both
  bound by livekit-server on every address of the harness's network namespace (nothing else
  lives there). 443 is not a choice: livekit-server 1.13.5 advertises its TLS URL as
  `turns:<domain>:443?transport=tcp` whatever `tls_port` says (it expects a load balancer
  on 443), so the server listens there itself;
- `domain` is the confined address, so the join response's URLs name it
  (`turn:10.213.77.1:3478?transport=udp`, `turns:10.213.77.1:443?transport=tcp`), and the
  TLS certificate (generated here, `TurnCertificate`, valid for that address only) is one a
  client trusts through `ssl_context()`, never by turning verification off;
- relays are allocated on `RELAY_PORTS`, below the kernel's ephemeral range;
- `allow_restricted_peer_cidrs` names the SFU's address: livekit-server 1.13.5 refuses TURN
  permissions to private peer addresses by default (a `CHANNEL-BIND` answered 401 without a
  nonce), and the confined SFU's address is private (in production it is public).
LiveKit's TURN has no plain-TCP listener when it does TLS itself. `TcpBridge` provides
`turn:<host>:3478?transport=tcp`: it accepts plain TCP and carries each connection over TLS
to the TURN server's loopback listener (127.0.0.1:443), so the TURN server sees what a TURN
client over TCP sent, byte for byte, and the firewall can still drop TLS from outside
(`10.213.77.1:443`).

`Firewall` drops packets in the namespace with nftables (`nft`, installed by `make setup`):
`direct_from=<address>` drops every packet from that address to the server's ICE ports (rtc
UDP and TCP), so a client whose host candidates live there (`second_address`) reaches the SFU
through a TURN relay only (a relay sends from the server's own address), while the official
participant on the confined address keeps its direct path; `turn_udp`, `turn_tcp` and
`turn_tls` drop the TURN transports. Each rule counts what it drops (`dropped`), so a test can
check that the path it blocked was really tried. Rules live in one table of their own,
removed by `clear()` (and when the namespace goes).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from harness.certs import SelfSigned
from harness.netns import Confinement
from harness.server import LiveKitServer

__all__ = [
    "RELAY_PORTS",
    "TURN_TLS_PORT",
    "TURN_UDP_PORT",
    "Firewall",
    "TcpBridge",
    "TurnCertificate",
    "TurnServer",
    "nft_available",
    "second_address",
]

TURN_UDP_PORT = 3478
TURN_TLS_PORT = 443
TURN_TCP_PORT = 3478  # the bridge's (TCP); UDP 3478 is the TURN server's own
RELAY_PORTS = (20000, 20999)
_TABLE = "lkproto_turn"


def nft_available() -> bool:
    return shutil.which("nft") is not None


class TurnCertificate(SelfSigned):
    """A self-signed certificate for one IP address, written to a temporary directory."""

    def __init__(self, host: str) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="lkproto-turn-")
        super().__init__(host, Path(self._dir.name), "lkproto test TURN")

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this certificate (and nothing else), hostname checked."""
        return self.client_context()

    def close(self) -> None:
        self._dir.cleanup()


class TurnServer(LiveKitServer):
    """A livekit-server with TURN over UDP and TLS (see the module doc)."""

    def __init__(self, confinement: Confinement, **kwargs: object) -> None:
        super().__init__(confinement, **kwargs)  # type: ignore[arg-type]
        self.certificate = TurnCertificate(self.host)

    def config(self) -> dict[str, object]:
        config = super().config()
        config["turn"] = {
            "enabled": True,
            "domain": self.host,
            "udp_port": TURN_UDP_PORT,
            "tls_port": TURN_TLS_PORT,
            "cert_file": str(self.certificate.cert_path),
            "key_file": str(self.certificate.key_path),
            "relay_range_start": RELAY_PORTS[0],
            "relay_range_end": RELAY_PORTS[1],
            # 1.13.5 refuses to relay to private peers unless allowed: the SFU is one here.
            "allow_restricted_peer_cidrs": [f"{self.host}/32"],
        }
        return config

    def close(self) -> None:
        super().close()
        self.certificate.close()


class TcpBridge:
    """Plain TCP on `host:TURN_TCP_PORT`, each connection carried over TLS to the TURN server."""

    def __init__(self, host: str, certificate: TurnCertificate) -> None:
        self.host = host
        self._tls = ssl.create_default_context(cafile=str(certificate.cert_path))
        self._tls.check_hostname = False  # it dials 127.0.0.1; the certificate names `host`
        self._listener = socket.create_server((host, TURN_TCP_PORT))
        self._closed = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, name="turn-tcp-bridge", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                raw = socket.create_connection(("127.0.0.1", TURN_TLS_PORT), timeout=5)
                upstream = self._tls.wrap_socket(raw, server_hostname=self.host)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        with self._lock:
            for s in self._sockets:
                with contextlib.suppress(OSError):
                    s.close()
        self._thread.join(5)


class Firewall:
    """nftables rules in the harness's namespace (see the module doc)."""

    def __init__(self, server: LiveKitServer) -> None:
        self.server = server

    @staticmethod
    def _nft(script: str) -> None:
        subprocess.run(["nft", "-f", "-"], input=script, text=True, check=True, timeout=10)

    def block(
        self,
        *,
        direct_from: str | None = None,
        turn_udp: bool = False,
        turn_tcp: bool = False,
        turn_tls: bool = False,
    ) -> None:
        """Replace the rules: drop what each argument names. `direct_from` drops every packet
        from that address to the server's ICE ports (UDP and TCP), so a client whose host
        candidates are on it reaches the SFU through a TURN relay only (a relay sends from
        the server's own address)."""
        host = self.server.host
        rules = []
        if direct_from is not None:
            ice = f"{{ {self.server.rtc_udp_port}, {self.server.rtc_tcp_port} }}"
            rules.append(f'ip saddr {direct_from} udp dport {ice} counter drop comment "direct"')
            rules.append(f'ip saddr {direct_from} tcp dport {ice} counter drop comment "direct"')
        if turn_udp:
            rules.append(f'ip daddr {host} udp dport {TURN_UDP_PORT} counter drop comment "udp"')
        if turn_tcp:
            rules.append(f'ip daddr {host} tcp dport {TURN_TCP_PORT} counter drop comment "tcp"')
        if turn_tls:
            rules.append(f'ip daddr {host} tcp dport {TURN_TLS_PORT} counter drop comment "tls"')
        self.clear()
        body = "\n".join(f"    {rule}" for rule in rules)
        self._nft(
            f"table inet {_TABLE} {{\n  chain input {{\n"
            "    type filter hook input priority 0; policy accept;\n"
            f"{body}\n  }}\n}}\n"
        )

    def dropped(self, rule: str) -> int:
        """Packets dropped so far by the rules commented `rule` ("direct", "udp", ...)."""
        out = subprocess.run(
            ["nft", "list", "table", "inet", _TABLE], capture_output=True, text=True, timeout=10
        ).stdout
        total = 0
        for m in re.finditer(r'counter packets (\d+) bytes \d+ drop comment "(\w+)"', out):
            if m.group(2) == rule:
                total += int(m.group(1))
        return total

    def clear(self) -> None:
        subprocess.run(["nft", "delete", "table", "inet", _TABLE], capture_output=True, timeout=10)

    @contextlib.contextmanager
    def blocking(
        self,
        *,
        direct_from: str | None = None,
        turn_udp: bool = False,
        turn_tcp: bool = False,
        turn_tls: bool = False,
    ) -> Iterator[Firewall]:
        self.block(direct_from=direct_from, turn_udp=turn_udp, turn_tcp=turn_tcp, turn_tls=turn_tls)
        try:
            yield self
        finally:
            self.clear()


@contextlib.contextmanager
def second_address(confinement: Confinement, address: str) -> Iterator[str]:
    """`address` added, for the duration, to the interface holding the confined address."""
    out = subprocess.run(
        ["ip", "-o", "addr", "show", "to", confinement.host],
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    ).stdout
    device = out.split()[1]
    subprocess.run(["ip", "addr", "add", f"{address}/32", "dev", device], check=True, timeout=10)
    try:
        yield address
    finally:
        subprocess.run(["ip", "addr", "del", f"{address}/32", "dev", device], timeout=10)
