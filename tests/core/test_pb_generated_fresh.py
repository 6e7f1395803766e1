"""The committed lkproto/_pb/ output equals a fresh run of proto/generate.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
GENERATOR = REPO_ROOT / "proto" / "generate.py"


def test_generated_code_is_fresh() -> None:
    proc = subprocess.run(
        [sys.executable, str(GENERATOR), "--check"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, (
        "lkproto/_pb/ is stale or the pinned generator is unavailable "
        f"(exit {proc.returncode}):\n{proc.stdout}{proc.stderr}"
    )
