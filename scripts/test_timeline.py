"""Where a suite run's wall time went, from the timeline the tests write.

    LKPROTO_TIMELINE=/tmp/timeline.jsonl make test
    .venv/bin/python scripts/test_timeline.py /tmp/timeline.jsonl

Each test appends [worker, test id, start, end, CPU of the worker process, CPU of the worker
with its descendants: its livekit-server, peers, browsers, whether it failed]
(tests/conftest.py). This prints
the wall time, each worker's busy share, how many tests ran at once over time (30 s buckets),
each file's summed duration and CPU, the slowest tests and the most CPU-hungry ones.
"""

from __future__ import annotations

import json
import sys
from collections import Counter, defaultdict
from typing import Any


def main(path: str) -> None:
    with open(path) as lines:
        rows: list[Any] = [json.loads(line) for line in lines if line.strip()]
    if not rows:
        raise SystemExit(f"{path}: no tests recorded")
    begin = min(r[2] for r in rows)
    end = max(r[3] for r in rows)
    print(f"{len(rows)} tests, wall {end - begin:.0f} s")
    busy: dict[str, float] = defaultdict(float)
    for worker, _, start, stop, *_ in rows:
        busy[worker] += stop - start
    cpu = [r[5] if len(r) > 5 else 0.0 for r in rows]
    print(f"CPU of the tests (workers and their descendants): {sum(cpu):.0f} s")
    for worker in sorted(busy):
        print(f"  {worker}: busy {busy[worker]:.0f} s ({busy[worker] / (end - begin):.0%})")
    print("tests running at once, per 30 s (mean):")
    step = 30.0
    t = begin
    while t < end:
        overlap = sum(max(0.0, min(r[3], t + step) - max(r[2], t)) for r in rows)
        print(f"  {t - begin:5.0f} s  {overlap / step:4.1f}")
        t += step
    files: Counter[str] = Counter()
    file_cpu: dict[str, float] = defaultdict(float)
    for row, used in zip(rows, cpu, strict=True):
        files[row[1].split("::")[0]] += row[3] - row[2]
        file_cpu[row[1].split("::")[0]] += used
    print("by file (summed wall, summed CPU):")
    for name, seconds in files.most_common(25):
        print(f"  {seconds:6.0f} s  {file_cpu[name]:6.0f} s  {name}")
    for row in rows:
        if len(row) > 6 and row[6]:
            print(f"FAILED at {row[2] - begin:.0f} s on {row[0]}: {row[1]}")
    print("slowest tests (wall, start, CPU):")
    for row in sorted(rows, key=lambda r: r[2] - r[3])[:20]:
        used = row[5] if len(row) > 5 else 0.0
        at = row[2] - begin
        print(f"  {row[3] - row[2]:6.1f} s  {at:5.0f} s  {used:5.1f} s  {row[0]}  {row[1]}")
    print("most CPU (CPU, wall):")
    for row in sorted(rows, key=lambda r: -(r[5] if len(r) > 5 else 0.0))[:20]:
        used = row[5] if len(row) > 5 else 0.0
        print(f"  {used:6.1f} s  {row[3] - row[2]:6.1f} s  {row[0]}  {row[1]}")


if __name__ == "__main__":
    main(sys.argv[1])
