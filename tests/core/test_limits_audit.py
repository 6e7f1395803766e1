"""docs/limits.md against the code: the limits table may not drift from what lkproto does.

- every `Config` field is either a row of the table (a bound) or listed under "Config fields
  that are not bounds", never both and never neither, so a new field needs a decision;
- each row's default equals the real value: a `Config()` default, a module constant (`a.b.C`,
  subscripts allowed) or a function's parameter default (`a.b.f(param)`); rows on the
  server's settings (`server: ...`) and rows without a setting (`—`) are checked by their
  tests only;
- each named test exists: the file, and the function (or `Class::method`) in it, found by
  parsing the file, so no test module is imported (nor its dependencies).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path
from typing import Any

import attrs
import pytest

from lkproto import Config
from lkproto.models import Channel

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "limits.md"
CODE = re.compile(r"`([^`]+)`")
NODE = re.compile(r"^tests/[\w/]+\.py::[\w:]+(\[.*\])?$")


@attrs.frozen
class Row:
    bound: str
    default: str
    where: str
    tests: tuple[str, ...]
    line: int


def rows(text: str | None = None) -> list[Row]:
    """Every row of every table whose header starts with "| Bound |"."""
    out: list[Row] = []
    in_table = False
    for number, line in enumerate((text or DOC.read_text()).splitlines(), 1):
        if line.startswith("| Bound |"):
            in_table = True
            continue
        if not line.startswith("|"):
            in_table = False
            continue
        if not in_table or line.startswith("|---"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        assert len(cells) == 5, f"docs/limits.md:{number}: expected 5 cells, got {cells}"
        bound, default, where, _, tests = cells
        out.append(Row(bound, default, where, tuple(CODE.findall(tests)), number))
    return out


def not_bounds(text: str | None = None) -> set[str]:
    """The `Config.x` names listed under "Config fields that are not bounds"."""
    doc = text or DOC.read_text()
    section = doc.split("## Config fields that are not bounds", 1)[1].split("\n## ", 1)[0]
    return {n.removeprefix("Config.") for n in CODE.findall(section) if n.startswith("Config.")}


def config_name(row: Row) -> str | None:
    found = CODE.findall(row.where)
    if len(found) == 1 and found[0].startswith("Config."):
        return found[0].removeprefix("Config.")
    return None


_ALLOWED = (
    ast.Expression,
    ast.Constant,
    ast.BinOp,
    ast.UnaryOp,
    ast.Mult,
    ast.Add,
    ast.Sub,
    ast.Pow,
    ast.USub,
)


def evaluate(text: str) -> Any:
    """A default cell: a number expression (`4 * 1024 * 1024`, `64_000`) or `None`."""
    tree = ast.parse(text, mode="eval")
    bad = [type(node).__name__ for node in ast.walk(tree) if not isinstance(node, _ALLOWED)]
    assert not bad, f"not a plain number expression: {text!r} ({bad})"
    return eval(compile(tree, "<default>", "eval"), {"__builtins__": {}})


def resolve(where: str) -> Any:
    """The real value named by a Where cell's code span."""
    call = re.fullmatch(r"([\w.]+)\((\w+)\)", where)
    if call:
        target, parameter = call.groups()
        module, _, name = target.rpartition(".")
        function = getattr(importlib.import_module(module), name)
        return inspect.signature(function).parameters[parameter].default
    if where.startswith("Config."):
        return getattr(Config(), where.removeprefix("Config."))
    dotted = re.match(r"[\w.]+", where)
    assert dotted, where
    parts = dotted.group(0).split(".")
    for cut in range(len(parts), 0, -1):  # the longest importable module prefix
        try:
            module = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        rest = ".".join(parts[cut:]) + where[dotted.end() :]
        namespace = {"m": module, "Channel": Channel, "__builtins__": {}}
        return eval(f"m.{rest}", namespace)
    raise AssertionError(f"cannot resolve {where!r}")


