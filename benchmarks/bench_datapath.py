"""CPU per small reliable data packet through lkproto's whole data path, with no server.

Two child processes, each an anyio Room joined to its own in-memory room
(`lkproto.transports.testing.MemoryServer`), are linked by a real aiortc peer connection over
127.0.0.1 (ICE, DTLS, lkproto's SCTP from transports/_sctp.py) carrying one `_reliable` data
channel, wired into each Room the way `transports/_aiortc.py` wires it:
- the sender's `publish_data(100 bytes)` goes through its session, pump and core; the core's
  `SendDataPacket` goes out with `dc.send` and is tagged for delivery reports (which come back
  through `pump.on_reliable_delivered`), and `bufferedamountlow` wakes `wait_writable`;
- the receiver's data channel messages go to `pump.on_data` (as `AiortcPeer._read` does), so
  each packet is parsed and de-duplicated by the core and delivered to a `data_received`
  callback through the session's room model.
The sender stamps each packet with a participant SID as livekit-server does (a protobuf field
appended to the bytes, which costs next to nothing), so the receiver's de-duplication runs.

Each side measures its own process CPU (`time.process_time`) over the transfer: the sender
from its first publish until the receiver has counted every packet, the receiver from its
first packet to its last. Robust on a shared machine, unlike wall time (also printed).

`--baseline REV` also measures REV's lkproto/ and transports/ (exported with `git archive`),
round by round interleaved with this checkout; figures are medians over `--rounds`.
`--profile send|recv` runs that side of one transfer under cProfile and prints the top
functions by own time.

Run: .venv/bin/python benchmarks/bench_datapath.py [--packets 20000] [--rounds 5]
     [--baseline REV] [--profile recv] [--json]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _revisions import export_baseline

ROOT = Path(__file__).resolve().parents[1]
PY = ROOT / ".venv" / "bin" / "python"
SID = b"PA_benchsender01"
# DataPacket.participant_sid is field 17, length-delimited: tag varint 0x8a 0x01.
SID_FIELD = b"\x8a\x01" + bytes([len(SID)]) + SID
PAYLOAD = 100


# -- the children ---------------------------------------------------------------------------------


def _out(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


async def _child(role: str, packets: int, profile: bool) -> None:
    import asyncio

    from aiortc import RTCPeerConnection, RTCSessionDescription

    from lkproto import commands as cmd
    from lkproto.models import Channel
    from lkproto.transports import _aiortc
    from lkproto.transports._session import MARKS
    from lkproto.transports.anyio import Room
    from lkproto.transports.testing import MemoryServer

    _aiortc._ALLOWED_HOSTS.set(frozenset({"127.0.0.1"}))  # confined: loopback only
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    loop.add_reader(sys.stdin.fileno(), lambda: lines.put_nowait(json.loads(sys.stdin.readline())))
    prof = None
    if profile:
        import cProfile

        prof = cProfile.Profile(time.process_time)  # CPU, not wall time

    async with MemoryServer() as server:
        me = Room()
        await me.connect(server.url, server.token("alice" if role == "send" else "bob"))
        other = None
        if role == "recv":
            other = Room()  # alice, as the receiver's room model knows her
            await other.connect(server.url, server.token("alice"))
        session = me._session
        pump = session.pump
        assert pump is not None
        pc = RTCPeerConnection()
        if role == "send":
            dc = pc.createDataChannel("_reliable", ordered=True)
            await pc.setLocalDescription(await pc.createOffer())
            _out(offer=pc.localDescription.sdp)
            answer = await lines.get()
            await pc.setRemoteDescription(RTCSessionDescription(answer["answer"], "answer"))
        else:
            offer = await lines.get()
            await pc.setRemoteDescription(RTCSessionDescription(offer["offer"], "offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            _out(answer=pc.localDescription.sdp)
            got: asyncio.Future[Any] = loop.create_future()
            pc.on("datachannel", got.set_result)
            dc = await got

        if role == "recv":
            count = 0
            done = asyncio.Event()
            cpu0 = wall0 = 0.0

            @me.on("data_received")
            def _received(packet: Any) -> None:
                nonlocal count, cpu0, wall0
                count += 1
                if count == 1:
                    cpu0, wall0 = time.process_time(), time.perf_counter()
                    if prof is not None:
                        prof.enable()
                elif count == packets:
                    done.set()

            @dc.on("message")
            def _message(message: bytes | str) -> None:
                if isinstance(message, bytes):
                    pump.on_data(Channel.RELIABLE, message)

            readers = getattr(dc.transport, "lk_readers", None)  # as AiortcPeer._read does
            if readers is not None:
                readers[dc] = functools.partial(pump.on_data, Channel.RELIABLE)

            _out(ready=True)
            await done.wait()
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            if prof is not None:
                prof.disable()
            _out(cpu=cpu, wall=wall, n=packets - 1)
        else:
            opened = asyncio.Event()
            if dc.readyState == "open":
                opened.set()
            dc.on("open", opened.set)
            await opened.wait()
            real = session.peer
            assert real is not None
            port = _RealChannel(real, dc, cmd, Channel, pump)
            session.peer = port  # type: ignore[assignment]
            pump.peer = port  # type: ignore[assignment]
            dc.bufferedAmountLowThreshold = MARKS[Channel.RELIABLE][0]
            dc.on("bufferedamountlow", lambda: session.writable(Channel.RELIABLE))
            await lines.get()  # the receiver is ready
            payload = b"x" * PAYLOAD
            cpu0, wall0 = time.process_time(), time.perf_counter()
            if prof is not None:
                prof.enable()
            publish = me.local_participant.publish_data
            for _ in range(packets):
                await publish(payload, reliable=True)
            sent_cpu = time.process_time() - cpu0
            await lines.get()  # the receiver has them all
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            if prof is not None:
                prof.disable()
            _out(cpu=cpu, wall=wall, n=packets, publish_cpu=sent_cpu)
        await lines.get()  # the parent's go-ahead to leave
        if prof is not None:
            import pstats

            pstats.Stats(prof, stream=sys.stderr).sort_stats("tottime").print_stats(45)
            pstats.Stats(prof, stream=sys.stderr).sort_stats("cumulative").print_stats(45)
        await pc.close()
        if other is not None:
            await other.disconnect()
        await me.disconnect()


class _RealChannel:
    """The sender's peer port: data goes out on the real channel, the rest to the memory peer."""

    def __init__(self, memory: Any, dc: Any, cmd: Any, channel: Any, pump: Any) -> None:
        self.memory, self.dc, self.cmd, self.channel = memory, dc, cmd, channel
        transport = dc.transport
        self.tag = getattr(transport, "lk_tag_last_message", None)
        if hasattr(transport, "lk_on_delivered"):
            transport.lk_on_delivered = pump.on_reliable_delivered

    def submit(self, command: Any) -> None:
        if (
            isinstance(command, self.cmd.SendDataPacket)
            and command.channel is self.channel.RELIABLE
        ):
            self.dc.send(command.data + SID_FIELD)
            if command.sequence and self.tag is not None:
                self.tag(command.sequence)
        else:
            self.memory.submit(command)

    def buffered_amount(self, channel: Any) -> int:
        return int(self.dc.bufferedAmount) if channel is self.channel.RELIABLE else 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.memory, name)


