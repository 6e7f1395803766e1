"""A short leak check (issue 26): connect/disconnect cycles of one Room leak no memory or fds.

A fresh process (benchmarks/soak.py --url, in this worker's network namespace, against this
worker's server) connects and disconnects one anyio `Room` WARM + MEASURED times, sampling its
RSS and open descriptors every STEP cycles. RSS is per process, so earlier tests of this
xdist worker weigh nothing. Measured on the shared 2-core machine under load: about 4 KiB per
cycle after the warm-up (allocator slack, tapering), 0 descriptors; a leak of 100 KiB per
cycle (`--leak-kib 100`) reads as about 103. The bound, 50 KiB per cycle, sits between.
The growth discounts the largest single step between samples, so one allocator arena being
touched at once (tens of MiB, seen in the long soaks) cannot fail the check, while a steady
leak still shows in every other step. The full soaks are benchmarks/soak.py's (RESULTS.md).
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

SOAK = Path(__file__).resolve().parents[2] / "benchmarks" / "soak.py"
WARM, MEASURED, STEP = 20, 60, 5
BOUND_KIB = 50.0


def growth_kib_per_cycle(samples: list[tuple[float, float, int]], step: int, warm: int) -> float:
    """RSS growth per cycle after `warm` cycles, from RSS samples taken every `step` cycles,
    without the largest single step between two samples."""
    rss = [mib for i, (_, mib, _) in enumerate(samples) if (i + 1) * step >= warm]
    steps = [b - a for a, b in itertools.pairwise(rss)]
    if len(steps) < 2:
        raise ValueError("fewer than three samples after the warm-up")
    return (sum(steps) - max(steps)) * 1024 / (step * (len(steps) - 1))


def test_the_estimate_sees_a_steady_leak_and_ignores_one_jump() -> None:
    flat = [(0.0, 90.0 + 0.02 * i, 11) for i in range(16)]
    jump = [(t, mib + (24 if i >= 9 else 0), f) for i, (t, mib, f) in enumerate(flat)]
    leak = [(0.0, 90.0 + i * 5 * 100 / 1024, 11) for i in range(16)]
    assert growth_kib_per_cycle(flat, 5, 20) == pytest.approx(4.096)
    assert growth_kib_per_cycle(jump, 5, 20) == pytest.approx(4.096)
    assert growth_kib_per_cycle(leak, 5, 20) == pytest.approx(100)
    with pytest.raises(ValueError, match="fewer than three"):
        growth_kib_per_cycle(flat[:5], 5, 20)


def cycles(server: Any, host: str, leak_kib: int = 0) -> dict[str, Any]:
    argv = [
        *(sys.executable, str(SOAK), "--cycles", str(WARM + MEASURED), "--warm", str(WARM)),
        *("--sample-cycles", str(STEP), "--url", server.url, "--host", host, "--json"),
        *("--leak-kib", str(leak_kib)),
    ]
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=80, stdin=subprocess.DEVNULL
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.mark.heavy("media")  # real time: the media lane, first call on the CPU (harness/phases.py)
@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_connect_disconnect_cycles_leak_neither_memory_nor_descriptors(
    livekit_server: Any, confinement: Any
) -> None:
    result = cycles(livekit_server, confinement.host)
    per_cycle = growth_kib_per_cycle(result["samples"], STEP, WARM)
    detail = f"{per_cycle:.1f} KiB per cycle; samples (s, RSS MiB, fds) {result['samples']}"
    assert per_cycle < BOUND_KIB, detail
    assert result["end_fds"] <= result["warm_fds"], detail
    assert max(f for _, _, f in result["samples"]) <= result["warm_fds"] + 2, detail
