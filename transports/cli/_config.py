"""Configuration for the `lkproto` command line: credentials, the URL and ICE host addresses.

Everything here is decided before any connection is made, so bad input fails with exit code
2 and one line, without touching the network. Precedence: command-line flags, then the
conventional environment variables `LIVEKIT_URL`, `LIVEKIT_API_KEY`, `LIVEKIT_API_SECRET`.
"""

from __future__ import annotations

import enum
import ipaddress
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from urllib.parse import urlsplit

import attrs

from lkproto.tokens import VideoGrants, mint_token

__all__ = [
    "CliError",
    "Credentials",
    "ExitCode",
    "default_host_addresses",
    "is_local_address",
    "parse_grants",
    "resolve_credentials",
    "resolve_host_addresses",
    "validate_url",
]


class ExitCode(enum.IntEnum):
    """The documented exit codes of `lkproto`."""

    OK = 0
    RPC_ERROR = 1  # the RPC's destination answered with an error
    USAGE = 2  # bad input: usage, missing credentials or URL, bad URL, missing file
    CONNECT = 3  # could not connect: token refused, server unreachable, join timed out
    UNKNOWN_PARTICIPANT = 4  # the destination is not in the room
    FAILED = 5  # the session ended or a transfer failed after connecting
    INTERRUPTED = 130  # a one-shot command stopped by SIGINT or SIGTERM


class CliError(Exception):
    """One line for stderr and the exit code that goes with it."""

    def __init__(self, message: str, code: ExitCode) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@attrs.frozen
class Credentials:
    """How to join: a URL and a token (given, or minted from the API key and secret)."""

    url: str
    token: str = attrs.field(repr=False)
    room: str  # "" when the token was given (it names the room)
    identity: str  # likewise


_SCHEMES = ("ws", "wss", "http", "https")


