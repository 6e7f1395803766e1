"""Soak: long lives and many lives of lkproto Rooms against the real server (issue 26).

Two modes, each in this one process (run one per process so the RSS figures are its own):

- `--cycles N [--adapter anyio|trio|threaded|official]`: one Room connects and disconnects N
  times (a fresh `Room` each cycle, a fresh token; `official` is the official SDK's). RSS
  and open file descriptors after a warm-up (the first fifth of the cycles, at least 20)
  and at the end; growth per cycle; with `--trace`,
  tracemalloc's top growers between the two marks. `--sample-cycles K` samples RSS and
  descriptors every K cycles; `--leak-kib L` leaks L KiB per cycle on purpose (to check a
  detector); `--url` uses a running server of the test harness (its credentials) instead of
  starting one, from the caller's network namespace (the short leak test in `make test`,
  tests/e2e/test_soak_short.py).
- `--minutes M --adapter anyio|trio|threaded`: a session with traffic for M minutes. Two
  Rooms of that adapter (a, b) in one room; every `--period` seconds a sends b two reliable
  data packets, one RPC (b echoes it) and one text stream (b reads it whole), and every
  tenth period b calls a back. RSS and open descriptors are sampled every `--sample`
  seconds (60); the warm-up is the first `--warmup` minutes (5). Reported: growth of RSS and
  descriptors from the end of the warm-up to the end, what was delivered and what failed,
  and (with `--trace`, on by default here) tracemalloc's top growers between the same marks.
  RSS includes tracemalloc's own bookkeeping, which grows with live allocations only.

Acceptance (the issue): after warm-up, RSS growth under 5 MiB and no descriptor growth.
Exit status 1 when a session misses it (or a message was lost), so scripts can gate on it.

Confinement: as root the process first moves into a private network namespace (the test
harness's `confine()`), so no packet leaves it; otherwise everything binds 127.0.0.1. Every
loop is bounded in count and time, every wait has a timeout.

Run: .venv/bin/python benchmarks/soak.py --cycles 3000 --trace
     .venv/bin/python benchmarks/soak.py --minutes 30 --adapter trio [--json]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from harness import LiveKitServer, confine, mint_token
from harness.netns import release

TIMEOUT = 20.0  # seconds for any one call (connect, RPC, send)


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def growers(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, top: int = 8) -> list[str]:
    """tracemalloc's top growers (by size), each with the innermost frames of its traceback."""
    noise = (
        tracemalloc.Filter(False, tracemalloc.__file__),
        tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
        tracemalloc.Filter(False, "<frozen importlib._bootstrap_external>"),
    )
    after = after.filter_traces(noise)
    before = before.filter_traces(noise)
    out = []
    for stat in after.compare_to(before, "traceback")[:top]:
        frames = " <- ".join(
            f"{Path(f.filename).name}:{f.lineno}" for f in reversed(stat.traceback[-4:])
        )
        out.append(f"{stat.size_diff / 1024:+.1f} KiB ({stat.count_diff:+d} blocks) {frames}")
    return out


class Marks:
    """RSS and descriptor samples, with tracemalloc snapshots at the warm-up and end marks."""

    def __init__(self, trace: bool) -> None:
        self.trace = trace
        self.samples: list[tuple[float, float, int]] = []  # (seconds, RSS MiB, fds)
        self.snapshots: dict[str, tracemalloc.Snapshot] = {}
        self.values: dict[str, float] = {}
        self.t0 = time.monotonic()
        if trace:
            tracemalloc.start(8)

    def sample(self) -> None:
        gc.collect()
        self.samples.append((time.monotonic() - self.t0, rss_mib(), fds()))

    def mark(self, key: str) -> None:
        """RSS and descriptors now. The warm-up's snapshot is taken first, the end's after, so
        both RSS figures include exactly one snapshot (tens of MiB for a big heap)."""
        gc.collect()
        if self.trace:
            self.values[f"{key}_traced_mib"] = tracemalloc.get_traced_memory()[0] / 2**20
            if key == "warm":
                self.snapshots[key] = tracemalloc.take_snapshot()
                gc.collect()
        self.values[f"{key}_rss_mib"] = rss_mib()
        self.values[f"{key}_fds"] = fds()
        if self.trace and key != "warm":
            self.snapshots[key] = tracemalloc.take_snapshot()

    def report(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.values)
        out["rss_growth_mib"] = self.values["end_rss_mib"] - self.values["warm_rss_mib"]
        out["fd_growth"] = self.values["end_fds"] - self.values["warm_fds"]
        if "warm" in self.snapshots and "end" in self.snapshots:
            out["growers"] = growers(self.snapshots["warm"], self.snapshots["end"])
        out["samples"] = [(round(t), round(r, 2), f) for t, r, f in self.samples]
        return out


