"""One vocabulary for the three independent peers the interop matrix runs lkproto against.

`Peer` is what tests/e2e/test_peer_matrix.py is written against: join and leave, attributes,
metadata and name, data packets, RPC and text/byte streams, and what the peer saw of each,
as plain frozen values (`Packet`, `Change`, `Invocation`, `Text`, `File`). Three
implementations wrap, by composition, the existing drivers without repeating them:
`OfficialSdk` (harness/official.py's `OfficialPeer`: `livekit` 1.2, Rust core), `JsClient`
(harness/jspeer.py's `JsPeer`: `livekit-client` in Chromium) and `GoSdk` (harness/gopeer.py's
`GoPeer`: `server-sdk-go` on pion). Waiting is theirs too: `Peer.wait` hands its predicate to
the wrapped driver's `wait_for` (`PeerRecords` for the first two, the Go peer's own event
wait), so it is woken by each event and never polls.

`Peer` is an abstract class rather than a `typing.Protocol` because the helpers every test
uses (`wait`, `wait_packets`, `from_` ...) are written once here over the few accessors each
implementation supplies; a Protocol would make each repeat them.

What a peer cannot do, or does differently, is data: `Boundaries`, one frozen value per
implementation (`Peer.boundaries`). Tests branch on those fields, never on which peer it is,
and assert the documented behaviour at each boundary (the README lists them under the
interop matrix).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from livekit import rtc

from harness.gopeer import GoPeer, GoPeerError, go_peer, unb64
from harness.jspeer import JsBrowser, JsPeer
from harness.netns import Confinement
from harness.official import OfficialLoop, OfficialPeer

T = TypeVar("T")

__all__ = [
    "KINDS",
    "Boundaries",
    "Change",
    "Crash",
    "Echo",
    "Fail",
    "File",
    "GoSdk",
    "Invocation",
    "JsClient",
    "OfficialSdk",
    "Packet",
    "Peer",
    "PeerRpcError",
    "Repeat",
    "Slow",
    "Text",
    "open_peer",
    "sha256",
]

KINDS = ("official", "js", "go")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- what a peer saw ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Packet:
    """A data packet the peer received. `reliable` is None where the peer does not say on
    which channel it came; `encryption_type` is None where the peer does not report it."""

    sender: str | None
    payload: bytes
    topic: str | None
    reliable: bool | None
    encryption_type: int | None = None


@dataclass(frozen=True)
class Change:
    """A participant's attributes (`value`: the changed keys), metadata or name (`value`: the
    new one) as the peer was told of it."""

    identity: str
    what: Literal["attributes", "metadata", "name"]
    value: Any


@dataclass(frozen=True)
class Invocation:
    """One call of an RPC handler the peer registered; `response_timeout` in seconds, as the
    caller told it."""

    method: str
    caller: str
    payload: str
    response_timeout: float


@dataclass(frozen=True)
class Text:
    """A text stream read to its end. `size` is the header's total length as the peer
    reports it (None where it reports none)."""

    sender: str
    topic: str
    attributes: dict[str, str]
    text: str
    size: int | None
    stream_id: str | None = field(default=None, compare=False)  # where the peer reports it

    @property
    def sha256(self) -> str:
        return sha256(self.text.encode())


@dataclass(frozen=True)
class File:
    """A byte stream read to its end: the number of bytes and their sha256."""

    sender: str
    name: str
    topic: str
    size: int
    sha256: str


class PeerRpcError(Exception):
    """An RPC call the peer made failed with this code, message and data (as it shows them)."""

    def __init__(self, code: int, message: str, data: str | None) -> None:
        super().__init__(f"RPC error {code}: {message}")
        self.code, self.message, self.data = code, message, data

    @property
    def fields(self) -> tuple[int, str, str | None]:
        return self.code, self.message, self.data


# -- RPC handler behaviours -----------------------------------------------------------------------


@dataclass(frozen=True)
class Echo:
    """Answer the payload unchanged."""


@dataclass(frozen=True)
class Repeat:
    """Answer the payload `times` times (a response larger than the request)."""

    times: int


@dataclass(frozen=True)
class Fail:
    """Raise the SDK's RpcError(code, message, data)."""

    code: int
    message: str
    data: str


