"""The fault harness (harness/faults.py) does what the resilience tests rely on.

- A cut stalls traffic both ways without an RST: a new connect gets no answer, data sent on an
  established TCP connection does not arrive, a UDP send raises nothing; after `restore()` the
  data sent during the cut arrives and new connections work.
- `kill()` then `restart()`: the same URL answers again, on the same ports.
- The official SDK and lkproto join a room on the FaultServer and exchange data (ICE works
  across the link).
- Observations, printed and not asserted (run with `-s` to see the `fault-figure` lines): when
  the official SDK notices a cut and a server restart, and what the restarted server remembers.
"""

from __future__ import annotations

import errno
import functools
import socket
import time
from collections.abc import Iterator
from typing import Any, TypeVar

import anyio
import pytest

from harness import API_KEY, API_SECRET
from harness.faults import (
    FaultServer,
    fault_server_fixture,  # noqa: F401 - registers `fault_server`
    require_cut,
)
from harness.official import OfficialLoop, OfficialPeer
from harness.recorder import Recorder
from lkproto.transports.anyio import Room, RoomOptions, RtcConfiguration
from lkproto.transports.api import LiveKitAPI

# Cuts, kills and timed observations: one at a time under xdist (the "faults" group).
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120), pytest.mark.xdist_group("faults")]

T = TypeVar("T")


def figure(name: str, value: object) -> None:
    print(f"fault-figure {name}: {value}")


# -- raw sockets ----------------------------------------------------------------------------


def http_request(host: str, port: int) -> bytes:
    return f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: keep-alive\r\n\r\n".encode()


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    """One HTTP/1.1 response with a Content-Length: (status, body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, f"connection closed mid-response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = next(
        int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(4096)
        assert chunk, "connection closed mid-body"
        body += chunk
    return status, body


def get_root(host: str, port: int, timeout: float = 2) -> int:
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(http_request(host, port))
        return read_response(sock)[0]


@pytest.fixture
def connection(fault_server: FaultServer) -> Iterator[socket.socket]:
    """An established keep-alive HTTP connection to the server's signal port."""
    sock = socket.create_connection((fault_server.host, fault_server.port), timeout=2)
    try:
        sock.sendall(http_request(fault_server.host, fault_server.port))
        assert read_response(sock)[0] == 200
        yield sock
    finally:
        sock.close()


def test_a_cut_stalls_tcp_and_udp_and_a_short_one_is_survived(
    fault_server: FaultServer, connection: socket.socket
) -> None:
    require_cut(fault_server)
    host, port = fault_server.host, fault_server.port
    fault_server.cut()
    try:
        started = time.monotonic()
        with pytest.raises(TimeoutError):  # no RST, no ICMP: nothing at all comes back
            socket.create_connection((host, port), timeout=1).close()
        assert 0.9 < time.monotonic() - started < 3
        connection.sendall(http_request(host, port))  # goes into the send buffer
        connection.settimeout(1)
        with pytest.raises(TimeoutError):
            connection.recv(1)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.settimeout(1)
            assert udp.sendto(b"into the void", (host, fault_server.rtc_udp_port)) == 13
    finally:
        fault_server.restore()
    restored = time.monotonic()
    connection.settimeout(15)
    # TCP retransmits what was sent during the cut; the response comes on the same socket.
    assert read_response(connection)[0] == 200
    figure("first response after restore (TCP retransmission backoff)", _ms(restored))
    assert get_root(host, port) == 200


def test_unplugging_the_client_side_fails_fast_locally(
    fault_server: FaultServer, connection: socket.socket
) -> None:
    require_cut(fault_server)
    host, port = fault_server.host, fault_server.port
    fault_server.unplug()
    try:
        with pytest.raises(OSError) as caught:
            socket.create_connection((host, port), timeout=1).close()
        assert caught.value.errno == errno.ENETUNREACH
        connection.sendall(http_request(host, port))  # buffered: TCP retries on its own
    finally:
        fault_server.restore()
    connection.settimeout(15)
    assert read_response(connection)[0] == 200
    assert get_root(host, port) == 200


def test_cut_needs_a_link_and_says_so(fault_server: FaultServer) -> None:
    if fault_server.can_cut:
        fault_server.cut()
        with pytest.raises(RuntimeError, match="already cut"):
            fault_server.unplug()
        fault_server.restore()
        assert not fault_server.is_cut
        assert fault_server.allows(fault_server.host)
        assert fault_server.allows(fault_server.client_host)
        assert not fault_server.allows("10.213.79.1")
    else:
        from harness.faults import CutUnsupported

        with pytest.raises(CutUnsupported, match="needs root"):
            fault_server.cut()


