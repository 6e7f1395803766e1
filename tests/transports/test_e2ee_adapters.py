"""End-to-end encryption in the adapters (transports/_e2ee.py), over the memory transport.

The API held against livekit.rtc 1.2.0 by name and signature; every adapter encrypting and
decrypting with `room.e2ee_manager.key_provider`; `e2ee_state_changed`; the deprecated
`RoomOptions.e2ee`; key verbs from other threads; the ratchet search off the event loop.
The real-server proof, with the official SDK as the peer, is tests/e2e/test_e2ee_interop.py.
"""

from __future__ import annotations

import dataclasses
import inspect
import threading
import warnings
from typing import Any

import anyio
import anyio.to_thread
import pytest
from livekit import rtc

from lkproto import events as ev
from lkproto.e2ee import KeyDerivationFunction
from lkproto.transports import _e2ee, threaded
from lkproto.transports import anyio as lk_anyio
from lkproto.transports import trio as lk_trio
from lkproto.transports._room import ConnectionState, RoomModel
from lkproto.transports.testing import MemoryServer

pytestmark = pytest.mark.timeout(30)

KEY = b"memory password"
HKDF = KeyDerivationFunction.HKDF


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def encrypted(module: Any = lk_anyio, key: bytes | None = KEY, **kp: Any) -> Any:
    kp.setdefault("key_derivation_function", HKDF)
    return module.RoomOptions(
        encryption=module.E2EEOptions(module.KeyProviderOptions(shared_key=key, **kp))
    )


# -- the API by the official names ------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "set_shared_key",
        "export_shared_key",
        "ratchet_shared_key",
        "set_key",
        "export_key",
        "ratchet_key",
    ],
)
def test_the_key_provider_takes_the_official_parameters(name: str) -> None:
    def params(fn: object) -> list[tuple[str, object, object]]:
        return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]  # type: ignore[arg-type]

    assert params(getattr(_e2ee.KeyProvider, name)) == params(getattr(rtc.KeyProvider, name))


def test_the_manager_options_and_enums_have_the_official_names() -> None:
    for name in ("key_provider", "enabled"):
        assert isinstance(inspect.getattr_static(rtc.E2EEManager, name), property)
        assert isinstance(inspect.getattr_static(_e2ee.E2EEManager, name), property)
    for name in ("set_enabled", "frame_cryptors"):
        assert callable(getattr(_e2ee.E2EEManager, name))
    official = {f.name: f.default for f in dataclasses.fields(rtc.KeyProviderOptions)}
    ours = lk_anyio.KeyProviderOptions()
    assert {name: getattr(ours, name) for name in official} == official
    for enum in ("EncryptionType", "EncryptionState", "KeyDerivationFunction"):
        theirs = dict(getattr(rtc, enum).items())
        assert {m.name: m.value for m in getattr(lk_anyio, enum)} == theirs
    fields = [f.name for f in dataclasses.fields(rtc.RoomOptions)]
    ours_fields = [f.name for f in dataclasses.fields(lk_anyio.RoomOptions)]
    assert fields.index("e2ee") == ours_fields.index("e2ee") == 2
    assert ours_fields[3] == "encryption"


def test_the_room_model_reports_e2ee_state_changes_with_the_participant() -> None:
    model = RoomModel()
    state = lk_anyio.EncryptionState.DECRYPTION_FAILED
    (name, (who, seen)), *_ = model.apply(
        ev.E2eeStateChanged(participant_identity="nobody", state=state)
    )
    assert (name, who, seen) == ("e2ee_state_changed", None, state)


def test_bad_arguments_are_refused_at_the_call() -> None:
    def run(call: str, fn: Any) -> Any:
        raise AssertionError("not reached")

    keys = _e2ee.KeyProvider(lk_anyio.KeyProviderOptions(), run)
    with pytest.raises(TypeError, match="set_shared_key: key must be bytes, not str"):
        keys.set_shared_key("text", 0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="export_shared_key: key_index must be an int, not bool"):
        keys.export_shared_key(True)
    with pytest.raises(ValueError, match="ratchet_shared_key: key_index must be >= 0, not -1"):
        keys.ratchet_shared_key(-1)
    with pytest.raises(TypeError, match="set_key: participant_identity must be str, not int"):
        keys.set_key(7, KEY, 0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="set_enabled: enabled must be bool, not int"):
        _e2ee.E2EEManager(None, None).set_enabled(1)  # type: ignore[arg-type]
    assert repr(keys) == f"KeyProvider(options={lk_anyio.KeyProviderOptions()!r})"
    assert "shared_key" not in repr(lk_anyio.KeyProviderOptions(shared_key=KEY))
    with pytest.raises(TypeError, match="must be E2EEOptions, not KeyProviderOptions"):
        _e2ee.connection_settings(
            lk_anyio.RoomOptions(encryption=lk_anyio.KeyProviderOptions())  # type: ignore[arg-type]
        )


