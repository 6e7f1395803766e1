"""Lint, format and types (scripts/check-static.sh), as tests of the suite.

They used to run before pytest in `make test`, about 40 s on a clean clone (mypy without its
cache) while every worker waited. Here they are tests like the others, started early (`slow`,
harness/phases.py) so that they never end last. A failure shows the tool's own output.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.parametrize("check", ["lint", "typecheck"])
def test_the_tree_passes(check: str, tmp_path: Path) -> None:
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "check-static.sh"), check],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={
            "PATH": "/usr/bin:/bin",
            "VENV": str(Path(sys.executable).parent.parent),
            "MYPY_SITE": str(tmp_path / "mypy-site"),
        },
    )
    assert result.returncode == 0, f"{check} failed:\n{result.stdout}\n{result.stderr}"
