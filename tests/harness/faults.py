"""A livekit-server the tests can break: cut its network, SIGKILL it, restart it.

`FaultServer` is a `LiveKitServer` of its own (not the session's `livekit_server`), made for
the resilience tests of issue 10. As root (the test process confined to its network namespace,
harness/netns.py) it lives behind a link the harness can cut:

    pytest ns (clients)            wire ns                        server ns
    lkf<n> 10.213.78.(4n+1)/30 --- wc -[ br0 bridge ]- ws --- eth0 10.213.78.(4n+2)/30
                                                                  livekit-server :7880/7881/7882

- The server namespace (`lkproto-srv-<pid>-<n>`) holds only the server, its address and `lo`;
  its one route beyond its /30 leads back to the confinement network (10.213.77.0/24) through
  the pytest side, so it reaches clients that bind the confinement address too. Nothing in
  either new namespace routes anywhere else, and IPv6 is off in both.
- `cut()` sets the bridge `br0` in the wire namespace (`lkproto-wire-<pid>-<n>`) down: its
  ports stop forwarding, so every frame either way vanishes, while both endpoints keep their
  carrier, address and routes. Established TCP connections and UDP flows stall without an RST
  or an error, a new connect gets no answer, and `restore()` sets the bridge up again. This is
  a cut in the middle of the path. `unplug()`/`restore()` instead set the pytest side's own
  interface down, which the client's kernel notices at once (its sends fail with "network
  unreachable"), as when a laptop loses its Wi-Fi.
- The STUN responder named in the server's config listens on the confinement address in the
  pytest namespace, so a cut does not stall the clients' ICE gathering (STUN is not what the
  tests break).
- The server is forked from a dedicated thread that has entered the server namespace (so the
  child starts there) and lives as long as the FaultServer: PR_SET_PDEATHSIG fires when the
  thread that forked the child exits, so forking from a short-lived worker thread (say
  `anyio.to_thread`) would kill the server with it. The readiness probe runs on that thread
  too, inside the server namespace, so `restart()` works during a cut.
- `kill()` SIGKILLs the server and reaps it; `restart()` starts a new process on the same
  address and ports (signal, rtc tcp, rtc udp) and waits until it answers HTTP.

Without root (loopback confinement) the server runs on 127.0.0.1 on free ports: `kill()` and
`restart()` work, `cut()` and `unplug()` raise `CutUnsupported` (use `require_cut()` to skip).

The `fault_server` fixture (function-scoped) yields a started FaultServer and closes it after
the test. A conftest (or a test module) registers it by importing it under its own name:
`from harness.faults import fault_server_fixture  # noqa: F401`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import os
import re
import subprocess
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import anyio.to_thread
import pytest

from harness.netns import NS_PREFIX, TEST_NETWORK, Confinement, _enter
from harness.server import LiveKitServer

T = TypeVar("T")

# /30s carved out of this /24, one per FaultServer of the run (it does not overlap the
# confinement's 10.213.77.0/24).
FAULT_NETWORK = ipaddress.ip_network("10.213.78.0/24")
_SUBNETS = list(FAULT_NETWORK.subnets(new_prefix=30))
# The server namespace holds nothing else, so its ports are fixed.
NETNS_PORTS = (7880, 7881, 7882)  # signal (HTTP/WebSocket), rtc tcp, rtc udp
_SRV, _WIRE = f"{NS_PREFIX}srv-", f"{NS_PREFIX}wire-"
_counter = itertools.count()


class CutUnsupported(RuntimeError):
    """The harness cannot cut the network here (not root: loopback confinement)."""


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def _in_ns(namespace: str, script: str) -> None:
    subprocess.run(
        ["ip", "netns", "exec", namespace, "sh", "-c", script],
        check=True,
        capture_output=True,
        timeout=10,
    )


def _remove_stale_namespaces() -> None:
    """Delete fault namespaces left by test processes that are gone (a hard crash)."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10)
    for line in out.stdout.splitlines():
        name = line.split()[0] if line.strip() else ""
        m = re.fullmatch(rf"(?:{_SRV}|{_WIRE})(\d+)-\d+", name)
        if m and not os.path.exists(f"/proc/{m.group(1)}"):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)


