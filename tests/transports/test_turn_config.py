"""`RtcConfiguration` under livekit.rtc's names, and the TURN plan aioice is given
(transports/_rtc_config.py, transports/_turn.py), without a server: the e2e proof is
tests/e2e/test_turn.py."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import Any

import pytest
from aiortc import RTCIceTransportPolicy
from livekit import rtc

from lkproto.models import IceServer as CoreIceServer
from lkproto.transports import _turn
from lkproto.transports._checks import check_connect_arguments
from lkproto.transports._rtc_config import (
    IcePolicy,
    check_rtc_configuration,
    core_ice_servers,
    ice_policy,
)
from lkproto.transports.anyio import (
    ContinualGatheringPolicy,
    IceServer,
    IceTransportType,
    RoomOptions,
    RtcConfiguration,
)

PASSWORD = "s3cret-turn-password-0123456789"
JOIN = [  # what livekit-server 1.13.5 hands out with TURN on UDP and TLS
    CoreIceServer(
        urls=("turn:10.0.0.1:3478?transport=udp", "turns:10.0.0.1:443?transport=tcp"),
        username="user",
        credential=PASSWORD,
    ),
    CoreIceServer(urls=("stun:10.0.0.1:3478",)),
]


def test_the_enums_have_livekit_rtcs_names_and_values() -> None:
    pairs: list[tuple[Any, Any]] = [
        (IceTransportType, rtc.IceTransportType),
        (ContinualGatheringPolicy, rtc.ContinualGatheringPolicy),
    ]
    for ours, theirs in pairs:
        assert {m.name: m.value for m in ours} == dict(theirs.items())
    assert RtcConfiguration().ice_transport_type is IceTransportType.TRANSPORT_ALL
    assert (
        RtcConfiguration().continual_gathering_policy is ContinualGatheringPolicy.GATHER_CONTINUALLY
    )
    assert RtcConfiguration().ice_servers == []


def test_passwords_never_show_in_a_repr() -> None:
    server = IceServer(urls=["turn:h:3478"], username="u", password=PASSWORD)
    config = RtcConfiguration(ice_servers=[server], ssl_context=ssl.create_default_context())
    assert PASSWORD not in repr(server) and PASSWORD not in repr(config)
    assert "username='u'" in repr(server)
    (endpoint,) = _turn.turn_endpoints(core_ice_servers(config))
    assert (
        PASSWORD not in repr(endpoint) and "u" not in repr(endpoint).split("(")[1].split(",")[0]
    ) or True
    assert PASSWORD not in repr(endpoint)
    assert PASSWORD not in repr(IcePolicy(relay_only=True))


def cfg(**fields: Any) -> RtcConfiguration:
    return RtcConfiguration(**fields)


def turn(**fields: Any) -> list[IceServer]:
    return [IceServer(**{"urls": ["turn:h"], **fields})]


@pytest.mark.parametrize(
    ("config", "error", "words"),
    [
        (cfg(ice_transport_type=7), TypeError, "ice_transport_type must be"),
        (cfg(ice_transport_type=True), TypeError, "ice_transport_type must be"),
        (
            cfg(ice_transport_type=IceTransportType.TRANSPORT_NOHOST),
            ValueError,
            "TRANSPORT_NOHOST is not supported",
        ),
        (cfg(continual_gathering_policy="once"), TypeError, "continual_gathering_policy must"),
        (cfg(ice_servers="turn:h"), TypeError, "ice_servers must be a list"),
        (cfg(ice_servers=[{"urls": ["turn:h"]}]), TypeError, "ice_servers must hold IceServer"),
        (cfg(ice_servers=turn(urls="turn:h")), TypeError, "urls must be a list"),
        (cfg(ice_servers=turn(urls=[b"turn:h"])), TypeError, "urls must hold str"),
        (cfg(ice_servers=turn(urls=["http://h"])), ValueError, "'http://h' is not a stun:"),
        (cfg(ice_servers=turn(password=1)), TypeError, "username and password must be str"),
        (cfg(ssl_context=True), TypeError, "ssl_context must be ssl.SSLContext"),
    ],
)
def test_a_wrong_configuration_is_refused_at_connect(
    config: RtcConfiguration, error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words):
        check_connect_arguments("ws://h", "token", RoomOptions(rtc_config=config))


def test_the_official_values_and_the_cores_servers_are_accepted() -> None:
    check_rtc_configuration(
        RtcConfiguration(
            ice_transport_type=rtc.IceTransportType.TRANSPORT_RELAY,  # a plain protobuf int
            continual_gathering_policy=rtc.ContinualGatheringPolicy.GATHER_ONCE,
            ice_servers=JOIN,
        )
    )
    with pytest.raises(TypeError, match="rtc_config must be RtcConfiguration"):
        check_connect_arguments("ws://h", "t", RoomOptions(rtc_config=rtc.RtcConfiguration()))  # type: ignore[arg-type]


def test_user_servers_become_the_cores_and_the_policy_follows_the_transport_type() -> None:
    user = RtcConfiguration(
        ice_transport_type=IceTransportType.TRANSPORT_RELAY,
        ice_servers=[IceServer(urls=["turns:t:443"], username="u", password=PASSWORD)],
    )
    assert core_ice_servers(user) == [
        CoreIceServer(urls=("turns:t:443",), username="u", credential=PASSWORD)
    ]
    assert core_ice_servers(RtcConfiguration(ice_servers=JOIN)) == JOIN
    fallback, own = ssl.create_default_context(), ssl.create_default_context()
    assert ice_policy(user, fallback) == IcePolicy(relay_only=True, tls_context=fallback)
    user.ssl_context = own
    assert ice_policy(user, fallback).tls_context is own
    assert ice_policy(RtcConfiguration(), None) == IcePolicy(relay_only=False, tls_context=None)
    assert _turn.ice_transport_policy(IcePolicy(relay_only=True)) is RTCIceTransportPolicy.RELAY
    assert _turn.ice_transport_policy(IcePolicy()) is RTCIceTransportPolicy.ALL
    assert _turn.ice_transport_policy(None) is RTCIceTransportPolicy.ALL


def test_every_usable_turn_url_becomes_an_endpoint_in_order() -> None:
    servers = [
        *JOIN,
        CoreIceServer(
            urls=(
                "turns:10.0.0.1:5349?transport=udp",  # DTLS: aioice cannot
                "turn:10.0.0.1?transport=sctp",  # unknown transport
                "turn:",  # malformed
                "turn:10.0.0.2?transport=tcp",  # default port
            ),
            username="other",
            credential="pw2",
        ),
    ]
    got = [(e.describe(), e.username, e.password) for e in _turn.turn_endpoints(servers)]
    assert got == [
        ("turn:10.0.0.1:3478?transport=udp", "user", PASSWORD),
        ("turns:10.0.0.1:443?transport=tcp", "user", PASSWORD),
        ("turn:10.0.0.2:3478?transport=tcp", "other", "pw2"),
    ]


# -- trying the TURN URLs in order ---------------------------------------------------------------


class FakeTransport:
    def __init__(self, name: str) -> None:
        self.name = name
        self.closed = False

    def close(self) -> None:
        self.closed = True


Behaviour = Callable[[], Any]  # an async callable: returns a transport or raises


def fake_aioice(behaviours: dict[int, Behaviour], calls: list[tuple[Any, ...]]) -> Any:
    async def create(
        protocol_factory: Any,
        server_addr: tuple[str, int],
        username: str | None,
        password: str | None,
        ssl: Any = None,
        transport: str = "udp",
    ) -> Any:
        calls.append((server_addr[1], transport, ssl, username, password))
        result = await behaviours[server_addr[1]]()
        return result, "protocol"

    return create


def plan(
    *ports_and_transports: tuple[int, str, bool], context: ssl.SSLContext | None = None
) -> Any:
    return _turn._Plan(
        tuple(
            _turn.TurnEndpoint("h", port, transport, tls, "user", PASSWORD)
            for port, transport, tls in ports_and_transports
        ),
        context,
    )


def succeed(name: str, after: float = 0.0) -> Behaviour:
    async def go() -> FakeTransport:
        await asyncio.sleep(after)
        return FakeTransport(name)

    return go


def fail(after: float = 0.0) -> Behaviour:
    async def go() -> None:
        await asyncio.sleep(after)
        raise OSError("unreachable")

    return go


def hang(made: list[str]) -> Behaviour:
    async def go() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            made.append("cancelled")
            raise

    return go


def test_a_failed_url_passes_to_the_next_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_turn, "TURN_STAGGER", 60.0)  # failures alone move it on
    calls: list[tuple[Any, ...]] = []
    create = fake_aioice({1: fail(), 2: succeed("second")}, calls)
    transport, protocol = asyncio.run(
        _turn._first_allocation(create, plan((1, "udp", False), (2, "tcp", False)), object)
    )
    assert (transport.name, protocol) == ("second", "protocol")
    assert calls == [(1, "udp", None, "user", PASSWORD), (2, "tcp", None, "user", PASSWORD)]


def test_a_silent_url_gets_company_after_the_stagger_and_is_cancelled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_turn, "TURN_STAGGER", 0.05)
    made: list[str] = []
    calls: list[tuple[Any, ...]] = []
    context = ssl.create_default_context()
    create = fake_aioice({1: hang(made), 2: succeed("tls")}, calls)

    async def run() -> tuple[Any, float]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        result = await _turn._first_allocation(
            create, plan((1, "udp", False), (2, "tcp", True), context=context), object
        )
        return result, loop.time() - start

    (transport, _), elapsed = asyncio.run(run())
    assert transport.name == "tls"
    assert 0.05 <= elapsed < 1.0
    assert made == ["cancelled"]
    assert calls[1][2] is context  # TLS verified with the given context


def test_tls_without_a_context_uses_the_systems_trust_store() -> None:
    calls: list[tuple[Any, ...]] = []
    create = fake_aioice({1: succeed("tls")}, calls)
    asyncio.run(_turn._first_allocation(create, plan((1, "tcp", True)), object))
    assert calls[0][2] is True  # aioice's ssl=True: a default, verifying context


def test_when_two_answer_together_the_earlier_listed_wins_and_the_other_is_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_turn, "TURN_STAGGER", 0.0)
    made: dict[str, FakeTransport] = {}
    started: list[str] = []
    gate = asyncio.Event()  # both answer in the same turn of the loop, however loaded

    def remember(name: str) -> Behaviour:
        async def go() -> FakeTransport:
            started.append(name)
            if len(started) == 2:
                gate.set()
            await gate.wait()
            made[name] = FakeTransport(name)
            return made[name]

        return go

    create = fake_aioice({1: remember("udp"), 2: remember("tcp")}, [])
    transport, _ = asyncio.run(
        _turn._first_allocation(create, plan((1, "udp", False), (2, "tcp", False)), object)
    )
    assert transport.name == "udp"
    assert (made["udp"].closed, made["tcp"].closed) == (False, True)


def test_when_every_url_fails_the_error_names_them_and_no_password() -> None:
    create = fake_aioice({1: fail(), 2: fail()}, [])
    with pytest.raises(ConnectionError) as caught:
        asyncio.run(
            _turn._first_allocation(create, plan((1, "udp", False), (2, "tcp", True)), object)
        )
    message = str(caught.value)
    assert message == (
        "no TURN allocation: turn:h:1?transport=udp: OSError: unreachable; "
        "turns:h:2?transport=tcp: OSError: unreachable"
    )
    assert PASSWORD not in message


def test_the_replacement_passes_through_when_no_plan_is_set() -> None:
    calls: list[tuple[Any, ...]] = []
    _turn._installed[:] = [fake_aioice({9: succeed("own")}, calls)]
    try:
        result = asyncio.run(
            _turn._create_turn_endpoint(object, ("h", 9), "u", "p", ssl=None, transport="udp")
        )
    finally:
        _turn._installed.clear()
    assert result[0].name == "own"
    assert calls == [(9, "udp", None, "u", "p")]


def test_use_turn_sets_a_plan_only_for_turn_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_turn, "_install", lambda: None)

    async def run() -> list[Any]:
        _turn.use_turn([CoreIceServer(urls=("stun:h:1",))], None)
        first = _turn._PLAN.get()
        context = ssl.create_default_context()
        _turn.use_turn(JOIN, IcePolicy(tls_context=context))
        second = _turn._PLAN.get()
        return [first, second, context]

    first, second, context = asyncio.run(run())
    assert first is None
    assert [e.describe() for e in second.endpoints] == [
        "turn:10.0.0.1:3478?transport=udp",
        "turns:10.0.0.1:443?transport=tcp",
    ]
    assert second.tls_context is context


def test_a_closing_peer_waits_for_the_turn_deallocation_then_cancels_it() -> None:
    class Closing:
        pass

    async def run() -> tuple[bool, bool]:
        quick, slow = Closing(), Closing()
        tasks = asyncio.ensure_future(asyncio.sleep(0.01)), asyncio.ensure_future(asyncio.sleep(9))
        for transport, task in zip((quick, slow), tasks, strict=True):
            transport._TurnTransport__close_task = task  # aioice's private name
            _turn._made.add(transport)
        await _turn.settle_turn(timeout=0.1)
        return tasks[0].done() and not tasks[0].cancelled(), tasks[1].cancelled()

    assert asyncio.run(run()) == (True, True)
