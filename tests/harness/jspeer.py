"""The JavaScript reference client (`livekit-client`, peers/js) in Debian's headless Chromium.

`JsBrowser` is one `node peers/js/driver.mjs` process, which launches Chromium through
playwright-core and talks JSON lines on its stdin/stdout; each `JsPeer` is one page of that
browser holding one `livekit-client` Room (peers/js/src/page.ts, bundled by
scripts/install-js-peer.sh into peers/js/dist/page.js). A browser is started once and shared
by the tests of a module; a peer is opened per test and closed (page and all) after it.

Like harness/official.py, a reader thread records what each page reports as plain tuples
under a lock, and tests wait for a predicate over that record (a `threading.Condition` waited
on from a worker thread), so the same peer serves asyncio and trio tests alike. Every call
has a timeout.

Confinement: the driver is started from the test process, so it and the browser live in the
harness's network namespace (harness/netns.py), whose only non-loopback address is the
harness's; Chromium signals that address itself (mDNS host candidates are off,
`--disable-features=WebRtcHideLocalIpsWithMdns`), and tests/e2e/test_confinement.py checks
every candidate it gathers. Outside a namespace (loopback mode) nothing would stop Chromium
from gathering the machine's real interfaces, so `JsBrowser.start` refuses to run there (and
the tests skip, saying why: `UNCONFINED`).
"""

from __future__ import annotations

import base64
import collections
import concurrent.futures
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

import anyio
import anyio.to_thread
import pytest

from harness.netns import Confinement
from harness.peer_records import PeerRecords

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]
JS_DIR = ROOT / "peers" / "js"
DRIVER = JS_DIR / "driver.mjs"
BUNDLE = JS_DIR / "dist" / "page.js"
WORKER = JS_DIR / "dist" / "e2ee-worker.js"  # livekit-client's E2EE worker, beside the bundle
# Debian's binary itself: /usr/bin/chromium is a shell launcher that adds flags of its own.
CHROMIUM_CANDIDATES = ("/usr/lib/chromium/chromium", "/usr/bin/chromium")
SPARE = 2  # pages kept loaded ahead of `JsBrowser.open`


UNCONFINED = "the browser can be confined only in a network namespace (run as root)"


class JsError(Exception):
    """A call into the page failed (its message is the JS error's)."""


def chromium_path() -> str | None:
    configured = os.environ.get("LKPROTO_CHROMIUM")
    if configured:
        return configured
    return next((p for p in CHROMIUM_CANDIDATES if os.access(p, os.X_OK)), None)


def missing() -> str | None:
    """Why the JS peer cannot run here, or None if it can."""
    if shutil.which("node") is None:
        return "node is not on PATH (scripts/install-system-deps.sh)"
    if chromium_path() is None:
        return "Debian's chromium is not installed (scripts/install-system-deps.sh)"
    built = BUNDLE.exists() and WORKER.exists()
    if not built or not (JS_DIR / "node_modules" / "playwright-core").exists():
        return "the JS peer is not built (scripts/install-js-peer.sh)"
    return None


