"""`make demo`: participants talk through a LiveKit server with the `lkproto` command line.

What it shows, each participant a real `lkproto` process whose output is prefixed with its
name:
1. bob runs `lkproto rpc serve` with a Python handler (`answer`, below) and `--save DIR`;
2. alice runs `lkproto rpc call --method ask --follow answer`: bob's handler streams its
   answer back to her as a text stream, a few words at a time, then responds; she prints the
   text as it streams, then the response;
3. alice runs `lkproto send-file` with a few MiB of random bytes: a progress bar on both
   sides; bob saves the file, and the demo checks that the sha256 of what bob saved matches;
4. carol runs `lkproto record --participant alice`, and alice `lkproto publish-audio` of a
   2 s 440 Hz WAV file (generated here) once carol subscribed; the demo checks the pitch of
   what carol recorded;
5. bob is stopped with SIGINT (he leaves the room), then the server.

The server: with LIVEKIT_URL (and LIVEKIT_API_KEY, LIVEKIT_API_SECRET) set, that one.
Otherwise a local livekit-server is started exactly as the test harness does it
(tests/harness): as root, this process first moves into a private network namespace (the
server and both participants, started afterwards, inherit it); otherwise everything binds
127.0.0.1 only. Nothing leaves the machine's loopback or the namespace the demo created.

Every wait has a deadline; the whole demo takes some seconds. Exit status 0 when everything
worked, 1 otherwise (the reason is printed).

Run: .venv/bin/python scripts/demo.py
With --serve (`make server`), it only starts the local server (loopback only with
LKPROTO_FORCE_LOOPBACK=1), prints the three variables to export for your own programs, and
keeps it running until Ctrl-C.
"""

from __future__ import annotations

import hashlib
import importlib
import math
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
import wave
from array import array
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Protocol, cast

import anyio

REPO = Path(__file__).resolve().parents[1]
ROOM = f"demo-{os.getpid()}"
FILE_BYTES = 4 * 1024 * 1024
ANSWER = (
    "lkproto is a pure-Python LiveKit client: a sans-I/O protocol core (bytes and time in, "
    "events and commands out) with anyio, trio and threaded transports. This answer is a "
    "text stream, written a few words at a time while alice prints it."
)
WIDTH = 5  # participant names are right-aligned to this many characters


# -- bob's RPC handler (loaded by `lkproto rpc serve --handler scripts/demo.py:answer`) ------
# The handler gets `lkproto.transports.anyio`'s `RpcInvocationData` and `Room`; the protocols
# below name the parts it uses (so this script type-checks without importing the package).


class RpcInvocationData(Protocol):
    @property
    def caller_identity(self) -> str: ...
    @property
    def payload(self) -> str: ...


class TextStreamWriter(Protocol):
    async def write(self, text: str) -> None: ...
    async def aclose(self) -> None: ...


class LocalParticipant(Protocol):
    async def stream_text(
        self, *, destination_identities: list[str], topic: str
    ) -> TextStreamWriter: ...


class Room(Protocol):
    @property
    def local_participant(self) -> LocalParticipant: ...


async def answer(data: RpcInvocationData, room: Room) -> str:
    """Stream ANSWER to the caller on topic "answer", then respond with a summary."""
    writer = await room.local_participant.stream_text(
        destination_identities=[data.caller_identity], topic="answer"
    )
    words = ANSWER.split(" ")
    for start in range(0, len(words), 3):
        piece = " ".join(words[start : start + 3])
        await writer.write(piece if start + 3 >= len(words) else piece + " ")
        await anyio.sleep(0.12)  # pacing, so the text visibly streams
    await writer.aclose()
    return f"streamed {len(ANSWER)} characters on topic 'answer' (question: {data.payload!r})"


# -- the screen: every process's output, prefixed, lines never mixed -------------------------


