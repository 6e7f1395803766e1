"""Child-process entry points for tests/e2e/test_threaded_interop.py (fork and spawn).

They are top-level functions of an importable module, so "spawn" can pickle them by name. A
child talks to the test over a `multiprocessing` pipe: it sends ("joined", identity, pid)
once connected, waits for "go" (sent when the official peer has seen it join, so its data
arrives with a sender), publishes and calls, then sends ("done", report) and exits 0.
"""

from __future__ import annotations

import faulthandler
import os
import threading
from multiprocessing.connection import Connection
from typing import Any

from lkproto.transports.threaded import (
    Room,
    RoomOptions,
    RtcConfiguration,
    TransportClosedError,
)

_WAIT = 60.0
_STACKS_AFTER = 50.0  # less than the test's 60 s wait for "joined"


def join_publish_call(
    conn: Connection,
    url: str,
    token: str,
    host: str,
    official: str,
    stacks: str,
    inherited: Room | None = None,
) -> None:
    """Join with a new threaded Room, publish one packet and perform one RPC to `official`.

    With `inherited` (a Room the parent had open when it forked), first report what using
    it does here. If the child is still running after `_STACKS_AFTER` seconds, every
    thread's stack is written to the file `stacks` and the child exits, so that a hang
    shows where it is in the test's failure message.
    """
    with open(stacks, "w") as dump:  # faulthandler needs a real file
        faulthandler.dump_traceback_later(_STACKS_AFTER, exit=True, file=dump)
        try:
            _join_publish_call(conn, url, token, host, official, inherited)
        finally:
            faulthandler.cancel_dump_traceback_later()


def _join_publish_call(
    conn: Connection,
    url: str,
    token: str,
    host: str,
    official: str,
    inherited: Room | None,
) -> None:
    report: dict[str, Any] = {}
    if inherited is not None:
        report["inherited_state"] = inherited.connection_state.name
        try:
            inherited.local_participant.publish_data(b"from an inherited room")
        except TransportClosedError as exc:
            report["inherited_error"] = str(exc)
        inherited.disconnect()  # a no-op here: the parent's session is untouched
    options = RoomOptions(auto_subscribe=False, rtc_config=RtcConfiguration(host_addresses=[host]))
    with Room() as room:
        room.connect(url, token, options)
        identity = room.local_participant.identity
        conn.send(("joined", identity, os.getpid()))
        if not conn.poll(_WAIT):
            raise TimeoutError("the test never said go")
        if conn.recv() != "go":
            raise AssertionError("unexpected message from the test")
        room.local_participant.publish_data(f"data from {identity}".encode(), topic="child")
        report["rpc"] = room.local_participant.perform_rpc(
            destination_identity=official, method="echo", payload=f"rpc from {identity}"
        )
        report["remote"] = sorted(room.remote_participants)
    report["io_threads_left"] = [t.name for t in threading.enumerate() if t.name == "lkproto-io"]
    conn.send(("done", report))
