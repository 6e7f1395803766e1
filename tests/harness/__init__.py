"""The test harness: a real livekit-server in a confined network, and tokens to join it.

Confinement (a hard rule of the project, see ../../README.md "Network confinement"):
- as root, `confine()` creates a private network namespace (lo plus a veth pair carrying
  a private test address) and moves this process into it, so the server it starts and every
  participant it runs can reach nothing but that namespace;
- otherwise it confines to loopback: the server binds and advertises 127.0.0.1 only.
"""

from harness.netns import Confinement, confine
from harness.server import LiveKitServer
from harness.tokens import API_KEY, API_SECRET, mint_token

__all__ = ["API_KEY", "API_SECRET", "Confinement", "LiveKitServer", "confine", "mint_token"]