class Screen:
    """Writes pieces of output from several sources; a line is always finished before another
    source starts a new one, and each line starts with its source's name."""

    def __init__(self, out: IO[str]) -> None:
        self._out = out
        self._lock = threading.Lock()
        self._open: str | None = None  # the source whose line is unfinished
        self._broken: set[str] = set()  # sources whose unfinished line another one ended

    def write(self, source: str, text: str) -> None:
        with self._lock:
            for piece in text.splitlines(keepends=True):
                if self._open is not None and self._open != source:
                    self._out.write("\n")
                    self._broken.add(self._open)
                    self._open = None
                if source in self._broken:
                    self._broken.discard(source)
                    if piece == "\n":  # the end of a line already ended for it
                        continue
                if self._open is None:
                    self._out.write(f"{source:>{WIDTH}} | ")
                self._out.write(piece)
                self._open = None if piece.endswith("\n") else source
            self._out.flush()

    def say(self, text: str) -> None:
        self.write("demo", text + "\n")


class Participant:
    """One `lkproto` process: its output (stdout and stderr, in order) relayed to the screen as
    it comes, its lines kept."""

    def __init__(self, screen: Screen, name: str, argv: Sequence[str], env: dict[str, str]) -> None:
        self.name = name
        self._screen = screen
        self.lines: list[str] = []
        self._cond = threading.Condition()
        screen.say("$ lkproto " + shlex.join(argv))
        self.proc = subprocess.Popen(
            [*lkproto_command(), *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,  # one pipe: results and progress stay in order
            env=env,
            cwd=REPO,
        )
        assert self.proc.stdout is not None
        self._relay_thread = threading.Thread(
            target=self._relay, args=(self.proc.stdout,), daemon=True
        )
        self._relay_thread.start()

    def _relay(self, pipe: IO[bytes]) -> None:
        partial = ""
        fd = pipe.fileno()
        while data := os.read(fd, 65536):
            text = data.decode("utf-8", "replace")
            self._screen.write(self.name, text)
            partial += text
            *done, partial = partial.split("\n")
            if done:
                with self._cond:
                    self.lines += done
                    self._cond.notify_all()
        if partial:
            self._screen.write(self.name, "\n")
            with self._cond:
                self.lines.append(partial)
                self._cond.notify_all()

    def wait_line(self, prefix: str, timeout: float) -> str:
        """The first output line starting with `prefix`; DemoError after `timeout` seconds."""

        def found() -> str | None:
            return next((line for line in self.lines if line.startswith(prefix)), None)

        with self._cond:
            if not self._cond.wait_for(lambda: found() is not None or self.exited(), timeout):
                raise DemoError(f"{self.name}: no line {prefix!r} within {timeout:g}s")
            line = found()
        if line is None:
            raise DemoError(f"{self.name} exited ({self.proc.returncode}) before {prefix!r}")
        return line

    def exited(self) -> bool:
        return self.proc.poll() is not None

    def wait(self, timeout: float) -> int:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise DemoError(f"{self.name} did not finish within {timeout:g}s") from None
        self._relay_thread.join(5)
        return code

    def stop(self, timeout: float = 15) -> int:
        """SIGINT (leave the room), then wait; SIGKILL if it does not end in time."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.wait(timeout)
        except DemoError:
            raise DemoError(f"{self.name} did not leave within {timeout:g}s") from None


class DemoError(Exception):
    pass


def lkproto_command() -> list[str]:
    script = Path(sys.executable).with_name("lkproto")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "lkproto.transports.cli"]


# -- the server: the given one, or a confined local one started like the test harness's ------


class Confinement(Protocol):
    @property
    def host(self) -> str: ...
    @property
    def namespace(self) -> str | None: ...


class Server(Protocol):
    @property
    def url(self) -> str: ...
    def start(self, timeout: float = ...) -> None: ...
    def close(self) -> None: ...


class LocalServer:
    """`confine()`, then a `LiveKitServer` (tests/harness), both undone by `close()`."""

    def __init__(self) -> None:
        sys.path.insert(0, str(REPO / "tests"))
        harness = importlib.import_module("harness")
        netns = importlib.import_module("harness.netns")
        confine = cast(Callable[[bool], Confinement], harness.confine)
        self._release = cast(Callable[[Confinement], None], netns.release)
        make_server = cast(Callable[[Confinement], Server], harness.LiveKitServer)
        self.api_key = cast(str, harness.API_KEY)
        self.api_secret = cast(str, harness.API_SECRET)
        # First, before any thread exists. LKPROTO_FORCE_LOOPBACK=1 picks the non-root mode
        # (loopback only) when running as root, as it does for the tests.
        self.confinement = confine(os.environ.get("LKPROTO_FORCE_LOOPBACK") == "1")
        self.server: Server | None = None
        try:
            self.server = make_server(self.confinement)
            self.server.start()
        except BaseException:
            self.close()
            raise
        self.url = self.server.url

    def where(self) -> str:
        ns = self.confinement.namespace
        return f"network namespace {ns}" if ns else "loopback only"

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        self._release(self.confinement)


# -- the demo --------------------------------------------------------------------------------

TONE_HZ, TONE_RATE, TONE_SECONDS = 440, 16000, 2.0


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_tone(path: Path) -> None:
    samples = array(
        "h",
        (
            round(16000 * math.sin(2 * math.pi * TONE_HZ * n / TONE_RATE))
            for n in range(int(TONE_RATE * TONE_SECONDS))
        ),
    )
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(TONE_RATE)
        out.writeframes(samples.tobytes())


def pitch(path: Path) -> tuple[float, float]:
    """(seconds of audio, strongest of 300..600 Hz in 5 Hz steps) of a mono 16-bit WAV file,
    by the Goertzel algorithm over its middle second."""
    with wave.open(str(path), "rb") as wav:
        rate = wav.getframerate()
        data = array("h", wav.readframes(wav.getnframes()))
    seconds = len(data) / rate
    middle = data[len(data) // 2 - rate // 2 : len(data) // 2 + rate // 2]

    def power(freq: float) -> float:
        coeff = 2 * math.cos(2 * math.pi * freq / rate)
        s1 = s2 = 0.0
        for x in middle:
            s1, s2 = x + coeff * s1 - s2, s1
        return s1 * s1 + s2 * s2 - coeff * s1 * s2

    return seconds, max(range(300, 605, 5), key=power)


def run_demo(screen: Screen, env: dict[str, str], work: Path) -> None:
    started = time.monotonic()
    saved = work / "bob-saved"
    source = work / "demo-payload.bin"
    source.write_bytes(os.urandom(FILE_BYTES))
    sent_digest = sha256(source)
    common = ["--room", ROOM, "--progress", "lines"]
    handler = f"{Path(__file__).resolve()}:answer"

    screen.say("1. bob joins and serves the RPC method 'ask' (a Python handler), saving files")
    serve = ["rpc", "serve", *common, "--identity", "bob", "--method", "ask"]
    bob = Participant(screen, "bob", [*serve, "--handler", handler, "--save", str(saved)], env)
    try:
        bob.wait_line("serving rpc methods", 30)

        screen.say("2. alice calls bob's 'ask'; his answer streams back as text, then responds")
        ask = ["rpc", "call", *common, "--identity", "alice", "--to", "bob", "--method", "ask"]
        question = ["--payload", "What is lkproto?", "--follow", "answer", "--timeout", "20"]
        call = Participant(screen, "alice", [*ask, *question], env)
        if (code := call.wait(40)) != 0:
            raise DemoError(f"alice's rpc call exited with {code}")
        if not any(line.startswith("streamed ") for line in call.lines):
            raise DemoError("alice printed no RPC response")

        screen.say(f"3. alice sends bob a {FILE_BYTES // (1024 * 1024)} MiB file")
        send = Participant(
            screen,
            "alice",
            ["send-file", str(source), *common, "--identity", "alice", "--to", "bob"],
            env,
        )
        if (code := send.wait(60)) != 0:
            raise DemoError(f"alice's send-file exited with {code}")
        line = bob.wait_line("saved ", 60)
        received = line.rsplit("sha256=", 1)[-1]
        on_disk = sha256(saved / source.name)
        if not received == on_disk == sent_digest:
            raise DemoError(
                f"sha256 mismatch: sent {sent_digest}, bob read {received}, saved {on_disk}"
            )
        screen.say(f"sha256 of the sent file and bob's saved copy match: {sent_digest}")

        screen.say("4. carol records alice, who plays a 2 s 440 Hz tone as an audio track")
        tone, recorded = work / "tone.wav", work / "carol-recorded.wav"
        write_tone(tone)
        record = ["record", *common, "--identity", "carol", "--participant", "alice"]
        carol = Participant(
            screen,
            "carol",
            [*record, "--out", str(recorded), "--duration", "2", "--rate", "16000"],
            env,
        )
        play = ["publish-audio", str(tone), *common, "--identity", "alice"]
        alice = Participant(screen, "alice", [*play, "--wait-for-subscriber"], env)
        if (code := alice.wait(40)) != 0:
            raise DemoError(f"alice's publish-audio exited with {code}")
        if (code := carol.wait(20)) != 0:
            raise DemoError(f"carol's record exited with {code}")
        seconds, heard = pitch(recorded)
        if seconds < 1.8 or abs(heard - TONE_HZ) > 5:
            raise DemoError(f"carol recorded {seconds:.2f} s at {heard} Hz, not 2 s at 440 Hz")
        screen.say(f"carol's recording: {seconds:.2f} s, strongest at {heard} Hz")

        screen.say("5. bob leaves (SIGINT)")
        if (code := bob.stop()) != 0:
            raise DemoError(f"bob exited with {code}")
    finally:
        if not bob.exited():
            bob.proc.kill()
            bob.proc.wait(5)
    screen.say(f"done in {time.monotonic() - started:.1f}s")


def serve() -> int:
    """`make server`: a local server for your own programs, until Ctrl-C (or SIGTERM)."""
    try:
        local = LocalServer()
    except (RuntimeError, TimeoutError, OSError) as exc:
        print(f"could not start a local livekit-server: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        print(f"livekit-server is running ({local.where()}); in another shell:")
        print(
            f"export LIVEKIT_URL={local.url} LIVEKIT_API_KEY={local.api_key} "
            f"LIVEKIT_API_SECRET={local.api_secret}",
            flush=True,
        )
        print("Ctrl-C stops it.", flush=True)
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        local.close()
    return 0


def main() -> int:
    if sys.argv[1:] == ["--serve"]:
        return serve()
    screen = Screen(sys.stdout)
    url = os.environ.get("LIVEKIT_URL", "")
    local: LocalServer | None = None
    try:
        if url:
            key = os.environ.get("LIVEKIT_API_KEY", "")
            secret = os.environ.get("LIVEKIT_API_SECRET", "")
            if not key or not secret:
                screen.say("LIVEKIT_URL is set: set LIVEKIT_API_KEY and LIVEKIT_API_SECRET too")
                return 2
            screen.say(f"using the server at {url} (LIVEKIT_URL)")
        else:
            try:
                local = LocalServer()
            except (RuntimeError, TimeoutError, OSError) as exc:
                screen.say(f"FAILED: could not start a local livekit-server: {exc}")
                return 1
            url, key, secret = local.url, local.api_key, local.api_secret
            screen.say(f"started livekit-server at {url} ({local.where()})")
        env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEKIT_")}
        env.update(LIVEKIT_URL=url, LIVEKIT_API_KEY=key, LIVEKIT_API_SECRET=secret)
        with tempfile.TemporaryDirectory(prefix="lkproto-demo-") as tmp:
            run_demo(screen, env, Path(tmp))
        return 0
    except DemoError as exc:
        screen.say(f"FAILED: {exc}")
        return 1
    except KeyboardInterrupt:
        screen.say("interrupted")
        return 130
    finally:
        if local is not None:
            local.close()
            screen.say(
                "stopped the server"
                + (" and released the namespace" if local.confinement.namespace else "")
            )


if __name__ == "__main__":
    sys.exit(main())
