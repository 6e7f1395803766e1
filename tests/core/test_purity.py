"""The sans-I/O rule, enforced: nothing under lkproto/ imports I/O, clocks or randomness."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LKPROTO = Path(__file__).resolve().parents[2] / "lkproto"
BANNED = frozenset(
    {
        "asyncio", "anyio", "trio", "threading", "socket", "ssl", "select", "time",
        "random", "secrets", "uuid", "os", "aiortc", "aioice", "wsproto", "websockets",
        "subprocess", "selectors", "multiprocessing", "concurrent", "io", "pathlib",
        "shutil", "tempfile", "logging", "datetime", "signal", "http",
    }
)  # fmt: skip
# Modules banned by full name where their package is otherwise pure (urllib.parse is fine).
BANNED_EXACT = frozenset({"urllib.request", "urllib.response", "urllib.robotparser"})


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "__import__"
        ):
            found.append((node.lineno, "__import__(...)"))
    return found


def core_sources() -> list[Path]:
    return sorted(LKPROTO.rglob("*.py"))


def test_core_has_sources() -> None:
    assert (LKPROTO / "__init__.py") in core_sources()


@pytest.mark.parametrize("path", core_sources(), ids=lambda p: str(p.relative_to(LKPROTO)))
def test_core_module_imports_no_io_clock_or_randomness(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    bad = [
        f"{path.name}:{line} imports {name}"
        for line, name in imported_modules(tree)
        if name.split(".")[0] in BANNED or name in BANNED_EXACT or name == "__import__(...)"
    ]
    assert bad == []


def test_the_checker_catches_banned_imports() -> None:
    tree = ast.parse("import os\nfrom time import monotonic\nimport attrs\n__import__('x')")
    names = [name for _, name in imported_modules(tree)]
    assert names == ["os", "time", "attrs", "__import__(...)"]


def test_importing_the_core_loads_no_banned_module() -> None:
    """Transitively, too: a fresh interpreter importing lkproto pulls in no I/O module."""
    import subprocess
    import sys

    probe = (
        "import sys; before = set(sys.modules); import lkproto, lkproto._pb; "
        "print('\\n'.join(sorted(set(sys.modules) - before)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    ).stdout.split()
    # protobuf's runtime itself may import stdlib helpers; what matters is that no I/O
    # framework (asyncio, trio, aiortc, sockets, ...) is dragged in by the core.
    frameworks = {"asyncio", "anyio", "trio", "aiortc", "aioice", "wsproto", "websockets", "socket"}
    assert sorted({m.split(".")[0] for m in out} & frameworks) == []
