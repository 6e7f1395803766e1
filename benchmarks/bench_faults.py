"""Faults (issue 10): N rounds of each fault on each adapter, reliable data kept or lost.

Every round, one lkproto Room (the adapter under test) and one official `livekit` participant
join a fresh room on a `FaultServer` (tests/harness/faults.py: a livekit-server in its own
network namespace, behind a link the harness can cut). lkproto then sends numbered 4 KiB
reliable packets to the official peer, one every 10 ms, from --lead seconds before the fault
until --tail seconds after our `reconnected` (at most --max-packets). The official peer
records what arrives. After the traffic, one packet each way proves the session works.

Faults (--scenarios):
- signal_reconnect, full_reconnect, node_failure, migration: `room.simulate_scenario(...)`
  with that `lkproto.SimulateScenario`;
- disconnect_signal_on_resume, disconnect_signal_on_resume_no_messages: the same call; the
  client then drops its own signal (as client-sdk-js does), and the server cuts the resume
  that follows, as in tests/e2e/test_resilience.py;
- server_kill_restart: the server SIGKILLed, 1 s later restarted on the same address;
- network_cut: the link cut (every frame dropped, no RST) for --cut-seconds (default 17,
  longer than the 15 s ping timeout), then restored.

Reported per scenario x adapter, summed over the rounds:
- recovered: rounds that reached `reconnected` (and, for the two disconnect-on-resume
  scenarios, the connected state) within --recover-limit seconds of the fault's end, had the
  official peer back in `remote_participants`, and then exchanged one packet each way;
- sent: packets whose `publish_data` returned; received: distinct numbers the peer got;
  lost: sent numbers never received; duplicated: receptions beyond the first of a number;
  reordered: first receptions of a number lower than one received before it;
- reconnects: our `reconnecting` events (more than one per round: the session broke again
  while or after recovering);
- recovery p50/max: seconds from the start of the fault to our last `reconnected` event
  before --tail seconds of staying connected (so for network_cut it includes the cut
  itself, for server_kill_restart the 1 s outage and the restart).

Servers: one FaultServer per scenario for the SimulateScenario faults (the server survives
them; every round has a room of its own), a fresh one per scenario x adapter for
server_kill_restart and network_cut.

Confinement as in the tests: as root the process first moves into a private network
namespace (the harness's `confine()`), and each FaultServer lives in a namespace of its own
joined to it by a veth pair; lkproto binds `RtcConfiguration(host_addresses=[client_host])`.
Without root the server runs on 127.0.0.1 and network_cut is skipped. Every wait is bounded
(each round also has a hard time limit), and the sender by --max-packets.

Run: .venv/bin/python benchmarks/bench_faults.py [--rounds 3] [--adapters a,b]
         [--scenarios a,b] [--cut-seconds 17] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from harness import Confinement, confine, mint_token
from harness.netns import release

T = TypeVar("T")

SIMULATED = (
    "signal_reconnect",
    "full_reconnect",
    "node_failure",
    "migration",
    "disconnect_signal_on_resume",
    "disconnect_signal_on_resume_no_messages",
)
SCENARIOS = (*SIMULATED, "server_kill_restart", "network_cut")
ADAPTERS = ("anyio-asyncio", "anyio-trio", "trio", "threaded")
BACKEND = {"anyio-asyncio": "asyncio", "anyio-trio": "trio", "trio": "trio", "threaded": "asyncio"}

PACKET_BYTES = 4096
INTERVAL = 0.010  # seconds between packets
TOPIC = "fault-bench"
JOIN_LIMIT = 30.0  # seconds: both participants in the room
PEER_LIMIT = 40.0  # the official peer's own reconnect, after a kill or a cut
EXCHANGE_LIMIT = 20.0  # one packet each way after the fault
DRAIN_LIMIT = 15.0  # the peer receiving what we sent, after the sender stopped
DUPLICATE_GRACE = 0.5  # room for a late duplicate to show up
QUIET = 3.0  # the drain also ends once nothing more arrived for this long
LEAVE_LIMIT = 15.0  # each participant's disconnect at the end of a round
SENDER_GRACE = 5.0  # the sender's last publish_data, after it is told to stop


def payload(n: int) -> bytes:
    return n.to_bytes(4, "big") + bytes([n % 251]) * (PACKET_BYTES - 4)


@dataclass
class Round:
    """What one round measured."""

    reconnected: bool = False
    recovered: bool = False
    recovery_s: float | None = None  # fault start -> our `reconnected`
    after_fault_s: float | None = None  # fault end (restart/restore done) -> `reconnected`
    reconnects: int = 0  # our `reconnecting` events
    sent: list[int] = field(default_factory=list)
    received: list[int] = field(default_factory=list)  # in arrival order, with repeats
    corrupt: int = 0  # received packets whose bytes do not match their number
    send_errors: list[str] = field(default_factory=list)
    cancelled_in_flight: int | None = None  # a publish cut off by the round's limits
    error: str | None = None
    seconds: float = 0.0


class Recorder:
    """A Room's events as (name, args, monotonic time), with an awaitable condition."""

    def __init__(self, room: Any, *names: str) -> None:
        import anyio

        self._anyio = anyio
        self.records: list[tuple[str, tuple[Any, ...], float]] = []
        self._changed: Any = None
        for name in names:
            room.on(name, functools.partial(self._add, name))

    def _add(self, name: str, *args: Any) -> None:
        self.records.append((name, args, time.monotonic()))
        if self._changed is not None:
            self._changed.set()

    def times(self, name: str) -> list[float]:
        return [t for n, _, t in self.records if n == name]

    def of(self, name: str) -> list[tuple[Any, ...]]:
        return [a for n, a, _ in self.records if n == name]

    def names(self) -> list[str]:
        return [n for n, _, _ in self.records]

    async def wait_for(self, predicate: Callable[[], T | None], timeout: float) -> T:
        with self._anyio.move_on_after(max(0.0, timeout)):
            while not (value := predicate()):
                self._changed = self._anyio.Event()
                await self._changed.wait()
            return value
        raise TimeoutError(f"not within {timeout:.0f}s; the room emitted {self.names()[-12:]}")