@dataclass(frozen=True)
class Crash:
    """Raise an error that is not an RpcError (the caller must see 1500, nothing more)."""


@dataclass(frozen=True)
class Slow:
    """Wait `seconds`, then answer the payload."""

    seconds: float


Behaviour = Echo | Repeat | Fail | Crash | Slow
SECRET = "a secret detail that must not cross"


# -- boundaries -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Boundaries:
    """What one peer does differently, as the matrix asserts it."""

    # Data packets.
    reports_packet_kind: bool  # says whether a packet came reliable or lossy
    missing_topic: str | None  # how it reports a packet sent without a topic
    encryption_type: int | None  # what it reports for an unencrypted packet (None: nothing)
    # Participants.
    client_protocol: int  # what it advertises (lkproto speaks RPC v2 and streams v2 from 1 on)
    reports_name_change: bool  # has an event for a name change (else: read with `remote`)
    # RPC.
    rpc_payload_limit: int | None  # RPC v1's limit in UTF-8 bytes, or None for RPC v2
    rpc_handler_can_wait: bool  # its handlers can be made to wait (lkproto's caller timeout)
    rpc_told: Callable[[float], float]  # what it tells our handler for its caller's timeout
    rpc_default_timeout: float  # its caller's default response timeout
    rpc_no_data: str | None  # how it shows an error without data, from the wire
    # Streams.
    empty_text_size_missing: bool  # reports an empty text's total length 0 as missing
    sends_empty_text_size: bool  # its empty text's header carries total_length 0 (else none)
    reports_stream_id: bool  # says which stream a text came in


def _minus_seven(timeout: float) -> float:
    """The Rust and Go SDKs tell the callee max(timeout - 7 s, 1 s) (7 s: max round trip)."""
    return max(timeout - 7.0, 1.0)


def _at_least_eight(timeout: float) -> float:
    """livekit-client (and lkproto) tell the callee max(timeout, 8 s)."""
    return max(timeout, 8.0)


# -- the interface ------------------------------------------------------------------------------


class Peer(abc.ABC):
    """One participant of an independent implementation, from any anyio backend."""

    kind: str
    boundaries: Boundaries

    @property
    @abc.abstractmethod
    def identity(self) -> str: ...

    # -- room ----------------------------------------------------------------------------------

    @abc.abstractmethod
    async def connect(self, url: str, token: str) -> list[str]:
        """Join; returns the identities already in the room."""

    @abc.abstractmethod
    async def disconnect(self) -> None:
        """Leave (harmless if it already has)."""

    @abc.abstractmethod
    async def remotes(self) -> list[str]:
        """The remote identities it holds now."""

    @abc.abstractmethod
    async def remote(self, identity: str) -> tuple[dict[str, str], str, str]:
        """(attributes, metadata, name) of a remote participant as it holds them now."""

    @abc.abstractmethod
    def joined(self) -> list[str]:
        """Who it saw join, those present at its own join first."""

    @abc.abstractmethod
    def left(self) -> list[str]:
        """Who it saw leave."""

    @abc.abstractmethod
    async def set_attributes(self, attributes: dict[str, str]) -> None: ...

    @abc.abstractmethod
    async def set_metadata(self, metadata: str) -> None: ...

    @abc.abstractmethod
    async def set_name(self, name: str) -> None: ...

    @abc.abstractmethod
    def changes(self) -> list[Change]:
        """Every attribute, metadata and name change it was told of, in order."""

    # -- data packets --------------------------------------------------------------------------

    @abc.abstractmethod
    async def publish_data(
        self,
        payload: bytes,
        *,
        reliable: bool = True,
        topic: str = "",
        destinations: Sequence[str] = (),
    ) -> None: ...

    @abc.abstractmethod
    def packets(self) -> list[Packet]: ...

    # -- RPC -----------------------------------------------------------------------------------

    @abc.abstractmethod
    async def register_rpc(self, method: str, behaviour: Behaviour) -> None: ...

    @abc.abstractmethod
    async def perform_rpc(
        self, destination: str, method: str, payload: str, timeout: float | None = None
    ) -> str:
        """The response's payload, or `PeerRpcError`."""

    @abc.abstractmethod
    def invocations(self) -> list[Invocation]: ...

    # -- streams -------------------------------------------------------------------------------

    @abc.abstractmethod
    async def listen_text(self, topic: str) -> None: ...

    @abc.abstractmethod
    async def listen_bytes(self, topic: str) -> None: ...

    @abc.abstractmethod
    async def send_text(
        self,
        text: str,
        *,
        topic: str,
        destinations: Sequence[str] = (),
        attributes: dict[str, str] | None = None,
    ) -> None: ...

    @abc.abstractmethod
    async def send_file(
        self, name: str, data: bytes, *, topic: str, destinations: Sequence[str] = ()
    ) -> None: ...

    @abc.abstractmethod
    def texts(self) -> list[Text]: ...

    @abc.abstractmethod
    def files(self) -> list[File]: ...

    # -- waiting and diagnostics ---------------------------------------------------------------

    @abc.abstractmethod
    async def _wait(self, predicate: Callable[[], T | None], timeout: float) -> T: ...

    def faults(self) -> list[Any]:
        """Errors the peer reported of itself (a page's uncaught errors); [] if none."""
        return []

    async def wait(self, predicate: Callable[[], T | None], timeout: float = 15) -> T:
        """The first truthy value of `predicate()`, checked now and after each event the peer
        reports; `TimeoutError` (naming what it saw last) otherwise."""
        return await self._wait(predicate, timeout)

    def from_(self, sender: str) -> list[Packet]:
        return [p for p in self.packets() if p.sender == sender]

    async def wait_packets(self, sender: str, count: int, last: bytes) -> list[Packet]:
        """Wait for `last` and at least `count` packets from `sender`; return them all."""
        await self.wait(lambda: [p for p in self.from_(sender) if p.payload == last])
        return await self.wait(lambda: (got := self.from_(sender))[count - 1 :] and got)


