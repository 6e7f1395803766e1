"""A pytest plugin that records what lkproto's core is given during a real e2e session.

Loaded only by `fuzz/capture_corpus.py` (`-p fuzz._capture_plugin`, with the output path in
`LKPROTO_CAPTURE_OUT`); it is never registered otherwise. It wraps, at class level, the
inputs of `Connection`, `StreamAssembler`, `RpcTable` and `DataTrackManager` (bytes from the
server, data channel messages, timer calls, application verbs) and records each outermost
call per instance, in order, with its `now` and the ids the connection's `id_factory` drew
during it. Nothing is changed: every wrapper calls the original with the original
arguments. At the end of the session the log is pickled to `LKPROTO_CAPTURE_OUT`;
`capture_corpus.py` turns it into seed files.
"""

from __future__ import annotations

import enum
import functools
import inspect
import os
import pickle
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from google.protobuf.message import Message

from lkproto import Connection
from lkproto.datatracks import DataTrackManager
from lkproto.rpc import RpcError, RpcTable
from lkproto.streams import StreamAssembler

#: Methods recorded per class: the inputs that carry remote bytes, time or application verbs.
RECORDED: Mapping[type, tuple[str, ...]] = {
    Connection: (
        "connect",
        "receive_signal",
        "signal_closed",
        "receive_data_packet",
        "handle_timer",
        "data_channel_opened",
        "data_channel_closed",
        "register_rpc_method",
        "unregister_rpc_method",
        "register_stream_topic",
        "unregister_stream_topic",
        "perform_rpc",
        "respond_rpc",
        "respond_rpc_exception",
        "stream_consumed",
        "stream_discarded",
        "publish_data",
        "send_stream",
        "set_metadata",
        "set_name",
        "set_attributes",
        "close",
    ),
    StreamAssembler: (
        "add_topic",
        "remove_topic",
        "receive",
        "consumed",
        "discard",
        "sender_left",
        "abort_all",
        "handle_timer",
    ),
    DataTrackManager: (
        "joined",
        "reconnecting",
        "resumed",
        "disconnected",
        "receive_signal",
        "participants_updated",
        "request_response_received",
        "subscriber_handles_received",
        "subscription_permission_changed",
        "receive_packet",
        "publish_data_track",
        "unpublish_data_track",
        "try_push",
        "frames_to_send",
        "subscribe",
        "unsubscribe",
        "set_pipeline_options",
        "handle_timer",
    ),
    RpcTable: (
        "perform",
        "ack_received",
        "response_received",
        "stream_response_received",
        "stream_response_failed",
        "send_failed",
        "participant_left",
        "disconnected",
        "request_received",
        "stream_request_opened",
        "stream_request_received",
        "stream_request_failed",
        "respond",
        "respond_exception",
        "handle_timer",
    ),
}

Entry = tuple[str, dict[str, Any], tuple[str, ...], Any]


class _Log:
    def __init__(self, owner: object, test: str) -> None:
        self.owner = owner  # kept alive so that id() is never reused within the session
        self.kind = type(owner).__name__
        self.test = test
        self.calls: list[Entry] = []
        self.depth = 0


_LOGS: dict[int, _Log] = {}
_DRAWN: list[str] = []
_CURRENT_TEST = [""]


def plain(value: Any) -> Any:
    """A picklable, library-independent form of an argument or result."""
    if isinstance(value, Message):
        return ("pb", type(value).__name__, value.SerializeToString())
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, RpcError):
        return ("rpc_error", value.code, value.message, value.data)
    if isinstance(value, BaseException):
        return ("exception", type(value).__name__, str(value))
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple) or type(value).__name__.startswith("Repeated"):
        return tuple(plain(v) for v in value)  # (and protobuf's repeated fields)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if hasattr(value, "__attrs_attrs__"):  # an output value such as SendRpcStream
        return (
            type(value).__name__,
            {a.name: plain(getattr(value, a.name)) for a in value.__attrs_attrs__},
        )
    return repr(value)


def _log(owner: object) -> _Log:
    log = _LOGS.get(id(owner))
    if log is None:
        log = _LOGS[id(owner)] = _Log(owner, _CURRENT_TEST[0])
    return log


def _wrap(cls: type, name: str) -> Callable[..., Any]:
    original = getattr(cls, name)
    signature = inspect.signature(original)

    @functools.wraps(original)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        log = _log(self)
        if log.depth:
            return original(self, *args, **kwargs)
        drawn = len(_DRAWN)
        log.depth = 1
        try:
            result = original(self, *args, **kwargs)
        finally:
            log.depth = 0
        arguments = dict(signature.bind(self, *args, **kwargs).arguments)
        del arguments["self"]
        recorded = {key: plain(value) for key, value in arguments.items()}
        if isinstance(self, RpcTable):
            recorded["_table_state"] = (
                self.server_version,
                self.local_hidden,
                self.local_can_publish_data,
            )
        log.calls.append((name, recorded, tuple(_DRAWN[drawn:]), plain(result)))
        return result

    return wrapper


def _wrap_init() -> None:
    original = Connection.__init__

    @functools.wraps(original)
    def init(self: Connection, *args: Any, **kwargs: Any) -> None:
        id_factory: Callable[[], str] = kwargs["id_factory"]

        def recording_ids() -> str:
            value = id_factory()
            _DRAWN.append(value)
            return value

        kwargs["id_factory"] = recording_ids
        _log(self)  # registered before its sub-machines, so logs sort by creation
        original(self, *args, **kwargs)

    Connection.__init__ = init  # type: ignore[method-assign]


def pytest_configure(config: pytest.Config) -> None:
    if not os.environ.get("LKPROTO_CAPTURE_OUT"):
        raise pytest.UsageError("fuzz._capture_plugin needs LKPROTO_CAPTURE_OUT")
    _wrap_init()
    for cls, names in RECORDED.items():
        for name in names:
            setattr(cls, name, _wrap(cls, name))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    _CURRENT_TEST[0] = item.nodeid


def pytest_unconfigure(config: pytest.Config) -> None:
    out = os.environ["LKPROTO_CAPTURE_OUT"]
    logs = [
        {"kind": log.kind, "test": log.test, "calls": log.calls}
        for log in _LOGS.values()
        if log.calls
    ]
    with open(out, "wb") as f:
        pickle.dump(logs, f)
