"""The shape the type checker and the import system hold the transports to.

Exhaustive dispatch: wherever the adapters (and the memory room) react to the core's events
or commands, they `match` on the union with `case _: assert_never(...)` last, so that `mypy
--strict` (in `make lint`/`make typecheck`) fails when a new event or command type is not
handled. Running mypy here would be slow; these tests check that the matches are still there
and that their subjects are typed with the unions, which is what makes mypy's check bite.

Imports: the transports' import graph has no cycles, and nothing in the core imports them.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, get_args, get_type_hints

import pytest

from lkproto import commands as cmd
from lkproto import events as ev
from lkproto.testing._room import _Driven
from lkproto.transports import _aiortc, _ports, _pump, _room, _rpc, _session, _streams
from lkproto.transports.testing import _memory

REPO = Path(__file__).resolve().parents[2]

# (function, the parameter matched on or None for a local, the union it must be typed with)
DISPATCH: list[tuple[Callable[..., Any], str | None, object]] = [
    (_room.RoomModel.apply, "event", ev.Event),
    (_session.Session.deliver, "event", ev.Event),
    (_streams.Streams.on_event, "event", _streams.StreamEvent),
    (_rpc.Rpc.on_event, "event", _rpc.RpcEvent),
    (_pump.Pump.flush, None, cmd.Command),
    (_session.Session._send, "item", cmd.SendSignal | cmd.CloseSignal | bytes),
    (_aiortc.AiortcPeer._execute, "command", _aiortc._Queued),
    (_memory._MemoryPeer.submit, "command", _ports.PeerCommand),
    (_Driven._carry_out, "command", cmd.Command),
]


def _matches(fn: Callable[..., Any]) -> Iterator[ast.Match]:
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    yield from (node for node in ast.walk(tree) if isinstance(node, ast.Match))


def _ends_in_assert_never(match: ast.Match) -> bool:
    last = match.cases[-1]
    wildcard = isinstance(last.pattern, ast.MatchAs) and last.pattern.pattern is None
    call = last.body[0] if len(last.body) == 1 else None
    return (
        wildcard
        and isinstance(call, ast.Expr)
        and isinstance(call.value, ast.Call)
        and isinstance(call.value.func, ast.Name)
        and call.value.func.id == "assert_never"
        and ast.dump(call.value.args[0]) == ast.dump(match.subject)
    )


@pytest.mark.parametrize(
    ("fn", "param", "union"), DISPATCH, ids=lambda x: getattr(x, "__qualname__", "")
)
def test_core_events_and_commands_are_dispatched_exhaustively(
    fn: Callable[..., Any], param: str | None, union: object
) -> None:
    assert any(_ends_in_assert_never(m) for m in _matches(fn)), f"{fn.__qualname__}: no match"
    if param is not None:
        assert get_type_hints(fn)[param] == union


def test_the_pump_routes_every_command_to_exactly_one_port() -> None:
    signal, peer = set(get_args(_ports.SignalCommand)), set(get_args(_ports.PeerCommand))
    work = {cmd.DeriveRatchets}  # the WorkPort's (key derivation off the event loop)
    assert not signal & peer and not (signal | peer) & work
    assert signal | peer | work == set(get_args(cmd.Command))
    queued = set(get_args(_aiortc._Queued))
    assert queued | {cmd.SendDataPacket} == peer  # the rest goes out at once


def test_the_session_routes_stream_and_rpc_events_to_their_parts() -> None:
    streams, rpc = set(get_args(_streams.StreamEvent)), set(get_args(_rpc.RpcEvent))
    assert not streams & rpc
    assert streams | rpc <= set(get_args(ev.Event))
    assert {t.__name__ for t in streams} == {
        n for n in ev.__all__ if n.startswith("Stream") and isinstance(getattr(ev, n), type)
    } - {"StreamInfo", "StreamError"}


# -- imports --------------------------------------------------------------------------------------


def _module_name(path: Path) -> str:
    rel = path.relative_to(REPO / "transports").with_suffix("")
    parts = ["lkproto", "transports", *rel.parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_imports(path: Path, name: str, modules: set[str]) -> set[str]:
    """What `name` imports from the transports when it runs (not under TYPE_CHECKING)."""
    tree = ast.parse(path.read_text())
    skip = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"
        for n in ast.walk(node)
    }
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in modules else target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m in modules and m != name}


def test_the_transports_import_graph_has_no_cycles() -> None:
    paths = {_module_name(p): p for p in (REPO / "transports").rglob("*.py")}
    graph = {name: _runtime_imports(path, name, set(paths)) for name, path in paths.items()}
    assert graph["lkproto.transports._session"] >= {
        "lkproto.transports._pump",
        "lkproto.transports._streams",
        "lkproto.transports._rpc",
    }
    done: set[str] = set()

    def visit(name: str, trail: tuple[str, ...]) -> None:
        assert name not in trail, " -> ".join([*trail[trail.index(name) :], name])
        if name not in done:
            for dependency in sorted(graph[name]):
                visit(dependency, (*trail, name))
            done.add(name)

    for name in sorted(graph):
        visit(name, ())


def test_the_core_never_imports_the_transports() -> None:
    for path in (REPO / "lkproto").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            assert not [
                n for n in names if n.split(".")[:2] in (["lkproto", "transports"], ["transports"])
            ], path
