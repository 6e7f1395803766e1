"""Argument checks at the adapters' public calls: wrong types and values are refused at the
call, with a clear `TypeError` or `ValueError`, before anything is sent or allocated.

Python's own coercions would otherwise turn a mistake into silent misbehaviour: `bytes(123)`
is 123 zero bytes, `tuple("bob")` is three identities, a `bytes` token breaks deep inside the
session. Every adapter calls these (the threaded one on the caller's thread, before it hands
the call to its I/O thread), so all three refuse the same things with the same words.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from lkproto import Config

__all__ = [
    "check_callable",
    "check_connect_arguments",
    "check_identities",
    "check_identity",
    "check_payload",
    "check_rpc_method",
    "check_str",
    "check_string_map",
]


def _type(value: object) -> str:
    return type(value).__name__


def check_str(call: str, name: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{call}: {name} must be str, not {_type(value)}")
    return value


def check_connect_arguments(url: object, token: object, options: object) -> None:
    """`Room.connect(url, token, options)`: two non-empty strings and RoomOptions or None."""
    from ._room import RoomOptions

    check_str("connect", "url", url)
    check_str("connect", "token", token)
    if not url:
        raise ValueError("connect: url is empty (for example ws://127.0.0.1:7880)")
    if not token:
        raise ValueError("connect: token is empty")
    if options is not None and not isinstance(options, RoomOptions):
        raise TypeError(f"connect: options must be RoomOptions or None, not {_type(options)}")
    if options is not None and options.rtc_config is not None:
        from ._rtc_config import check_rtc_configuration

        check_rtc_configuration(options.rtc_config)


def check_payload(call: str, payload: object, limit: int | None = None) -> bytes:
    """bytes, bytearray, memoryview or str (sent as UTF-8), at most `limit` bytes."""
    if isinstance(payload, str):
        data = payload.encode()
    elif isinstance(payload, bytes | bytearray | memoryview):
        data = bytes(payload)
    else:
        raise TypeError(f"{call}: payload must be bytes or str, not {_type(payload)}")
    if limit is not None and len(data) > limit:
        raise ValueError(
            f"{call}: a {len(data)}-byte payload cannot fit one data packet "
            f"(Config.max_data_message_size is {limit} bytes, framing included); "
            "send larger data as a byte stream (send_bytes, stream_bytes or send_file)"
        )
    return data


def check_identities(call: str, value: object, name: str = "destination_identities") -> list[str]:
    """A sequence of identity strings (a lone str is refused: it is not a list of its
    characters). None means everyone."""
    if value is None or (type(value) is tuple and not value):
        return []  # () is the default: the usual case, without the checks below
    if isinstance(value, str | bytes) or not isinstance(value, Sequence | set | frozenset):
        raise TypeError(f"{call}: {name} must be a list of str, not {_type(value)}")
    out = list(value)
    for item in out:
        if not isinstance(item, str):
            raise TypeError(f"{call}: {name} must hold str, not {_type(item)}")
    return out


def check_identity(call: str, name: str, value: object) -> str:
    if not check_str(call, name, value):
        raise ValueError(f"{call}: {name} is empty")
    return str(value)


def check_string_map(call: str, value: object, name: str = "attributes") -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise TypeError(f"{call}: {name} must be a mapping of str to str, not {_type(value)}")
    out: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise TypeError(
                f"{call}: {name} must map str to str; {key!r} maps {_type(key)} to {_type(item)}"
            )
        out[key] = item
    return out


def check_rpc_method(call: str, method: object, config: Config) -> str:
    """A method name: a non-empty str of at most `Config.max_rpc_method_bytes` UTF-8 bytes."""
    check_str(call, "method", method)
    assert isinstance(method, str)
    if not method:
        raise ValueError(f"{call}: the method name is empty")
    size, limit = len(method.encode()), config.max_rpc_method_bytes
    if size > limit:
        raise ValueError(
            f"{call}: the method name is {size} bytes, over Config.max_rpc_method_bytes ({limit})"
        )
    return method


def check_callable(call: str, name: str, value: object) -> Callable[..., object]:
    if not callable(value):
        raise TypeError(f"{call}: {name} must be callable, not {_type(value)}")
    return value
