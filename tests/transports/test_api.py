"""`lkproto.transports.api` without a network: URL mapping, the exact request bytes, response
and error decoding, redaction, and the client's calls against a scripted in-memory server.

`TwirpExchange` is fed exactly the bytes a server would write. `LiveKitAPI` is exercised with
`anyio.connect_tcp` replaced by an in-memory stream that parses the request with h11 and plays
a canned answer, so the method, path, headers, JSON body and the token's grants of every call
are checked byte for byte. No sockets are opened.
"""

from __future__ import annotations

import base64
import errno
import json
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import anyio.abc
import h11
import pytest

import lkproto.transports.api as api_module
from lkproto import __version__
from lkproto.models import Participant, ParticipantKind, ParticipantState, RoomInfo
from lkproto.transports.api import (
    EgressInfo,
    EgressStatus,
    LiveKitAPI,
    ServerEndpoint,
    TransportError,
    TwirpError,
    TwirpExchange,
    server_endpoint,
)

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJrZXkifQ.c2lnbmF0dXJlLXNlY3JldC0wMTIzNDU2Nzg5"
SECRET = "api-secret-0123456789abcdefghijklmnopqrstuv"
KEY = "api-key"


def exchange(
    url: str = "ws://127.0.0.1:7880",
    service: str = "RoomService",
    method: str = "ListRooms",
    payload: dict[str, object] | None = None,
    **kwargs: Any,
) -> TwirpExchange:
    return TwirpExchange(
        server_endpoint(url), service, method, payload or {}, TOKEN, secrets=(SECRET,), **kwargs
    )


def response(status: int, body: bytes, content_type: str = "application/json") -> bytes:
    reason = {200: "OK", 401: "Unauthorized", 404: "Not Found", 503: "Service Unavailable"}
    return (
        f"HTTP/1.1 {status} {reason.get(status, 'Whatever')}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def feed(ex: TwirpExchange, data: bytes) -> dict[str, object] | None:
    ex.request()
    return ex.receive(data)


def error_of(ex: TwirpExchange, data: bytes) -> TwirpError:
    with pytest.raises(TwirpError) as info:
        feed(ex, data)
    return info.value


# -- URLs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("ws://127.0.0.1:7880", ServerEndpoint("127.0.0.1", 7880, False, "", "127.0.0.1:7880")),
        ("wss://lk.example", ServerEndpoint("lk.example", 443, True, "", "lk.example")),
        ("WSS://LK.example/", ServerEndpoint("lk.example", 443, True, "", "LK.example")),
        ("http://lk.example", ServerEndpoint("lk.example", 80, False, "", "lk.example")),
        (
            "https://lk.example:8443/base/",
            ServerEndpoint("lk.example", 8443, True, "/base", "lk.example:8443"),
        ),
        ("ws://[::1]:7880", ServerEndpoint("::1", 7880, False, "", "[::1]:7880")),
        ("wss://user:pw@lk.example", ServerEndpoint("lk.example", 443, True, "", "lk.example")),
    ],
)
def test_server_endpoint_maps_ws_to_http_and_wss_to_https(
    url: str, expected: ServerEndpoint
) -> None:
    endpoint = server_endpoint(url)
    assert endpoint == expected
    assert endpoint.target("RoomService", "ListRooms") == (
        f"{expected.base_path}/twirp/livekit.RoomService/ListRooms"
    )


