"""Where a suite run's wall time went, from the timeline the tests write.

    LKPROTO_TIMELINE=/tmp/timeline.jsonl make test
    .venv/bin/python scripts/test_timeline.py /tmp/timeline.jsonl

Each test appends [worker, test id, start, end] (tests/conftest.py). This prints the wall
time, each worker's busy share, how many tests ran at once over time (30 s buckets), each
file's summed duration and the slowest tests.
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
    for worker, _, start, stop in rows:
        busy[worker] += stop - start
    for worker in sorted(busy):
        print(f"  {worker}: busy {busy[worker]:.0f} s ({busy[worker] / (end - begin):.0%})")
    print("tests running at once, per 30 s (mean):")
    step = 30.0
    t = begin
    while t < end:
        overlap = sum(max(0.0, min(stop, t + step) - max(start, t)) for _, _, start, stop in rows)
        print(f"  {t - begin:5.0f} s  {overlap / step:4.1f}")
        t += step
    files: Counter[str] = Counter()
    for _, test, start, stop in rows:
        files[test.split("::")[0]] += stop - start
    print("by file (summed):")
    for name, seconds in files.most_common(15):
        print(f"  {seconds:6.0f} s  {name}")
    print("slowest tests:")
    for worker, test, start, stop in sorted(rows, key=lambda r: r[2] - r[3])[:15]:
        print(f"  {stop - start:6.1f} s  {start - begin:5.0f} s  {worker}  {test}")


if __name__ == "__main__":
    main(sys.argv[1])
