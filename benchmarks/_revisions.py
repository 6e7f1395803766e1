"""Benchmarks that compare this tree with an earlier revision: that revision's code, laid out
where an import finds it (bench_startup.py, bench_datapath.py `--baseline REV`)."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

__all__ = ["export_baseline"]


def export_baseline(rev: str, into: Path) -> None:
    """REV's lkproto/ and transports/ laid out as the installed package (lkproto.transports)."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "lkproto", "transports"],
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True, timeout=60)
    (into / "transports").rename(into / "lkproto" / "transports")