def test_server_endpoint_url() -> None:
    assert server_endpoint("wss://lk.example/x/").url == "https://lk.example/x"
    assert server_endpoint("ws://127.0.0.1:7880").url == "http://127.0.0.1:7880"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "ftp://lk.example",
            "the LiveKit URL must start with ws://, wss://, http:// or https://, got 'ftp'",
        ),
        (
            "lk.example:7880",
            "the LiveKit URL must start with ws://, wss://, http:// or https://, got 'lk.example'",
        ),
        ("ws://", "the LiveKit URL has no host"),
        ("wss://lk.example/?access_token=x", "the LiveKit URL must not have a query or a fragment"),
        (
            "ws://lk.example:99999",
            "the LiveKit URL has an invalid port: Port out of range 0-65535",
        ),
    ],
)
def test_server_endpoint_rejects(url: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        server_endpoint(url)
    assert str(info.value) == message


# -- the request -------------------------------------------------------------------------------


def test_request_bytes_exactly() -> None:
    ex = exchange("wss://lk.example/base", "RoomService", "ListParticipants", {"room": "r1"})
    assert ex.request() == (
        b"POST /base/twirp/livekit.RoomService/ListParticipants HTTP/1.1\r\n"
        b"Host: lk.example\r\n"
        b"User-Agent: lkproto/" + __version__.encode() + b"\r\n"
        b"Content-Type: application/json\r\n"
        b"Accept: application/json\r\n"
        b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"
        b"Content-Length: 13\r\n"
        b"Connection: close\r\n"
        b"\r\n"
        b'{"room":"r1"}'
    )


def test_request_body_is_compact_utf8_json() -> None:
    ex = exchange(payload={"names": ["a", "é"], "active": True})
    body = ex.request().split(b"\r\n\r\n", 1)[1]
    assert body == b'{"names":["a","\\u00e9"],"active":true}'


# -- successful answers ------------------------------------------------------------------------

ROOMS = b'{"rooms":[{"sid":"RM_1","name":"r1","num_participants":2}]}'


def test_success_all_at_once() -> None:
    assert feed(exchange(), response(200, ROOMS)) == {
        "rooms": [{"sid": "RM_1", "name": "r1", "num_participants": 2}]
    }


def test_success_one_byte_at_a_time() -> None:
    ex = exchange()
    ex.request()
    data = response(200, ROOMS)
    results = [ex.receive(data[i : i + 1]) for i in range(len(data))]
    assert results[:-1] == [None] * (len(data) - 1)
    assert results[-1] == {"rooms": [{"sid": "RM_1", "name": "r1", "num_participants": 2}]}


def test_success_chunked_and_close_delimited() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
        b'5\r\n{"a":\r\n2\r\n1}\r\n0\r\n\r\n'
    )
    assert feed(exchange(), chunked) == {"a": 1}
    ex = exchange()
    ex.request()
    assert ex.receive(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{}") is None
    assert ex.receive(b"") == {}


def test_interim_100_continue_is_skipped() -> None:
    data = b"HTTP/1.1 100 Continue\r\n\r\n" + response(200, b"{}")
    assert feed(exchange(), data) == {}


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b"", b'"text"'])
def test_success_status_with_a_body_that_is_not_an_object(body: bytes) -> None:
    err = error_of(exchange(), response(200, body))
    assert (err.code, err.message, err.status, err.method, err.metadata) == (
        "internal",
        "the server's answer is not a JSON object",
        200,
        "RoomService/ListRooms",
        {},
    )


# -- error answers -----------------------------------------------------------------------------


def test_twirp_error_body() -> None:
    body = b'{"code":"not_found","msg":"twirp error unknown: requested room does not exist"}'
    err = error_of(exchange(method="DeleteRoom"), response(404, body))
    assert (err.code, err.message, err.status, err.method, err.metadata) == (
        "not_found",
        "twirp error unknown: requested room does not exist",
        404,
        "RoomService/DeleteRoom",
        {},
    )
    assert str(err) == (
        "RoomService/DeleteRoom: not_found: twirp error unknown: requested room does not exist"
        " (HTTP 404)"
    )


def test_twirp_error_meta_and_a_token_in_the_message_are_redacted() -> None:
    body = json.dumps(
        {
            "code": "bad_route",
            "msg": f"no handler for token {TOKEN} with {SECRET}",
            "meta": {"twirp_invalid_route": "POST /x", "n": 5, "echo": TOKEN},
        }
    ).encode()
    err = error_of(exchange(), response(404, body))
    assert err.code == "bad_route"
    assert err.message == "no handler for token <redacted> with <redacted>"
    assert err.metadata == {"twirp_invalid_route": "POST /x", "n": "5", "echo": "<redacted>"}
    assert TOKEN not in str(err) and SECRET not in str(err) and TOKEN not in repr(err)


