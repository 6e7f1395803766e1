"""conftest pauses the garbage collector inside `ast.parse` (CPython 3.11, gh-106905).

A finalizer that parses (as traceback formatting does, for its carets) and runs during a
collection in the middle of another parse corrupts the AST constructor's recursion depth, and
the outer parse fails with "SystemError: AST constructor recursion depth mismatch". On this
interpreter (3.11.7) the storm below raises it within a few parses without the conftest's
wrapper.
"""

from __future__ import annotations

import ast
import gc

SOURCE = "\n".join(
    f"def f{i}(a):\n    return [(a, {i}) for a in range({i}) if a]" for i in range(300)
)


class _ParsesWhenCollected:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the collector frees it

    def __del__(self) -> None:
        ast.parse("x = (1 + (2 * (3 - 4)))")


def test_a_collection_inside_a_parse_does_not_break_it() -> None:
    threshold = gc.get_threshold()
    gc.set_threshold(50, 1, 1)
    try:
        trees = []
        for _ in range(20):
            for _ in range(200):
                _ParsesWhenCollected()
            trees.append(ast.parse(SOURCE))
    finally:
        gc.set_threshold(*threshold)
        gc.collect()
    assert [len(tree.body) for tree in trees] == [300] * 20
    assert ast.parse.__name__ == "_parse_without_gc"
