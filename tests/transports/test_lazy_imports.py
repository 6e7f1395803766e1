"""Importing an adapter (or running `lkproto --help`) loads no WebRTC or media library (issue 25).

aiortc, aioice and PyAV (with numpy, pylibsrtp, pyOpenSSL, dnspython and ifaddr, which they
bring) cost most of a process's start-up. They are imported when a session creates its first
peer connection (`_runtime.aiortc_peer` / `bridged_peer`), and PyAV and numpy by the video
functions that touch pixels. Nor does it load what a session without E2EE, media or the
event loop of the other backend never needs: `cryptography` (imported by lkproto.e2ee's first
cipher or KDF), asyncio (the anyio adapter on trio never runs it; on asyncio it is the
caller's) and `wave` (`AudioFrame.to_wav_bytes`). Each check runs in a fresh interpreter and
reads `sys.modules`: no timing, so it fails only if an eager import comes back.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("aiortc", "aioice", "av", "numpy", "pylibsrtp", "OpenSSL", "dns", "ifaddr")
DEFERRED = ("cryptography", "asyncio", "wave")  # not heavy, but no adapter import needs them
_REPORT = (
    "\nimport json as _j, sys as _s\n"
    f"print(_j.dumps(sorted(m for m in {HEAVY + DEFERRED!r} if m in _s.modules)))\n"
    "print(_s.modules['lkproto.transports._sctp'].__name__ if 'lkproto.transports._sctp' "
    "in _s.modules else None)\n"
)


def _loaded(code: str) -> tuple[list[str], str]:
    """Run `code` in a fresh interpreter; the heavy packages it loaded, and whether the SCTP
    fix's module was imported (its name or "None")."""
    out = subprocess.run(
        [sys.executable, "-c", code + _REPORT], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    heavy, sctp = out.stdout.splitlines()[-2:]
    return json.loads(heavy), sctp


@pytest.mark.parametrize(
    "code",
    [
        "import lkproto.transports.anyio",
        "import lkproto.transports.trio",
        "import lkproto.transports.threaded",
        "import lkproto.transports.api",
        "import lkproto.transports.testing",
        "from lkproto.transports.anyio import *",
        "from lkproto.transports.threaded import *",
        "from lkproto.transports.trio import *",
    ],
)
def test_importing_an_adapter_loads_no_webrtc_or_media_library(code: str) -> None:
    # The threaded adapter and the memory transport run an asyncio loop of their own.
    own_loop = "threaded" in code or "testing" in code
    assert _loaded(code) == (["asyncio"] if own_loop else [], "None")


def test_the_core_imports_cryptography_with_the_first_cipher_and_the_adapter_runs_without() -> None:
    # lkproto.e2ee's first AES-GCM key loads it; a Room made and given an event loop does not.
    code = (
        "import sys, trio\n"
        "from lkproto.transports.anyio import Room\n"
        "async def main():\n"
        "    Room()\n"
        "trio.run(main)\n"
        "assert 'cryptography' not in sys.modules and 'asyncio' not in sys.modules\n"
        "from lkproto import e2ee\n"
        "assert e2ee.aes_gcm_decrypt(bytes(16), bytes(12), bytes(16)) is None\n"
    )
    heavy, sctp = _loaded(code)
    assert heavy == ["cryptography"] and sctp == "None"


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["join", "--help"],
        ["publish-audio", "--help"],
        ["no-such-command"],  # a usage error
    ],
)
def test_the_command_lines_help_and_usage_errors_load_no_adapter(argv: list[str]) -> None:
    code = (
        "import contextlib, io, sys\n"
        "from lkproto.transports.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):"
        f"\n    code = main({argv!r})\n"
        "assert code in (0, 2), code\n"
        "assert 'lkproto.transports.anyio' not in sys.modules\n"
    )
    assert _loaded(code) == (["asyncio"], "None")  # the command line runs asyncio itself