def test_livekit_401_plain_text_echoes_the_token_and_is_redacted() -> None:
    body = f"invalid token: {TOKEN}, error: token signature is invalid".encode()
    err = error_of(exchange(), response(401, body, "text/plain; charset=utf-8"))
    assert (err.code, err.message, err.status, err.metadata) == (
        "unauthenticated",
        "invalid token: <redacted>, error: token signature is invalid",
        401,
        {"http_error_from_intermediary": "true", "status_code": "401"},
    )
    assert str(err) == (
        "RoomService/ListRooms: unauthenticated: invalid token: <redacted>, error: token "
        "signature is invalid (HTTP 401)"
    )


def test_a_long_plain_body_is_redacted_before_it_is_cut() -> None:
    body = ("x" * 500 + TOKEN + "y" * 100).encode()
    err = error_of(exchange(), response(401, body, "text/plain"))
    assert err.message == "x" * 500 + "<redacted>" + "y" * 2 + "..."
    assert "eyJ" not in err.message


@pytest.mark.parametrize(
    ("status", "body", "code", "message"),
    [
        (404, b"404 page not found\n", "bad_route", "404 page not found"),
        (503, b"", "unavailable", "Service Unavailable"),
        (403, b"nope", "permission_denied", "nope"),
        (429, b"slow down", "unavailable", "slow down"),
        (400, b"<html>bad</html>", "internal", "<html>bad</html>"),
        (302, b"", "internal", "Found"),
        (500, b"boom", "unknown", "boom"),
        (418, b'{"msg": "no code"}', "internal", '{"msg": "no code"}'),
        (599, b"", "unknown", "Whatever"),
    ],
)
def test_errors_that_are_not_twirp_get_the_code_twirp_derives_from_the_status(
    status: int, body: bytes, code: str, message: str
) -> None:
    err = error_of(exchange(service="EgressService", method="ListEgress"), response(status, body))
    assert (err.code, err.message, err.status, err.metadata) == (
        code,
        message,
        status,
        {"http_error_from_intermediary": "true", "status_code": str(status)},
    )


# -- broken responses --------------------------------------------------------------------------


def test_cut_short_then_eof_is_a_transport_error() -> None:
    ex = exchange()
    ex.request()
    assert ex.receive(response(200, ROOMS)[:-5]) is None
    with pytest.raises(TransportError) as info:
        ex.receive(b"")
    assert str(info.value) == (
        "RoomService/ListRooms: the connection closed before the response was complete"
    )


def test_eof_before_any_answer() -> None:
    ex = exchange()
    ex.request()
    with pytest.raises(TransportError) as info:
        ex.receive(b"")
    assert str(info.value) == (
        "RoomService/ListRooms: the connection closed before the response was complete"
    )