@dataclass(frozen=True)
class Link:
    """The namespaces and interfaces between the test process and one FaultServer."""

    index: int
    server_ns: str
    wire_ns: str
    client_dev: str  # in the test process's namespace
    client_ip: str
    server_ip: str

    @classmethod
    def create(cls, index: int) -> Link:
        _remove_stale_namespaces()
        subnet = _SUBNETS[index % len(_SUBNETS)]
        pid = os.getpid()
        link = cls(
            index=index,
            server_ns=f"{_SRV}{pid}-{index}",
            wire_ns=f"{_WIRE}{pid}-{index}",
            client_dev=f"lkf{index}",
            client_ip=str(subnet[1]),
            server_ip=str(subnet[2]),
        )
        try:
            link._build(subnet.prefixlen)
        except BaseException:
            link.destroy()
            raise
        return link

    def _build(self, prefixlen: int) -> None:
        srv, wire = self.server_ns, self.wire_ns
        no_ipv6 = "for f in /proc/sys/net/ipv6/conf/*/disable_ipv6; do echo 1 > $f; done"
        for ns in (wire, srv):
            _ip("netns", "add", ns)
            _in_ns(ns, no_ipv6)
        _ip("-n", wire, "link", "add", "br0", "type", "bridge", "stp_state", "0")
        _ip("-n", wire, "link", "set", "br0", "type", "bridge", "forward_delay", "0")
        _ip("link", "add", self.client_dev, "type", "veth", "peer", "name", "wc", "netns", wire)
        _ip("-n", wire, "link", "add", "ws", "type", "veth", "peer", "name", "eth0", "netns", srv)
        for dev in ("wc", "ws"):
            _ip("-n", wire, "link", "set", dev, "master", "br0")
        for dev in ("br0", "wc", "ws"):
            _ip("-n", wire, "link", "set", dev, "up")
        _ip("addr", "add", f"{self.client_ip}/{prefixlen}", "dev", self.client_dev)
        _ip("link", "set", self.client_dev, "up")
        _ip("-n", srv, "addr", "add", f"{self.server_ip}/{prefixlen}", "dev", "eth0")
        for dev in ("lo", "eth0"):
            _ip("-n", srv, "link", "set", dev, "up")
        _ip("-n", srv, "route", "add", str(TEST_NETWORK), "via", self.client_ip)

    def set_bridge(self, up: bool) -> None:
        _ip("-n", self.wire_ns, "link", "set", "br0", "up" if up else "down")

    def set_client_dev(self, up: bool) -> None:
        # Down, the kernel drops the interface's connected route; up, it puts it back.
        _ip("link", "set", self.client_dev, "up" if up else "down")

    def destroy(self) -> None:
        subprocess.run(["ip", "link", "del", self.client_dev], capture_output=True, timeout=10)
        for ns in (self.server_ns, self.wire_ns):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