def _shown(url: str) -> str:
    """`url` without a query, fragment or user part: those may carry a secret."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc.rpartition("@")[2]
        return f"{parts.scheme}://{netloc}{parts.path}" if parts.scheme else netloc + parts.path
    except ValueError:
        return "<unparsable>"


def validate_url(url: str) -> str:
    """Return `url` if it is a usable server URL; raise `CliError` (exit 2) otherwise.

    The message quotes the URL without its query, fragment or user part.
    """
    shown = _shown(url)
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a port that is not a number in range
    except ValueError as exc:
        raise CliError(f"bad URL {shown!r}: {exc}", ExitCode.USAGE) from None
    if parts.scheme.lower() not in _SCHEMES:
        raise CliError(
            f"bad URL {shown!r}: the scheme must be ws://, wss://, http:// or https://",
            ExitCode.USAGE,
        )
    if not parts.hostname:
        raise CliError(f"bad URL {shown!r}: it names no host", ExitCode.USAGE)
    if parts.query or parts.fragment or "@" in parts.netloc:
        raise CliError(
            f"bad URL {shown!r}: give the server's address only (no query, fragment or user)",
            ExitCode.USAGE,
        )
    return url


def _pick(flag: str | None, env: Mapping[str, str], name: str) -> str:
    if flag:
        return flag
    return env.get(name, "")


def resolve_credentials(
    *,
    url: str | None,
    token: str | None,
    api_key: str | None,
    api_secret: str | None,
    room: str | None,
    identity: str | None,
    name: str | None,
    env: Mapping[str, str],
    now: Callable[[], float] = time.time,
) -> Credentials:
    """Flags first, then `LIVEKIT_URL`/`LIVEKIT_API_KEY`/`LIVEKIT_API_SECRET`.

    A `--token` is used as given (it names the room and the identity, so `--room`,
    `--identity` and `--name` may not accompany it); otherwise a token is minted for
    `--room` and `--identity` with the API key and secret.
    """
    if url is not None and not url.strip():
        raise CliError("bad --url: it is empty", ExitCode.USAGE)
    server = _pick(url, env, "LIVEKIT_URL")
    if not server:
        raise CliError("no server URL: give --url or set LIVEKIT_URL", ExitCode.USAGE)
    validate_url(server)
    if token is not None:
        if not token.strip():
            raise CliError("bad token: the token is empty", ExitCode.USAGE)
        given = [f for f, v in (("--room", room), ("--identity", identity), ("--name", name)) if v]
        if given:
            raise CliError(
                f"{', '.join(given)} cannot be combined with --token (the token names them)",
                ExitCode.USAGE,
            )
        return Credentials(server, token.strip(), "", "")
    key = _pick(api_key, env, "LIVEKIT_API_KEY")
    secret = _pick(api_secret, env, "LIVEKIT_API_SECRET")
    if not key or not secret:
        raise CliError(
            "missing credentials: give --token-file (or set LIVEKIT_TOKEN), or --api-key and "
            "--api-secret "
            "(or set LIVEKIT_API_KEY and LIVEKIT_API_SECRET)",
            ExitCode.USAGE,
        )
    if not room:
        raise CliError("missing --room: the room to join", ExitCode.USAGE)
    if not identity:
        raise CliError("missing --identity", ExitCode.USAGE)
    minted = mint_token(
        key,
        secret,
        now=int(now()),
        grants=VideoGrants(room=room, room_join=True),
        identity=identity,
        name=name,
    )
    return Credentials(server, minted, room, identity)


# -- tokens -------------------------------------------------------------------------------------

_GRANT_FIELDS = {f.name for f in attrs.fields(VideoGrants)} - {"room"}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).replace("-", "_")


def parse_grants(room: str, specs: Sequence[str]) -> VideoGrants:
    """`--grant NAME[=BOOL]` values (snake_case or camelCase) over `room_join=True`."""
    values: dict[str, bool] = {"room_join": True}
    for spec in specs:
        name, sep, raw = spec.partition("=")
        field = _snake(name.strip())
        if field not in _GRANT_FIELDS:
            known = ", ".join(sorted(_GRANT_FIELDS))
            raise CliError(f"unknown grant {name!r} (known: {known})", ExitCode.USAGE)
        text = raw.strip().lower() if sep else "true"
        if text in _TRUE:
            values[field] = True
        elif text in _FALSE:
            values[field] = False
        else:
            raise CliError(f"bad grant value {spec!r}: use true or false", ExitCode.USAGE)
    return VideoGrants(room=room, **values)


# -- ICE host addresses ---------------------------------------------------------------------


def is_local_address(address: str) -> bool:
    """True if `address` is loopback or assigned to this host (in this network namespace).

    Binding a UDP socket to it succeeds only for a local address; nothing is sent.
    """
    ip = ipaddress.ip_address(address)
    if ip.is_loopback:
        return True
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.bind((address, 0))
    except OSError:
        return False
    return True


def _resolve(host: str) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return []
    return sorted({str(info[4][0]) for info in infos})


def default_host_addresses(
    url: str,
    *,
    is_local: Callable[[str], bool] = is_local_address,
    resolve: Callable[[str], list[str]] = _resolve,
) -> list[str] | None:
    """The addresses ICE may gather on when `--host-address` is not given.

    When the server is on this machine (its URL names a loopback address, `localhost`, or an
    address assigned to this host or network namespace), only that address: the session then
    never touches another interface. Otherwise None: gather on every interface, as a client
    of a remote server must.
    """
    host = urlsplit(url).hostname or ""
    try:
        literal = [str(ipaddress.ip_address(host))]
    except ValueError:
        literal = []
    if literal:
        candidates = literal
    elif host == "localhost" or host.endswith(".localhost"):
        candidates = ["127.0.0.1"]
    else:
        candidates = resolve(host)
    if candidates and all(is_local(a) for a in candidates):
        return candidates
    return None


def resolve_host_addresses(given: Sequence[str] | None, url: str) -> list[str] | None:
    """`--host-address` values (IP addresses, or `any` for no restriction), else the default."""
    if not given:
        return default_host_addresses(url)
    if any(a.lower() == "any" for a in given):
        if len(given) > 1:
            raise CliError("--host-address any cannot be combined with addresses", ExitCode.USAGE)
        return None
    out: list[str] = []
    for address in given:
        try:
            out.append(str(ipaddress.ip_address(address)))
        except ValueError:
            raise CliError(
                f"bad --host-address {address!r}: give an IP address (or 'any')", ExitCode.USAGE
            ) from None
    return out
