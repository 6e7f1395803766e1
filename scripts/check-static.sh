#!/usr/bin/env bash
# Lint and types, the one definition of both: `make lint`, `make typecheck` and the suite's
# tests/test_static_checks.py (which runs them beside the cut tests, while the CPU is idle)
# call this.
#   check-static.sh lint       ruff lint and ruff format, over the whole tree
#   check-static.sh typecheck  mypy --strict over lkproto and transports (pyproject.toml), then
#                              over the examples, scripts and the typing tests of the exports
#
# The examples and scripts import `lkproto.transports`, which lives in transports/ and is
# installed under lkproto by the package mapping in pyproject.toml ([tool.setuptools]). mypy
# cannot follow the editable install's import hook, so setuptools lays the package out for
# it: a strict editable install into a scratch target (MYPY_SITE, build/mypy-site by default)
# builds the installed layout as a tree of links to the sources, whose path its .pth file
# names.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
case "${1:-}" in
lint)
    "$VENV/bin/ruff" check .
    "$VENV/bin/ruff" format --check .
    ;;
typecheck)
    site=${MYPY_SITE:-build/mypy-site}
    "$VENV/bin/mypy"
    rm -rf "$site" build/__editable__.*
    PYTHONWARNINGS=ignore "$VENV/bin/python" -m pip install -qq --no-deps --no-build-isolation \
        --no-index --target "$site" --config-settings editable_mode=strict -e .
    MYPYPATH="$(cat "$site"/__editable__.*.pth)" "$VENV/bin/mypy" --strict examples scripts \
        tests/transports/test_exports.py tests/transports/test_typing.py
    ;;
*)
    echo "usage: $0 lint|typecheck" >&2
    exit 2
    ;;
esac