def test_frames_and_sources_are_made_without_pyav_and_convert_with_it() -> None:
    # The public media objects exist and take frames without PyAV; a conversion (and a
    # captured frame) loads it then, and gives the right pixels.
    code = (
        "import sys\n"
        "from lkproto.transports.anyio import AudioFrame, AudioSource, VideoBufferType, "
        "VideoFrame, VideoSource\n"
        "frame = VideoFrame(2, 2, VideoBufferType.I420, bytes([81] * 4 + [90, 240]))\n"
        "audio = AudioFrame.create(48000, 1, 480)\n"
        "source = VideoSource(2, 2)\n"
        "assert 'av' not in sys.modules and 'numpy' not in sys.modules\n"
        "rgba = frame.convert(VideoBufferType.RGBA)\n"
        "assert 'av' in sys.modules\n"
        "r, g, b, a = bytes(rgba.data[:4])\n"
        "assert (r > 200, g < 60, b < 60, a) == (True, True, True, 255), (r, g, b, a)\n"
        "source.capture_frame(frame)\n"
        "assert source.queue.pop() is not None\n"
    )
    heavy, sctp = _loaded(code)
    assert "av" in heavy and "numpy" in heavy
    assert "aiortc" not in heavy and sctp == "None"


def test_the_first_peer_connection_imports_aiortc_and_installs_the_sctp_fix() -> None:
    code = (
        "import asyncio, sys\n"
        "import lkproto.transports.anyio\n"
        "from lkproto.transports import _runtime\n"
        "assert 'aiortc' not in sys.modules\n"
        "async def main():\n"
        "    peer = _runtime.aiortc_peer(None, host_addresses=None, ice_servers=[])\n"
        "    await peer.aclose()\n"
        "asyncio.run(main())\n"
        "from aiortc import rtcsctptransport\n"
        "from lkproto.transports._sctp import OrderedInboundStream\n"
        "assert rtcsctptransport.InboundStream is OrderedInboundStream\n"
    )
    heavy, sctp = _loaded(code)
    assert {"aiortc", "aioice", "av"} <= set(heavy)
    assert sctp == "lkproto.transports._sctp"


_HALF_IMPORTED_ASYNCIO = """
import importlib.abc, importlib.util, sys, threading
import trio
from lkproto.transports._audio import poster

started, release = threading.Event(), threading.Event()

class Held(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    # asyncio's import, held after the module is in sys.modules and before its code ran:
    # what the main thread sees while aiortc's import (on a worker thread) is inside it.
    def find_spec(self, name, path, target=None):
        if name != "asyncio":
            return None
        sys.meta_path.remove(self)
        self.real = importlib.util.find_spec(name)
        return importlib.util.spec_from_file_location(
            name, self.real.origin, loader=self,
            submodule_search_locations=self.real.submodule_search_locations)
    def create_module(self, spec):
        return None
    def exec_module(self, module):
        started.set()
        release.wait(10)
        module.__spec__.loader = self.real.loader
        self.real.loader.exec_module(module)

sys.meta_path.insert(0, Held())
threading.Thread(target=lambda: __import__("asyncio"), daemon=True).start()
assert started.wait(10)
assert "asyncio" in sys.modules and not hasattr(sys.modules["asyncio"], "get_running_loop")
threading.Timer(0.2, release.set).start()

async def main():
    post = poster()  # waits for asyncio's code to finish, then: no asyncio loop, trio's
    done = trio.Event()
    post(done.set)
    with trio.fail_after(5):
        await done.wait()
    print("posted on trio")

trio.run(main)
"""


def test_a_poster_made_while_another_thread_imports_asyncio_waits_for_it() -> None:
    # A connect cancelled during aiortc's import leaves that import running on its worker
    # thread; the next connect's `poster()` found asyncio in sys.modules without its names
    # (AttributeError: partially initialized module 'asyncio'), in a full run on trio.
    out = subprocess.run(
        [sys.executable, "-c", _HALF_IMPORTED_ASYNCIO], capture_output=True, text=True, timeout=60
    )
    assert (out.returncode, out.stdout.strip()) == (0, "posted on trio"), out.stderr
