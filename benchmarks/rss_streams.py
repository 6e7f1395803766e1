"""Peak RSS of an lkproto process streaming a large file, each way, against the official SDK.

Scenarios (one child process each, so the official SDK's memory is not counted):
- send: the child's anyio `Room` sends a file with `local_participant.send_file(path)` to an
  official participant in this (parent) process, which hashes what it receives;
- recv: an official participant here sends a file with `send_file` (the official default,
  `compress=True`, so lkproto's inflate path is exercised; `--no-compress` to send it plain)
  to the child, whose `register_byte_stream_handler` handler writes each chunk to disk as it
  arrives (`anyio.open_file`).

The child first joins and moves a 256 KiB warm-up file the same way, so imports, code paths
and peer-connection state are in place; its baseline is VmHWM from /proc/self/status after
that. During the transfer it samples VmRSS/VmHWM every --sample seconds against the bytes
moved so far. Reported: baseline, peak (VmHWM at the end), growth = peak - baseline,
throughput, the RSS curve, and the least-squares slope of VmRSS over the second half of the
transfer (MiB of RSS per GiB moved: ~0 means bounded, not growing with size; only for
transfers of 256 MiB or more). Both ends' SHA-256 are checked. (`ru_maxrss` is not used:
in an exec'd child it includes the high-water mark of the pre-exec image, i.e. of the
forking parent.)

Also reported, over the same window: CPU use of the lkproto child (whole process and its
event-loop thread), of the parent (the official SDK: Rust threads plus its Python loop) and
of livekit-server, as a share of one core, to show which process limits the throughput.

`--profile-child PATH` runs each child's transfer under cProfile, timed by the CPU time of
its event-loop thread (lkproto, anyio and aiortc, without the official SDK in the process;
time spent descheduled is not counted), and writes the stats to
PATH.send / PATH.recv (read them with `python -m pstats`). Memory figures from such a run
include the profiler's own.

Bounds: the sender's memory is bounded by the reliable channel's high watermark (1 MiB, in
`transports/_session.py` `Session.wait_writable`) plus the core's replay buffer; the receiver's by
`Config.max_buffered_stream_bytes` (16 MiB) while the handler consumes.

Confinement: as root the parent first moves into a private network namespace (`confine()`);
the children are started from it with `subprocess` and inherit it, so they can reach only
the confined server. Every wait is bounded (--limit per scenario).

Throughput (MiB/s) runs from the child's first byte to the receiver's last. In `send` the
child can outrun the official receiver: livekit-server buffers the difference for it (by
default without limit, `rtc.data_channel_max_buffered_amount: 0`), so `send_file` returns
before the receiver is done; the parent prints how far behind it was.

Run: .venv/bin/python benchmarks/rss_streams.py [--size 256] [--scenario send|recv|both]
     (--size 1024 for the full 1 GiB: about 6 minutes per direction on a 2-core machine)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import hashlib
import ipaddress
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from harness import LiveKitServer, confine, mint_token
from harness.netns import release

MIB = 1024 * 1024
WARM = 256 * 1024
TOKEN_ENV = "LKPROTO_RSS_TOKEN"


def _status_kib(*keys: str) -> dict[str, int]:
    """Fields of /proc/self/status in KiB (VmRSS, VmHWM)."""
    found: dict[str, int] = {}
    with open("/proc/self/status") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name in keys:
                found[name] = int(rest.split()[0])
    return found


def _memory() -> dict[str, float]:
    """VmRSS/VmHWM in MiB, and CPU seconds (process, and this thread: the event loop's)."""
    kib = _status_kib("VmRSS", "VmHWM")
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "rss": kib["VmRSS"] / 1024,
        "hwm": kib["VmHWM"] / 1024,
        "cpu": usage.ru_utime + usage.ru_stime,
        "loop_cpu": time.thread_time(),
        "t": time.monotonic(),
    }


def _proc_cpu(pid: int | None) -> float:
    """CPU seconds (user + system) of another process, from /proc/<pid>/stat."""
    if pid is None:
        return 0.0
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- the child: one lkproto Room in its own process ---------------------------------------------


def _emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


class _Sampler:
    """Samples (seconds, bytes moved, VmRSS, VmHWM) while a transfer runs."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.moved = 0
        self.samples: list[tuple[float, int, float, float]] = []
        self.t0 = time.monotonic()

    def sample(self) -> None:
        m = _memory()
        self.samples.append((time.monotonic() - self.t0, self.moved, m["rss"], m["hwm"]))

    async def run(self) -> None:
        import anyio

        while True:
            self.sample()
            await anyio.sleep(self.interval)


def _confined(url: str, host: str) -> bool:
    """The child connects only to the parent's confined server (loopback or the test net)."""
    from urllib.parse import urlsplit

    from harness.netns import TEST_NETWORK

    ip = ipaddress.ip_address(host)
    return urlsplit(url).hostname == host and (ip.is_loopback or ip in TEST_NETWORK)