# -- cycles ------------------------------------------------------------------------------------


async def _cycles_async(count: int, server: Any, host: str, marks: Marks, module: Any) -> None:
    import anyio

    if module.__name__ == "livekit.rtc":  # the official SDK (--adapter official, cycles only)
        options = module.RoomOptions()
    else:
        options = module.RoomOptions(rtc_config=module.RtcConfiguration(host_addresses=[host]))
    warm = _warm(count, args_warm[0])
    for i in range(count):
        room = module.Room()
        with anyio.fail_after(TIMEOUT):
            await room.connect(server.url, mint_token("cycler", "cycles"), options)
        with anyio.fail_after(TIMEOUT):
            await room.disconnect()
        if args_warm[2]:  # --leak-kib: the detector's own check
            _LEAKED.append(bytearray(args_warm[2] * 1024))
        if i + 1 == warm:
            marks.mark("warm")
        if (i + 1) % args_warm[1] == 0:
            marks.sample()
    marks.mark("end")


def _cycles_threaded(count: int, server: Any, host: str, marks: Marks) -> None:
    from lkproto.transports import threaded as module

    options = module.RoomOptions(rtc_config=module.RtcConfiguration(host_addresses=[host]))
    warm = _warm(count, args_warm[0])
    for i in range(count):
        room = module.Room()
        room.connect(server.url, mint_token("cycler", "cycles"), options)
        room.disconnect()
        if args_warm[2]:
            _LEAKED.append(bytearray(args_warm[2] * 1024))
        if i + 1 == warm:
            marks.mark("warm")
        if (i + 1) % args_warm[1] == 0:
            marks.sample()
    marks.mark("end")


args_warm = [0, 100, 0]  # --warm, --sample-cycles, --leak-kib (set by cycles())
_LEAKED: list[bytearray] = []


