"""Start-up: process start to data-ready, lkproto against the Go SDK; `lkproto --help`; imports.

Three measures (issue 25), each over interleaved rounds, medians reported with the load average:

- **data-ready** (needs the harness's network namespace, so root): a confined livekit-server
  and an observer (the Go peer, `.venv/bin/lkproto-go-peer`) in a room. Each round spawns a
  fresh participant process of each kind, in alternating order, one at a time:
  `.venv/bin/python -c <CHILD>` (lkproto's anyio Room on asyncio, the code below: import,
  connect, then the Go peer's JSON-lines `publish_data` and `disconnect`) and the Go peer,
  both told the URL and token in their environment (`LIVEKIT_URL`, `LIVEKIT_TOKEN`) so each
  joins at once. Measured from just before the spawn, on the parent's monotonic clock:
  `joined` (the process says it has joined: lkproto's `Room.connect` returned, i.e. the
  reliable data channel is open; the Go SDK's `JoinWithToken` returned and its subscriber's
  SCTP is up), then the parent asks it to send one reliable packet to the observer, and
  `data` is when the observer reports that packet: the process could send data end to end.
  For lkproto the child also reports when its imports were done (`imported`, its own
  CLOCK_REALTIME against the parent's at the spawn: one machine, one clock).
- **`lkproto --help`**: wall time of the console script, and of `python -c pass` for scale.
- **importtime**: `python -X importtime -c "import lkproto.transports.anyio"` (and `.trio`,
  `.threaded`): the cumulative microseconds of the adapter's line (which includes the core,
  imported first as its parent package), median over runs, and the top cumulative lines of
  the median run (`--top`).

The Python processes run with bytecode caches (`PYTHONDONTWRITEBYTECODE` is removed from
their environment and a first unmeasured run writes the caches), as an installed package
runs for a user; with the variable set every module is compiled from source at each start
and every figure here is several times larger.

`--baseline REV` measures another revision beside this checkout, interleaved in the same
rounds (the only fair before/after on a shared machine): REV's `lkproto/` and `transports/`
are exported with `git archive` into a temporary directory laid out as the installed package,
which its Python processes find first on PYTHONPATH (each process's cwd is a neutral
directory, so `python -c` does not find this checkout's `lkproto/` first; the script checks
where each variant imports from).

`--trace` adds one more lkproto child per variant, with DEBUG logs of lkproto, aiortc and
aioice, each line prefixed by milliseconds since the spawn: where the time between `imported`
and `joined` goes (signal connect, offer/answer, ICE checks, DTLS, SCTP, channel open).

Run: .venv/bin/python benchmarks/bench_startup.py [--rounds 7] [--help-runs 15]
     [--import-runs 15] [--top 15] [--baseline REV] [--no-data] [--trace] [--json]
"""

from __future__ import annotations

import argparse
import base64
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
sys.path.insert(0, str(ROOT / "tests"))

PY = ROOT / ".venv" / "bin" / "python"
CLI = ROOT / ".venv" / "bin" / "lkproto"
LIMIT = 30.0  # seconds for any one wait
ADAPTERS = ("anyio", "trio", "threaded")

# The lkproto participant: what a user's script does, plus the Go peer's JSON lines.
CHILD = r"""
import json, os, sys, time

def emit(event, **fields):
    sys.stdout.write(json.dumps({"event": event, "ns": time.time_ns(), **fields}) + "\n")
    sys.stdout.flush()

if os.environ.get("LKPROTO_BENCH_TRACE"):
    import logging
    T0 = int(os.environ["LKPROTO_BENCH_T0"])
    class Since(logging.Formatter):
        def format(self, record):
            ms = (record.created * 1e9 - T0) / 1e6
            return f"{ms:8.1f} ms {record.name}: {record.getMessage()}"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(Since())
    logging.basicConfig(level=logging.DEBUG, handlers=[handler])

import asyncio
import base64

from lkproto.transports.anyio import Room, RoomOptions, RtcConfiguration

emit("imported")

async def main():
    room = Room()
    rtc = RtcConfiguration(host_addresses=[os.environ["LKPROTO_BENCH_HOST"]])
    options = RoomOptions(auto_subscribe=False, rtc_config=rtc)
    await room.connect(os.environ["LIVEKIT_URL"], os.environ["LIVEKIT_TOKEN"], options)
    emit("joined", identity=room.local_participant.identity)
    emit("ready")
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        c = json.loads(line)
        if c["cmd"] == "publish_data":
            await room.local_participant.publish_data(
                base64.b64decode(c["payload"]),
                reliable=True,
                destination_identities=c["destinations"],
            )
            emit("result", id=c.get("id"), cmd=c["cmd"], ok=True)
        elif c["cmd"] == "disconnect":
            await room.disconnect()
            emit("result", id=c.get("id"), cmd=c["cmd"], ok=True)
            os._exit(0)  # not waiting for the stdin reader's thread
    await room.disconnect()

asyncio.run(main())
"""