def _bench_numbers(
    records: list[tuple[str, tuple[Any, ...]]], check: bool = False
) -> tuple[list[int], int]:
    """The numbers of our packets the official peer received, in order; and (if `check`) how
    many were corrupt."""
    numbers, corrupt = [], 0
    for name, args in list(records):
        if name == "data" and args[2] == TOPIC:
            data: bytes = args[1]
            n = int.from_bytes(data[:4], "big")
            numbers.append(n)
            corrupt += check and data != payload(n)
    return numbers, corrupt


def _describe(exc: BaseException) -> str:
    """The innermost errors of `exc` (task groups wrap them), as one line."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in exc.exceptions)
    return f"{type(exc).__name__}: {exc}"


def ranges(numbers: set[int]) -> str:
    """`{1, 2, 3, 7}` as "1-3,7"."""
    out: list[str] = []
    for n in sorted(numbers):
        if out and n - 1 in numbers:
            out[-1] = f"{out[-1].split('-')[0]}-{n}"
        else:
            out.append(str(n))
    return ",".join(out)


async def run_round(
    scenario: str,
    adapter: str,
    index: int,
    server: Any,
    official_loop: Any,
    args: argparse.Namespace,
) -> Round:
    import anyio

    from harness.adapters import room_class
    from harness.official import OfficialPeer
    from lkproto.transports.anyio import (
        ConnectionState,
        RoomOptions,
        RtcConfiguration,
        SimulateScenario,
    )

    result = Round()
    started = time.monotonic()
    name = f"faults-{scenario}-{adapter}-{index}-{int(started * 1000) % 1_000_000}"
    options = RoomOptions(
        auto_subscribe=False, rtc_config=RtcConfiguration(host_addresses=[server.client_host])
    )
    peer = OfficialPeer(official_loop)
    room = room_class(adapter)()
    seen = Recorder(
        room,
        "reconnecting",
        "reconnected",
        "disconnected",
        "data_received",
        "participant_connected",  # wakes the waits on remote_participants
        "connection_state_changed",  # ... and on connection_state
    )
    stop = anyio.Event()
    sender_done = anyio.Event()

    async def sender() -> None:
        n = 0
        try:
            while not stop.is_set() and n < args.max_packets:
                result.cancelled_in_flight = n
                try:
                    await room.local_participant.publish_data(
                        payload(n), reliable=True, topic=TOPIC
                    )
                    result.sent.append(n)
                except Exception as exc:
                    result.send_errors.append(f"#{n}: {type(exc).__name__}: {exc}")
                result.cancelled_in_flight = None
                n += 1
                await anyio.sleep(INTERVAL)
        finally:
            sender_done.set()

    async def fault() -> float:
        """Inject the fault; return when it ended (monotonic)."""
        if scenario in SIMULATED:
            # For the two disconnect-on-resume ones the client drops its own signal once the
            # server has armed the fault (as client-sdk-js does), so a resume follows.
            await room.simulate_scenario(SimulateScenario[scenario.upper()])
        elif scenario == "server_kill_restart":
            await server.akill()
            await anyio.sleep(1.0)
            await server.arestart()
        elif scenario == "network_cut":
            await anyio.to_thread.run_sync(server.cut)
            try:
                await anyio.sleep(args.cut_seconds)
            finally:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(server.restore)
        else:
            raise ValueError(scenario)
        return time.monotonic()

    limit = (
        JOIN_LIMIT
        + args.lead
        + args.cut_seconds
        + 35  # a restart, the simulate calls
        + args.recover_limit
        + PEER_LIMIT
        + args.tail
        + EXCHANGE_LIMIT
        + DRAIN_LIMIT
    )
    try:
        with anyio.fail_after(limit):
            with anyio.fail_after(JOIN_LIMIT):
                await peer.connect(server.url, mint_token("official", name))
                await room.connect(server.url, mint_token("lk", name), options)
                await peer.wait_for(lambda r: ("joined", ("lk",)) in r, JOIN_LIMIT)
                await seen.wait_for(lambda: "official" in room.remote_participants, JOIN_LIMIT)
            async with anyio.create_task_group() as tg:
                tg.start_soon(sender)
                try:
                    await anyio.sleep(args.lead)
                    fault_at = time.monotonic()
                    fault_end = await fault()
                    await seen.wait_for(
                        lambda: seen.of("reconnected"),
                        args.recover_limit - (time.monotonic() - fault_end),
                    )
                    if scenario.startswith("disconnect_signal_on_resume"):
                        # The resume itself is cut at least once more: wait for the last one.
                        await seen.wait_for(
                            lambda: room.connection_state == ConnectionState.CONN_CONNECTED,
                            args.recover_limit - (time.monotonic() - fault_end),
                        )
                    result.reconnected = True
                    if scenario in ("server_kill_restart", "network_cut"):
                        # The official peer went through the same fault.
                        await peer.wait_for(lambda r: ("reconnected", ()) in r, PEER_LIMIT)
                    await seen.wait_for(lambda: "official" in room.remote_participants, PEER_LIMIT)
                    await anyio.sleep(args.tail)
                    # Recovered when connected after the last `reconnected` (a resume the
                    # server cuts again makes another reconnecting/reconnected pair).
                    await seen.wait_for(
                        lambda: room.connection_state == ConnectionState.CONN_CONNECTED,
                        args.recover_limit,
                    )
                    back = seen.times("reconnected")[-1]
                    result.recovery_s = back - fault_at
                    result.after_fault_s = max(0.0, back - fault_end)
                finally:
                    stop.set()
                    with anyio.move_on_after(SENDER_GRACE, shield=True):
                        await sender_done.wait()
                    tg.cancel_scope.cancel()
            with anyio.fail_after(EXCHANGE_LIMIT):
                await room.local_participant.publish_data(b"to-official", topic="ok")
                await peer.wait_for(
                    lambda r: [a for n, a in r if n == "data" and a[1] == b"to-official"],
                    EXCHANGE_LIMIT,
                )
                await peer.do(
                    lambda r: r.local_participant.publish_data(b"to-lk", reliable=True, topic="ok")
                )
                await seen.wait_for(
                    lambda: [a for a in seen.of("data_received") if a[0].data == b"to-lk"],
                    EXCHANGE_LIMIT,
                )
            result.recovered = True
    except Exception as exc:  # a round that fails is reported, and the next one runs
        result.error = _describe(exc)[:400]
    finally:
        # Whatever the round reached: what did the peer get of what we sent?
        # Until all of it arrived, or nothing more did for QUIET seconds (bounded).
        expected = set(result.sent)
        drain_until = time.monotonic() + (DRAIN_LIMIT if result.reconnected else QUIET)
        count, quiet_since = -1, time.monotonic()
        while time.monotonic() < drain_until:
            numbers = _bench_numbers(peer.records)[0]
            if expected <= set(numbers):
                break
            if len(numbers) != count:
                count, quiet_since = len(numbers), time.monotonic()
            elif time.monotonic() - quiet_since > QUIET:
                break
            await anyio.sleep(0.25)
        await anyio.sleep(DUPLICATE_GRACE)
        result.received, result.corrupt = _bench_numbers(peer.records, check=True)
        result.reconnects = seen.names().count("reconnecting")
        with anyio.move_on_after(LEAVE_LIMIT, shield=True):
            with contextlib.suppress(Exception):
                await room.disconnect()
        with anyio.move_on_after(LEAVE_LIMIT, shield=True):
            with contextlib.suppress(Exception):
                await peer.disconnect()
        result.seconds = time.monotonic() - started
    return result


async def run_cell(
    scenario: str, adapter: str, server: Any, official_loop: Any, args: argparse.Namespace
) -> list[Round]:
    rounds = []
    for index in range(args.rounds):
        r = await run_round(scenario, adapter, index, server, official_loop, args)
        lost = len(set(r.sent) - set(r.received))
        print(
            f"  {scenario} / {adapter} round {index + 1}: "
            f"{'recovered' if r.recovered else 'NOT recovered'}"
            + (f" in {r.recovery_s:.3f}s" if r.recovery_s is not None else "")
            + f", sent {len(r.sent)} received {len(set(r.received))} lost {lost}"
            + (f" ({ranges(set(r.sent) - set(r.received))})" if lost else "")
            + f" dup {len(r.received) - len(set(r.received))}, reconnects {r.reconnects},"
            f" {r.seconds:.0f}s"
            + (f"; error: {r.error}" if r.error else "")
            + (f"; send errors: {r.send_errors[:2]}" if r.send_errors else ""),
            file=sys.stderr,
            flush=True,
        )
        rounds.append(r)
    return rounds


def reordered(received: list[int]) -> int:
    """First receptions that arrive after a higher number did."""
    seen: set[int] = set()
    highest, late = -1, 0
    for n in received:
        if n in seen:
            continue
        seen.add(n)
        if n < highest:
            late += 1
        highest = max(highest, n)
    return late


def summarize(rounds: list[Round]) -> dict[str, Any]:
    times = [r.recovery_s for r in rounds if r.recovery_s is not None]
    after = [r.after_fault_s for r in rounds if r.after_fault_s is not None]
    return {
        "rounds": len(rounds),
        "recovered": sum(r.recovered for r in rounds),
        "sent": sum(len(r.sent) for r in rounds),
        "received": sum(len(set(r.received)) for r in rounds),
        "lost": sum(len(set(r.sent) - set(r.received)) for r in rounds),
        "duplicated": sum(len(r.received) - len(set(r.received)) for r in rounds),
        "reordered": sum(reordered(r.received) for r in rounds),
        "corrupt": sum(r.corrupt for r in rounds),
        "send_errors": sum(len(r.send_errors) for r in rounds),
        "reconnects": sum(r.reconnects for r in rounds),
        "recovery_p50_s": statistics.median(times) if times else None,
        "recovery_max_s": max(times) if times else None,
        "after_fault_p50_s": statistics.median(after) if after else None,
        "errors": [r.error for r in rounds if r.error],
    }


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def render(cells: dict[tuple[str, str], dict[str, Any]], skipped: list[str]) -> str:
    lines = [
        "| scenario | adapter | rounds | recovered | sent | received | lost | duplicated "
        "| reordered | reconnects | recovery p50 s | recovery max s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    notes = []
    for (scenario, adapter), s in cells.items():
        lines.append(
            f"| {scenario} | {adapter} | {s['rounds']} | {s['recovered']} | {s['sent']:,} "
            f"| {s['received']:,} | {s['lost']} | {s['duplicated']} | {s['reordered']} "
            f"| {s['reconnects']} | {_s(s['recovery_p50_s'])} | {_s(s['recovery_max_s'])} |"
        )
        if s["corrupt"] or s["send_errors"]:
            notes.append(
                f"- {scenario} / {adapter}: {s['corrupt']} corrupt packets, "
                f"{s['send_errors']} publish_data errors"
            )
        notes.extend(f"- {scenario} / {adapter}: {error}" for error in s["errors"])
    notes.extend(f"- {name}: skipped (network cuts need root)" for name in skipped)
    return "\n".join(lines + (["", *notes] if notes else []))


def _pick(value: str, allowed: tuple[str, ...], what: str) -> list[str]:
    chosen = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [v for v in chosen if v not in allowed]
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)} (choose from {', '.join(allowed)})")
    return chosen


@contextlib.contextmanager
def fault_server(confinement: Confinement) -> Iterator[Any]:
    from harness.faults import FaultServer

    server = FaultServer(confinement)
    try:
        server.start()
        yield server
    finally:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--adapters", default=",".join(ADAPTERS))
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--cut-seconds", type=float, default=17.0)
    parser.add_argument("--lead", type=float, default=0.5, help="seconds of traffic before")
    parser.add_argument("--tail", type=float, default=3.0, help="seconds of traffic after")
    parser.add_argument("--max-packets", type=int, default=2000)
    parser.add_argument(
        "--recover-limit", type=float, default=60.0, help="seconds after the fault's end"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    adapters = _pick(args.adapters, ADAPTERS, "adapters")
    scenarios = _pick(args.scenarios, SCENARIOS, "scenarios")

    confinement = confine()  # before any thread exists
    import anyio

    from harness.official import OfficialLoop

    cells: dict[tuple[str, str], dict[str, Any]] = {}
    raw: dict[str, list[dict[str, Any]]] = {}
    skipped: list[str] = []
    wall = time.monotonic()
    official_loop = OfficialLoop()
    try:
        for scenario in scenarios:
            if scenario == "network_cut" and confinement.mode != "netns":
                skipped.append(scenario)
                continue
            per_adapter = scenario in ("server_kill_restart", "network_cut")
            with contextlib.ExitStack() as shared:
                server = None if per_adapter else shared.enter_context(fault_server(confinement))
                for adapter in adapters:
                    with contextlib.ExitStack() as own:
                        s = server or own.enter_context(fault_server(confinement))
                        rounds = anyio.run(
                            run_cell, scenario, adapter, s, official_loop, args,
                            backend=BACKEND[adapter],
                        )  # fmt: skip
                    cells[(scenario, adapter)] = summarize(rounds)
                    raw[f"{scenario}/{adapter}"] = [asdict(r) for r in rounds]
    finally:
        official_loop.close()
        release(confinement)
    elapsed = time.monotonic() - wall
    if args.json:
        for rounds_ in raw.values():
            for r in rounds_:
                r["sent"], r["received"] = len(r["sent"]), len(r["received"])
        print(json.dumps({"cells": {f"{k[0]}/{k[1]}": v for k, v in cells.items()}, "raw": raw}))
    else:
        print(render(cells, skipped))
        print(f"\nwall time {elapsed:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