def _children(pid: int) -> list[int]:
    """Every live descendant of `pid`, from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class JsBrowser:
    """One driver process with its Chromium; `open()` a page per participant."""

    def __init__(self, process: subprocess.Popen[bytes], version: str) -> None:
        self._process = process
        self.version = version  # Chromium's
        self._ids = itertools.count(1)
        self._pending: dict[int, concurrent.futures.Future[Any]] = {}
        self._peers: dict[int, JsPeer] = {}
        self._write_lock = threading.Lock()
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._spare_lock = threading.Lock()
        self._spares: collections.deque[concurrent.futures.Future[Any]] = collections.deque(
            self._send("open") for _ in range(SPARE)
        )

    @classmethod
    def start(cls, confinement: Confinement, log_path: Path, timeout: float = 60) -> JsBrowser:
        """Start the driver and Chromium (blocking; for a fixture), or raise RuntimeError."""
        if confinement.mode != "netns":
            raise RuntimeError(UNCONFINED)
        why = missing()
        if why is not None:
            raise RuntimeError(f"JS peer unavailable: {why}")
        chromium = chromium_path()
        assert chromium is not None
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                ["node", str(DRIVER), str(BUNDLE), chromium],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                cwd=JS_DIR,
                start_new_session=True,  # its own process group, killed at close
            )
        assert process.stdout is not None
        ready: concurrent.futures.Future[str] = concurrent.futures.Future()

        def first_line() -> None:
            assert process.stdout is not None
            line = process.stdout.readline()
            try:
                ready.set_result(json.loads(line)["ready"])
            except (ValueError, KeyError) as exc:
                ready.set_exception(RuntimeError(f"JS driver did not start: {line!r} ({exc})"))

        threading.Thread(target=first_line, daemon=True).start()
        try:
            version = ready.result(timeout)
        except BaseException:
            _kill(process)
            raise
        return cls(process, version)

    def _read(self) -> None:
        stdout: IO[bytes] | None = self._process.stdout
        assert stdout is not None
        for line in stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue  # not ours (the driver writes only JSON lines)
            if "id" in message:
                with self._lock:
                    future = self._pending.pop(message["id"], None)
                if future is None:
                    continue
                if "error" in message:
                    future.set_exception(JsError(message["error"]))
                else:
                    future.set_result(message["result"])
            elif "event" in message:
                with self._lock:
                    peer = self._peers.get(message["page"])
                if peer is not None:
                    peer._record(message["event"], *message["args"])
        # The driver is gone: fail whatever still waits.
        with self._lock:
            pending, self._pending = self._pending, {}
        for future in pending.values():
            future.set_exception(JsError("the JS driver exited"))

    def _send(self, op: str, **fields: Any) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        request_id = next(self._ids)
        with self._lock:
            self._pending[request_id] = future
        line = json.dumps({"id": request_id, "op": op, **fields}) + "\n"
        stdin = self._process.stdin
        assert stdin is not None
        try:
            with self._write_lock:
                stdin.write(line.encode())
                stdin.flush()
        except OSError as exc:
            with self._lock:
                self._pending.pop(request_id, None)
            future.set_exception(JsError(f"the JS driver is gone: {exc}"))
        return future

    async def request(self, op: str, timeout: float, **fields: Any) -> Any:
        return await self._result(self._send(op, **fields), timeout, f"{op} {fields.get('verb')}")

    async def _result(
        self, future: concurrent.futures.Future[Any], timeout: float, what: str
    ) -> Any:
        try:
            return await anyio.to_thread.run_sync(future.result, timeout, abandon_on_cancel=True)
        except concurrent.futures.TimeoutError:
            raise TimeoutError(f"JS driver: {what} took over {timeout}s") from None

    async def open(self, timeout: float = 30) -> JsPeer:
        """A new page: one participant, not yet connected. Pages are opened ahead (`SPARE`
        of them, while the tests run): loading one takes about a second."""
        with self._spare_lock:
            while len(self._spares) < SPARE + 1:
                self._spares.append(self._send("open"))
            future = self._spares.popleft()
        page = await self._result(future, timeout, "open")
        peer = JsPeer(self, int(page))
        with self._lock:
            self._peers[peer.page] = peer
        return peer

    def close(self) -> None:
        """End the driver and the browser: end of input first (the driver closes Chromium),
        then SIGKILL to every process it started that is still there."""
        descendants = _children(self._process.pid)
        stdin = self._process.stdin
        try:
            if stdin is not None:
                stdin.close()
            self._process.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            pass
        _kill(self._process, descendants)
        self._reader.join(5)


def _kill(process: subprocess.Popen[bytes], descendants: list[int] | None = None) -> None:
    for pid in [process.pid, *(descendants or _children(process.pid))]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(5)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class JsPeer(PeerRecords):
    """One page of a `JsBrowser`: a `livekit-client` Room, its verbs and its event record.

    Records, as (name, args): ("connected", (identity, [remote identities])),
    ("participant_connected", (identity,)), ("participant_disconnected", (identity,)),
    ("attributes", (identity, changed, all attributes)), ("metadata", (identity, metadata)),
    ("name", (identity, name)) (the local participant's changes too),
    ("data", (sender, bytes, topic, "reliable" | "lossy", encryption_type)),
    ("text", (sender, topic, attributes, text, stream_id, size)),
    ("bytes", (sender, name, topic, size, sha256 hex, stream_id)),
    ("text_error" | "bytes_error", (sender, topic, message)),
    ("rpc_invoked", (method, caller, payload, response_timeout_ms)),
    ("track_published" | "track_subscribed", (identity, sid, "audio" | "video", name)),
    ("track_unpublished" | "track_unsubscribed" | "track_muted" | "track_unmuted",
    (identity, sid)), ("track_subscription_failed", (identity, sid, reason)),
    ("local_track_published" | "local_track_subscribed", (sid,)),
    ("media_error", (sid, message)) (reading a subscribed track failed),
    ("data_track_published", (sid, name, publisher, uses_e2ee)),
    ("data_track_unpublished", (sid,)),
    ("data_track_frame", (sid, bytes, user_timestamp or None)),
    ("data_track_ended", (sid, error message or None)),
    ("encryption_error", (identity or None, message)),
    ("encryption_status", (identity or None, encrypted)),
    ("disconnected", (reason,)), ("reconnecting", ()), ("reconnected", ()),
    ("page_error" | "console_error", (text,)).
    """

    LABEL = "JS peer"

    def __init__(self, browser: JsBrowser, page: int) -> None:
        super().__init__()
        self._browser = browser
        self.page = page
        self.identity = ""

    def _record(self, name: str, *args: Any) -> None:
        if name == "data":
            sender, data, *rest = args
            args = (sender, base64.b64decode(data), *rest)
        elif name == "data_track_frame":
            sid, data, user_timestamp = args
            stamp = None if user_timestamp is None else int(user_timestamp)
            args = (sid, base64.b64decode(data), stamp)
        super()._record(name, *args)

    async def call(self, verb: str, *args: Any, timeout: float = 30) -> Any:
        """`window.lkpeer[verb](*args)` in the page."""
        return await self._browser.request(
            "call", timeout, page=self.page, verb=verb, args=list(args)
        )

    # -- verbs -------------------------------------------------------------------------------

    async def connect(
        self,
        url: str,
        token: str,
        timeout: float = 30,
        *,
        auto_subscribe: bool = False,
        e2ee_key: str | None = None,
    ) -> list[str]:
        """Join; returns the identities already in the room. With `e2ee_key`, the Room
        encrypts under that shared passphrase (PBKDF2, as `KeyProviderOptions(shared_key=
        e2ee_key.encode())`)."""
        options = {"autoSubscribe": auto_subscribe, "e2eeKey": e2ee_key}
        result = await self.call("connect", url, token, options, timeout=timeout)
        self.identity = str(result["identity"])
        return [str(r) for r in result["remotes"]]

    async def disconnect(self) -> None:
        await self.call("disconnect", timeout=15)

    async def close(self) -> None:
        """Leave (if joined) and close the page."""
        try:
            await self.disconnect()
        finally:
            await self._browser.request("close", 15, page=self.page)

    async def simulate_scenario(self, scenario: str = "signal-reconnect") -> None:
        """`room.simulateScenario(scenario)`: "signal-reconnect" closes the Room's signal
        connection as if it had dropped, and the Room resumes (recorded "reconnecting", then
        "reconnected")."""
        await self.call("simulateScenario", scenario)

    async def remotes(self) -> list[str]:
        return [str(r) for r in await self.call("remotes")]

    async def remote(self, identity: str) -> tuple[dict[str, str], str | None, str | None]:
        """(attributes, metadata, name) of a remote participant, as the page sees them."""
        attributes, metadata, name = await self.call("remote", identity)
        return dict(attributes), metadata, name

    async def set_attributes(self, attributes: dict[str, str]) -> None:
        await self.call("setAttributes", attributes)

    async def set_metadata(self, metadata: str) -> None:
        await self.call("setMetadata", metadata)

    async def set_name(self, name: str) -> None:
        await self.call("setName", name)

    async def publish_data(
        self,
        data: bytes,
        *,
        reliable: bool = True,
        topic: str | None = None,
        destinations: list[str] | None = None,
    ) -> None:
        await self.call("publishData", b64(data), reliable, topic, destinations or [])

    async def send_text(
        self,
        text: str,
        *,
        topic: str,
        destinations: list[str] | None = None,
        attributes: dict[str, str] | None = None,
    ) -> str:
        """`sendText`; returns the stream id."""
        return str(await self.call("sendText", text, topic, destinations or [], attributes or {}))

    async def send_file(
        self, name: str, data: bytes, *, topic: str, destinations: list[str] | None = None
    ) -> str:
        """`sendFile` of `data` as a File named `name`; returns the stream id."""
        return str(
            await self.call("sendFile", name, b64(data), topic, destinations or [], timeout=60)
        )

    async def on_text(self, topic: str) -> None:
        """Record every text stream on `topic` ("text" / "text_error")."""
        await self.call("onText", topic)

    async def on_bytes(self, topic: str) -> None:
        """Record every byte stream on `topic` ("bytes" / "bytes_error"), with its sha256."""
        await self.call("onBytes", topic)

    async def register_rpc(
        self,
        method: str,
        *,
        prefix: str = "",
        error: tuple[int, str, str | None] | None = None,
        throw_plain: bool = False,
        delay: float = 0,
    ) -> None:
        """A handler that waits `delay` seconds, then answers `prefix + payload`, or raises
        RpcError(*error), or (with `throw_plain`) a plain Error; each invocation is recorded
        as "rpc_invoked" when it starts."""
        spec = None if error is None else {"code": error[0], "message": error[1], "data": error[2]}
        await self.call("registerRpc", method, prefix, spec, throw_plain, round(delay * 1000))

    async def unregister_rpc(self, method: str) -> None:
        await self.call("unregisterRpc", method)

    async def perform_rpc(
        self, destination: str, method: str, payload: str, *, timeout_ms: int | None = None
    ) -> tuple[str | None, tuple[int | None, str, str | None] | None]:
        """`performRpc`: (reply, None) on success, (None, (code, message, data)) on error."""
        wait = 30 + (timeout_ms or 15000) / 1000
        result = await self.call(
            "performRpc", destination, method, payload, timeout_ms, timeout=wait
        )
        if "ok" in result:
            return str(result["ok"]), None
        err = result["error"]
        return None, (err["code"], err["message"], err["data"])

    # -- media -------------------------------------------------------------------------------

    async def publish_tone(self, freq: float, name: str = "tone") -> str:
        """Publish a sine of `freq` Hz (WebAudio) as a microphone track; returns its sid."""
        return str(await self.call("publishTone", freq, name))

    async def publish_colours(
        self,
        colours: list[tuple[int, int, int]],
        *,
        size: tuple[int, int] = (640, 360),
        fps: int = 15,
        seconds: float = 1.0,
        name: str = "cam",
    ) -> str:
        """Publish solid canvas pictures, each colour for `seconds` in turn (VP8, one layer);
        returns the track sid."""
        width, height = size
        return str(await self.call("publishColours", colours, width, height, fps, seconds, name))

    async def unpublish_track(self, sid: str) -> None:
        await self.call("unpublishTrack", sid)

    async def subscribe(self, identity: str, sid: str) -> None:
        await self.call("subscribe", identity, sid)

    async def clear_media(self, sid: str) -> None:
        """Start a fresh measurement window on a subscribed track."""
        await self.call("clearMedia", sid)

    async def audio(self, sid: str) -> tuple[int, int, bytes]:
        """What a subscribed audio track delivered since the last clear: (sample rate, number
        of AudioData frames, the first channel as int16 PCM)."""
        result = await self.call("audio", sid)
        return int(result["rate"]), int(result["frames"]), base64.b64decode(result["pcm"])

    async def video(self, sid: str) -> list[tuple[int, int, tuple[int, int, int]]]:
        """The pictures a subscribed video track delivered since the last clear, as (width,
        height, centre RGB)."""
        return [(w, h, (c[0], c[1], c[2])) for w, h, c in await self.call("video", sid)]

    # -- data tracks ---------------------------------------------------------------------------

    async def publish_data_track(self, name: str) -> tuple[str, bool]:
        """`publishDataTrack`: (sid, uses_e2ee)."""
        sid, uses_e2ee = await self.call("publishDataTrack", name)
        return str(sid), bool(uses_e2ee)

    async def push_data_frame(
        self, sid: str, data: bytes, user_timestamp: int | None = None
    ) -> str | None:
        """`tryPush`; None, or the error's message."""
        stamp = None if user_timestamp is None else str(user_timestamp)
        result = await self.call("pushDataFrame", sid, b64(data), stamp)
        return None if result is None else str(result)

    async def unpublish_data_track(self, sid: str) -> None:
        await self.call("unpublishDataTrack", sid)

    async def subscribe_data_track(self, sid: str) -> None:
        """Subscribe; frames are recorded as "data_track_frame"."""
        await self.call("subscribeDataTrack", sid)


def browser_fixture(label: str) -> Callable[..., Iterator[JsBrowser]]:
    """A module-scoped `browser` fixture: one Chromium (with its driver) per test module,
    killed at teardown; its driver's log in a temporary directory named `label`. A module
    registers it with `browser = browser_fixture("js-media")`."""

    @pytest.fixture(scope="module", name="browser")
    def browser(confinement: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[JsBrowser]:
        if confinement.mode != "netns":
            pytest.skip(UNCONFINED)
        js = JsBrowser.start(confinement, tmp_path_factory.mktemp(label) / "driver.log")
        try:
            yield js
        finally:
            js.close()

    return browser