async def _core(packets: int, profile: bool) -> None:
    """lkproto's share alone, in one process: the receiver's `pump.on_data` (core, session,
    room model, a `data_received` callback) and the sender's `publish_data` down to the peer
    port's `submit` (which drops the packet), each timed over `packets` packets."""
    from lkproto import commands as cmd
    from lkproto._pb import data_pb2
    from lkproto.models import Channel
    from lkproto.transports.anyio import Room
    from lkproto.transports.testing import MemoryServer

    prof = None
    if profile:
        import cProfile

        prof = cProfile.Profile(time.process_time)  # CPU, not wall time
    async with MemoryServer() as server:
        alice, bob = Room(), Room()
        await alice.connect(server.url, server.token("alice"))
        await bob.connect(server.url, server.token("bob"))
        pump = bob._session.pump
        assert pump is not None
        template = data_pb2.DataPacket(
            user=data_pb2.UserPacket(payload=b"x" * PAYLOAD, participant_identity="alice"),
            participant_identity="alice",
            participant_sid=SID.decode(),
        )
        data = []
        for i in range(packets):
            template.sequence = i + 1
            data.append(template.SerializeToString())
        count = 0

        @bob.on("data_received")
        def _received(packet: object) -> None:
            nonlocal count
            count += 1

        on_data, reliable = pump.on_data, Channel.RELIABLE
        if prof is not None:
            prof.enable()
        cpu0 = time.process_time()
        for d in data:
            on_data(reliable, d)
        recv = time.process_time() - cpu0
        if prof is not None:
            prof.disable()
        assert count == packets, count

        session = alice._session
        real = session.peer

        class Drop:
            def submit(self, command: Any) -> None:
                if not isinstance(command, cmd.SendDataPacket):
                    real.submit(command)

            def buffered_amount(self, channel: Any) -> int:
                return 0

            def __getattr__(self, name: str) -> Any:
                return getattr(real, name)

        session.peer = session.pump.peer = Drop()  # type: ignore[assignment,union-attr]
        payload = b"x" * PAYLOAD
        publish = alice.local_participant.publish_data
        if prof is not None:
            prof.enable()
        cpu0 = time.process_time()
        for _ in range(packets):
            await publish(payload, reliable=True)
        send = time.process_time() - cpu0
        if prof is not None:
            prof.disable()
            import pstats

            pstats.Stats(prof, stream=sys.stderr).sort_stats("tottime").print_stats(40)
        _out(core_recv_us=recv / packets * 1e6, core_send_us=send / packets * 1e6)
        await alice.disconnect()
        await bob.disconnect()