async def _child(args: argparse.Namespace) -> None:
    import anyio
    import anyio.to_thread

    from lkproto.transports.anyio import Room, RoomOptions, RtcConfiguration

    if not _confined(args.url, args.host):
        raise SystemExit(f"refusing to connect outside the confinement: {args.url}")
    token = os.environ[TOKEN_ENV]
    room = Room()
    options = RoomOptions(
        auto_subscribe=False, rtc_config=RtcConfiguration(host_addresses=[args.host])
    )
    sampler = _Sampler(args.sample)
    # CPU time of this thread, not wall time: the machine may be saturated, and time spent
    # descheduled (e.g. inside sendto) is not work this process did.
    profile = cProfile.Profile(time.thread_time) if args.profile_child else None
    result: dict[str, Any] = {}
    warmed = anyio.Event()
    finished = anyio.Event()

    if args.child == "recv":
        out_dir = Path(args.dir)

        async def handler(reader: Any, _identity: str) -> None:
            big = reader.info.topic == "big"
            if big:
                result["t_open"] = time.monotonic()
            try:
                async with await anyio.open_file(out_dir / f"{reader.info.topic}.out", "wb") as f:
                    async for chunk in reader:
                        await f.write(chunk)
                        if big:
                            sampler.moved += len(chunk)
            except Exception as exc:
                result["error"] = repr(exc)
            if big:
                result["t_end"] = time.monotonic()
                finished.set()
            else:
                warmed.set()

        room.register_byte_stream_handler("warm", handler)
        room.register_byte_stream_handler("big", handler)

    with anyio.fail_after(args.limit):
        await room.connect(args.url, token, options)
        after_connect = _memory()
        async with anyio.create_task_group() as tg:
            if args.child == "send":
                while "rx" not in room.remote_participants:
                    await anyio.sleep(0.02)
                await room.local_participant.send_file(
                    args.warm, topic="warm", destination_identities=["rx"]
                )
                # Let the warm-up drain, so the baseline is a quiet connected process.
                await anyio.sleep(1)
                baseline = _memory()
                _emit(phase="baseline", memory=baseline)

                def progress(sent: int, _total: int | None) -> None:
                    sampler.moved = sent

                sampler.t0 = time.monotonic()
                result["t_open"] = sampler.t0
                tg.start_soon(sampler.run)
                if profile is not None:
                    profile.enable()
                await room.local_participant.send_file(
                    args.file, topic="big", destination_identities=["rx"], on_progress=progress
                )
                result["t_end"] = time.monotonic()
            else:
                _emit(phase="ready", memory=after_connect)
                await warmed.wait()
                await anyio.sleep(1)
                baseline = _memory()
                _emit(phase="baseline", memory=baseline)
                sampler.t0 = time.monotonic()
                tg.start_soon(sampler.run)
                if profile is not None:
                    profile.enable()
                await finished.wait()
            if profile is not None:
                profile.disable()
                profile.dump_stats(args.profile_child)
            sampler.sample()
            tg.cancel_scope.cancel()
        peak = _memory()
        _emit(
            phase="result",
            after_connect=after_connect,
            baseline=baseline,
            peak=peak,
            moved=sampler.moved,
            samples=sampler.samples,
            **result,
        )
    # Stay connected until the parent says its peer has everything: the channel may still
    # hold ~1 MiB, and the server may hold much more for a receiver slower than we send.
    with anyio.move_on_after(args.limit):
        await anyio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
    await room.disconnect()


# -- the parent: server, official peer, one child per scenario ----------------------------------


class _Received:
    """What the official receiver got on each topic (filled on the official loop thread)."""

    def __init__(self) -> None:
        self.bytes: dict[str, int] = {}
        self.digest: dict[str, str] = {}
        self.end: dict[str, float] = {}
        self.done: dict[str, threading.Event] = {
            "warm": threading.Event(),
            "big": threading.Event(),
        }

    async def drain(self, reader: Any) -> None:
        topic = reader.info.topic
        h = hashlib.sha256()
        n = 0
        try:
            async for chunk in reader:
                n += len(chunk)
                self.bytes[topic] = n
                h.update(chunk)
        finally:
            self.bytes[topic], self.digest[topic] = n, h.hexdigest()
            self.end[topic] = time.monotonic()
            self.done[topic].set()