VARIANTS: dict[str, str | None] = {"lkproto": None}
"""Each lkproto build measured: its name and the directory put first on PYTHONPATH (None: the
editable install of this checkout). `--baseline REV` adds "baseline", REV's lkproto/ and
transports/ (as lkproto/transports/) exported into a temporary directory by `git archive`."""
NEUTRAL_CWD = tempfile.gettempdir()  # `python -c` puts its cwd first on sys.path: not ROOT


def child_env(variant: str = "lkproto", **extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")
    }
    tree = VARIANTS[variant]
    if tree is not None:
        env["PYTHONPATH"] = tree
    env.update(extra)
    return env


def run(argv: list[str], variant: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, env=child_env(variant), cwd=NEUTRAL_CWD, check=True, timeout=120, text=True, **kw
    )


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def _median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


# -- lkproto --help and importtime (no server) --------------------------------------------------


def warm_caches() -> None:
    """Write the bytecode caches (an installed package has them) before anything is timed, and
    check that each variant imports from where it should."""
    code = "; ".join(f"import lkproto.transports.{a}" for a in ADAPTERS)
    for variant, tree in VARIANTS.items():
        where = run(
            [str(PY), "-c", f"{code}; print(lkproto.transports.__file__)"],
            variant,
            capture_output=True,
        ).stdout.strip()
        expected = str(ROOT / "transports") if tree is None else str(Path(tree) / "lkproto")
        assert where.startswith(expected), (variant, where)
        run([str(CLI), "--help"], variant, stdout=subprocess.DEVNULL)


def wall(argv: list[str], variant: str = "lkproto") -> float:
    start = time.monotonic()
    run(argv, variant, stdout=subprocess.DEVNULL)
    return time.monotonic() - start


def help_times(runs: int) -> dict[str, Any]:
    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    bare = []
    for _ in range(runs):  # interleaved; the bare interpreter is the machine's pace right now
        for variant in VARIANTS:
            times[variant].append(wall([str(CLI), "--help"], variant))
        bare.append(wall([str(PY), "-c", "pass"]))
    out: dict[str, Any] = {"python_pass_ms": _median_ms(bare)}
    for variant, values in times.items():
        out[variant] = {
            "help_ms": _median_ms(values),
            "runs_ms": [round(s * 1000) for s in values],
        }
    return out


def importtime(module: str, variant: str) -> tuple[int, list[tuple[int, int, str]]]:
    """The cumulative us of `module`'s own line, and every (cumulative, self, name) line."""
    err = run([str(PY), "-X", "importtime", "-c", f"import {module}"], variant, capture_output=True)
    lines = []
    for line in err.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, cumulative, name = line.split(":", 1)[1].split("|")
        lines.append((int(cumulative), int(own), name.rstrip()))
    total = next(c for c, _, n in lines if n.strip() == module)
    return total, lines