class FaultServer(LiveKitServer):
    """A livekit-server on a link the test can cut, that the test can kill and restart.

    Use as a context manager (or `start()` then `close()`). See the module doc.
    """

    def __init__(
        self, confinement: Confinement, *, log_level: str = "info", log_dir: Path | None = None
    ) -> None:
        self.index = next(_counter)
        self.link: Link | None = None
        self.restarts = 0
        self._cut: str | None = None  # "wire" or "client" while cut
        # One long-lived thread forks the server (PR_SET_PDEATHSIG follows the forking thread)
        # and probes it; in netns mode it has entered the server's namespace.
        self._spawner = ThreadPoolExecutor(1, thread_name_prefix=f"fault-server-{self.index}")
        try:
            if confinement.mode == "netns":
                self.link = Link.create(self.index)
                self._spawner.submit(_enter, self.link.server_ns).result(10)
                super().__init__(
                    confinement,
                    log_level=log_level,
                    host=self.link.server_ip,
                    ports=NETNS_PORTS,
                    stun_host=confinement.host,
                    log_dir=log_dir,
                )
            else:
                super().__init__(confinement, log_level=log_level, log_dir=log_dir)
        except BaseException:
            self._spawner.shutdown()
            if self.link is not None:
                self.link.destroy()
            raise

    # -- where clients live -------------------------------------------------------------

    @property
    def client_host(self) -> str:
        """The test process's address on this server's link: clients bind it for ICE."""
        return self.link.client_ip if self.link else self.host

    def allows(self, address: str) -> bool:
        """True if `address` is confined: the run's own networks, or loopback."""
        ip = ipaddress.ip_address(address)
        return self.confinement.allows(address) or (self.link is not None and ip in FAULT_NETWORK)

    # -- process control ------------------------------------------------------------------

    def _on_spawner(self, fn: Callable[[], T], timeout: float = 30) -> T:
        if threading.current_thread().name.startswith(f"fault-server-{self.index}_"):
            return fn()
        return self._spawner.submit(fn).result(timeout)

    def _launch(self) -> None:
        self._on_spawner(super()._launch)

    def _answers_http(self) -> bool:
        return self._on_spawner(super()._answers_http)

    def kill(self, timeout: float = 10.0) -> None:
        """SIGKILL the server and reap it. The link and the STUN responder stay."""
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.kill()
            proc.wait(timeout)
        if self._log_file is not None:
            self._log_file.close()  # type: ignore[attr-defined]
            self._log_file = None

    def restart(self, timeout: float = 30.0, *, graceful: bool = False) -> None:
        """Stop the server if it runs (SIGKILL, or SIGTERM if `graceful`), then start a new
        process on the same address and ports and wait until it answers."""
        if graceful:
            self.stop()
        else:
            self.kill()
        self.restarts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== restart {self.restarts} =====\n".encode())
        self.start(timeout)

    async def akill(self) -> None:
        await anyio.to_thread.run_sync(self.kill)

    async def arestart(self, timeout: float = 30.0) -> None:
        """`restart()` without blocking the event loop (safe: the spawner thread forks)."""
        await anyio.to_thread.run_sync(lambda: self.restart(timeout))

    def listening_ports(self) -> set[tuple[str, int]]:
        """The server process's listening TCP and bound UDP ports, as ("tcp"|"udp", port)."""
        pid = self.pid
        if pid is None:
            return set()
        inodes = set()
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        ports = set()
        # /proc/<pid>/net/* lists the sockets of that process's network namespace. The rtc
        # TCP listener is a dual-stack socket on every address (livekit-server 1.13.5 does not
        # apply `bind_addresses` to it), so it is in tcp6.
        for table in ("tcp", "tcp6", "udp", "udp6"):
            proto = table[:3]
            for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if inode in inodes and (proto == "udp" or state == "0A"):  # 0A: LISTEN
                    ports.add((proto, int(local.rsplit(":", 1)[1], 16)))
        return ports

    # -- the network ----------------------------------------------------------------------

    @property
    def can_cut(self) -> bool:
        return self.link is not None

    def _require_link(self) -> Link:
        if self.link is None:
            raise CutUnsupported(
                "cutting the network needs root: the test process is confined to loopback, "
                "so the server has no link of its own to cut"
            )
        return self.link

    def cut(self) -> None:
        """Cut the path in the middle: every packet either way is dropped, silently."""
        link = self._require_link()
        if self._cut == "client":
            raise RuntimeError("already unplugged: restore() first")
        link.set_bridge(False)
        self._cut = "wire"

    def unplug(self) -> None:
        """Set the test process's own interface on this link down (it sees ENETUNREACH)."""
        link = self._require_link()
        if self._cut == "wire":
            raise RuntimeError("already cut: restore() first")
        link.set_client_dev(False)
        self._cut = "client"

    def restore(self) -> None:
        """Undo `cut()` or `unplug()`."""
        link = self._require_link()
        if self._cut == "client":
            link.set_client_dev(True)
        else:
            link.set_bridge(True)
        self._cut = None

    @property
    def is_cut(self) -> bool:
        return self._cut is not None

    @contextlib.contextmanager
    def outage(self) -> Iterator[None]:
        """`with server.outage(): ...` cuts the link for the block's duration."""
        self.cut()
        try:
            yield
        finally:
            self.restore()

    # -- lifetime -------------------------------------------------------------------------

    def close(self) -> None:
        try:
            self.kill()
            super().close()
        finally:
            self._spawner.shutdown(wait=True)
            if self.link is not None:
                self.link.destroy()

    def __enter__(self) -> FaultServer:
        self.start()
        return self


def require_cut(server: FaultServer) -> None:
    """Skip the calling test if `server` cannot cut its network (loopback confinement)."""
    if not server.can_cut:
        pytest.skip("network cuts need the netns confinement (run as root)")


@pytest.fixture(name="fault_server")
def fault_server_fixture(confinement: Confinement, tmp_path: Path) -> Iterator[FaultServer]:
    """A started FaultServer of this test's own; closed (and its namespaces deleted) after.
    Its log stays in the test's `tmp_path`, which a failure report names."""
    server = FaultServer(confinement, log_dir=tmp_path)
    try:
        server.start()
        yield server
    finally:
        server.close()


__all__ = [
    "FAULT_NETWORK",
    "CutUnsupported",
    "FaultServer",
    "Link",
    "fault_server_fixture",
    "require_cut",
]