# -- every adapter, over the memory transport ---------------------------------------------------


async def _exchange(
    module: Any, server: MemoryServer
) -> tuple[list[Any], list[Any], list[Any], Any, Any]:
    """alice (of `module`) and bob (anyio) with the same key: data both ways, then bob's
    key ratchets and alice follows; returns what each received and the two rooms."""
    alice, bob = module.Room(), lk_anyio.Room()
    to_alice: list[Any] = []
    to_bob: list[Any] = []
    states: list[Any] = []
    # (list.append: the threaded Room calls back on its own thread)
    alice.on("data_received", lambda p: to_alice.append((p.participant.identity, p.data)))
    alice.on("e2ee_state_changed", lambda p, s: states.append((p.identity, s)))
    bob.on("data_received", lambda p: to_bob.append((p.participant.identity, p.data)))
    await _call(alice.connect, server.url, server.token("alice"), encrypted(module))
    await bob.connect(server.url, server.token("bob"), encrypted())
    with anyio.fail_after(10):
        while "bob" not in alice.remote_participants or "alice" not in bob.remote_participants:
            await anyio.sleep(0.01)
    await _call(alice.local_participant.publish_data, b"to bob")
    await bob.local_participant.publish_data(b"to alice")
    with anyio.fail_after(10):
        while not (to_alice and to_bob):
            await anyio.sleep(0.01)
    new = bob.e2ee_manager.key_provider.ratchet_shared_key(0)
    await bob.local_participant.publish_data(b"after the ratchet")
    with anyio.fail_after(10):
        while len(to_alice) < 2:
            await anyio.sleep(0.01)
    keys = alice.e2ee_manager.key_provider
    assert await _call(keys.export_key, "bob", 0) == new  # followed bob's ratchet
    assert await _call(keys.export_shared_key, 0) == KEY  # the shared ring is unchanged
    return to_alice, to_bob, states, alice, bob


async def _call(fn: Any, *args: Any) -> Any:
    """Run a verb of a threaded Room in a thread; call any other and await what it returns."""
    if isinstance(getattr(fn, "__self__", None), threaded.Room | threaded.LocalParticipant):
        return await anyio.to_thread.run_sync(lambda: fn(*args))
    result = fn(*args)
    return await result if inspect.isawaitable(result) else result


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("module", "anyio_backend"),
    [(lk_anyio, "asyncio"), (lk_anyio, "trio"), (lk_trio, "trio"), (threaded, "asyncio")],
    ids=["anyio-asyncio", "anyio-trio", "trio", "threaded"],
)
async def test_every_adapter_encrypts_decrypts_and_follows_a_ratchet(module: Any) -> None:
    async with MemoryServer(update_interval=0) as server:
        to_alice, to_bob, states, alice, bob = await _exchange(module, server)
        try:
            assert to_alice == [("bob", b"to alice"), ("bob", b"after the ratchet")]
            assert to_bob == [("alice", b"to bob")]
            S = lk_anyio.EncryptionState
            with anyio.fail_after(10):  # the threaded Room's callbacks run on their own thread
                while len(states) < 2:
                    await anyio.sleep(0.01)
            assert states == [("bob", S.OK), ("bob", S.KEY_RATCHETED)]
            manager = alice.e2ee_manager
            assert (
                manager.enabled and manager.options is not None and manager.frame_cryptors() == []
            )
            manager.set_enabled(False)  # media only, as in livekit.rtc: data stays encrypted
            assert not alice.e2ee_manager.enabled
            assert alice.connection.data_channel_encryption
        finally:
            await _call(alice.disconnect)
            await bob.disconnect()
        with pytest.raises(lk_anyio.TransportClosedError, match="set_shared_key: the room is not"):
            await _call(alice.e2ee_manager.key_provider.set_shared_key, KEY, 1)


