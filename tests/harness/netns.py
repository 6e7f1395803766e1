"""Move the test process into a network namespace of its own, or fall back to loopback.

As root we run `ip netns add`, create a veth pair inside the new namespace, give one end a
private test address, bring `lo` and both ends up, and `setns()` this process into it. The
namespace has no route to anything outside itself, so even a misconfigured component cannot
send a packet to the machine's external interface. Processes started afterwards (the server)
inherit the namespace. This must run before any thread exists, because setns() moves only
the calling thread; pytest_configure is early enough.
"""

from __future__ import annotations

import ctypes
import ipaddress
import os
import shutil
import subprocess
import threading
from dataclasses import dataclass

CLONE_NEWNET = 0x40000000
NS_PREFIX = "lkproto-"
# A private /24 used only inside the namespace. Nothing outside the namespace can route to it.
TEST_NETWORK = ipaddress.ip_network("10.213.77.0/24")
TEST_ADDRESS = "10.213.77.1"


@dataclass(frozen=True)
class Confinement:
    """Where the server and participants live for this test session."""

    mode: str  # "netns" or "loopback"
    host: str  # the address the server binds and advertises
    namespace: str | None = None

    def allows(self, address: str) -> bool:
        """True if traffic to `address` stays inside the confinement."""
        ip = ipaddress.ip_address(address)
        if ip.is_loopback:
            return True
        return self.mode == "netns" and ip in TEST_NETWORK


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def _remove_stale_namespaces() -> None:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10)
    for line in out.stdout.splitlines():
        name = line.split()[0] if line.strip() else ""
        if not name.startswith(NS_PREFIX):
            continue
        pid = name[len(NS_PREFIX) :]
        if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)


def _enter(name: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({name}) failed: {os.strerror(err)}")
    finally:
        os.close(fd)


def netns_available() -> bool:
    return os.geteuid() == 0 and shutil.which("ip") is not None


def confine(force_loopback: bool = False) -> Confinement:
    """Confine this process. Call once, early, while the process is single-threaded."""
    if force_loopback or not netns_available():
        return Confinement(mode="loopback", host="127.0.0.1")
    if threading.active_count() != 1:
        raise RuntimeError("confine() must run before any thread is started")
    _remove_stale_namespaces()
    name = f"{NS_PREFIX}{os.getpid()}"
    veth_a, veth_b = f"lkp{os.getpid()}a"[-15:], f"lkp{os.getpid()}b"[-15:]
    _ip("netns", "add", name)
    try:
        _ip("-n", name, "link", "add", veth_a, "type", "veth", "peer", "name", veth_b)
        _ip("-n", name, "addr", "add", f"{TEST_ADDRESS}/{TEST_NETWORK.prefixlen}", "dev", veth_a)
        # IPv4 only: no IPv6 link-local addresses that ICE could gather.
        subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                name,
                "sh",
                "-c",
                "for f in /proc/sys/net/ipv6/conf/*/disable_ipv6; do echo 1 > $f; done",
            ],
            check=True,
            capture_output=True,
            timeout=10,
        )
        for dev in ("lo", veth_a, veth_b):
            _ip("-n", name, "link", "set", dev, "up")
        _enter(name)
    except BaseException:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)
        raise
    return Confinement(mode="netns", host=TEST_ADDRESS, namespace=name)


def release(confinement: Confinement) -> None:
    """Delete the namespace's name; the namespace itself goes when its last process exits."""
    if confinement.namespace:
        subprocess.run(
            ["ip", "netns", "del", confinement.namespace], capture_output=True, timeout=10
        )


def local_addresses() -> list[str]:
    """Every IPv4/IPv6 address configured in the current network namespace."""
    out = subprocess.run(["ip", "-o", "addr", "show"], capture_output=True, text=True, timeout=10)
    addrs = []
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) > 3 and parts[2] in ("inet", "inet6"):
            addrs.append(parts[3].split("/")[0])
    return addrs
