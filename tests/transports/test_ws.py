"""`WebSocketClient` (transports/_ws.py) against a wsproto server connection, in memory.

Every test feeds the client exactly the bytes a server would write and checks the exact
results, and feeds what the client wants written back into the server. No sockets, no clock.
The last section covers the error boundary (`map_exceptions`) the adapters wrap that I/O in.
"""

from __future__ import annotations

import socket
import ssl

import anyio
import pytest
import wsproto
import wsproto.events as wse
from wsproto.connection import ConnectionState as WsState

from lkproto.errors import LocalProtocolError
from lkproto.transports._errors import TransportError, describe, map_exceptions, redact
from lkproto.transports._ws import (
    Accepted,
    Closed,
    Endpoint,
    Message,
    Rejected,
    WebSocketClient,
    parse_endpoint,
)

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXNlY3JldC0wMTIzNDU2Nzg5"
URL = "wss://sfu.example:7443/base/rtc/v1?join_request=Q0FF%3D%3D"
HEADERS = (("Authorization", f"Bearer {TOKEN}"),)


class Server:
    """The server side of one WebSocket, holding the client's handshake request."""

    def __init__(self, client: WebSocketClient) -> None:
        self.ws = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
        self.ws.receive_data(client.handshake())
        (request,) = list(self.ws.events())
        assert isinstance(request, wse.Request)
        self.request = request

    def send(self, *events: wse.Event) -> bytes:
        return b"".join(self.ws.send(e) for e in events)

    def receive(self, data: bytes) -> list[wse.Event]:
        self.ws.receive_data(data)
        return list(self.ws.events())


def client(max_message_size: int = 16 * 1024 * 1024) -> WebSocketClient:
    return WebSocketClient(URL, HEADERS, max_message_size=max_message_size)


def opened(max_message_size: int = 16 * 1024 * 1024) -> tuple[WebSocketClient, Server]:
    c = client(max_message_size)
    server = Server(c)
    assert c.receive(server.send(wse.AcceptConnection())) == [Accepted()]
    return c, server


def reject(server: Server, status: int, body: bytes) -> bytes:
    headers = [(b"content-type", b"text/plain; charset=utf-8")]
    return server.send(
        wse.RejectConnection(status_code=status, headers=headers, has_body=True),
        wse.RejectData(data=body, body_finished=True),
    )


# -- the handshake ------------------------------------------------------------------------------


def test_handshake_carries_bearer_token_and_target() -> None:
    c = client()
    server = Server(c)
    request = server.request
    assert request.host == "sfu.example:7443"
    assert request.target == "/base/rtc/v1?join_request=Q0FF%3D%3D"
    assert (b"authorization", f"Bearer {TOKEN}".encode()) in request.extra_headers
    assert TOKEN not in request.target
    assert c.data_to_send() == b""
    assert c.closed is False


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            URL,
            Endpoint(
                "sfu.example",
                7443,
                True,
                "/base/rtc/v1?join_request=Q0FF%3D%3D",
                "sfu.example:7443",
            ),
        ),
        ("ws://10.0.0.1", Endpoint("10.0.0.1", 80, False, "/", "10.0.0.1")),
        ("wss://sfu.example/rtc", Endpoint("sfu.example", 443, True, "/rtc", "sfu.example")),
        ("ws://h:7880/rtc?a=1&b=2", Endpoint("h", 7880, False, "/rtc?a=1&b=2", "h:7880")),
    ],
)
def test_parse_endpoint(url: str, expected: Endpoint) -> None:
    assert parse_endpoint(url) == expected
    assert WebSocketClient(url, ()).endpoint == expected


def test_accepted() -> None:
    c = client()
    server = Server(c)
    assert c.receive(server.send(wse.AcceptConnection())) == [Accepted()]
    assert c.data_to_send() == b""
    assert c.closed is False


def test_accept_and_first_message_in_one_read() -> None:
    c = client()
    server = Server(c)
    data = server.send(wse.AcceptConnection(), wse.BytesMessage(data=b"join"))
    assert c.receive(data) == [Accepted(), Message(b"join")]


def test_accept_fed_one_byte_at_a_time() -> None:
    c = client()
    server = Server(c)
    data = server.send(wse.AcceptConnection())
    results = [r for i in range(len(data)) for r in c.receive(data[i : i + 1])]
    assert results == [Accepted()]


