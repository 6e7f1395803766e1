"""Start and stop a real livekit-server for tests.

The server runs from `.venv/bin/livekit-server` (built by `make setup`) with a generated
config: the harness API key, free ports, and every address pinned to the confinement host:
- `bind_addresses` and `rtc.node_ip` are the confined address, and `rtc.ips.includes` allows
  only it, so the server gathers and advertises no other ICE candidate;
- `rtc.use_external_ip` is false, so the server never asks a public STUN server for its IP;
- `rtc.stun_servers` names a STUN responder the harness runs on the confined address
  (harness/stun.py), because otherwise the server hands clients Google's public STUN servers
  in `JoinResponse.ice_servers`; a responder that answers keeps ICE gathering fast;
- TURN is off.
The child gets PR_SET_PDEATHSIG (SIGKILL when the thread that started it exits), so it dies
with the test process even on a hard crash. It is set by util-linux's `setpriv --pdeathsig`,
which then execs the server: no Python runs in the forked child. It used to be a
`preexec_fn` calling prctl through ctypes, and in a test process whose other threads (the
official SDK's native ones) held a lock at the fork, the child deadlocked before its exec and
the Popen with it (run E of stop 35: a fault test's teardown waited 500 s on the spawner).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from harness.netns import Confinement
from harness.stun import StunResponder
from harness.tokens import API_KEY, API_SECRET

REPO = Path(__file__).resolve().parents[2]
SERVER_BIN = REPO / ".venv" / "bin" / "livekit-server"
# Run the server under `setpriv --pdeathsig KILL` (util-linux) where there is one.
_SETPRIV = shutil.which("setpriv") if sys.platform == "linux" else None
DIE_WITH_PARENT: list[str] = [_SETPRIV, "--pdeathsig", "KILL", "--"] if _SETPRIV else []


def free_port(host: str, kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def server_config(
    *,
    host: str,
    port: int,
    rtc_tcp_port: int,
    rtc_udp_port: int,
    stun_address: tuple[str, int],
    loopback_candidate: bool,
    log_level: str = "info",
) -> dict[str, object]:
    """A livekit-server config that binds and advertises `host` only (see the module doc)."""
    return {
        "port": port,
        "bind_addresses": [host],
        "keys": {API_KEY: API_SECRET},
        "logging": {"level": log_level, "json": False},
        "rtc": {
            "tcp_port": rtc_tcp_port,
            "udp_port": str(rtc_udp_port),
            "use_external_ip": False,
            "node_ip": host,
            "enable_loopback_candidate": loopback_candidate,
            "ips": {"includes": [f"{host}/32"]},
            "stun_servers": [f"{stun_address[0]}:{stun_address[1]}"],
        },
        "turn": {"enabled": False},
        "room": {"empty_timeout": 30, "departure_timeout": 5},
    }


class LiveKitServer:
    """One livekit-server process. Use as a context manager or call start()/stop()."""

    def __init__(
        self,
        confinement: Confinement,
        *,
        log_level: str = "info",
        host: str | None = None,
        ports: tuple[int, int, int] | None = None,
        stun_host: str | None = None,
        log_dir: Path | None = None,
    ) -> None:
        """By default the server binds the confinement's address on free ports. `host`, `ports`
        (signal, rtc tcp, rtc udp) and `stun_host` (where the STUN responder listens) override
        that for a server in a namespace of its own (harness/faults.py). The log goes to
        `log_dir`/server.log if given (it outlives the server, so a failure can name it),
        else into the server's temporary directory."""
        self.confinement = confinement
        self.host = host or confinement.host
        if ports is None:
            ports = (
                free_port(self.host),
                free_port(self.host),
                free_port(self.host, socket.SOCK_DGRAM),
            )
        self.port, self.rtc_tcp_port, self.rtc_udp_port = ports
        self.log_level = log_level
        self._dir = tempfile.TemporaryDirectory(prefix="lkproto-server-")
        self.log_path = Path(log_dir or self._dir.name) / "server.log"
        self.config_path = Path(self._dir.name) / "config.yaml"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: object = None
        self._stun = StunResponder(stun_host or self.host)
        self._stun_started = False

    @property
    def stun_address(self) -> tuple[str, int]:
        return self._stun.address

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def config(self) -> dict[str, object]:
        return server_config(
            host=self.host,
            port=self.port,
            rtc_tcp_port=self.rtc_tcp_port,
            rtc_udp_port=self.rtc_udp_port,
            stun_address=self._stun.address,
            loopback_candidate=self.confinement.mode == "loopback",
            log_level=self.log_level,
        )

    def start(self, timeout: float = 30.0) -> None:
        self._launch()
        if not self._stun_started:
            self._stun.start()
            self._stun_started = True
        self.wait_ready(timeout)

    def _launch(self) -> None:
        """Write the config and start the server process (not waiting for it to be ready)."""
        if not SERVER_BIN.exists():
            raise RuntimeError(f"{SERVER_BIN} is missing: run `make setup`")
        # JSON is valid YAML, so the config needs no YAML library.
        self.config_path.write_text(json.dumps(self.config(), indent=2))
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._log_file = log
        self._proc = subprocess.Popen(
            [*DIE_WITH_PARENT, str(SERVER_BIN), "--config", str(self.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def _answers_http(self) -> bool:
        """One readiness probe: does `GET /` answer 200?"""
        with contextlib.suppress(OSError):
            conn = http.client.HTTPConnection(self.host, self.port, timeout=1)
            try:
                conn.request("GET", "/")
                return conn.getresponse().status == 200
            finally:
                conn.close()
        return False

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(
                    f"livekit-server exited with {self._proc.returncode}:\n{self.log_tail()}"
                )
            if self._answers_http():
                return
            time.sleep(0.05)
        raise TimeoutError(f"livekit-server not ready after {timeout}s:\n{self.log_tail()}")

    def stop(self, timeout: float = 10.0, grace: float = 1.0) -> None:
        """SIGTERM, which asks livekit-server to drain. 1.13.5 logs "exit requested" and then
        keeps running well past any wait worth paying (over 10 s, even with no room), so after
        `grace` seconds a second SIGTERM forces the shutdown (its log: "force": true), as a
        second Ctrl-C does; SIGKILL only if that has not ended it within `timeout`."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout)
        if self._log_file is not None:
            self._log_file.close()  # type: ignore[attr-defined]
            self._log_file = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def close(self) -> None:
        self.stop()
        self._stun.close()
        self._dir.cleanup()

    def __enter__(self) -> LiveKitServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def running_server(confinement: Confinement) -> Iterator[LiveKitServer]:
    server = LiveKitServer(confinement)
    with server:
        yield server


__all__ = ["LiveKitServer", "free_port", "running_server", "server_config"]