def test_not_http() -> None:
    with pytest.raises(TransportError) as info:
        feed(exchange(), b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
    assert str(info.value).startswith("RoomService/ListRooms: the server's answer is not HTTP: ")


def test_response_size_is_bounded() -> None:
    ex = exchange(max_response_size=10)
    with pytest.raises(TransportError) as info:
        feed(ex, response(200, b'{"rooms":[1,2,3]}'))
    assert str(info.value) == "RoomService/ListRooms: the response is larger than 10 bytes"


def test_receive_after_the_answer_is_complete() -> None:
    ex = exchange()
    assert feed(ex, response(200, b"{}")) == {}
    with pytest.raises(TransportError):
        ex.receive(b"more")


# -- EgressInfo --------------------------------------------------------------------------------


def test_egress_info_from_livekit_json() -> None:
    info = EgressInfo.from_json(
        {
            "egress_id": "EG_1",
            "room_id": "RM_1",
            "room_name": "r1",
            "status": "EGRESS_ACTIVE",
            "started_at": "1730304000000000000",
            "ended_at": "0",
            "updated_at": 1730304001000000000,
            "error": "",
            "room_composite": {"layout": "grid"},
        }
    )
    assert info == EgressInfo(
        egress_id="EG_1",
        room_id="RM_1",
        room_name="r1",
        status=EgressStatus.EGRESS_ACTIVE,
        started_at=1730304000000000000,
        ended_at=0,
        updated_at=1730304001000000000,
        error="",
    )
    assert info.active


def test_egress_info_camel_case_numbers_and_unknown_status() -> None:
    info = EgressInfo.from_json({"egressId": "EG_2", "roomName": "r", "status": 2})
    assert (info.egress_id, info.room_name, info.status, info.active) == (
        "EG_2",
        "r",
        EgressStatus.EGRESS_ENDING,
        False,
    )
    assert EgressInfo.from_json({"egress_id": "EG_3", "status": 42}).status == 42
    assert EgressInfo.from_json({"egress_id": "EG_4"}).active  # STARTING is the default (0)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"status": "EGRESS_ACTIVE"}, "EgressInfo has no egress_id"),
        ({"egress_id": 5}, "EgressInfo.egress_id is not a string: 5"),
        (
            {"egress_id": "E", "status": "RUNNING"},
            "EgressInfo.status is not an egress status: 'RUNNING'",
        ),
        ({"egress_id": "E", "started_at": 1.5}, "EgressInfo.started_at is not an integer: 1.5"),
        ({"egress_id": "E", "ended_at": "soon"}, "invalid literal for int() with base 10: 'soon'"),
    ],
)
def test_egress_info_rejects(value: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError) as info:
        EgressInfo.from_json(value)
    assert str(info.value) == message


# -- LiveKitAPI: construction ------------------------------------------------------------------


def test_repr_and_messages_never_show_the_secret() -> None:
    api = LiveKitAPI("wss://lk.example", KEY, SECRET)
    assert repr(api) == "LiveKitAPI(url='https://lk.example', api_key='api-key')"
    assert SECRET not in repr(api) and SECRET not in str(vars(api).get("endpoint"))


def test_credentials_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVEKIT_URL", "ws://127.0.0.1:7880")
    monkeypatch.setenv("LIVEKIT_API_KEY", "env-key")
    monkeypatch.setenv("LIVEKIT_API_SECRET", SECRET)
    assert repr(LiveKitAPI()) == "LiveKitAPI(url='http://127.0.0.1:7880', api_key='env-key')"


def test_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError) as info:
        LiveKitAPI("ws://h", KEY, SECRET, timeout=0)
    assert str(info.value) == "timeout must be positive, got 0"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("", KEY, SECRET), "a LiveKit URL is required (argument or LIVEKIT_URL)"),
        (
            ("ws://h", "", SECRET),
            "an API key and secret are required (arguments or LIVEKIT_API_KEY and "
            "LIVEKIT_API_SECRET)",
        ),
        (
            ("ws://h", KEY, ""),
            "an API key and secret are required (arguments or LIVEKIT_API_KEY and "
            "LIVEKIT_API_SECRET)",
        ),
    ],
)
def test_missing_settings(
    monkeypatch: pytest.MonkeyPatch, args: tuple[str, str, str], message: str
) -> None:
    for name in ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError) as info:
        LiveKitAPI(*args)
    assert str(info.value) == message


# -- LiveKitAPI: calls against a scripted in-memory server -------------------------------------


class ScriptedServer:
    """Answers each connection with the next canned response; records requests and hosts."""

    def __init__(self, *answers: bytes | Exception | None) -> None:
        self.answers = list(answers)  # None: never answer
        self.requests: list[tuple[h11.Request, bytes]] = []
        self.connects: list[tuple[str, int, dict[str, object]]] = []

    async def connect_tcp(self, host: str, port: int, **kwargs: object) -> anyio.abc.ByteStream:
        self.connects.append((host, port, kwargs))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return _Stream(self, answer)