def test_a_bad_accept_token_is_a_protocol_error() -> None:
    c = client()
    c.handshake()
    bad = (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: bm90IHRoZSByaWdodCBvbmU=\r\n\r\n"
    )
    assert c.receive(bad) == [Closed(1002, "WebSocket protocol error: Bad accept token")]
    assert c.closed is True


# -- messages -----------------------------------------------------------------------------------


def test_binary_messages_come_out_whole_and_in_order() -> None:
    c, server = opened()
    data = server.send(wse.BytesMessage(data=b"one"), wse.BytesMessage(data=b"two"))
    assert c.receive(data) == [Message(b"one"), Message(b"two")]


def test_fragmented_message_is_reassembled() -> None:
    c, server = opened()
    first = server.send(wse.BytesMessage(data=b"abc", message_finished=False))
    middle = server.send(wse.BytesMessage(data=b"def", message_finished=False))
    last = server.send(wse.BytesMessage(data=b"gh", message_finished=True))
    assert c.receive(first) == []
    assert c.receive(middle) == []
    assert c.receive(last) == [Message(b"abcdefgh")]
    assert c.receive(server.send(wse.BytesMessage(data=b"next"))) == [Message(b"next")]


def test_large_message_fed_in_small_reads() -> None:
    c, server = opened()
    payload = bytes(range(256)) * 4096  # 1 MiB
    data = server.send(wse.BytesMessage(data=payload))
    results = [r for i in range(0, len(data), 1000) for r in c.receive(data[i : i + 1000])]
    assert results == [Message(payload)]


def test_text_message_is_delivered_as_utf8_bytes() -> None:
    c, server = opened()
    assert c.receive(server.send(wse.TextMessage(data="héllo"))) == [Message("héllo".encode())]


def test_send_frames_a_binary_message() -> None:
    c, server = opened()
    assert server.receive(c.send(b"\x00\x01request")) == [
        wse.BytesMessage(data=b"\x00\x01request", frame_finished=True, message_finished=True)
    ]


def test_message_exactly_at_the_limit_is_delivered() -> None:
    c, server = opened(max_message_size=8)
    data = server.send(wse.BytesMessage(data=b"1234", message_finished=False))
    data += server.send(wse.BytesMessage(data=b"5678"))
    assert c.receive(data) == [Message(b"12345678")]


def test_over_limit_message_closes_with_1009() -> None:
    c, server = opened(max_message_size=8)
    assert c.receive(server.send(wse.BytesMessage(data=b"123456789"))) == [
        Closed(1009, "signal message too large")
    ]
    assert server.receive(c.data_to_send()) == [wse.CloseConnection(code=1009, reason="")]
    assert c.closed is True


def test_over_limit_fragment_ends_processing_of_that_read() -> None:
    # Nothing after the 1009 close: not the rest of the message, not a later frame.
    c, server = opened(max_message_size=8)
    data = server.send(
        wse.BytesMessage(data=b"123456789", message_finished=False),
        wse.BytesMessage(data=b"tail"),
        wse.BytesMessage(data=b"after"),
        wse.CloseConnection(code=1000),
    )
    assert c.receive(data) == [Closed(1009, "signal message too large")]
    assert server.receive(c.data_to_send()) == [wse.CloseConnection(code=1009, reason="")]
    assert c.receive(b"\x82\x04late") == []  # an unmasked binary frame, as servers send


# -- control frames and closing -----------------------------------------------------------------


def test_ping_is_answered_with_a_pong() -> None:
    c, server = opened()
    assert c.receive(server.send(wse.Ping(payload=b"hb-1"))) == []
    assert server.receive(c.data_to_send()) == [wse.Pong(payload=b"hb-1")]
    assert c.data_to_send() == b""


def test_server_close_is_reported_and_answered() -> None:
    c, server = opened()
    assert c.receive(server.send(wse.CloseConnection(code=1001, reason="going away"))) == [
        Closed(1001, "going away")
    ]
    assert server.receive(c.data_to_send()) == [wse.CloseConnection(code=1001, reason="going away")]
    assert server.ws.state is WsState.CLOSED
    assert c.closed is True
    assert c.receive(b"anything") == []
    assert c.receive(None) == []
    assert c.send(b"too late") == b""
    assert c.close() == b""


def test_our_close_then_the_servers_reply() -> None:
    c, server = opened()
    assert server.receive(c.close(4000)) == [wse.CloseConnection(code=4000, reason="")]
    reply = server.send(wse.CloseConnection(code=4000))
    assert c.receive(reply) == [Closed(4000, "")]
    assert c.data_to_send() == b""
    assert c.close() == b""


