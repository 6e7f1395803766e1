"""The Go SDK (`server-sdk-go`, on pion) as the other participant, from any anyio backend.

`.venv/bin/lkproto-go-peer` (peers/go, built by `make setup`) is a Go SDK participant driven
by JSON lines: commands on its stdin, events on its stdout (peers/go/README.md lists both).
`GoPeer` starts it as a child of the test process, so it lives in the harness's network
namespace: the SDK builds its own pion `SettingEngine`, so nothing can tell it which
addresses to gather ICE candidates from, and the namespace, whose only non-loopback address
is the harness's, is what confines it (pion skips loopback by default and, in its default
query-only mDNS mode, announces no `.local` candidate). Under the loopback confinement (not
root) it would gather the machine's real interfaces, so `GoPeer` refuses to start there.

Like `harness.official.OfficialPeer`, a `GoPeer` records every event as a (name, fields)
tuple; `wait_for` waits for a predicate over that record (woken by each event, never
polling), `of` lists one kind, and `do` sends a command and returns its result. Every wait
has a timeout. The process is killed on exit from `go_peer()`, whatever happened; it also
leaves by itself when its stdin closes (so if the test process dies).

The token is sent in the `connect` command, never on the command line; any text shown in an
error (the peer's stderr tail) has it replaced by "<token>".
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.abc

from harness.netns import Confinement

REPO = Path(__file__).resolve().parents[2]
GO_PEER_BIN = REPO / ".venv" / "bin" / "lkproto-go-peer"

T = TypeVar("T")
Record = tuple[str, dict[str, Any]]


class GoPeerError(Exception):
    """A command the Go peer answered with ok=false (its `result` is in `.result`)."""

    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__(f"go peer: {result.get('cmd')} failed: {result.get('error')}")
        self.result = result


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text)


class GoPeer:
    """One running `lkproto-go-peer`; make it with `go_peer()`."""

    def __init__(self, process: anyio.abc.Process, stderr_path: Path) -> None:
        self._process = process
        self._stderr_path = stderr_path
        self._ids = itertools.count(1)
        self._secrets: list[str] = []
        self._changed = anyio.Event()
        self.records: list[Record] = []
        self.identity: str | None = None

    # -- reading -------------------------------------------------------------------------------

    async def _read(self) -> None:
        assert self._process.stdout is not None
        buffer = b""
        async for chunk in self._process.stdout:
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if line.strip():
                    self._add(*_parse(line))
        self._add("exited", {})

    def _add(self, name: str, fields: dict[str, Any]) -> None:
        self.records.append((name, fields))
        self._changed.set()
        self._changed = anyio.Event()

    def of(self, kind: str) -> list[dict[str, Any]]:
        """The fields of every `kind` event, in order."""
        return [fields for name, fields in self.records if name == kind]

    async def wait_for(
        self, predicate: Callable[[list[Record]], T | None], timeout: float = 15
    ) -> T:
        """The first truthy value of `predicate(records)`, checked now and after each event;
        `TimeoutError` naming the last events (and the peer's stderr tail) otherwise."""
        with anyio.move_on_after(timeout):
            while not (value := predicate(self.records)):
                await self._changed.wait()
            return value
        raise TimeoutError(
            f"go peer: condition not met within {timeout}s; saw {self.records[-8:]!r}\n"
            f"stderr tail:\n{self.stderr_tail()}"
        )

    async def wait_event(
        self, kind: str, match: Callable[[dict[str, Any]], bool] = lambda f: True, **kw: Any
    ) -> dict[str, Any]:
        """The first `kind` event whose fields satisfy `match` (already seen or to come)."""

        def found(records: list[Record]) -> dict[str, Any] | None:
            return next((f for n, f in records if n == kind and match(f)), None)

        return await self.wait_for(found, **kw)

    # -- commands ------------------------------------------------------------------------------

    async def send(self, cmd: str, **fields: Any) -> int:
        """Send a command; return its id (its `result` event carries the same id)."""
        command_id = next(self._ids)
        line = json.dumps({"cmd": cmd, "id": command_id, **fields}) + "\n"
        assert self._process.stdin is not None
        await self._process.stdin.send(line.encode())
        return command_id

    async def request(self, cmd: str, timeout: float = 30, **fields: Any) -> dict[str, Any]:
        """Send a command and return its result, ok or not."""
        command_id = await self.send(cmd, **fields)
        return await self.wait_event("result", lambda f: f.get("id") == command_id, timeout=timeout)

    async def do(self, cmd: str, timeout: float = 30, **fields: Any) -> dict[str, Any]:
        """Send a command and return its result; `GoPeerError` if it failed."""
        result = await self.request(cmd, timeout, **fields)
        if not result["ok"]:
            raise GoPeerError(result)
        return result

    async def connect(self, url: str, token: str, timeout: float = 30) -> dict[str, Any]:
        """Join; returns the `joined` event (identity, room, participants, protocol)."""
        self._secrets.append(token)
        await self.do("connect", timeout, url=url, token=token)
        joined = await self.wait_event("joined", timeout=timeout)
        self.identity = joined["identity"]
        return joined

    async def publish_data(
        self,
        payload: bytes,
        *,
        reliable: bool = True,
        topic: str = "",
        destinations: list[str] | None = None,
    ) -> None:
        await self.do(
            "publish_data",
            payload=b64(payload),
            reliable=reliable,
            topic=topic,
            destinations=destinations or [],
        )

    async def disconnect(self, timeout: float = 10) -> None:
        """Leave the room (the program then exits); harmless if it already has."""
        if self._process.returncode is None and not self.of("exited"):
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                await self.request("disconnect", timeout)

    # -- diagnostics ---------------------------------------------------------------------------

    def stderr_tail(self, lines: int = 30) -> str:
        try:
            text = self._stderr_path.read_text(errors="replace")
        except OSError:
            return "(no stderr)"
        for secret in self._secrets:
            text = text.replace(secret, "<token>")
        return "\n".join(text.splitlines()[-lines:])


@contextlib.asynccontextmanager
async def go_peer(
    confinement: Confinement, log_dir: Path, timeout: float = 15
) -> AsyncIterator[GoPeer]:
    """Start `lkproto-go-peer` (its stderr in `log_dir`/go-peer-<n>.log) and wait until it is
    ready; on exit, ask it to leave and kill it if it has not exited within 5 s."""
    if confinement.mode != "netns":
        raise RuntimeError(
            "the Go peer can only be confined by the harness's network namespace (run as root): "
            "the Go SDK cannot be told which addresses to gather ICE candidates from"
        )
    if not GO_PEER_BIN.exists():
        raise RuntimeError(f"{GO_PEER_BIN} is missing: run `make setup`")
    stderr_path = _free_log_path(log_dir)
    with open(stderr_path, "wb") as stderr:
        process = await anyio.open_process(
            [str(GO_PEER_BIN)], stdin=-1, stdout=-1, stderr=stderr, start_new_session=True
        )
    peer = GoPeer(process, stderr_path)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(peer._read)
            try:
                await peer.wait_event("ready", timeout=timeout)
                yield peer
            finally:
                with anyio.CancelScope(shield=True):
                    with anyio.move_on_after(5):
                        await peer.disconnect(timeout=5)
                        await process.wait()
                    if process.returncode is None:
                        process.kill()
                        with anyio.move_on_after(5):
                            await process.wait()
                tg.cancel_scope.cancel()
    finally:
        if process.returncode is None:
            process.kill()
        await process.aclose()


def _parse(line: bytes) -> Record:
    """One stdout line as (event name, fields); anything else as ("noise", {"line": ...})."""
    try:
        fields = json.loads(line)
    except ValueError:
        fields = None
    if not isinstance(fields, dict) or not isinstance(fields.get("event"), str):
        return "noise", {"line": line.decode(errors="replace")}
    return fields.pop("event"), fields


def _free_log_path(log_dir: Path) -> Path:
    for n in itertools.count(1):
        path = log_dir / f"go-peer-{n}.log"
        if not path.exists():
            return path
    raise AssertionError("unreachable")


__all__ = ["GO_PEER_BIN", "GoPeer", "GoPeerError", "b64", "go_peer", "unb64"]