def import_times(runs: int, top: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    samples: dict[tuple[str, str], list[tuple[int, list[tuple[int, int, str]]]]] = {}
    for _ in range(runs):
        for adapter in ADAPTERS:
            for variant in VARIANTS:
                sample = importtime(f"lkproto.transports.{adapter}", variant)
                samples.setdefault((variant, adapter), []).append(sample)
    for (variant, adapter), runs_ in samples.items():
        ordered = sorted(runs_, key=lambda r: r[0])
        median_run = ordered[len(ordered) // 2]
        out.setdefault(variant, {})[adapter] = {
            "cumulative_ms": statistics.median(t for t, _ in runs_) / 1000,
            "runs_ms": [round(t / 1000) for t, _ in runs_],
            "top": [
                (round(c / 1000, 1), round(s / 1000, 1), n)
                for c, s, n in sorted(median_run[1], reverse=True)[:top]
            ],
        }
    return out


def heavy_modules() -> dict[str, dict[str, list[str]]]:
    """Which of the heavy packages each adapter import (and `lkproto --help`) loads."""
    heavy = ("aiortc", "aioice", "av", "numpy", "pylibsrtp", "OpenSSL", "dns", "ifaddr")
    report = f"print(' '.join(m for m in {heavy!r} if m in sys.modules), file=sys.stderr)"
    codes = {f"import lkproto.transports.{a}": f"import lkproto.transports.{a}" for a in ADAPTERS}
    codes["lkproto --help"] = (
        "from lkproto.transports.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:"
        "\n    pass"
    )
    out: dict[str, dict[str, list[str]]] = {}
    for variant in VARIANTS:
        for what, code in codes.items():
            found = run(
                [str(PY), "-c", f"import sys\n{code}\n{report}"], variant, capture_output=True
            ).stderr.split()
            out.setdefault(variant, {})[what] = found
    return out


# -- process start to data-ready (the server, the Go peer) ------------------------------------


async def start_to_data(args: argparse.Namespace) -> dict[str, Any]:
    import anyio

    from harness import LiveKitServer, confine, mint_token
    from harness.gopeer import GO_PEER_BIN, GoPeer
    from harness.netns import release

    class TimedPeer(GoPeer):
        """A `GoPeer` that notes when each event line arrived (parent's monotonic clock)."""

        def _add(self, name: str, fields: dict[str, Any]) -> None:
            fields.setdefault("_at", time.monotonic())
            super()._add(name, fields)

    kinds = ["go", *VARIANTS]
    runs: dict[str, list[dict[str, float]]] = {kind: [] for kind in kinds}
    confinement = confine()
    try:
        if confinement.mode != "netns":
            raise SystemExit(
                "data-ready needs the harness's network namespace (run as root): the Go SDK "
                "cannot be told which addresses to gather ICE candidates from"
            )
        with (
            LiveKitServer(confinement) as server,
            tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp,
        ):
            log_dir = Path(tmp)
            room = "startup"

            async def spawn(
                argv: list[str], env: dict[str, str], name: str, tg: Any
            ) -> tuple[TimedPeer, Any]:
                stderr_path = log_dir / f"{name}.log"
                with open(stderr_path, "wb") as stderr:
                    process = await anyio.open_process(
                        argv, stdin=-1, stdout=-1, stderr=stderr, env=env, cwd=NEUTRAL_CWD
                    )
                peer = TimedPeer(process, stderr_path)
                tg.start_soon(peer._read)
                return peer, process

            async def stop(peer: TimedPeer, process: Any) -> None:
                with anyio.move_on_after(5):
                    await peer.disconnect(timeout=5)
                    await process.wait()
                if process.returncode is None:
                    process.kill()
                    with anyio.move_on_after(5):
                        await process.wait()
                await process.aclose()

            async def one(
                kind: str, n: int, observer: TimedPeer, tg: Any, trace: bool = False
            ) -> dict[str, float]:
                identity = f"{kind}-{n}" + ("-trace" if trace else "")
                env = child_env(
                    "lkproto" if kind == "go" else kind,
                    LIVEKIT_URL=server.url,
                    LIVEKIT_TOKEN=mint_token(identity, room),
                    LKPROTO_BENCH_HOST=confinement.host,
                )
                argv = [str(GO_PEER_BIN)] if kind == "go" else [str(PY), "-c", CHILD]
                if trace:
                    env["LKPROTO_BENCH_TRACE"] = "1"
                t0_ns = time.time_ns()
                t0 = time.monotonic()
                env["LKPROTO_BENCH_T0"] = str(t0_ns)
                peer, process = await spawn(argv, env, identity, tg)
                try:
                    joined = await peer.wait_event("joined", timeout=LIMIT)
                    await peer.wait_event("ready", timeout=LIMIT)
                    await peer.do(
                        "publish_data",
                        payload=base64.b64encode(identity.encode()).decode(),
                        reliable=True,
                        destinations=["observer"],
                    )
                    data = await observer.wait_event(
                        "data", lambda f: f["sender"] == identity, timeout=LIMIT
                    )
                    out = {"joined": joined["_at"] - t0, "data": data["_at"] - t0}
                    imported = peer.of("imported")
                    if imported:
                        out["imported"] = (imported[0]["ns"] - t0_ns) / 1e9
                finally:
                    with anyio.CancelScope(shield=True):
                        await stop(peer, process)
                if trace:
                    text = (log_dir / f"{identity}.log").read_text(errors="replace")
                    print(f"-- trace of one start ({identity}):", file=sys.stderr)
                    print(text.replace(env["LIVEKIT_TOKEN"], "<token>"), file=sys.stderr)
                return out

            async with anyio.create_task_group() as tg:
                observer, obs_process = await spawn([str(GO_PEER_BIN)], child_env(), "obs", tg)
                try:
                    await observer.wait_event("ready", timeout=LIMIT)
                    await observer.connect(server.url, mint_token("observer", room))
                    for kind in kinds:  # warm-up: caches, the server's room, the page cache
                        await one(kind, 0, observer, tg)
                    for n in range(1, args.rounds + 1):
                        order = kinds[n % len(kinds) :] + kinds[: n % len(kinds)]  # rotated
                        for kind in order:
                            runs[kind].append(await one(kind, n, observer, tg))
                            print(f"round {n} {kind}: {runs[kind][-1]}", file=sys.stderr)
                    if args.trace:
                        for variant in VARIANTS:
                            await one(variant, args.rounds + 1, observer, tg, trace=True)
                finally:
                    with anyio.CancelScope(shield=True):
                        await stop(observer, obs_process)
                tg.cancel_scope.cancel()
    finally:
        release(confinement)
    out: dict[str, Any] = {}
    for kind, rows in runs.items():
        out[kind] = {k: _median_ms([r[k] for r in rows]) for k in rows[0]}
        out[kind]["data_runs_ms"] = [round(r["data"] * 1000) for r in rows]
    return out


def render(results: dict[str, Any]) -> str:
    lines = [
        f"load average (1/5/15 min) before / after: {results['load_before']} / "
        f"{results['load_after']}"
    ]
    if results.get("baseline"):
        lines.append(f"baseline: {results['baseline']}")
    if "data_ready" in results:
        d = results["data_ready"]
        go = d["go"]
        lines += [
            "",
            f"Process start -> data-ready, median of {results['rounds']} interleaved rounds (ms)",
            "",
            "| participant | imported | joined | data received by the observer | vs Go |",
            "|---|---:|---:|---:|---:|",
            f"| Go SDK | | {go['joined']:.0f} | {go['data']:.0f} | 1.00x |",
        ]
        for variant in VARIANTS:
            r = d[variant]
            lines.append(
                f"| {variant} (anyio, asyncio) | {r['imported']:.0f} | {r['joined']:.0f} "
                f"| {r['data']:.0f} | {r['data'] / go['data']:.2f}x |"
            )
        lines += [
            "",
            "runs (data, ms): " + "; ".join(f"{k} {v['data_runs_ms']}" for k, v in d.items()),
        ]
    h = results["help"]
    lines += ["", f"`python -c pass`: {h['python_pass_ms']:.0f} ms (median, interleaved)"]
    for variant in VARIANTS:
        lines.append(
            f"`lkproto --help` ({variant}): median {h[variant]['help_ms']:.0f} ms over "
            f"{len(h[variant]['runs_ms'])} runs {h[variant]['runs_ms']}"
        )
    lines.append("")
    for variant, adapters in results["imports"].items():
        for adapter, r in adapters.items():
            lines.append(
                f"`import lkproto.transports.{adapter}` ({variant}): {r['cumulative_ms']:.0f} ms "
                f"cumulative (median; runs {r['runs_ms']})"
            )
    for variant, adapters in results["imports"].items():
        lines += [
            "",
            f"Top cumulative lines, `import lkproto.transports.anyio` ({variant}, median run):",
            "",
            "| cumulative ms | self ms | module |",
            "|---:|---:|---|",
        ]
        lines += [f"| {c} | {s} | `{n.strip()}` |" for c, s, n in adapters["anyio"]["top"]]
    lines += ["", "Heavy packages loaded:", ""]
    for variant, found_by in results["heavy"].items():
        for what, found in found_by.items():
            lines.append(f"- {variant}, `{what}`: {', '.join(found) or 'none of them'}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--help-runs", type=int, default=15)
    parser.add_argument("--import-runs", type=int, default=15)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--baseline", metavar="REV", help="also measure this git revision")
    parser.add_argument("--no-data", action="store_true", help="skip the server measure")
    parser.add_argument("--trace", action="store_true", help="one traced start per variant")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-startup-baseline-") as tree:
        if args.baseline:
            export_baseline(args.baseline, Path(tree))
            VARIANTS["baseline"] = tree
        results: dict[str, Any] = {
            "load_before": load(),
            "rounds": args.rounds,
            "baseline": args.baseline,
        }
        warm_caches()
        results["heavy"] = heavy_modules()
        results["help"] = help_times(args.help_runs)
        results["imports"] = import_times(args.import_runs, args.top)
        if not args.no_data:
            import anyio

            results["data_ready"] = anyio.run(start_to_data, args)
        results["load_after"] = load()
    print(json.dumps(results) if args.json else render(results))


if __name__ == "__main__":
    main()