def test_close_before_open_sends_nothing() -> None:
    c = client()
    c.handshake()
    assert c.close() == b""
    assert c.send(b"x") == b""


def test_eof_before_a_response() -> None:
    c = client()
    c.handshake()
    assert c.receive(None) == [Closed(None)]
    assert c.closed is True
    assert c.receive(None) == []


def test_eof_in_the_middle_of_the_response_headers() -> None:
    c = client()
    c.handshake()
    assert c.receive(b"HTTP/1.1 101 Switching Protocols\r\nUpgr") == []
    assert c.receive(None) == [Closed(None)]


def test_eof_after_open_without_a_close_frame() -> None:
    c, _server = opened()
    assert c.receive(None) == [Closed(None)]
    assert c.data_to_send() == b""


def test_eof_while_waiting_for_the_close_reply() -> None:
    c, server = opened()
    server.receive(c.close())
    assert c.receive(None) == [Closed(None)]


def test_garbage_instead_of_an_http_response() -> None:
    c = client()
    c.handshake()
    assert c.receive(b"\x16\x03\x01\x00garbage\r\n\r\n") == [
        Closed(1002, "WebSocket protocol error: Bad HTTP message")
    ]
    assert c.data_to_send() == b""
    assert c.closed is True


def test_garbage_frame_after_open_closes_with_1002() -> None:
    c, server = opened()
    assert c.receive(b"\xff\xff\xff\xff") == [Closed(1002, "Invalid opcode 0xf")]
    assert server.receive(c.data_to_send()) == [wse.CloseConnection(code=1002, reason="")]
    assert c.closed is True


# -- rejection ----------------------------------------------------------------------------------


def test_401_with_body() -> None:
    c = client()
    server = Server(c)
    data = reject(server, 401, b"invalid token, error: token is expired\n")
    assert c.receive(data) == [Rejected(401, "invalid token, error: token is expired")]
    assert c.closed is True
    assert c.receive(b"more") == []


def test_rejection_body_split_over_reads() -> None:
    c = client()
    server = Server(c)
    data = reject(server, 403, b"permission denied: canPublish")
    results = [r for i in range(0, len(data), 7) for r in c.receive(data[i : i + 7])]
    assert results == [Rejected(403, "permission denied: canPublish")]


def test_rejection_without_body() -> None:
    c = client()
    server = Server(c)
    data = server.send(wse.RejectConnection(status_code=404, has_body=False))
    assert c.receive(data) == [Rejected(404, "")]


def test_rejection_body_is_truncated_at_2_kib() -> None:
    c = client()
    server = Server(c)
    assert c.receive(reject(server, 401, b"a" * 5000)) == [Rejected(401, "a" * 2048)]


def test_rejection_body_cut_by_eof() -> None:
    c = client()
    c.handshake()
    head = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 100\r\n\r\nthe database is"
    assert c.receive(head) == []
    assert c.receive(None) == [Rejected(500, "the database is")]


def test_rejection_body_delimited_by_eof() -> None:
    c = client()
    c.handshake()
    head = b"HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\n\r\nupstream down"
    assert c.receive(head) == []
    assert c.receive(None) == [Rejected(502, "upstream down")]


def test_echoed_token_is_redacted_from_the_body() -> None:
    # livekit-server answers a bad token with "invalid token: <the token>, error: ...".
    c = client()
    server = Server(c)
    body = f"invalid token: {TOKEN}, error: token signature is invalid ({TOKEN})"
    assert c.receive(reject(server, 401, body.encode())) == [
        Rejected(401, "invalid token: <redacted>, error: token signature is invalid (<redacted>)")
    ]


def test_token_straddling_the_2_kib_cut_is_redacted_whole() -> None:
    c = client()
    server = Server(c)
    body = b"x" * 2040 + TOKEN.encode() + b", error: expired"
    assert c.receive(reject(server, 401, body)) == [Rejected(401, "x" * 2040 + "<redacted>")]


def test_token_after_the_cut_is_not_reported() -> None:
    c = client()
    server = Server(c)
    body = b"y" * 2048 + TOKEN.encode()
    assert c.receive(reject(server, 401, body)) == [Rejected(401, "y" * 2048)]


