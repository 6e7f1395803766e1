"""Core data-packet cost vs raw protobuf, measured side by side in one run.

For 100 B and 15 KiB payloads:
- core: `publish_data` on one Connection, its `SendDataPacket` bytes fed to a second
  Connection's `receive_data_packet`, and the `DataReceived` event drained (packets/s);
- raw: the same DataPacket built, serialized and parsed with the generated classes.
The ratio core/raw per packet is the figure of merit (target: <= 5x). Loops are bounded by
count; nothing touches the network.

Run: .venv/bin/python benchmarks/bench_core.py [--seconds 1.0] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "core"))

from fake_sfu import T0, drain, joined_connection, participant

from lkproto import Channel, Config
from lkproto import commands as cmd
from lkproto import events as ev
from lkproto._pb import data_pb2 as dpb

MAX_ITERATIONS = 2_000_000


def timed(fn: object, seconds: float) -> float:
    """Calls fn() repeatedly for about `seconds` (bounded by MAX_ITERATIONS); returns calls/s."""
    assert callable(fn)
    n, batch = 0, 64
    start = time.perf_counter()
    while n < MAX_ITERATIONS:
        for _ in range(batch):
            fn()
        n += batch
        if time.perf_counter() - start >= seconds:
            break
    return n / (time.perf_counter() - start)


def bench(size: int, seconds: float) -> dict[str, float]:
    config = Config(replay_buffer_bytes=1 << 20)
    sender = joined_connection(config, others=[participant("rx")])
    receiver = joined_connection(config)
    payload = b"x" * size
    seq = [0]

    def core() -> None:
        sender.publish_data(payload, now=T0, topic="bench", destination_identities=["rx"])
        (out,) = sender.commands_to_send()
        assert isinstance(out, cmd.SendDataPacket)
        # The server stamps identity, SID and keeps the sequence; emulate its forward.
        receiver.receive_data_packet(out.data, channel=Channel.RELIABLE, now=T0)
        event = receiver.next_event()
        assert isinstance(event, ev.DataReceived)

    def raw() -> None:
        seq[0] += 1
        packet = dpb.DataPacket(
            user=dpb.UserPacket(payload=payload, topic="bench", participant_identity="me",
                                destination_identities=["rx"]),
            destination_identities=["rx"],
            sequence=seq[0],
        )  # fmt: skip
        data = packet.SerializeToString()
        parsed = dpb.DataPacket.FromString(data)
        assert parsed.user.payload

    core()  # warm up; also proves the path works
    drain(receiver)
    core_rate = timed(core, seconds)
    raw_rate = timed(raw, seconds)
    return {"size": size, "core_pps": core_rate, "raw_pps": raw_rate, "ratio": raw_rate / core_rate}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = [bench(size, args.seconds) for size in (100, 15 * 1024)]
    if args.json:
        print(json.dumps(rows))
        return
    print(
        f"{'payload':>8}  {'core packets/s':>15}  {'raw pb packets/s':>17}  {'core cost / raw':>16}"
    )
    for r in rows:
        print(
            f"{int(r['size']):>8}  {r['core_pps']:>15,.0f}  "
            f"{r['raw_pps']:>17,.0f}  {r['ratio']:>15.2f}x"
        )


if __name__ == "__main__":
    main()