def child_main(role: str, packets: int, profile: bool) -> None:
    import anyio

    if role == "core":
        anyio.run(_core, packets, profile)
    else:
        anyio.run(_child, role, packets, profile)


def core(variant: str, packets: int, profile: bool) -> dict[str, float]:
    p = _spawn(variant, "core", packets, profile)
    try:
        return _read(p)
    finally:
        p.wait(60)


# -- the parent -----------------------------------------------------------------------------------

VARIANTS: dict[str, str | None] = {"lkproto": None}


def _spawn(variant: str, role: str, packets: int, profile: bool) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    tree = VARIANTS[variant]
    if tree is not None:
        env["PYTHONPATH"] = tree
    argv = [str(PY), str(Path(__file__).resolve()), "--child", role, "--packets", str(packets)]
    if profile:
        argv.append("--child-profile")
    return subprocess.Popen(
        argv,
        env=env,
        cwd=tempfile.gettempdir(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=None,
        text=True,
    )


def _read(p: subprocess.Popen[str]) -> dict[str, Any]:
    assert p.stdout is not None
    line = p.stdout.readline()
    if not line:
        raise RuntimeError(f"a child ended early (exit {p.wait()})")
    result: dict[str, Any] = json.loads(line)
    return result


def _write(p: subprocess.Popen[str], **fields: Any) -> None:
    assert p.stdin is not None
    p.stdin.write(json.dumps(fields) + "\n")
    p.stdin.flush()


def transfer(variant: str, packets: int, profile: str | None) -> dict[str, float]:
    send = _spawn(variant, "send", packets, profile == "send")
    recv = _spawn(variant, "recv", packets, profile == "recv")
    try:
        _write(recv, **_read(send))  # the offer
        _write(send, **_read(recv))  # the answer
        _write(send, **_read(recv))  # ready
        r = _read(recv)
        _write(send, done=True)
        s = _read(send)
        _write(send, leave=True)
        _write(recv, leave=True)
        send.wait(60)
        recv.wait(60)
    finally:
        for p in (send, recv):
            if p.poll() is None:
                p.kill()
    return {
        "send_us": s["cpu"] / s["n"] * 1e6,
        "publish_us": s["publish_cpu"] / s["n"] * 1e6,
        "recv_us": r["cpu"] / r["n"] * 1e6,
        "pps": r["n"] / r["wall"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packets", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--baseline", metavar="REV", help="also measure this git revision")
    parser.add_argument(
        "--profile", choices=("send", "recv", "core"), help="profile one side (or the core), once"
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", choices=("send", "recv", "core"), help=argparse.SUPPRESS)
    parser.add_argument("--child-profile", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(args.child, args.packets, args.child_profile)
        return
    if args.profile == "core":
        print(json.dumps(core("lkproto", args.packets, True)))
        return
    if args.profile:
        print(json.dumps(transfer("lkproto", args.packets, args.profile)))
        return
    with tempfile.TemporaryDirectory(prefix="bench-datapath-baseline-") as tree:
        if args.baseline:
            export_baseline(args.baseline, Path(tree))
            VARIANTS["baseline"] = tree
        runs: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
        load0 = os.getloadavg()[0]
        for _ in range(args.rounds):
            for variant in VARIANTS:
                r = transfer(variant, args.packets, None) | core(variant, args.packets, False)
                runs[variant].append(r)
                print(variant, {k: round(v, 1) for k, v in r.items()}, file=sys.stderr)
        load1 = os.getloadavg()[0]
    table = {v: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for v, rs in runs.items()}
    if args.json:
        print(json.dumps({"medians": table, "runs": runs, "load": [load0, load1]}))
        return
    print(f"{args.packets} x {PAYLOAD} B, median of {args.rounds}; load {load0:.1f} -> {load1:.1f}")
    print(
        "| variant | sender us/pkt | of which publish loop | receiver us/pkt | pkt/s "
        "| core+session send us/pkt | core+session receive us/pkt |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for v, m in table.items():
        print(
            f"| {v} | {m['send_us']:.1f} | {m['publish_us']:.1f} | {m['recv_us']:.1f} "
            f"| {m['pps']:,.0f} | {m['core_send_us']:.1f} | {m['core_recv_us']:.1f} |"
        )


if __name__ == "__main__":
    main()
