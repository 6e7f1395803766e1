"""The shared attrs `__repr__` (lkproto/_repr.py) writes what attrs' own would, and attrs
compiles none for the classes that use it (issue 25: the compiles were the core's import)."""

from __future__ import annotations

import attrs

from lkproto import events as ev
from lkproto import rpc
from lkproto._repr import _repr, plain_repr


@attrs.frozen(kw_only=True)
@plain_repr
class Shared:
    name: str
    secret: str = attrs.field(repr=False)
    payload: bytes = attrs.field(repr=lambda p: f"<{len(p)} B>")
    items: list[object] = attrs.field(factory=list)


@attrs.frozen(kw_only=True)
class Compiled:  # the same fields, attrs' own repr
    name: str
    secret: str = attrs.field(repr=False)
    payload: bytes = attrs.field(repr=lambda p: f"<{len(p)} B>")
    items: list[object] = attrs.field(factory=list)


@attrs.define
@plain_repr
class Own:
    value: int

    def __repr__(self) -> str:
        return f"<own {self.value}>"


def test_the_shared_repr_is_the_text_attrs_writes() -> None:
    shared = Shared(name="a", secret="token", payload=b"xyz", items=[1, "b"])
    compiled = Compiled(name="a", secret="token", payload=b"xyz", items=[1, "b"])
    assert repr(shared) == "Shared(name='a', payload=<3 B>, items=[1, 'b'])"
    assert repr(shared).replace("Shared", "Compiled", 1) == repr(compiled)
    assert "token" not in repr(shared)


def test_a_value_met_again_inside_its_own_repr_is_dots() -> None:
    shared = Shared(name="loop", secret="", payload=b"")
    shared.items.append(shared)
    compiled = Compiled(name="loop", secret="", payload=b"")
    compiled.items.append(compiled)
    assert repr(shared) == "Shared(name='loop', payload=<0 B>, items=[...])"
    assert repr(compiled) == "Compiled(name='loop', payload=<0 B>, items=[...])"


def test_a_class_writing_its_own_repr_keeps_it() -> None:
    assert repr(Own(3)) == "<own 3>"


def test_the_core_classes_use_it() -> None:
    assert ev.Joined.__repr__ is _repr and rpc.RpcInvocationData.__repr__ is _repr
    assert rpc.RpcError.__repr__ is not _repr  # writes its own
