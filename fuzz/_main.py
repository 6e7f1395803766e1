"""The entry point shared by the `fuzz_<target>` modules: atheris over one target.

Run one as `python -m fuzz.fuzz_<target> [libFuzzer flags] [corpus dirs]` (what `make fuzz`
does). lkproto is imported inside `atheris.instrument_imports`, so coverage feedback covers
the whole core; nothing else is instrumented. Nothing under `lkproto` may be imported before
`main` runs.
"""

from __future__ import annotations

import sys

import atheris


def main(target: str) -> None:
    with atheris.instrument_imports(include=["lkproto"]):
        from fuzz._targets import TARGETS

    atheris.Setup(sys.argv, TARGETS[target])
    atheris.Fuzz()