# -- the official Python SDK ----------------------------------------------------------------


class OfficialSdk(Peer):
    kind = "official"
    boundaries = Boundaries(
        reports_packet_kind=True,
        missing_topic="",
        encryption_type=None,
        client_protocol=2,
        reports_name_change=True,
        rpc_payload_limit=None,
        rpc_handler_can_wait=True,
        rpc_told=_minus_seven,
        rpc_default_timeout=15.0,
        rpc_no_data="",
        empty_text_size_missing=False,
        sends_empty_text_size=True,
        reports_stream_id=True,
    )

    def __init__(self, loop: OfficialLoop, workdir: Path) -> None:
        self.inner = OfficialPeer(loop)
        self._workdir = workdir

    @property
    def identity(self) -> str:
        assert self.inner.room is not None
        return str(self.inner.room.local_participant.identity)

    async def connect(self, url: str, token: str) -> list[str]:
        await self.inner.connect(url, token)
        return self.joined()

    async def disconnect(self) -> None:
        await self.inner.disconnect()

    async def remotes(self) -> list[str]:
        async def get(room: rtc.Room) -> list[str]:
            return list(room.remote_participants)

        return await self.inner.do(get)

    async def remote(self, identity: str) -> tuple[dict[str, str], str, str]:
        async def get(room: rtc.Room) -> tuple[dict[str, str], str, str]:
            p = room.remote_participants[identity]
            return dict(p.attributes), p.metadata, p.name

        return await self.inner.do(get)

    def joined(self) -> list[str]:
        return [a[0] for a in self.inner.of("joined")]

    def left(self) -> list[str]:
        return [a[0] for a in self.inner.of("left")]

    async def set_attributes(self, attributes: dict[str, str]) -> None:
        await self.inner.do(lambda room: room.local_participant.set_attributes(attributes))

    async def set_metadata(self, metadata: str) -> None:
        await self.inner.do(lambda room: room.local_participant.set_metadata(metadata))

    async def set_name(self, name: str) -> None:
        await self.inner.do(lambda room: room.local_participant.set_name(name))

    def changes(self) -> list[Change]:
        found: list[Change] = []
        for name, args in self.inner.records:
            if name == "attributes":
                found.append(Change(args[0], "attributes", args[1]))
            elif name in ("metadata", "name"):  # (identity, old, new)
                found.append(Change(args[0], name, args[2]))
        return found

    async def publish_data(
        self,
        payload: bytes,
        *,
        reliable: bool = True,
        topic: str = "",
        destinations: Sequence[str] = (),
    ) -> None:
        await self.inner.do(
            lambda room: room.local_participant.publish_data(
                payload, reliable=reliable, topic=topic, destination_identities=list(destinations)
            )
        )

    def packets(self) -> list[Packet]:
        return [
            Packet(sender, payload, topic, kind == 1)
            for sender, payload, topic, kind in self.inner.of("data")
        ]

    async def register_rpc(self, method: str, behaviour: Behaviour) -> None:
        record = self.inner._record

        async def handler(data: rtc.RpcInvocationData) -> str:
            record("rpc_invoked", method, data.caller_identity, data.payload, data.response_timeout)
            if isinstance(behaviour, Fail):
                raise rtc.RpcError(behaviour.code, behaviour.message, behaviour.data)
            if isinstance(behaviour, Crash):
                raise ValueError(SECRET)
            if isinstance(behaviour, Slow):
                await asyncio.sleep(behaviour.seconds)
            if isinstance(behaviour, Repeat):
                return data.payload * behaviour.times
            return data.payload

        async def register(room: rtc.Room) -> None:
            room.local_participant.register_rpc_method(method, handler)

        await self.inner.do(register)

    async def perform_rpc(
        self, destination: str, method: str, payload: str, timeout: float | None = None
    ) -> str:
        async def call(room: rtc.Room) -> str:
            try:
                return await room.local_participant.perform_rpc(
                    destination_identity=destination,
                    method=method,
                    payload=payload,
                    response_timeout=timeout,
                )
            except rtc.RpcError as exc:
                raise PeerRpcError(exc.code, exc.message, exc.data) from None

        return await self.inner.do(call, 30 + (timeout or 15))

    def invocations(self) -> list[Invocation]:
        return [Invocation(*args) for args in self.inner.of("rpc_invoked")]

    async def listen_text(self, topic: str) -> None:
        inner = self.inner

        async def read(reader: rtc.TextStreamReader, identity: str) -> None:
            text = await reader.read_all()
            info = reader.info
            inner._record(
                "text",
                Text(
                    identity,
                    info.topic,
                    dict(info.attributes or {}),
                    text,
                    info.size,
                    info.stream_id,
                ),
            )

        async def register(room: rtc.Room) -> None:
            room.register_text_stream_handler(topic, lambda r, who: inner.spawn(read(r, who)))

        await inner.do(register)

    async def listen_bytes(self, topic: str) -> None:
        inner = self.inner

        async def read(reader: rtc.ByteStreamReader, identity: str) -> None:
            digest, size = hashlib.sha256(), 0
            async for chunk in reader:
                digest.update(chunk)
                size += len(chunk)
            info = reader.info
            inner._record("bytes", File(identity, info.name, info.topic, size, digest.hexdigest()))

        async def register(room: rtc.Room) -> None:
            room.register_byte_stream_handler(topic, lambda r, who: inner.spawn(read(r, who)))

        await inner.do(register)

    async def send_text(
        self,
        text: str,
        *,
        topic: str,
        destinations: Sequence[str] = (),
        attributes: dict[str, str] | None = None,
    ) -> None:
        await self.inner.do(
            lambda room: room.local_participant.send_text(
                text,
                topic=topic,
                destination_identities=list(destinations),
                attributes=attributes,
            )
        )

    async def send_file(
        self, name: str, data: bytes, *, topic: str, destinations: Sequence[str] = ()
    ) -> None:
        path = self._workdir / name
        path.write_bytes(data)
        await self.inner.do(
            lambda room: room.local_participant.send_file(
                str(path), topic=topic, destination_identities=list(destinations)
            ),
            60,
        )

    def texts(self) -> list[Text]:
        return [a[0] for a in self.inner.of("text")]

    def files(self) -> list[File]:
        return [a[0] for a in self.inner.of("bytes")]

    async def _wait(self, predicate: Callable[[], T | None], timeout: float) -> T:
        return await self.inner.wait_for(lambda records: predicate(), timeout)


