"""Build the API reference (HTML, from the docstrings) with pdoc into build/api/.

    python scripts/apidoc.py [OUTPUT_DIR]    # `make apidoc`

The public modules are listed once, in `PUBLIC_MODULES`; tests/test_api_reference.py builds
the same pages and fails on a public name without a docstring or on any pdoc warning.
Names whose docstring starts with `@private` are hooks for the library itself and are left
out of the pages.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pdoc
import pdoc.render

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "docs" / "pdoc"

#: Every public module: the core's, then the adapters'. (The `_`-prefixed ones are private.)
PUBLIC_MODULES = [
    "lkproto",
    "lkproto.commands",
    "lkproto.config",
    "lkproto.datatracks",
    "lkproto.e2ee",
    "lkproto.errors",
    "lkproto.events",
    "lkproto.models",
    "lkproto.rpc",
    "lkproto.signal",
    "lkproto.streams",
    "lkproto.tracks",
    "lkproto.testing",
    "lkproto.tokens",
    "lkproto.transports.anyio",
    "lkproto.transports.trio",
    "lkproto.transports.threaded",
    "lkproto.transports.api",
    "lkproto.transports.testing",
    "lkproto.transports.pytest_plugin",
    "lkproto.transports.cli",
]


def build(output: Path) -> list[str]:
    """Write the pages under `output`; return pdoc's warnings (empty when all is well)."""
    pdoc.render.configure(docformat="markdown", show_source=False, template_directory=TEMPLATES)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pdoc.pdoc(*PUBLIC_MODULES, output_directory=output)
    # Listing a package and its submodules repeats them; pdoc says so, harmlessly. A
    # ResourceWarning is the garbage collector finalizing something made before the build (in
    # the test suite: an earlier test's transport, CI run P2), not pdoc's.
    return [
        str(w.message)
        for w in caught
        if "has already been added" not in str(w.message)
        and not issubclass(w.category, ResourceWarning)
    ]


def main(argv: list[str]) -> int:
    output = Path(argv[0]) if argv else ROOT / "build" / "api"
    problems = build(output)
    for problem in problems:
        print(f"apidoc: {problem}", file=sys.stderr)
    print(f"API reference: {output / 'index.html'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
