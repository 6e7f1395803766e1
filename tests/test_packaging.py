"""Packaging: `transports/` installs as `lkproto.transports`, from a wheel and editable."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PROBE = """
import importlib.util, json, sys
import lkproto, lkproto.transports, lkproto._pb, lkproto.testing, lkproto.transports.testing
print(json.dumps({
    "lkproto": lkproto.__file__,
    "transports": lkproto.transports.__file__,
    "version": lkproto.__version__,
    "top_level_transports": importlib.util.find_spec("transports") is not None,
}))
"""


def run_probe(python: str | Path, cwd: Path) -> dict[str, object]:
    import json

    out = subprocess.run(
        [str(python), "-c", PROBE], cwd=cwd, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout))


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_wheel_installs_lkproto_and_transports_into_a_clean_virtualenv(tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(
        REPO,
        src,
        ignore=shutil.ignore_patterns(
            ".venv", ".git", ".cache", "build", "dist", "*.egg-info", "__pycache__", ".*_cache"
        ),
    )
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(dist), str(src)],
        check=True, capture_output=True, timeout=240,
    )  # fmt: skip
    (wheel,) = dist.glob("lkproto-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "lkproto/transports/__init__.py" in names
    assert "lkproto/py.typed" in names
    assert not [n for n in names if n.startswith("transports/")]
    assert not [n for n in names if n.startswith(("tests/", "proto/", "benchmarks/"))]
    # Issue 19 item 14: the license travels with the wheel, as an SPDX expression; no
    # made-up project URL; the long description starts with what a pip user can do.
    (license_file,) = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
    assert zipfile.ZipFile(wheel).read(license_file) == (REPO / "LICENSE").read_bytes()
    (metadata_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
    metadata = zipfile.ZipFile(wheel).read(metadata_name).decode()
    headers, _, description = metadata.partition("\n\n")
    assert "License-Expression: Apache-2.0" in headers.splitlines()
    assert "License-File: LICENSE" in headers.splitlines()
    assert "Project-URL" not in headers and "example.invalid" not in metadata
    assert description.startswith(
        "# lkproto\n\nA pure-Python implementation of the LiveKit client protocol: join a "
        "LiveKit room from Python"
    )
    assert "Apache License" in (REPO / "LICENSE").read_text()

    venv = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120
    )
    py = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps",
         "--no-index", str(wheel)],
        check=True, capture_output=True, timeout=240,
    )  # fmt: skip
    # The wheel is installed alone; its runtime dependencies are borrowed from the dev
    # environment by a .pth line, which appends (so the wheel's copy of lkproto wins).
    clean_site = Path(
        subprocess.check_output(
            [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            text=True,
        ).strip()
    )
    (clean_site / "zz_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    info = run_probe(py, cwd=tmp_path)
    assert str(info["lkproto"]).startswith(str(venv))
    assert str(info["transports"]).startswith(str(venv / "lib"))
    assert str(info["transports"]).endswith("lkproto/transports/__init__.py")
    assert info["top_level_transports"] is False


def test_editable_install_maps_transports_under_lkproto(tmp_path: Path) -> None:
    info = run_probe(sys.executable, cwd=tmp_path)  # cwd outside the repo: no accidental path
    assert Path(str(info["lkproto"])) == REPO / "lkproto" / "__init__.py"
    assert Path(str(info["transports"])) == REPO / "transports" / "__init__.py"
    assert info["top_level_transports"] is False


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_sdist_carries_the_license_and_the_readme(tmp_path: Path) -> None:
    import tarfile

    src = tmp_path / "src"
    shutil.copytree(
        REPO,
        src,
        ignore=shutil.ignore_patterns(
            ".venv", ".git", ".cache", "build", "dist", "*.egg-info", "__pycache__", ".*_cache"
        ),
    )
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--no-isolation", "-o", str(dist), str(src)],
        check=True, capture_output=True, timeout=240,
    )  # fmt: skip
    (sdist,) = dist.glob("lkproto-*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
        pkg_info = tar.extractfile(next(n for n in tar.getnames() if n.endswith("/PKG-INFO")))
        assert pkg_info is not None
        info = pkg_info.read().decode()
    assert {"LICENSE", "README.md", "pyproject.toml"} <= names
    assert "License-Expression: Apache-2.0" in info.splitlines()
