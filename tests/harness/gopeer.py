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

Media files: pion encodes nothing, so the Go peer publishes files the harness encodes with
PyAV (`write_ogg_tone`: Opus in Ogg; `write_ivf_pattern`: VP8 in IVF, one frame per tick,
a keyframe a second) and records what it receives into files the harness decodes
(`read_ogg`: the first channel as 48 kHz int16 PCM in a `harness.audio.Capture`;
`read_ivf`: each picture's size and centre colour in a `harness.video.Seen`).
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
import numpy as np
import pytest

from harness.audio import Capture, tone
from harness.netns import Confinement
from harness.video import Seen

REPO = Path(__file__).resolve().parents[2]
GO_PEER_BIN = REPO / ".venv" / "bin" / "lkproto-go-peer"

T = TypeVar("T")
Record = tuple[str, dict[str, Any]]

UNCONFINED = "the Go peer can be confined only by the harness's network namespace (root)"


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

    async def connect(
        self, url: str, token: str, timeout: float = 30, *, e2ee_key: str | None = None
    ) -> dict[str, Any]:
        """Join (encrypting data packets under the passphrase `e2ee_key`, if given); returns
        the `joined` event (identity, room, participants, protocol)."""
        self._secrets.append(token)
        fields: dict[str, Any] = {"url": url, "token": token}
        if e2ee_key is not None:
            self._secrets.append(e2ee_key)
            fields["e2ee_key"] = e2ee_key
        await self.do("connect", timeout, **fields)
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

    async def simulate(self, scenario: str = "signal_reconnect") -> None:
        """`Room.Simulate`: "signal_reconnect" closes the SDK's signal connection as if it had
        dropped, and it resumes (events "reconnecting", then "reconnected")."""
        await self.do("simulate", scenario=scenario)

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


@pytest.fixture(name="gopeer")
async def gopeer_fixture(confinement: Confinement, tmp_path: Path) -> AsyncIterator[GoPeer]:
    """The `gopeer` fixture: a running Go peer for one test (a module uses it by importing
    `gopeer_fixture`); skipped, saying why, where the harness cannot confine it (not a pass)."""
    if confinement.mode != "netns":
        pytest.skip(UNCONFINED)
    async with go_peer(confinement, tmp_path) as peer:
        yield peer


# -- media files -----------------------------------------------------------------------------


def write_ogg_tone(path: Path, freq: float, seconds: float, rate: int = 48000) -> None:
    """`seconds` of a 0.5-amplitude sine at `freq`, mono, as Opus in Ogg (20 ms packets)."""
    import av

    step = rate // 50
    with av.open(str(path), "w", format="ogg") as out:
        stream = out.add_stream("libopus", rate=rate, layout="mono")
        for n in range(int(seconds * 50)):
            pcm = np.frombuffer(tone(freq, rate, 1, step, n * step), np.int16)
            frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate, frame.pts = rate, n * step
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def write_ivf_pattern(
    path: Path,
    colours: tuple[tuple[int, int, int], ...],
    *,
    size: tuple[int, int],
    fps: int = 15,
) -> None:
    """One second of each of `colours` in turn, solid, as VP8 in IVF: timebase 1/`fps`, one
    frame per tick (as the Go peer plays it), a keyframe at the start of every second."""
    import av

    width, height = size
    with av.open(str(path), "w", format="ivf") as out:
        stream = out.add_stream("libvpx", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.bit_rate, stream.gop_size = 500_000, fps
        stream.codec_context.options = {"deadline": "realtime", "cpu-used": "8"}
        for n in range(len(colours) * fps):
            rgb = np.empty((height, width, 3), np.uint8)
            rgb[:] = colours[n // fps]
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = n
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def read_ogg(path: Path) -> Capture:
    """The Opus in an Ogg file, decoded: its first channel at 48 kHz as int16."""
    import av

    capture = Capture()
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            assert frame.sample_rate == 48000, frame.sample_rate
            first = frame.to_ndarray().reshape(len(frame.layout.channels), -1)[0]
            if frame.format.name.startswith("s16"):
                pcm = first.astype(np.int16)
            else:  # float, -1..1
                pcm = (np.clip(first, -1, 1) * 32767).astype(np.int16)
            capture.add(pcm.tobytes(), 48000, 1)
    return capture


def read_ivf(path: Path) -> Seen:
    """The VP8 in an IVF file, decoded: each picture's size and centre colour (RGB through
    swscale's default, BT.601 limited range, as lkproto and libyuv read pictures)."""
    import av

    seen = Seen()
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            rgb = frame.to_ndarray(format="rgb24")
            r, g, b = (int(x) for x in rgb[frame.height // 2, frame.width // 2])
            seen.frames.append((frame.width, frame.height, (r, g, b)))
    return seen


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


__all__ = [
    "GO_PEER_BIN",
    "UNCONFINED",
    "GoPeer",
    "GoPeerError",
    "b64",
    "go_peer",
    "gopeer_fixture",
    "read_ivf",
    "read_ogg",
    "unb64",
    "write_ivf_pattern",
    "write_ogg_tone",
]