@pytest.mark.anyio
async def test_without_a_key_nothing_is_read_and_the_room_carries_on() -> None:
    async with MemoryServer(update_interval=0) as server:
        alice, eve = lk_anyio.Room(), lk_anyio.Room()
        assert eve.e2ee_manager.key_provider is None and not eve.e2ee_manager.enabled
        await alice.connect(server.url, server.token("alice"), encrypted())
        await eve.connect(server.url, server.token("eve"))
        with anyio.fail_after(10):
            while "eve" not in alice.remote_participants:
                await anyio.sleep(0.01)
        dropped: list[ev.PacketDropped] = []
        received: list[Any] = []
        eve.on("data_received", received.append)
        try:
            async with anyio.create_task_group() as tg:

                async def watch() -> None:
                    async for event in eve.events():
                        if isinstance(event, ev.PacketDropped):
                            dropped.append(event)
                            tg.cancel_scope.cancel()

                tg.start_soon(watch)
                await anyio.sleep(0)
                await alice.local_participant.publish_data(b"secret")
            assert [(d.reason, d.participant_identity) for d in dropped] == [("encrypted", "alice")]
            assert received == [] and eve.connection_state == ConnectionState.CONN_CONNECTED
        finally:
            await alice.disconnect()
            await eve.disconnect()


@pytest.mark.anyio
async def test_the_deprecated_e2ee_option_warns_keeps_keys_and_sends_in_clear() -> None:
    async with MemoryServer(update_interval=0) as server:
        room = lk_anyio.Room()
        options = lk_anyio.RoomOptions(e2ee=lk_anyio.E2EEOptions())
        with pytest.warns(DeprecationWarning, match="options.e2ee is deprecated"):
            await room.connect(server.url, server.token("alice"), options)
        try:
            assert room.e2ee_manager.enabled and room.e2ee_manager.key_provider is not None
            assert room.connection is not None and not room.connection.data_channel_encryption
        finally:
            await room.disconnect()


@pytest.mark.anyio
async def test_key_verbs_from_another_thread_run_on_the_rooms_loop() -> None:
    async with MemoryServer(update_interval=0) as server:
        room = lk_anyio.Room()
        await room.connect(server.url, server.token("alice"), encrypted(key=None))
        keys = room.e2ee_manager.key_provider
        try:
            loop_thread = threading.get_ident()
            seen: list[int] = []
            original = room.connection.key_provider.set_key  # type: ignore[union-attr]

            def spy(*args: Any) -> None:
                seen.append(threading.get_ident())
                original(*args)

            room.connection.key_provider.set_key = spy  # type: ignore[method-assign,union-attr]
            await anyio.to_thread.run_sync(lambda: keys.set_key("alice", b"mine", 3))
            assert seen == [loop_thread]
            assert keys.export_key("alice", 3) == b"mine"
            with pytest.raises(lk_anyio.LocalProtocolError, match="no key for 'bob'"):
                await anyio.to_thread.run_sync(lambda: keys.ratchet_key("bob", 0))
        finally:
            await room.disconnect()


@pytest.mark.anyio
async def test_a_ratchet_search_runs_in_a_worker_thread() -> None:
    """The PBKDF2 window of a wrong key runs off the event loop; the loop keeps turning."""
    async with MemoryServer(update_interval=0) as server:
        alice, bob = lk_anyio.Room(), lk_anyio.Room()
        pbkdf2 = KeyDerivationFunction.PBKDF2
        await alice.connect(
            server.url,
            server.token("alice"),
            encrypted(key=b"right", key_derivation_function=pbkdf2),
        )
        await bob.connect(
            server.url, server.token("bob"), encrypted(key=b"wrong", key_derivation_function=pbkdf2)
        )
        threads: set[int] = set()
        run = _e2ee.cmd.DeriveRatchets.run

        def spy(self: Any) -> Any:
            threads.add(threading.get_ident())
            return run(self)

        failed = anyio.Event()
        bob.on("e2ee_state_changed", lambda p, s: failed.set())
        ticks = 0
        try:
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(_e2ee.cmd.DeriveRatchets, "run", spy)
                await alice.local_participant.publish_data(b"unreadable for bob")
                with anyio.fail_after(20):
                    while not failed.is_set():
                        await anyio.sleep(0.005)
                        ticks += 1
            assert threads and threading.get_ident() not in threads
            assert ticks > 20  # the loop ran all along (a second of PBKDF2 in 5-ms sleeps)
        finally:
            await alice.disconnect()
            await bob.disconnect()


def test_the_warning_names_the_caller() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _e2ee.connection_settings(lk_anyio.RoomOptions(e2ee=lk_anyio.E2EEOptions()))
    assert [w.category for w in caught] == [DeprecationWarning]


# The README's example (e2ee.py) is a complete program: tests/e2e/test_readme.py runs it as
# written against the real server.