# -- the JavaScript reference client in Chromium ------------------------------------------------


class JsClient(Peer):
    kind = "js"
    boundaries = Boundaries(
        reports_packet_kind=True,
        missing_topic=None,
        encryption_type=0,  # NONE, reported for every packet
        client_protocol=2,
        reports_name_change=True,
        rpc_payload_limit=None,
        rpc_handler_can_wait=True,
        rpc_told=_at_least_eight,
        rpc_default_timeout=15.0,
        rpc_no_data=None,
        empty_text_size_missing=True,
        sends_empty_text_size=True,
        reports_stream_id=True,
    )

    def __init__(self, inner: JsPeer) -> None:
        self.inner = inner
        self._present: list[str] = []

    @property
    def identity(self) -> str:
        return self.inner.identity

    async def connect(self, url: str, token: str) -> list[str]:
        self._present = await self.inner.connect(url, token)
        return list(self._present)

    async def disconnect(self) -> None:
        await self.inner.disconnect()

    async def remotes(self) -> list[str]:
        return await self.inner.remotes()

    async def remote(self, identity: str) -> tuple[dict[str, str], str, str]:
        attributes, metadata, name = await self.inner.remote(identity)
        return attributes, metadata or "", name or ""

    def joined(self) -> list[str]:
        return self._present + [a[0] for a in self.inner.of("participant_connected")]

    def left(self) -> list[str]:
        return [a[0] for a in self.inner.of("participant_disconnected")]

    async def set_attributes(self, attributes: dict[str, str]) -> None:
        await self.inner.set_attributes(attributes)

    async def set_metadata(self, metadata: str) -> None:
        await self.inner.set_metadata(metadata)

    async def set_name(self, name: str) -> None:
        await self.inner.set_name(name)

    def changes(self) -> list[Change]:
        found: list[Change] = []
        for name, args in self.inner.records:
            if name == "attributes":  # (identity, changed, all)
                found.append(Change(args[0], "attributes", args[1]))
            elif name in ("metadata", "name"):  # (identity, new)
                found.append(Change(args[0], name, args[1]))
        return found

    async def publish_data(
        self,
        payload: bytes,
        *,
        reliable: bool = True,
        topic: str = "",
        destinations: Sequence[str] = (),
    ) -> None:
        await self.inner.publish_data(
            payload, reliable=reliable, topic=topic or None, destinations=list(destinations)
        )

    def packets(self) -> list[Packet]:
        return [
            Packet(sender, payload, topic, kind == "reliable", encryption)
            for sender, payload, topic, kind, encryption in self.inner.of("data")
        ]

    async def register_rpc(self, method: str, behaviour: Behaviour) -> None:
        if isinstance(behaviour, Echo):
            await self.inner.register_rpc(method)
        elif isinstance(behaviour, Fail):
            error = (behaviour.code, behaviour.message, behaviour.data)
            await self.inner.register_rpc(method, error=error)
        elif isinstance(behaviour, Crash):
            await self.inner.register_rpc(method, throw_plain=True)
        elif isinstance(behaviour, Slow):
            await self.inner.register_rpc(method, delay=behaviour.seconds)
        else:  # peers/js has no such handler; only RPC v1 peers need it (a response limit)
            raise NotImplementedError(f"JS peer: no {behaviour!r} handler")

    async def perform_rpc(
        self, destination: str, method: str, payload: str, timeout: float | None = None
    ) -> str:
        timeout_ms = None if timeout is None else round(timeout * 1000)
        reply, error = await self.inner.perform_rpc(
            destination, method, payload, timeout_ms=timeout_ms
        )
        if error is not None:
            code, message, data = error
            raise PeerRpcError(int(code or 0), message, data)
        assert reply is not None
        return reply

    def invocations(self) -> list[Invocation]:
        return [
            Invocation(method, caller, payload, ms / 1000)
            for method, caller, payload, ms in self.inner.of("rpc_invoked")
        ]

    async def listen_text(self, topic: str) -> None:
        await self.inner.on_text(topic)

    async def listen_bytes(self, topic: str) -> None:
        await self.inner.on_bytes(topic)

    async def send_text(
        self,
        text: str,
        *,
        topic: str,
        destinations: Sequence[str] = (),
        attributes: dict[str, str] | None = None,
    ) -> None:
        await self.inner.send_text(
            text, topic=topic, destinations=list(destinations), attributes=attributes
        )

    async def send_file(
        self, name: str, data: bytes, *, topic: str, destinations: Sequence[str] = ()
    ) -> None:
        await self.inner.send_file(name, data, topic=topic, destinations=list(destinations))

    def texts(self) -> list[Text]:
        return [
            Text(sender, topic, dict(attributes), text, size, stream_id)
            for sender, topic, attributes, text, stream_id, size in self.inner.of("text")
        ]

    def files(self) -> list[File]:
        return [
            File(sender, name, topic, size, digest)
            for sender, name, topic, size, digest, _stream_id in self.inner.of("bytes")
        ]

    def faults(self) -> list[Any]:
        kinds = ("page_error", "text_error", "bytes_error")
        return [(kind, *args) for kind in kinds for args in self.inner.of(kind)]

    async def _wait(self, predicate: Callable[[], T | None], timeout: float) -> T:
        return await self.inner.wait_for(lambda records: predicate(), timeout)