def test_reason_after_a_long_echoed_token_survives() -> None:
    # The body is cut to 2 KiB after redaction: a 3000-byte token does not crowd out the reason.
    long_token = "h." + "p" * 2950 + ".signature-0123456789abcdefghijklmnopq"
    c = WebSocketClient(URL, (("Authorization", f"Bearer {long_token}"),))
    server = Server(c)
    body = f"invalid token: {long_token}, error: token signature is invalid"
    assert c.receive(reject(server, 401, body.encode())) == [
        Rejected(401, "invalid token: <redacted>, error: token signature is invalid")
    ]


def test_token_cut_off_where_reading_stopped_is_redacted() -> None:
    # Reading stops 2 KiB past the longest secret; a second echo is cut there, mid-token.
    long_token = "h." + "p" * 2950 + ".signature-0123456789abcdefghijklmnopq"
    c = WebSocketClient(URL, (("Authorization", f"Bearer {long_token}"),))
    server = Server(c)
    body = f"{long_token} and again {long_token} and the end"
    assert c.receive(reject(server, 401, body.encode())) == [
        Rejected(401, "<redacted> and again <redacted>")
    ]


def test_a_short_tail_that_happens_to_start_the_token_is_kept() -> None:
    c = client()
    server = Server(c)
    assert c.receive(reject(server, 401, b"bad: " + TOKEN[:7].encode())) == [
        Rejected(401, "bad: " + TOKEN[:7])
    ]
    c = client()
    server = Server(c)
    assert c.receive(reject(server, 401, b"bad: " + TOKEN[:8].encode())) == [
        Rejected(401, "bad: <redacted>")
    ]


def test_only_the_credential_of_the_authorization_header_is_a_secret() -> None:
    c = WebSocketClient(URL, (("Authorization", "Bearer s3cr3t"), ("X-Other", "public")))
    server = Server(c)
    body = b"Bearer s3cr3t public s3cr3t"
    assert c.receive(reject(server, 401, body)) == [
        Rejected(401, "Bearer <redacted> public <redacted>")
    ]


# -- the error boundary -------------------------------------------------------------------------


def test_map_exceptions_wraps_backend_errors_and_redacts() -> None:
    with pytest.raises(TransportError) as info, map_exceptions("signal read", "tok3n"):
        raise anyio.BrokenResourceError("peer reset while sending tok3n")
    assert str(info.value) == "signal read: peer reset while sending <redacted>"
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__ is True


def test_map_exceptions_passes_lkproto_errors_through() -> None:
    original = LocalProtocolError("connect: bad", call="connect")
    with pytest.raises(LocalProtocolError) as info, map_exceptions("x"):
        raise original
    assert info.value is original


def test_map_exceptions_names_an_empty_exception_by_type() -> None:
    with pytest.raises(TransportError) as info, map_exceptions("signal read"):
        raise anyio.EndOfStream
    assert str(info.value) == "signal read: EndOfStream"


def test_describe_appends_the_real_causes_of_a_failed_connect() -> None:
    refused = ConnectionRefusedError(111, "Connect call failed ('10.0.0.1', 80)")
    outer = OSError("All connection attempts failed")
    outer.__cause__ = refused
    assert describe(outer) == "All connection attempts failed: Connection refused"
    group = ExceptionGroup("multiple", [refused, ConnectionRefusedError(111, "again")])
    outer.__cause__ = ExceptionGroup("attempts", [group, TimeoutError("timed out")])
    assert describe(outer) == "All connection attempts failed: Connection refused; timed out"


def test_describe_names_certificate_failures() -> None:
    exc = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] failed")
    exc.verify_message = "self-signed certificate"
    assert describe(exc) == (
        "TLS certificate verification failed: self-signed certificate "
        "(to trust a private CA, pass RoomOptions(ssl_context=...))"
    )


def test_describe_names_a_server_that_does_not_speak_tls() -> None:
    exc = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)")
    exc.reason = "WRONG_VERSION_NUMBER"
    assert describe(exc) == (
        "TLS handshake failed: the server did not answer in TLS (is it a ws:// server?)"
    )
    other = ssl.SSLError(1, "[SSL: SOMETHING_ELSE] other")
    assert describe(other) == "[SSL: SOMETHING_ELSE] other"


def test_describe_keeps_messages_without_a_known_errno() -> None:
    assert describe(socket.gaierror(-2, "Name or service not known")) == (
        "[Errno -2] Name or service not known"
    )
    assert describe(ValueError("bad")) == "bad"


def test_redact() -> None:
    assert redact("a SECRET and SECRET", "SECRET", "") == "a <redacted> and <redacted>"
    assert redact("nothing here", "") == "nothing here"