class _Stream(anyio.abc.ByteStream):
    def __init__(self, server: ScriptedServer, answer: bytes | None) -> None:
        self._server = server
        self._answer = answer
        self._http = h11.Connection(h11.SERVER)
        self._request: h11.Request | None = None
        self._body = bytearray()
        self._complete = anyio.Event()
        self.closed = False

    async def send(self, item: bytes) -> None:
        self._http.receive_data(item)
        while (event := self._http.next_event()) is not h11.NEED_DATA:
            if isinstance(event, h11.Request):
                self._request = event
            elif isinstance(event, h11.Data):
                self._body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert self._request is not None
                self._server.requests.append((self._request, bytes(self._body)))
                self._complete.set()
                break

    async def receive(self, max_bytes: int = 65536) -> bytes:
        await self._complete.wait()
        if self._answer is None:
            await anyio.sleep_forever()
        if not self._answer:
            raise anyio.EndOfStream
        out, self._answer = self._answer[:max_bytes], self._answer[max_bytes:]
        return out

    async def send_eof(self) -> None:  # pragma: no cover - not used by the client
        pass

    async def aclose(self) -> None:
        self.closed = True


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def script(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., ScriptedServer]]:
    def make(*answers: bytes | Exception | None) -> ScriptedServer:
        server = ScriptedServer(*answers)
        monkeypatch.setattr(api_module.anyio, "connect_tcp", server.connect_tcp)
        return server

    yield make


def claims(request: h11.Request) -> dict[str, Any]:
    """The JWT claims of the request's bearer token (signature checked by the e2e tests)."""
    auth = dict(request.headers)[b"authorization"].decode()
    assert auth.startswith("Bearer ")
    payload = auth.split(" ", 1)[1].split(".")[1]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return decoded


