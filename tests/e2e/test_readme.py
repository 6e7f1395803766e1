"""Issue 19 item 11: every code block of the README runs as written.

Each block is named by its first line. Python blocks are complete programs: they run as
they are, in a fresh interpreter, against this session's livekit-server (LIVEKIT_URL,
LIVEKIT_API_KEY, LIVEKIT_API_SECRET, as `make server` prints them) or with no server at all,
and must exit 0 printing what the README says they do. Shell blocks run under `bash -e` with
the same environment. A block not listed here fails the test (a new block must be run by
it), and so does a listed block that is no longer in the README. The blocks that are not
run here say why.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import anyio
import anyio.to_thread
import pytest

from harness import API_KEY, API_SECRET, LiveKitServer

pytestmark = [pytest.mark.e2e, pytest.mark.anyio, pytest.mark.timeout(180)]

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"

#: first line -> (language, needs the server, run in the repository (else a scratch dir),
#: what its output must contain)
RUN: dict[str, tuple[str, bool, bool, list[str]]] = {
    "# reconnect.py:": ("python", True, False, ["connection lost; resuming", "back, as resilient"]),
    "# quickstart_asyncio.py:": (
        "python",
        True,
        False,
        [
            "agent got b'hi' on topic greetings",
            "agent read 'hello' from user",
            "user got 'hello user'",
        ],
    ),
    "# core.py:": ("python", False, False, ["bob got b'hi' from alice at 0.0"]),
    "# e2ee.py:": (
        "python",
        True,
        False,
        [
            "bob: e2ee OK",
            "bob read b'only the key holders can read this'",
            "bob read b'read under the next key'",
        ],
    ),
    "# quickstart_trio.py:": (
        "python",
        True,
        False,
        ["user got 'pong to user'", "user saw Joined", "user saw Disconnected"],
    ),
    "# quickstart_threaded.py:": (
        "python",
        True,
        False,
        ["user got 'hello user'", "agent read 'hello world' from user"],
    ),
    "# faults.py:": ("python", False, False, ["bob got [b'kept'] and reconnected"]),
    "# audio.py:": ("python", True, False, ["listener heard a 440 Hz tone"]),
    "# video.py:": ("python", True, False, ["watcher saw 30 pictures of 640x360"]),
    "lkproto token --room demo": (
        "sh",
        True,
        False,
        ["sent 5 characters to the server for bob", "(confirmed by bob)", "joined room demo as me"],
    ),
    "python examples/replay_agent/agent.py": (
        "sh",
        True,
        True,
        ["end_room: End room request acknowledged"],
    ),
    "import logging": ("python", False, False, []),
    "# firewall.py:": ("python", False, False, ["TRANSPORT_RELAY [IceServer(urls=["]),
}
#: first line -> why the block is not run here
NOT_RUN = {
    "pip install lkproto": "installing: tests/test_packaging.py builds the wheel and installs it",
    "make demo": "`make test` is this suite; tests/e2e/test_cli_e2e.py runs the demo",
    "# test_weather.py:": "it is tests/testing/test_readme_example.py verbatim, run by the suite",
    "# test_sensor.py:": "it is tests/testing/test_readme_datatracks.py verbatim, run by the suite",
}


def blocks() -> dict[str, tuple[str, str]]:
    """first line -> (language, code) of every fenced block of the README."""
    found = re.findall(r"^```(\w+)\n(.*?)^```", README.read_text(encoding="utf-8"), re.S | re.M)
    out: dict[str, tuple[str, str]] = {}
    for language, code in found:
        first = code.split("\n", 1)[0]
        key = next((k for k in [*RUN, *NOT_RUN] if first.startswith(k)), first)
        assert key not in out, f"two README blocks start with {key!r}"
        out[key] = (language, code)
    return out


def test_every_block_is_run_or_says_why_not() -> None:
    assert set(blocks()) == set(RUN) | set(NOT_RUN)
    for key, (language, _) in blocks().items():
        if key in RUN:
            assert RUN[key][0] == language, key


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("first_line", list(RUN))
async def test_the_block_runs_as_written(
    first_line: str, livekit_server: LiveKitServer, tmp_path: Path
) -> None:
    language, server, in_repo, expected = RUN[first_line]
    _, code = blocks()[first_line]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEKIT_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    if server:
        env.update(LIVEKIT_URL=livekit_server.url, LIVEKIT_API_KEY=API_KEY)
        env["LIVEKIT_API_SECRET"] = API_SECRET
    script = tmp_path / ("block.py" if language == "python" else "block.sh")
    script.write_text(code, encoding="utf-8")
    command = [sys.executable, str(script)] if language == "python" else ["bash", "-e", str(script)]

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command,
            cwd=REPO if in_repo else tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=150,
            stdin=subprocess.DEVNULL,
        )

    done = await anyio.to_thread.run_sync(run)
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    output = done.stdout + done.stderr
    for line in expected:
        assert line in output, f"{line!r} not in:\n{output}"
    assert "Traceback" not in done.stderr, done.stderr
