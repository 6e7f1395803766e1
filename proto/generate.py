"""Regenerate lkproto/_pb/*_pb2.py and *_pb2.pyi from proto/lkproto/_pb/*.proto.

Usage (from anywhere):

    python proto/generate.py          # rewrite the generated files in lkproto/_pb/
    python proto/generate.py --check  # exit 1 if regenerating would change anything

The compiler is the protoc bundled with a pinned grpcio-tools, so the output
(Python gencode 5.29.x, accepted by protobuf runtimes 5.29 through 7.x) is the
same on every machine. Any other grpcio-tools version is refused.
"""

from __future__ import annotations

import argparse
import difflib
import importlib.metadata
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

GRPCIO_TOOLS_PIN = "1.71.2"
EXPECTED_PROTOC = "libprotoc 29.0"

PROTO_ROOT = Path(__file__).resolve().parent  # the -I include root
REPO_ROOT = PROTO_ROOT.parent
PACKAGE_SUBDIR = Path("lkproto") / "_pb"  # same relative path for sources and output
SOURCE_DIR = PROTO_ROOT / PACKAGE_SUBDIR
OUTPUT_DIR = REPO_ROOT / PACKAGE_SUBDIR
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi")
MAX_DIFF_LINES = 40

# protoc 29's .pyi output annotates dict-style initialisers with a bare `Mapping`,
# which `mypy --strict` reports as type-arg errors; this is the only post-processing.
PYI_HEADER = b'# mypy: disable-error-code="type-arg"\n'


class GeneratorError(Exception):
    """The generator cannot run as pinned."""


def check_toolchain() -> None:
    try:
        installed = importlib.metadata.version("grpcio-tools")
    except importlib.metadata.PackageNotFoundError:
        raise GeneratorError(
            f"grpcio-tools is not installed; install grpcio-tools=={GRPCIO_TOOLS_PIN}"
        ) from None
    if installed != GRPCIO_TOOLS_PIN:
        raise GeneratorError(
            f"grpcio-tools {installed} is installed, but the generated code is pinned to "
            f"grpcio-tools=={GRPCIO_TOOLS_PIN} ({EXPECTED_PROTOC}). Install the pin, e.g. "
            f"`pip install --no-deps grpcio-tools=={GRPCIO_TOOLS_PIN}`."
        )
    version = _run_protoc(["--version"]).strip()
    if version != EXPECTED_PROTOC:
        raise GeneratorError(f"bundled protoc says {version!r}, expected {EXPECTED_PROTOC!r}")


def _run_protoc(args: list[str]) -> str:
    # `python -m grpc_tools.protoc` also puts grpc_tools' copy of the well-known
    # types (google/protobuf/timestamp.proto) on the include path.
    proc = subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", *args],
        cwd=PROTO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise GeneratorError(f"protoc failed ({proc.returncode}):\n{proc.stderr}{proc.stdout}")
    return proc.stdout


def proto_sources() -> list[str]:
    sources = sorted(p.relative_to(PROTO_ROOT).as_posix() for p in SOURCE_DIR.glob("*.proto"))
    if not sources:
        raise GeneratorError(f"no .proto files under {SOURCE_DIR}")
    return sources


def generate_into(out_root: Path) -> dict[str, bytes]:
    """Run protoc into out_root; return {file name: content} of the generated files."""
    _run_protoc(
        [
            f"-I{PROTO_ROOT}",
            f"--python_out={out_root}",
            f"--pyi_out={out_root}",
            *proto_sources(),
        ]
    )
    out_dir = out_root / PACKAGE_SUBDIR
    generated = {p.name: p.read_bytes() for p in sorted(out_dir.iterdir()) if _is_generated(p.name)}
    return {name: _postprocess(name, content) for name, content in generated.items()}


def _postprocess(name: str, content: bytes) -> bytes:
    if name.endswith(".pyi"):
        return PYI_HEADER + content
    return content


def _is_generated(name: str) -> bool:
    return name.endswith(GENERATED_SUFFIXES)


def committed_files() -> dict[str, bytes]:
    if not OUTPUT_DIR.is_dir():
        return {}
    return {p.name: p.read_bytes() for p in sorted(OUTPUT_DIR.iterdir()) if _is_generated(p.name)}


def describe_differences(fresh: dict[str, bytes], current: dict[str, bytes]) -> list[str]:
    problems: list[str] = []
    for name in sorted(fresh.keys() - current.keys()):
        problems.append(f"missing: {PACKAGE_SUBDIR / name} (would be created)")
    for name in sorted(current.keys() - fresh.keys()):
        problems.append(f"stale: {PACKAGE_SUBDIR / name} (no .proto produces it)")
    for name in sorted(fresh.keys() & current.keys()):
        if fresh[name] == current[name]:
            continue
        diff = list(
            difflib.unified_diff(
                current[name].decode("utf-8", "replace").splitlines(),
                fresh[name].decode("utf-8", "replace").splitlines(),
                f"committed/{name}",
                f"regenerated/{name}",
                lineterm="",
            )
        )
        problems.append(f"changed: {PACKAGE_SUBDIR / name} ({len(diff)} diff lines)")
        problems.extend("    " + line[:160] for line in diff[:MAX_DIFF_LINES])
        if len(diff) > MAX_DIFF_LINES:
            problems.append(f"    ... {len(diff) - MAX_DIFF_LINES} more lines")
    return problems


def write(fresh: dict[str, bytes]) -> None:
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    for name in committed_files().keys() - fresh.keys():
        (OUTPUT_DIR / name).unlink()
        print(f"removed {PACKAGE_SUBDIR / name}")
    for name, content in sorted(fresh.items()):
        target = OUTPUT_DIR / name
        if not target.exists() or target.read_bytes() != content:
            target.write_bytes(content)
            print(f"wrote {PACKAGE_SUBDIR / name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="do not write; exit 1 if the committed output differs from a fresh run",
    )
    args = parser.parse_args(argv)
    try:
        check_toolchain()
        tmp = Path(tempfile.mkdtemp(prefix="lkproto-gen-"))
        try:
            fresh = generate_into(tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    except GeneratorError as exc:
        print(f"proto/generate.py: error: {exc}", file=sys.stderr)
        return 2

    if args.check:
        problems = describe_differences(fresh, committed_files())
        if problems:
            print("generated code under lkproto/_pb/ is out of date:", file=sys.stderr)
            for line in problems:
                print(line, file=sys.stderr)
            print("run `python proto/generate.py` and commit the result", file=sys.stderr)
            return 1
        print(f"lkproto/_pb is up to date ({len(fresh)} generated files)")
        return 0

    write(fresh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
