"""Issue 19 item 10: user code is type-checked against the adapters, as a user writes it.

`make typecheck` runs `mypy --strict` on this file (against the installed layout). The
decorator forms of `register_rpc_method` and `on` keep the function's type, and each event's
callback is checked against its arguments: every `# type: ignore[...]` below marks a call
that mypy must refuse (strict mode reports an ignore that is not needed, so a typing that
stopped refusing it fails `make typecheck`). At run time the same code registers what it says.
"""

from __future__ import annotations

import importlib.util
import typing
from pathlib import Path

from lkproto.transports import _event_types, _room, threaded
from lkproto.transports import anyio as lk_anyio
from lkproto.transports import trio as lk_trio

ROOT = Path(__file__).resolve().parents[2]


def anyio_user_code(room: lk_anyio.Room) -> list[str]:
    seen: list[str] = []

    @room.local_participant.register_rpc_method("greet")
    async def greet(data: lk_anyio.RpcInvocationData) -> str:
        return f"hello {data.caller_identity}"

    @room.on("data_received")
    def on_data(packet: lk_anyio.DataPacket) -> None:
        seen.append(packet.data.decode())

    @room.on("participant_attributes_changed")
    def on_attributes(changed: dict[str, str], participant: lk_anyio.Participant) -> None:
        seen.append(participant.identity)

    room.on("participant_connected", lambda p: seen.append(p.identity))
    room.once("disconnected", lambda reason: seen.append(reason.name))
    room.on("reconnected", lambda: seen.append("back"))
    room.local_participant.register_rpc_method("plain", lambda data: data.payload)

    room.on("data_received", lambda packet: packet.no_such_field)  # type: ignore[call-overload]
    room.on("participant_connected", lambda a, b: None)  # type: ignore[call-overload]
    room.on("no_such_event", lambda: None)  # type: ignore[call-overload]

    @room.on("disconnected")  # type: ignore[arg-type]
    def wrong(reason: int, extra: str) -> None: ...

    room.local_participant.register_rpc_method("bad", lambda data: 42)  # type: ignore[arg-type,return-value]
    assert greet.__name__ == "greet" and on_data.__name__ == "on_data"
    assert on_attributes.__name__ == "on_attributes" and wrong.__name__ == "wrong"
    return seen


def trio_user_code(room: lk_trio.Room) -> None:
    @room.local_participant.register_rpc_method("greet")
    def greet(data: lk_trio.RpcInvocationData) -> str:
        return data.payload

    @room.on("transcription_received")
    def on_transcription(
        segments: list[lk_trio.TranscriptionSegment],
        participant: lk_trio.Participant | None,
        publication: None,
    ) -> None: ...

    assert greet.__name__ == "greet" and on_transcription.__name__ == "on_transcription"


def threaded_user_code(room: threaded.Room) -> None:
    @room.local_participant.register_rpc_method("greet")
    def greet(data: threaded.RpcInvocationData) -> str:
        return data.payload

    @room.on("connection_state_changed")
    def on_state(state: threaded.ConnectionState) -> None: ...

    room.on("sip_dtmf_received", lambda dtmf: print(dtmf.digit))
    room.on("sip_dtmf_received", lambda dtmf: dtmf.nope)  # type: ignore[call-overload]
    assert greet.__name__ == "greet" and on_state.__name__ == "on_state"


def test_the_typed_user_code_registers_what_it_says() -> None:
    room = lk_anyio.Room()
    anyio_user_code(room)
    assert set(room._session.rpc.handlers) == {"greet", "plain", "bad"}
    assert set(room._listeners) == {
        "data_received",
        "participant_attributes_changed",
        "participant_connected",
        "disconnected",
        "reconnected",
        "no_such_event",
    }
    trio_room = lk_trio.Room()
    trio_user_code(trio_room)
    assert set(trio_room._session.rpc.handlers) == {"greet"}
    blocking = threaded.Room()
    threaded_user_code(blocking)
    assert set(blocking._rpc) == {"greet"}


def test_once_runs_once_and_returns_what_off_takes() -> None:
    room = lk_anyio.Room()
    got: list[str] = []
    room.once("room_metadata_changed", lambda old, new: got.append(new))
    room.emit("room_metadata_changed", "a", "b")
    room.emit("room_metadata_changed", "b", "c")
    assert got == ["b"]
    callback = room.once("room_metadata_changed", lambda old, new: got.append(new))
    room.off("room_metadata_changed", callback)
    room.emit("room_metadata_changed", "c", "d")
    assert got == ["b"]


def test_every_event_name_is_typed_and_the_overloads_are_fresh() -> None:
    # Adding an event: a name in _room.EventTypes and one line in _event_types.SIGNATURES.
    assert list(_event_types.SIGNATURES) == list(typing.get_args(_room.EventTypes))
    spec = importlib.util.spec_from_file_location(
        "gen_event_types", ROOT / "scripts" / "gen_event_types.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--check"]) == 0, "transports/_event_types.py is stale: run make docs"