def test_kill_then_restart_keeps_the_url_and_the_ports(fault_server: FaultServer) -> None:
    expected = {
        ("tcp", fault_server.port),
        ("tcp", fault_server.rtc_tcp_port),
        ("udp", fault_server.rtc_udp_port),
    }
    before = fault_server.listening_ports()
    assert expected <= before, before
    url, first_pid = fault_server.http_url, fault_server.pid
    assert first_pid is not None

    fault_server.kill()
    assert not fault_server.running()
    with pytest.raises(OSError):  # the address is there, nothing listens: refused at once
        get_root(fault_server.host, fault_server.port)

    started = time.monotonic()
    fault_server.restart()
    figure("restart() until the server answers HTTP", _ms(started))
    assert fault_server.http_url == url
    assert fault_server.pid not in (None, first_pid)
    assert get_root(fault_server.host, fault_server.port) == 200
    assert fault_server.listening_ports() == before
    # A restart while it runs SIGKILLs the old process first.
    second_pid = fault_server.pid
    fault_server.restart()
    assert fault_server.pid != second_pid and fault_server.restarts == 2
    assert "===== restart 2 =====" in fault_server.log_path.read_text()


def test_restart_while_cut_comes_back_after_restore(fault_server: FaultServer) -> None:
    require_cut(fault_server)
    with fault_server.outage():
        fault_server.restart()  # readiness is probed inside the server's namespace
        with pytest.raises(TimeoutError):
            get_root(fault_server.host, fault_server.port, timeout=1)
    assert get_root(fault_server.host, fault_server.port) == 200


# -- real participants --------------------------------------------------------------------


async def official(loop: OfficialLoop, url: str, token: str) -> OfficialPeer:
    """An official participant that also records connection events with their times."""
    peer = OfficialPeer(loop)
    await peer.connect(url, token)

    async def watch(room: Any) -> None:
        for event in ("reconnecting", "reconnected"):
            room.on(event, functools.partial(lambda e: peer._record(e, time.monotonic()), event))
        room.on("disconnected", lambda reason: peer._record("disconnected", time.monotonic()))

    await peer.do(watch)
    return peer


async def server_sid(server: FaultServer, room: str, identity: str) -> str:
    """The participant's sid as the server sees it. (livekit.rtc 1.2 keeps reporting the old
    `local_participant.sid` after a full reconnect, so the client's own is no evidence.)"""
    api = LiveKitAPI(server.url, API_KEY, API_SECRET)
    sids = [p.sid for p in await api.list_participants(room) if p.identity == identity]
    return sids[0] if sids else "(not in the room)"


def resumed_or_not(before: str, after: str) -> str:
    if before == after:
        return f"same participant sid on the server (resumed): {after}"
    return f"new participant sid on the server (full reconnect): {before} -> {after}"


def options(server: FaultServer) -> RoomOptions:
    return RoomOptions(
        auto_subscribe=False, rtc_config=RtcConfiguration(host_addresses=[server.client_host])
    )


def _ms(since: float) -> str:
    return f"{(time.monotonic() - since) * 1000:.0f} ms"


def _event_after(peer: OfficialPeer, name: str, since: float) -> float | None:
    times = [args[0] for args in peer.of(name) if args and args[0] >= since]
    return times[0] if times else None


async def _exchange(room: Room, seen: Recorder, peer: OfficialPeer, tag: bytes) -> None:
    await room.local_participant.publish_data(b"lk " + tag, topic="fault")
    await peer.wait_for(lambda r: ("data", ("lk", b"lk " + tag, "fault", 1)) in r)
    await peer.do(lambda r: r.local_participant.publish_data(b"official " + tag))
    await seen.wait_for(
        lambda: [p for (p,) in seen.of("data_received") if p.data == b"official " + tag]
    )


@pytest.mark.anyio
async def test_official_sdk_and_lkproto_exchange_data_across_the_link(
    fault_server: FaultServer, make_token: Any, official_loop: OfficialLoop
) -> None:
    with anyio.fail_after(60):
        peer = await official(official_loop, fault_server.url, make_token("official"))
        room = Room()
        seen = Recorder(room, "data_received")
        try:
            await room.connect(fault_server.url, make_token("lk"), options(fault_server))
            await peer.wait_for(lambda r: ("joined", ("lk",)) in r)
            await _exchange(room, seen, peer, b"hello")
        finally:
            await room.disconnect()
            await peer.disconnect()