def _write_random(path: Path, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            piece = os.urandom(min(MIB, left))
            h.update(piece)
            f.write(piece)
            left -= len(piece)
    return h.hexdigest()


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while piece := f.read(MIB):
            h.update(piece)
    return h.hexdigest()


class _Child:
    """A child process speaking JSON lines on stdout; every read is bounded."""

    def __init__(self, args: list[str], token: str) -> None:
        env = dict(os.environ, **{TOKEN_ENV: token})
        self.proc = subprocess.Popen(
            [sys.executable, __file__, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )

    async def read(self, phase: str, timeout: float) -> dict[str, Any]:
        import anyio
        import anyio.to_thread

        assert self.proc.stdout is not None
        with anyio.fail_after(timeout):
            while True:
                line = await anyio.to_thread.run_sync(
                    self.proc.stdout.readline, abandon_on_cancel=True
                )
                if not line:
                    raise RuntimeError(f"the child exited (code {self.proc.poll()}) before {phase}")
                with contextlib.suppress(ValueError):
                    msg: dict[str, Any] = json.loads(line)
                    if msg.get("phase") == phase:
                        return msg

    def finish(self) -> None:
        proc = self.proc
        if proc.poll() is None and proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.write("done\n")
                proc.stdin.flush()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


async def _scenario(
    kind: str, args: argparse.Namespace, server: LiveKitServer, host: str, loop: Any, work: Path
) -> dict[str, Any]:
    import anyio.to_thread

    from harness.official import OfficialPeer

    size = int(args.size * MIB)
    room_name = f"rss-{kind}"
    big, warm = work / f"{kind}-big.bin", work / f"{kind}-warm.bin"
    expected = _write_random(big, size)
    _write_random(warm, WARM)
    peer = OfficialPeer(loop)
    received = _Received()
    common = ["--url", server.url, "--host", host, "--sample", str(args.sample)]
    common += ["--limit", str(args.limit)]
    if args.profile_child:
        common += ["--profile-child", f"{args.profile_child}.{kind}"]
    try:
        if kind == "send":

            async def register(room: Any) -> None:
                def handler(reader: Any, _identity: str) -> None:
                    asyncio.get_running_loop().create_task(received.drain(reader))

                room.register_byte_stream_handler("warm", handler)
                room.register_byte_stream_handler("big", handler)

            await peer.connect(server.url, mint_token("rx", room_name))
            await peer.do(register)
            child = _Child(
                ["--child", "send", "--file", str(big), "--warm", str(warm), *common],
                mint_token("lk", room_name),
            )
            try:
                await child.read("baseline", 60)
                cpu0 = _cpu(server)
                msg = await child.read("result", args.limit)
                cpu1 = _cpu(server)
                msg["official_lag_mib"] = (size - received.bytes.get("big", 0)) / MIB
                print(
                    f"send: send_file returned; the official peer is "
                    f"{msg['official_lag_mib']:.1f} MiB behind",
                    file=sys.stderr,
                    flush=True,
                )
                ok = await anyio.to_thread.run_sync(
                    received.done["big"].wait, args.limit, abandon_on_cancel=True
                )
            finally:
                child.finish()
            if not ok or received.bytes.get("big") != size or received.digest["big"] != expected:
                raise RuntimeError(f"send: the official peer got {received.bytes.get('big')}")
            msg["t_done"] = received.end["big"]
        else:
            out_dir = work / "recv-out"
            out_dir.mkdir(exist_ok=True)
            child = _Child(
                ["--child", "recv", "--dir", str(out_dir), *common], mint_token("lk", room_name)
            )
            try:
                await child.read("ready", 60)
                await peer.connect(server.url, mint_token("tx", room_name))
                await peer.wait_for(lambda r: "lk" in peer.room.remote_participants)  # type: ignore[union-attr]
                compress = not args.no_compress

                async def send(path: Path, topic: str) -> Any:
                    async def go(room: Any) -> Any:
                        return await room.local_participant.send_file(
                            str(path),
                            topic=topic,
                            destination_identities=["lk"],
                            compress=compress,
                        )

                    return await peer.do(go, args.limit)

                await send(warm, "warm")
                await child.read("baseline", 60)
                cpu0 = _cpu(server)
                await send(big, "big")
                msg = await child.read("result", args.limit)
                cpu1 = _cpu(server)
            finally:
                child.finish()
            if "error" in msg:
                raise RuntimeError(f"recv: the child's reader failed: {msg['error']}")
            got = out_dir / "big.out"
            if got.stat().st_size != size or _file_digest(got) != expected:
                raise RuntimeError(f"recv: the child wrote {got.stat().st_size} bytes, bad digest")
            msg["t_done"] = msg["t_end"]
            msg["compress"] = compress
    finally:
        with contextlib.suppress(Exception):
            await peer.disconnect()
        for path in work.glob(f"{kind}-*.bin"):
            path.unlink()
    msg["size_mib"] = args.size
    base, peak = msg["baseline"], msg["peak"]
    wall = peak["t"] - base["t"]
    msg["cpu_share"] = {
        "lkproto process": (peak["cpu"] - base["cpu"]) / wall,
        "lkproto loop thread": (peak["loop_cpu"] - base["loop_cpu"]) / wall,
        "official (parent)": (cpu1["parent"] - cpu0["parent"]) / wall,
        "livekit-server": (cpu1["server"] - cpu0["server"]) / wall,
    }
    msg["mib_s"] = args.size / (msg["t_done"] - msg["t_open"])
    msg["slope_mib_per_gib"] = _slope(msg["samples"], size)
    return msg


def _cpu(server: LiveKitServer) -> dict[str, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"parent": usage.ru_utime + usage.ru_stime, "server": _proc_cpu(server.pid)}


def _slope(samples: list[list[float]], size: int) -> float | None:
    """Least-squares slope of VmRSS over bytes moved, second half of the transfer, MiB/GiB.

    None below 256 MiB: allocator noise of a fraction of a MiB over a short second half
    would extrapolate to tens of MiB per GiB.
    """
    half = [(moved, rss) for _t, moved, rss, _hwm in samples if moved >= size / 2]
    if size < 256 * MIB or len(half) < 3 or len({m for m, _ in half}) < 2:
        return None
    xs = [m / (1024 * MIB) for m, _ in half]
    ys = [r for _, r in half]
    return statistics.linear_regression(xs, ys).slope


async def _parent(args: argparse.Namespace, server: LiveKitServer, host: str) -> dict[str, Any]:
    from harness.official import OfficialLoop

    loop = OfficialLoop()
    results: dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="lkproto-rss-") as tmp:
            kinds = ["send", "recv"] if args.scenario == "both" else [args.scenario]
            for kind in kinds:
                print(f"{kind}: {args.size:g} MiB ...", file=sys.stderr, flush=True)
                results[kind] = await _scenario(kind, args, server, host, loop, Path(tmp))
    finally:
        loop.close()
    return results


def render(results: dict[str, Any]) -> str:
    lines = [
        "| scenario | size | MiB/s | after connect | baseline (VmHWM) | peak (VmHWM) "
        "| growth | RSS slope, 2nd half | CPU: lkproto (loop) / official / server |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for kind, r in results.items():
        label = "lkproto send_file" if kind == "send" else "lkproto receive to disk"
        if kind == "recv":
            label += " (official compress=" + str(r["compress"]) + ")"
        slope, cpu = r["slope_mib_per_gib"], r["cpu_share"]
        lines.append(
            f"| {label} | {r['size_mib']:g} MiB | {r['mib_s']:.2f} "
            f"| {r['after_connect']['hwm']:.1f} MiB | {r['baseline']['hwm']:.1f} MiB "
            f"| {r['peak']['hwm']:.1f} MiB "
            f"| **{r['peak']['hwm'] - r['baseline']['hwm']:+.1f} MiB** "
            f"| {'n/a' if slope is None else f'{slope:+.1f} MiB/GiB'} "
            f"| {cpu['lkproto process']:.0%} ({cpu['lkproto loop thread']:.0%}) "
            f"/ {cpu['official (parent)']:.0%} / {cpu['livekit-server']:.0%} |"
        )
    for kind, r in results.items():
        samples = r["samples"]
        step = max(1, len(samples) // 10)
        picked = samples[::step] + ([samples[-1]] if (len(samples) - 1) % step else [])
        lines += [
            "",
            f"{kind}: RSS curve (seconds, MiB moved, VmRSS MiB, VmHWM MiB)",
            "",
            "| t (s) | moved (MiB) | VmRSS | VmHWM |",
            "|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {t:.1f} | {moved / MIB:.1f} | {rss:.1f} | {hwm:.1f} |"
            for t, moved, rss, hwm in picked
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--size", type=float, default=256, help="MiB per transfer (1024 = 1 GiB)")
    parser.add_argument("--scenario", choices=["send", "recv", "both"], default="both")
    parser.add_argument("--no-compress", action="store_true", help="official send_file plain")
    parser.add_argument("--sample", type=float, default=1.0, help="seconds between samples")
    parser.add_argument("--limit", type=float, default=900, help="seconds per scenario")
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--profile-child", metavar="PATH", help="cProfile the child's transfer into PATH.<kind>"
    )
    # Child mode (started by the parent; not for direct use).
    parser.add_argument("--child", choices=["send", "recv"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--host", help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    parser.add_argument("--warm", help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    args = parser.parse_args()

    import anyio

    if args.child:
        anyio.run(_child, args)
        return
    confinement = confine()
    try:
        with LiveKitServer(confinement) as server:
            results = anyio.run(_parent, args, server, confinement.host)
    finally:
        release(confinement)
    print(json.dumps(results) if args.json else render(results))


if __name__ == "__main__":
    main()