def call_of(server: ScriptedServer, i: int = 0) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(target, JSON body, token grants) of the i-th request."""
    request, body = server.requests[i]
    headers = dict(request.headers)
    assert headers[b"content-type"] == b"application/json"
    assert headers[b"host"] == b"127.0.0.1:7880"
    token = claims(request)
    assert token["iss"] == KEY and "sub" not in token
    assert token["exp"] - token["nbf"] == 600 + 10
    return request.target.decode(), json.loads(body), token["video"]


API_URL = "ws://127.0.0.1:7880"


@pytest.mark.anyio
async def test_list_rooms(script: Callable[..., ScriptedServer]) -> None:
    server = script(
        response(
            200,
            b'{"rooms":[{"sid":"RM_1", "name":"r1", "num_participants":2, "max_participants":0,'
            b' "creation_time":"1795257512", "creation_time_ms":"1795257512234",'
            b' "turn_password":"x", "enabled_codecs":[{"mime":"audio/opus","fmtp_line":""}],'
            b' "metadata":"m", "active_recording":false, "version":null, "new_field":1}]}',
        ),
        response(200, b'{"rooms":[]}'),
    )
    api = LiveKitAPI(API_URL, KEY, SECRET)
    assert await api.list_rooms() == [
        RoomInfo(
            sid="RM_1",
            name="r1",
            metadata="m",
            num_participants=2,
            max_participants=0,
            active_recording=False,
            creation_time_ms=1795257512234,
        )
    ]
    assert await api.list_rooms(["r2", "r3"]) == []
    assert call_of(server, 0) == ("/twirp/livekit.RoomService/ListRooms", {}, {"roomList": True})
    assert call_of(server, 1) == (
        "/twirp/livekit.RoomService/ListRooms",
        {"names": ["r2", "r3"]},
        {"roomList": True},
    )
    assert [c[:2] for c in server.connects] == [("127.0.0.1", 7880)] * 2


@pytest.mark.anyio
async def test_list_participants(script: Callable[..., ScriptedServer]) -> None:
    server = script(
        response(
            200,
            b'{"participants":[{"sid":"PA_1","identity":"Bob::rp1::1","state":"ACTIVE",'
            b'"name":"Bob","kind":"AGENT","attributes":{"a":"1"},"joined_at":"1795257512",'
            b'"joined_at_ms":"1795257512500","permission":{"can_publish_data":true},'
            b'"kind_details":[],"tracks":[]}]}',
        )
    )
    (p,) = await LiveKitAPI(API_URL, KEY, SECRET).list_participants("room-1")
    assert isinstance(p, Participant)
    assert (p.sid, p.identity, p.name, p.state, p.kind, dict(p.attributes), p.joined_at_ms) == (
        "PA_1",
        "Bob::rp1::1",
        "Bob",
        ParticipantState.ACTIVE,
        ParticipantKind.AGENT,
        {"a": "1"},
        1795257512500,
    )
    assert p.permissions.can_publish_data
    assert call_of(server) == (
        "/twirp/livekit.RoomService/ListParticipants",
        {"room": "room-1"},
        {"room": "room-1", "roomAdmin": True},
    )


@pytest.mark.anyio
async def test_delete_room_needs_the_create_grant(script: Callable[..., ScriptedServer]) -> None:
    server = script(response(200, b"{}"))
    assert await LiveKitAPI(API_URL, KEY, SECRET).delete_room("room-1") is None
    assert call_of(server) == (
        "/twirp/livekit.RoomService/DeleteRoom",
        {"room": "room-1"},
        {"roomCreate": True},
    )


@pytest.mark.anyio
async def test_list_egress_follows_pages_and_stop_egress(
    script: Callable[..., ScriptedServer],
) -> None:
    server = script(
        response(
            200,
            b'{"items":[{"egress_id":"EG_1","room_name":"r","status":"EGRESS_ACTIVE"}],'
            b'"next_page_token":{"token":"p2"}}',
        ),
        response(
            200,
            b'{"items":[{"egress_id":"EG_2","room_name":"r","status":"EGRESS_STARTING"}],'
            b'"next_page_token":null}',
        ),
        response(200, b'{"egress_id":"EG_1","room_name":"r","status":"EGRESS_ENDING"}'),
    )
    api = LiveKitAPI(API_URL, KEY, SECRET)
    found = await api.list_egress(room_name="r", active=True)
    assert [(e.egress_id, e.status) for e in found] == [
        ("EG_1", EgressStatus.EGRESS_ACTIVE),
        ("EG_2", EgressStatus.EGRESS_STARTING),
    ]
    stopped = await api.stop_egress("EG_1")
    assert (stopped.egress_id, stopped.status) == ("EG_1", EgressStatus.EGRESS_ENDING)
    path = "/twirp/livekit.EgressService/"
    assert [call_of(server, i) for i in range(3)] == [
        (path + "ListEgress", {"room_name": "r", "active": True}, {"roomRecord": True}),
        (
            path + "ListEgress",
            {"room_name": "r", "active": True, "page_token": {"token": "p2"}},
            {"roomRecord": True},
        ),
        (path + "StopEgress", {"egress_id": "EG_1"}, {"roomRecord": True}),
    ]


@pytest.mark.anyio
async def test_list_egress_by_id_and_empty_answers(script: Callable[..., ScriptedServer]) -> None:
    server = script(response(200, b"{}"), response(200, b'{"rooms":null}'))
    api = LiveKitAPI(API_URL, KEY, SECRET)
    assert await api.list_egress(egress_id="EG_9") == []
    assert await api.list_rooms() == []
    assert call_of(server, 0) == (
        "/twirp/livekit.EgressService/ListEgress",
        {"egress_id": "EG_9"},
        {"roomRecord": True},
    )


@pytest.mark.anyio
async def test_call_errors_and_redaction(script: Callable[..., ScriptedServer]) -> None:
    server = script(
        response(
            200,
            b'{"participants":[{"identity":5}]}',
        ),
        response(200, b'{"rooms":{"a":1}}'),
        response(200, b'{"items":[{"status":"EGRESS_ACTIVE"}]}'),
    )
    api = LiveKitAPI(API_URL, KEY, SECRET)
    with pytest.raises(TwirpError) as info:
        await api.list_participants("r")
    assert info.value.code == "internal"
    assert info.value.message.startswith("unexpected answer: Failed to parse identity field")
    with pytest.raises(TwirpError) as info:
        await api.list_rooms()
    assert info.value.message == "the answer's 'rooms' is not a list of objects"
    with pytest.raises(TwirpError) as info:
        await api.list_egress()
    assert str(info.value) == (
        "EgressService/ListEgress: internal: unexpected answer: EgressInfo has no egress_id"
        " (HTTP 200)"
    )
    assert len(server.requests) == 3


@pytest.mark.anyio
async def test_the_minted_token_echoed_by_the_server_is_redacted(
    script: Callable[..., ScriptedServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    minted: list[str] = []
    real_mint = api_module.mint_token

    def spy(*args: Any, **kwargs: Any) -> str:
        token = real_mint(*args, **kwargs)
        minted.append(token)
        return token

    monkeypatch.setattr(api_module, "mint_token", spy)

    class Echo(ScriptedServer):
        async def connect_tcp(self, host: str, port: int, **kwargs: object) -> anyio.abc.ByteStream:
            body = f"invalid token: {minted[-1]}, error: {SECRET}".encode()
            self.answers = [response(401, body, "text/plain")]
            return await super().connect_tcp(host, port, **kwargs)

    echo = Echo()
    monkeypatch.setattr(api_module.anyio, "connect_tcp", echo.connect_tcp)
    with pytest.raises(TwirpError) as info:
        await LiveKitAPI(API_URL, KEY, SECRET).list_rooms()
    assert info.value.message == "invalid token: <redacted>, error: <redacted>"
    for text in (str(info.value), repr(info.value)):
        assert minted[0] not in text and SECRET not in text


@pytest.mark.anyio
async def test_connect_failure_is_a_transport_error(
    script: Callable[..., ScriptedServer],
) -> None:
    script(OSError(errno.ECONNREFUSED, "Connect call failed"))
    with pytest.raises(TransportError) as info:
        await LiveKitAPI(API_URL, KEY, SECRET).list_rooms()
    assert str(info.value) == (
        "LiveKit server API RoomService/ListRooms: could not connect to 127.0.0.1:7880: "
        "Connection refused"
    )


@pytest.mark.anyio
async def test_tls_for_wss(script: Callable[..., ScriptedServer]) -> None:
    server = script(response(200, b'{"rooms":[]}'))
    api = LiveKitAPI("wss://lk.example", KEY, SECRET)
    assert await api.list_rooms() == []
    assert server.connects == [
        ("lk.example", 443, {"tls": True, "ssl_context": None, "tls_standard_compatible": False})
    ]
    assert dict(server.requests[0][0].headers)[b"host"] == b"lk.example"


@pytest.mark.anyio
async def test_no_answer_within_the_timeout(script: Callable[..., ScriptedServer]) -> None:
    script(None)
    api = LiveKitAPI(API_URL, KEY, SECRET, timeout=0.05)
    with anyio.fail_after(5):
        with pytest.raises(TransportError) as info:
            await api.delete_room("r")
    assert str(info.value) == "LiveKit server API RoomService/DeleteRoom: no answer within 0.05s"


@pytest.mark.anyio
async def test_server_closes_without_answer(script: Callable[..., ScriptedServer]) -> None:
    script(b"")
    with pytest.raises(TransportError) as info:
        await LiveKitAPI(API_URL, KEY, SECRET).list_rooms()
    assert str(info.value) == (
        "RoomService/ListRooms: the connection closed before the response was complete"
    )