def defined_tests(path: Path) -> set[str]:
    """Names of the module-level test functions of `path`, and `Class::method` pairs."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            found.add(node.name)
        elif isinstance(node, ast.ClassDef):
            for inner in node.body:
                if isinstance(inner, ast.FunctionDef | ast.AsyncFunctionDef):
                    found.add(f"{node.name}::{inner.name}")
    return found


def missing_node(node_id: str) -> str | None:
    """Why `node_id` is not a test in this repository, or None if it is."""
    if not NODE.match(node_id):
        return f"{node_id}: not a pytest node id"
    path, _, name = node_id.partition("::")
    name = name.split("[", 1)[0]
    file = REPO / path
    if not file.is_file():
        return f"{node_id}: no file {path}"
    if not name.split("::")[-1].startswith("test"):
        return f"{node_id}: not a test function"
    if name not in defined_tests(file):
        return f"{node_id}: no {name} in {path}"
    return None


# -- the checks ----------------------------------------------------------------------------------


def test_the_table_has_rows_and_every_row_names_a_test() -> None:
    table = rows()
    assert len(table) >= 30
    assert [r.line for r in table if not r.tests] == []


def test_every_config_field_is_a_row_or_listed_as_not_a_bound() -> None:
    fields = {f.name for f in attrs.fields(Config)}
    bounds = {name for r in rows() if (name := config_name(r)) is not None}
    others = not_bounds()
    assert bounds & others == set(), "listed both as a bound and as not a bound"
    assert others - fields == set(), "listed as not a bound, but not a Config field"
    assert bounds - fields == set(), "a row names a Config field that does not exist"
    assert fields - bounds - others == set(), "Config fields missing from docs/limits.md"


def test_every_max_field_is_a_row() -> None:
    """Whatever else is decided, a `max_*` or `*_bytes` field is a bound."""
    bounds = {name for r in rows() if (name := config_name(r)) is not None}
    sized = {
        f.name
        for f in attrs.fields(Config)
        if f.name.startswith("max_") or f.name.endswith("_bytes")
    }
    assert sized - bounds == set()


@pytest.mark.parametrize("row", rows(), ids=lambda r: f"line{r.line}")
def test_each_default_is_the_real_one(row: Row) -> None:
    where = f"docs/limits.md:{row.line}: {row.bound}"
    if row.where.startswith("server:"):  # the server's setting: proven end to end
        assert [t for t in row.tests if t.startswith("tests/e2e/")], where
        return
    if row.where == "—":  # nothing sets it: it is absent or unbounded, said in words
        assert row.default in ("none", "unbounded"), where
        return
    (name,) = CODE.findall(row.where)
    (text,) = CODE.findall(row.default)
    assert resolve(name) == evaluate(text), where


@pytest.mark.parametrize("row", rows(), ids=lambda r: f"line{r.line}")
def test_each_named_test_exists(row: Row) -> None:
    problems = [p for node in row.tests if (p := missing_node(node)) is not None]
    assert problems == [], f"docs/limits.md:{row.line}"


# -- the auditor audited -------------------------------------------------------------------------

_SAMPLE = """\
| Bound | Default | Where | When it is hit | Test |
|---|---|---|---|---|
| a | `64_000` | `Config.max_data_message_size` | x | `tests/core/test_limits_audit.py::{good}` |
| b | `1` | `Config.max_data_message_size` | x | `tests/core/test_limits_audit.py::{bad}` |

## Config fields that are not bounds

- `Config.os_name`
""".format(good="test_each_named_test_exists", bad="test_nothing_here")


def test_the_audit_catches_a_wrong_default_a_missing_test_and_unlisted_fields() -> None:
    good, bad = rows(_SAMPLE)
    assert resolve("Config.max_data_message_size") == evaluate(good.default.strip("`"))
    assert resolve("Config.max_data_message_size") != evaluate(bad.default.strip("`"))
    assert missing_node(good.tests[0]) is None
    assert missing_node(bad.tests[0]) == (
        "tests/core/test_limits_audit.py::test_nothing_here: "
        "no test_nothing_here in tests/core/test_limits_audit.py"
    )
    assert (
        missing_node("tests/core/nope.py::test_x")
        == "tests/core/nope.py::test_x: no file tests/core/nope.py"
    )
    assert not_bounds(_SAMPLE) == {"os_name"}
    assert resolve("lkproto.transports._ws.WebSocketClient(max_message_size)") == 16 * 1024 * 1024
    assert resolve("lkproto.rpc.RpcError.MAX_MESSAGE_BYTES") == 256
    with pytest.raises(AssertionError, match="not a plain number expression"):
        evaluate("__import__('os')")