@pytest.mark.anyio
async def test_record_when_the_official_sdk_notices_a_cut(
    fault_server: FaultServer, make_token: Any, room_name: str, official_loop: OfficialLoop
) -> None:
    require_cut(fault_server)
    with anyio.fail_after(100):
        peer = await official(official_loop, fault_server.url, make_token("official"))
        watcher = await official(official_loop, fault_server.url, make_token("watcher"))
        try:
            await peer.wait_for(lambda r: ("joined", ("watcher",)) in r)
            sid = await server_sid(fault_server, room_name, "official")
            cut_at = time.monotonic()
            with fault_server.outage():
                try:
                    await peer.wait_for(lambda r: _event_after(peer, "reconnecting", cut_at), 40)
                except TimeoutError:
                    figure("official SDK: reconnecting after a cut", "none within 40 s")
                else:
                    noticed = _event_after(peer, "reconnecting", cut_at)
                    assert noticed is not None
                    figure(
                        "official SDK: cut -> reconnecting", f"{(noticed - cut_at) * 1e3:.0f} ms"
                    )
            restored_at = time.monotonic()
            figure("cut held for", f"{(restored_at - cut_at) * 1e3:.0f} ms")
            outcome = await peer.wait_for(
                lambda r: (
                    _event_after(peer, "reconnected", restored_at)
                    or _event_after(peer, "disconnected", cut_at)
                ),
                40,
            )
            which = "reconnected" if peer.of("reconnected") else "disconnected"
            figure(f"official SDK: restore -> {which}", f"{(outcome - restored_at) * 1e3:.0f} ms")
            if which == "reconnected":
                after = await server_sid(fault_server, room_name, "official")
                figure("official SDK after the cut", resumed_or_not(sid, after))
                await peer.do(lambda r: r.local_participant.publish_data(b"after the cut"))
                await watcher.wait_for(
                    lambda r: ("data", ("official", b"after the cut", "", 1)) in r, 20
                )
                figure("official SDK: data after the cut", "delivered")
        finally:
            await peer.disconnect()
            await watcher.disconnect()


@pytest.mark.anyio
async def test_record_what_a_sigkill_restart_does_to_the_room(
    fault_server: FaultServer, make_token: Any, room_name: str, official_loop: OfficialLoop
) -> None:
    api = LiveKitAPI(fault_server.url, API_KEY, API_SECRET)
    with anyio.fail_after(100):
        peer = await official(official_loop, fault_server.url, make_token("official"))
        try:
            assert [r.name for r in await api.list_rooms()] == [room_name]
            sid = await server_sid(fault_server, room_name, "official")
            killed_at = time.monotonic()
            await fault_server.akill()
            await fault_server.arestart()
            figure("kill + restart until HTTP answers", _ms(killed_at))
            rooms = [r.name for r in await api.list_rooms()]
            figure("rooms right after the restart", rooms)
            try:
                await peer.wait_for(lambda r: _event_after(peer, "reconnecting", killed_at), 30)
                noticed = _event_after(peer, "reconnecting", killed_at)
                assert noticed is not None
                figure(
                    "official SDK: kill -> reconnecting", f"{(noticed - killed_at) * 1e3:.0f} ms"
                )
            except TimeoutError:
                figure("official SDK: reconnecting after kill", "none within 30 s")
            outcome = await peer.wait_for(
                lambda r: (
                    _event_after(peer, "reconnected", killed_at)
                    or _event_after(peer, "disconnected", killed_at)
                ),
                40,
            )
            which = "reconnected" if peer.of("reconnected") else "disconnected"
            figure(f"official SDK: kill -> {which}", f"{(outcome - killed_at) * 1e3:.0f} ms")
            if which == "reconnected":
                after = await server_sid(fault_server, room_name, "official")
                figure("official SDK after the restart", resumed_or_not(sid, after))
            participants = [p.identity for p in await api.list_participants(room_name)]
            figure("participants after the client's recovery", participants)
            # A new client can join the restarted server and reach the old one (if it is back).
            room = Room()
            seen = Recorder(room, "data_received")
            joined_at = time.monotonic()
            try:
                await room.connect(fault_server.url, make_token("lk"), options(fault_server))
                figure("lkproto join after the restart", _ms(joined_at))
                if which == "reconnected":
                    await peer.wait_for(lambda r: ("joined", ("lk",)) in r)
                    await _exchange(room, seen, peer, b"after restart")
                    figure("data between the recovered official client and lkproto", "delivered")
            finally:
                await room.disconnect()
        finally:
            await peer.disconnect()