def _warm(count: int, warm: int) -> int:
    """Cycles before the warm-up mark: --warm, or the first fifth (at least 20)."""
    return min(count, warm or max(20, count // 5))


def cycles(args: argparse.Namespace, server: Any, host: str) -> dict[str, Any]:
    args_warm[:] = [args.warm, args.sample_cycles, args.leak_kib]
    marks = Marks(args.trace)
    t0 = time.perf_counter()
    _run(
        args.adapter,
        lambda m: _cycles_async(args.cycles, server, host, marks, m),
        lambda: _cycles_threaded(args.cycles, server, host, marks),
    )
    elapsed = time.perf_counter() - t0
    out = marks.report()
    warm = _warm(args.cycles, args.warm)
    out.update(
        mode="cycles",
        adapter=args.adapter,
        cycles=args.cycles,
        ms_per_cycle=elapsed / args.cycles * 1000,
        growth_kib_per_cycle=out["rss_growth_mib"] * 1024 / max(1, args.cycles - warm),
    )
    return out


# -- a session with traffic --------------------------------------------------------------------


def _config(args: argparse.Namespace) -> Any:
    """The rooms' Config: the default, with `--replay-bytes` as its replay buffer bound, or with
    `--small-bounds` (replay 64 KiB, 64 stream ids and 64 RPC request ids remembered), which
    fill within the warm-up: what grows then is not one of those bounded memories."""
    from lkproto import Config

    if args.small_bounds:  # the bounded memories full within the warm-up
        return Config(
            replay_buffer_bytes=64 * 1024, max_remembered_streams=64, max_remembered_rpc_requests=64
        )
    if args.replay_bytes is None:
        return Config()
    return Config(replay_buffer_bytes=args.replay_bytes)


class Counts:
    def __init__(self) -> None:
        self.data_sent = self.data_got = 0
        self.rpc_ok = self.rpc_back_ok = 0
        self.text_sent = self.text_got = 0
        self.errors: list[str] = []
        self.replay_held: list[tuple[int, int]] = []  # per Room at the end: (packets, bytes)

    def error(self, what: str, exc: BaseException) -> None:
        if len(self.errors) < 20:
            self.errors.append(f"{what}: {type(exc).__name__}: {exc}")

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


TEXT = "soak " * 40  # 200 characters


def _pair(args: argparse.Namespace, host: str, module: Any, counts: Counts) -> tuple[Any, Any, Any]:
    """The session's options and its two Rooms (a, b) of the adapter `module`; b counts the
    data packets it receives."""
    options = module.RoomOptions(rtc_config=module.RtcConfiguration(host_addresses=[host]))
    a, b = module.Room(config=_config(args)), module.Room(config=_config(args))

    def on_data(packet: Any) -> None:
        counts.data_got += 1

    b.on("data_received", on_data)
    return options, a, b


class _Schedule:
    """The session's clock: it runs `--minutes`, marks "warm" once the warm-up is over and
    samples RSS and descriptors every `--sample` seconds (`sampled()` after each period)."""

    def __init__(self, args: argparse.Namespace, marks: Marks) -> None:
        self.args, self.marks = args, marks
        self.end = time.monotonic() + args.minutes * 60
        self.warm_at = time.monotonic() + args.warmup * 60
        self.next_sample = time.monotonic()

    def running(self) -> bool:
        return time.monotonic() < self.end

    def sampled(self) -> None:
        now = time.monotonic()
        if self.warm_at and now >= self.warm_at:
            self.marks.mark("warm")
            self.warm_at = 0
        if now >= self.next_sample:
            self.marks.sample()
            print(f"{self.args.adapter} {self.marks.samples[-1]}", file=sys.stderr, flush=True)
            self.next_sample = now + self.args.sample


async def _session_async(
    args: argparse.Namespace, server: LiveKitServer, host: str, marks: Marks, module: Any
) -> Counts:
    import anyio

    counts = Counts()
    options, a, b = _pair(args, host, module, counts)

    async def echo(data: Any) -> str:
        return str(data.payload)

    b.local_participant.register_rpc_method("echo", echo)
    a.local_participant.register_rpc_method("echo", echo)

    async def on_text(reader: Any, identity: str) -> None:
        if await reader.read_all() == TEXT:
            counts.text_got += 1

    b.register_text_stream_handler("soak", on_text)
    room = f"soak-{args.adapter}"
    with anyio.fail_after(TIMEOUT):
        await a.connect(server.url, mint_token("a", room), options)
        await b.connect(server.url, mint_token("b", room), options)
    with anyio.fail_after(TIMEOUT):
        while "b" not in a.remote_participants or "a" not in b.remote_participants:
            await anyio.sleep(0.05)
    me = a.local_participant
    schedule = _Schedule(args, marks)
    tick = 0
    while schedule.running():
        tick += 1
        try:
            with anyio.fail_after(TIMEOUT):
                for _ in range(2):
                    await me.publish_data(b"x" * 100, reliable=True, topic="soak")
                    counts.data_sent += 1
                if await me.perform_rpc(
                    destination_identity="b", method="echo", payload=str(tick)
                ) == str(tick):
                    counts.rpc_ok += 1
                await me.send_text(TEXT, topic="soak", destination_identities=["b"])
                counts.text_sent += 1
                if tick % 10 == 0:
                    back = await b.local_participant.perform_rpc(
                        destination_identity="a", method="echo", payload="back"
                    )
                    counts.rpc_back_ok += back == "back"
        except Exception as exc:  # reported, the soak goes on
            counts.error(f"tick {tick}", exc)
        schedule.sampled()
        await anyio.sleep(args.period)
    await anyio.sleep(2)  # the last messages arrive
    marks.mark("end")
    counts.replay_held = [_replay_held(r) for r in (a, b)]
    with anyio.fail_after(TIMEOUT):
        await a.disconnect()
        await b.disconnect()
    return counts


def _session_threaded(
    args: argparse.Namespace, server: LiveKitServer, host: str, marks: Marks
) -> Counts:
    from lkproto.transports import threaded as module

    counts = Counts()
    options, a, b = _pair(args, host, module, counts)
    b.local_participant.register_rpc_method("echo", lambda data: str(data.payload))
    a.local_participant.register_rpc_method("echo", lambda data: str(data.payload))

    def on_text(reader: Any, identity: str) -> None:
        if reader.read_all() == TEXT:
            counts.text_got += 1

    b.register_text_stream_handler("soak", on_text)
    room = f"soak-{args.adapter}"
    a.connect(server.url, mint_token("a", room), options)
    b.connect(server.url, mint_token("b", room), options)
    deadline = time.monotonic() + TIMEOUT
    while "b" not in a.remote_participants or "a" not in b.remote_participants:
        if time.monotonic() > deadline:
            raise TimeoutError("the two rooms did not see each other")
        time.sleep(0.05)
    me = a.local_participant
    schedule = _Schedule(args, marks)
    tick = 0
    while schedule.running():
        tick += 1
        try:
            for _ in range(2):
                me.publish_data(b"x" * 100, reliable=True, topic="soak")
                counts.data_sent += 1
            answer = me.perform_rpc(
                destination_identity="b",
                method="echo",
                payload=str(tick),
                response_timeout=TIMEOUT,
            )
            counts.rpc_ok += answer == str(tick)
            me.send_text(TEXT, topic="soak", destination_identities=["b"])
            counts.text_sent += 1
            if tick % 10 == 0:
                back = b.local_participant.perform_rpc(
                    destination_identity="a",
                    method="echo",
                    payload="back",
                    response_timeout=TIMEOUT,
                )
                counts.rpc_back_ok += back == "back"
        except Exception as exc:  # reported, the soak goes on
            counts.error(f"tick {tick}", exc)
        schedule.sampled()
        time.sleep(args.period)
    time.sleep(2)
    marks.mark("end")
    counts.replay_held = [_replay_held(r) for r in (a, b)]
    a.disconnect()
    b.disconnect()
    return counts


def _replay_held(room: Any) -> tuple[int, int]:
    """The reliable packets (count, bytes) the Room's core holds for a replay (trimmed by the
    server's SCTP acknowledgements, `Connection.reliable_delivered`)."""
    sender = getattr(room.connection, "_sender", None)
    if sender is None:
        return (0, 0)
    return (len(sender.replay_sequences), getattr(sender, "replay_bytes", -1))


def session(args: argparse.Namespace, server: LiveKitServer, host: str) -> dict[str, Any]:
    marks = Marks(args.trace)
    result: list[Counts] = []
    _run(
        args.adapter,
        lambda m: _collect(result, _session_async(args, server, host, marks, m)),
        lambda: result.append(_session_threaded(args, server, host, marks)),
    )
    out = marks.report()
    counts = result[0]
    out.update(mode="session", adapter=args.adapter, minutes=args.minutes, **counts.as_dict())
    out["ok"] = (
        out["rss_growth_mib"] < 5
        and out["fd_growth"] <= 0
        and not counts.errors
        and counts.data_got == counts.data_sent
        and counts.text_got == counts.text_sent
    )
    return out


async def _collect(into: list[Counts], coro: Any) -> None:
    into.append(await coro)


def _run(adapter: str, run_async: Callable[[Any], Any], run_threaded: Callable[[], None]) -> None:
    if adapter == "anyio":
        import asyncio

        from lkproto.transports import anyio as module

        asyncio.run(run_async(module))
    elif adapter == "official":
        import asyncio

        from livekit import rtc

        asyncio.run(run_async(rtc))
    elif adapter == "trio":
        import trio

        from lkproto.transports import trio as module

        trio.run(run_async, module)
    else:
        run_threaded()


def render(r: dict[str, Any]) -> str:
    lines = []
    if r["mode"] == "cycles":
        lines.append(
            f"{r['cycles']} connect/disconnect cycles of one {r['adapter']} Room: "
            f"{r['ms_per_cycle']:.0f} ms each; RSS {r['warm_rss_mib']:.1f} MiB after warm-up, "
            f"{r['end_rss_mib']:.1f} MiB at the end ({r['growth_kib_per_cycle']:.1f} KiB per "
            f"cycle); open descriptors {r['warm_fds']} -> {r['end_fds']}"
        )
    else:
        lines.append(
            f"{r['minutes']} min session, {r['adapter']}: RSS {r['warm_rss_mib']:.1f} MiB after "
            f"warm-up -> {r['end_rss_mib']:.1f} MiB ({r['rss_growth_mib']:+.2f} MiB); open "
            f"descriptors {r['warm_fds']} -> {r['end_fds']}; data {r['data_got']}/"
            f"{r['data_sent']}, RPC {r['rpc_ok']} (+{r['rpc_back_ok']} back), text "
            f"{r['text_got']}/{r['text_sent']}, errors {len(r['errors'])}; "
            f"{'OK' if r['ok'] else 'FAILED'}; held for a replay at the end (packets, bytes) "
            f"per Room: {r['replay_held']}"
        )
        lines += [f"  error: {e}" for e in r["errors"]]
    if "warm_traced_mib" in r:
        lines.append(
            f"  traced by tracemalloc: {r['warm_traced_mib']:.2f} -> {r['end_traced_mib']:.2f} MiB"
        )
    lines += [f"  grower: {g}" for g in r.get("growers", [])]
    lines.append(f"  samples (s, RSS MiB, fds): {r['samples']}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cycles", type=int, default=0, help="connect/disconnect N times")
    parser.add_argument("--minutes", type=float, default=0, help="a session of M minutes")
    parser.add_argument(
        "--adapter", choices=["anyio", "trio", "threaded", "official"], default="anyio"
    )
    parser.add_argument("--period", type=float, default=1.0, help="seconds between rounds")
    parser.add_argument("--sample", type=float, default=60.0, help="seconds between samples")
    parser.add_argument("--warmup", type=float, default=5.0, help="warm-up minutes")
    parser.add_argument("--trace", action="store_true", help="tracemalloc's top growers")
    parser.add_argument("--warm", type=int, default=0, help="warm-up cycles (a fifth)")
    parser.add_argument("--sample-cycles", type=int, default=100, help="cycles per sample")
    parser.add_argument("--replay-bytes", type=int, help="Config.replay_buffer_bytes")
    parser.add_argument("--small-bounds", action="store_true", help="bounded memories small")
    parser.add_argument("--leak-kib", type=int, default=0, help="leak this much per cycle")
    parser.add_argument("--url", help="use this server (harness credentials), start none")
    parser.add_argument("--host", default="127.0.0.1", help="with --url: our ICE address")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if bool(args.cycles) == bool(args.minutes):
        parser.error("give one of --cycles N or --minutes M")
    if args.url:  # a server someone else runs (the short leak test's), in our namespace
        server: Any = argparse.Namespace(url=args.url)
        run = cycles if args.cycles else session
        result = run(args, server, args.host)
        print(json.dumps(result) if args.json else render(result), flush=True)
        sys.exit(0 if result.get("ok", True) else 1)
    confinement = confine()
    try:
        with LiveKitServer(confinement) as server:
            if args.cycles:
                result = cycles(args, server, confinement.host)
            else:
                result = session(args, server, confinement.host)
    finally:
        release(confinement)
    print(json.dumps(result) if args.json else render(result), flush=True)
    sys.exit(0 if result.get("ok", True) else 1)


if __name__ == "__main__":
    main()
