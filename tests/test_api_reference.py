"""Issue 19 item 12: the API reference (pdoc, `make apidoc`) builds without a warning, and
every public name has a docstring: each module, each class and function in a public
module's `__all__`, and each public method and property they have (inherited ones too, when
an lkproto class defines them). A name without one fails here, naming it."""

from __future__ import annotations

import enum
import importlib
import importlib.util
import inspect
import pkgutil
from pathlib import Path
from types import ModuleType

import pytest

import lkproto

ROOT = Path(__file__).resolve().parents[1]


def _apidoc() -> ModuleType:
    spec = importlib.util.spec_from_file_location("apidoc", ROOT / "scripts" / "apidoc.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def undocumented(module_names: list[str]) -> list[str]:
    missing: set[str] = set()
    for module_name in module_names:
        module = importlib.import_module(module_name)
        if not (module.__doc__ or "").strip():
            missing.add(module_name)
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            if not getattr(obj, "__module__", "").startswith("lkproto"):
                continue
            if inspect.isfunction(obj):
                if not (obj.__doc__ or "").strip():
                    missing.add(f"{obj.__module__}.{obj.__qualname__}")
                continue
            if not (vars(obj).get("__doc__") or "").strip():
                missing.add(f"{obj.__module__}.{obj.__qualname__}")
            if issubclass(obj, enum.Enum):
                continue
            for attr in dir(obj):
                if attr.startswith("_"):
                    continue
                owner = next((k for k in obj.__mro__ if attr in vars(k)), None)
                if owner is None or not owner.__module__.startswith("lkproto"):
                    continue
                value = vars(owner)[attr]
                if isinstance(value, property):
                    fn = value.fget
                elif isinstance(value, classmethod | staticmethod):
                    fn = value.__func__
                elif inspect.isfunction(value):
                    fn = value
                else:
                    continue
                if not (getattr(fn, "__doc__", None) or "").strip():
                    missing.add(f"{owner.__module__}.{owner.__qualname__}.{attr}")
    return sorted(missing)


def test_every_public_module_is_in_the_reference() -> None:
    public = {
        m.name
        for m in pkgutil.walk_packages(lkproto.__path__, "lkproto.")
        if not any(part.startswith("_") for part in m.name.split(".")[1:])
        and not m.name.startswith("lkproto.transports.cli.")
    }
    assert public - {"lkproto.transports"} <= set(_apidoc().PUBLIC_MODULES)


def test_every_public_name_has_a_docstring() -> None:
    assert undocumented(_apidoc().PUBLIC_MODULES) == []


def test_the_check_finds_a_missing_docstring(monkeypatch: pytest.MonkeyPatch) -> None:
    from lkproto.transports import _participant

    monkeypatch.setattr(_participant.LocalParticipant.publish_dtmf, "__doc__", None)
    assert undocumented(["lkproto.transports.anyio"]) == [
        "lkproto.transports._participant.LocalParticipant.publish_dtmf"
    ]


@pytest.mark.timeout(120)
def test_the_reference_builds_without_a_warning(tmp_path: Path) -> None:
    assert _apidoc().build(tmp_path) == []
    room = (tmp_path / "lkproto" / "transports" / "anyio.html").read_text()
    for name in ("Room.connect", "Room.on", "LocalParticipant.register_rpc_method"):
        assert f'id="{name}"' in room, name  # inherited from private bases: shown in full
    assert "participant_attributes_changed" in room  # the events and their arguments
    testing = (tmp_path / "lkproto" / "transports" / "testing.html").read_text()
    assert 'id="MemoryServer.dial"' not in testing  # @private hooks stay out
