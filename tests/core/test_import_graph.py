"""The core's import graph: no cycles among lkproto's modules, and no way out to transports.

Read from the source with `ast` (nothing is imported): every `import` and `from ... import`
in every module under lkproto/, including those inside functions and `TYPE_CHECKING`
blocks, resolved to the lkproto module it names. `from lkproto import streams` is an edge
to `lkproto.streams`; `from lkproto import Connection` one to the package `lkproto` itself.
"""

from __future__ import annotations

import ast
from pathlib import Path

LKPROTO = Path(__file__).resolve().parents[2] / "lkproto"


def module_name(path: Path) -> str:
    parts = path.relative_to(LKPROTO.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(LKPROTO.rglob("*.py"))}


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules `name` imports (all of them, lkproto's or not), by full name."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in known else base)
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imports(name, path, known) for name, path in mods.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """A cycle among the keys of `edges` (edges to other names are ignored), or None."""
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges[node] & edges.keys()):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def test_the_graph_covers_the_core() -> None:
    g = graph()
    assert {"lkproto", "lkproto._connection", "lkproto._reconnect", "lkproto.testing"} <= set(g)
    assert "lkproto._context" in g["lkproto._connection"]
    assert "lkproto.streams" in g["lkproto"]  # from lkproto import ..., streams


def test_the_core_has_no_import_cycle() -> None:
    assert find_cycle(graph()) is None


def test_nothing_in_the_core_imports_the_transports() -> None:
    bad = {
        f"{name} imports {target}"
        for name, targets in graph().items()
        for target in targets
        if target == "transports" or target.startswith(("transports.", "lkproto.transports"))
    }
    assert bad == set()


def test_the_checkers_can_fail(tmp_path: Path) -> None:
    assert find_cycle({"a": {"b"}, "b": {"c", "x"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from . import _x\nfrom .sub import y\nimport transports.anyio\nfrom lkproto import z",
        encoding="utf-8",
    )
    known = {"lkproto._x", "lkproto.sub", "lkproto"}
    assert imports("lkproto.probe", probe, known) == {
        "lkproto._x",
        "lkproto.sub",
        "transports.anyio",
        "lkproto",
    }