# -- the Go SDK ---------------------------------------------------------------------------------


class GoSdk(Peer):
    kind = "go"
    boundaries = Boundaries(
        reports_packet_kind=False,
        missing_topic="",
        encryption_type=None,
        client_protocol=0,  # it joins with protocol 17 and no client_protocol
        reports_name_change=False,
        rpc_payload_limit=15360,
        rpc_handler_can_wait=False,  # peers/go's handlers answer at once
        rpc_told=_minus_seven,
        rpc_default_timeout=15.0,
        rpc_no_data="",
        empty_text_size_missing=False,
        sends_empty_text_size=False,
        reports_stream_id=False,
    )

    def __init__(self, inner: GoPeer) -> None:
        self.inner = inner
        self._present: list[str] = []

    @property
    def identity(self) -> str:
        assert self.inner.identity is not None
        return self.inner.identity

    async def connect(self, url: str, token: str) -> list[str]:
        joined = await self.inner.connect(url, token)
        self._present = list(joined["participants"])
        return list(self._present)

    async def disconnect(self) -> None:
        await self.inner.disconnect()

    async def remotes(self) -> list[str]:
        return list((await self.inner.do("participants"))["participants"])

    async def remote(self, identity: str) -> tuple[dict[str, str], str, str]:
        infos = (await self.inner.do("participant_info"))["participants"]
        (info,) = [i for i in infos[1:] if i["identity"] == identity]
        return dict(info["attributes"]), info["metadata"], info["name"]

    def joined(self) -> list[str]:
        return self._present + [f["identity"] for f in self.inner.of("participant_connected")]

    def left(self) -> list[str]:
        return [f["identity"] for f in self.inner.of("participant_disconnected")]

    async def set_attributes(self, attributes: dict[str, str]) -> None:
        await self.inner.do("set_attributes", attributes=attributes)

    async def set_metadata(self, metadata: str) -> None:
        await self.inner.do("set_metadata", metadata=metadata)

    async def set_name(self, name: str) -> None:
        await self.inner.do("set_name", name=name)

    def changes(self) -> list[Change]:
        found: list[Change] = []
        for name, fields in self.inner.records:
            if name == "attributes_changed":
                found.append(Change(fields["identity"], "attributes", fields["changed"]))
            elif name == "metadata_changed":
                found.append(Change(fields["identity"], "metadata", fields["metadata"]))
        return found

    async def publish_data(
        self,
        payload: bytes,
        *,
        reliable: bool = True,
        topic: str = "",
        destinations: Sequence[str] = (),
    ) -> None:
        await self.inner.publish_data(
            payload, reliable=reliable, topic=topic, destinations=list(destinations)
        )

    def packets(self) -> list[Packet]:
        return [
            Packet(f["sender"], unb64(f["payload"]), f["topic"], None)
            for f in self.inner.of("data")
        ]

    async def register_rpc(self, method: str, behaviour: Behaviour) -> None:
        if isinstance(behaviour, Echo):
            await self.inner.do("register_rpc", method=method, mode="echo")
        elif isinstance(behaviour, Repeat):
            await self.inner.do(
                "register_rpc", method=method, mode="repeat", repeat=behaviour.times
            )
        elif isinstance(behaviour, Fail):
            await self.inner.do(
                "register_rpc",
                method=method,
                mode="error",
                code=behaviour.code,
                message=behaviour.message,
                data=behaviour.data,
            )
        elif isinstance(behaviour, Crash):
            await self.inner.do("register_rpc", method=method, mode="plain_error")
        else:  # peers/go's handlers answer at once (`rpc_handler_can_wait`)
            raise NotImplementedError(f"Go peer: no {behaviour!r} handler")

    async def perform_rpc(
        self, destination: str, method: str, payload: str, timeout: float | None = None
    ) -> str:
        fields: dict[str, Any] = {"destination": destination, "method": method, "payload": payload}
        if timeout is not None:
            fields["timeout_ms"] = round(timeout * 1000)
        result = await self.inner.request("perform_rpc", 30 + (timeout or 15), **fields)
        if result["ok"]:
            return str(result["payload"])
        if "code" not in result:
            raise GoPeerError(result)
        raise PeerRpcError(int(result["code"]), result["message"], result.get("data"))

    def invocations(self) -> list[Invocation]:
        return [
            Invocation(f["method"], f["caller"], f["payload"], f["response_timeout_ms"] / 1000)
            for f in self.inner.of("rpc_invoked")
        ]

    async def listen_text(self, topic: str) -> None:
        await self.inner.do("register_text", topic=topic)

    async def listen_bytes(self, topic: str) -> None:
        await self.inner.do("register_bytes", topic=topic)

    async def send_text(
        self,
        text: str,
        *,
        topic: str,
        destinations: Sequence[str] = (),
        attributes: dict[str, str] | None = None,
    ) -> None:
        await self.inner.do(
            "send_text",
            text=text,
            topic=topic,
            destinations=list(destinations),
            attributes=attributes or {},
        )

    async def send_file(
        self, name: str, data: bytes, *, topic: str, destinations: Sequence[str] = ()
    ) -> None:
        from harness.gopeer import b64

        await self.inner.do(
            "send_bytes",
            60,
            payload=b64(data),
            name=name,
            topic=topic,
            destinations=list(destinations),
        )

    def texts(self) -> list[Text]:
        return [
            Text(f["sender"], f["topic"], dict(f["attributes"] or {}), f["text"], f["length"])
            for f in self.inner.of("text")
        ]

    def files(self) -> list[File]:
        return [
            File(f["sender"], f["name"], f["topic"], f["length"], f["sha256"])
            for f in self.inner.of("bytes")
        ]

    async def _wait(self, predicate: Callable[[], T | None], timeout: float) -> T:
        return await self.inner.wait_for(lambda records: predicate(), timeout)


# -- making one ---------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def open_peer(
    kind: str,
    *,
    workdir: Path,
    confinement: Confinement | None = None,
    official_loop: OfficialLoop | None = None,
    browser: JsBrowser | None = None,
) -> AsyncIterator[Peer]:
    """A peer of `kind` ("official": needs `official_loop`; "js": `browser`; "go":
    `confinement`), not yet connected; it leaves (and its page or process ends) on exit."""
    if kind == "official":
        assert official_loop is not None
        official = OfficialSdk(official_loop, workdir)
        try:
            yield official
        finally:
            await official.disconnect()
    elif kind == "js":
        assert browser is not None
        page = await browser.open()
        try:
            yield JsClient(page)
        finally:
            await page.close()
    elif kind == "go":
        assert confinement is not None
        async with go_peer(confinement, workdir) as process:
            yield GoSdk(process)
    else:
        raise ValueError(f"no such peer: {kind!r}")
