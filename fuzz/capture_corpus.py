"""Regenerate the seed corpora in fuzz/corpus/ from real traffic.

    .venv/bin/python -m fuzz.capture_corpus            # run the e2e tests, then write seeds
    .venv/bin/python -m fuzz.capture_corpus --log F    # keep the raw capture in F
    .venv/bin/python -m fuzz.capture_corpus --from-log F   # only rewrite seeds from F

Step 1 runs a selection of the e2e suite (`SELECTION`: RPC, text and byte streams, data
packets, attributes, metadata and names, joins and leaves; the anyio-on-asyncio adapter)
under pytest with `fuzz._capture_plugin`. That is the suite's own harness: a real
livekit-server confined to a network namespace (or to loopback when not root), the official
`livekit` SDK as the peer. The plugin records, per `Connection`, `StreamAssembler` and
`RpcTable`, every input the core was given (the bytes of `receive_signal` and
`receive_data_packet` exactly as received, timer calls, verbs) with its time.

Step 2 turns each recorded machine into seeds of the matching targets (`fuzz/_targets.py`
names the operations), replaying the session op by op with its timing (dt in 1/16 s) and
the ids its `id_factory` drew (so recorded acks and responses find their calls). A long
session is cut into windows of at most `MAX_SEED` bytes, of which the first `WINDOWS` and
the last are kept; an oversized single operation is cut to fit. Seeds are named by their
sha1 and deduplicated; the target directories are rewritten.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pickle
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from fuzz import _datatracks
from fuzz._framing import TICK, Record, encode, field
from fuzz._invariants import InvariantViolation
from fuzz._targets import BYTE_TOPICS, OPS, TEXT_TOPICS
from lkproto._pb import participants_pb2 as ppb
from lkproto._pb import signal_pb2 as spb

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"
SELECTION = (
    "tests/e2e/test_anyio_rpc.py",
    "tests/e2e/test_anyio_streams.py",
    "tests/e2e/test_anyio_interop.py",
    "tests/e2e/test_datatracks.py",
)
#: The e2e files a target's seeds come from (`--only`); the others' come from the rest.
SELECTION_FOR = {"datatracks": ("tests/e2e/test_datatracks.py",)}
KEYWORD = "anyio-asyncio"
MAX_SEED = 12 * 1024
WINDOWS = 2
_DEFAULT_TOPICS = {("text", t) for t in (*TEXT_TOPICS, "lk.rpc_request", "lk.rpc_response")}
_DEFAULT_TOPICS |= {("bytes", t) for t in BYTE_TOPICS}

Op = tuple[str, float | None, bytes]  # (operation, now or None, payload)


def capture(log: Path, timeout: float, selection: tuple[str, ...] = SELECTION) -> None:
    env = {**os.environ, "LKPROTO_CAPTURE_OUT": str(log)}
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "fuzz._capture_plugin",
        "-p",
        "no:cacheprovider",
        "--no-cov",
        "-q",
        "-k",
        KEYWORD,
        *selection,
    ]
    print("+", " ".join(command), flush=True)
    done = subprocess.run(command, cwd=ROOT, env=env, check=False, timeout=timeout)
    if done.returncode not in (0, 1):  # 1: some test failed; its traffic is still real
        raise SystemExit(f"pytest exited with {done.returncode}")
    if done.returncode:
        print("warning: some e2e tests failed; seeding from what they exchanged", flush=True)


# -- recorded calls to operations -------------------------------------------------------------


def _attrs(mapping: dict[str, str]) -> bytes:
    return b"".join(field(k, field(v)) for k, v in mapping.items())


def _two(raw: bytes) -> bytes:
    return len(raw).to_bytes(2, "little") + raw


def _pb(value: Any) -> bytes:
    assert value[0] == "pb", value
    return bytes(value[2])


def _result(value: Any) -> bytes:
    if value is None:
        return b"\x01"
    if isinstance(value, tuple) and value[0] == "rpc_error":
        _, code, message, _data = value
        return b"\x02" + (code & 0xFFFF).to_bytes(2, "little") + message.encode()
    return b"\x00" + str(value).encode()


def _ids(drawn: Iterable[str]) -> list[Op]:
    return [("push_id", None, value.encode()) for value in drawn]


def connection_ops(calls: list[Any], *, data: bool) -> Iterator[Op]:
    """Operations of the connection targets (signal targets when `data` is False)."""
    for name, args, drawn, _result_value in calls:
        now = args.get("now")
        if name == "receive_signal":
            yield "signal", now, args["data"]
        elif name == "handle_timer":
            yield "timer", now, b""
        elif name == "close":
            yield "close", now, b""
        elif not data:
            if name == "signal_closed":
                yield "signal_closed", now, b""
            elif name == "set_metadata":
                yield "metadata", now, b"\x00" + args["metadata"].encode()
            elif name == "set_name":
                yield "metadata", now, b"\x01" + args["name"].encode()
            elif name == "set_attributes":
                yield "metadata", now, b"\x02" + _attrs(args["attributes"])
        elif name == "receive_data_packet":
            op = "reliable" if args["channel"] == "_reliable" else "lossy"
            yield op, now, args["data"]
        elif name == "perform_rpc":
            yield from _ids(drawn)
            body = field(args["destination_identity"], field(args["method"]))
            yield "perform", now, body + args["payload"].encode()
        elif name == "respond_rpc":
            yield from _ids(drawn)
            yield "respond", now, field(args["request_id"], _result(args["result"]))
        elif name == "respond_rpc_exception":
            yield from _ids(drawn)
            yield "respond", now, field(args["request_id"], b"\x03" + args["exc"][2].encode())
        elif name == "stream_consumed":
            body = field(args["sender_identity"], field(args["stream_id"]))
            yield "consume", now, body + args["nbytes"].to_bytes(4, "little")
        elif name == "stream_discarded":
            yield "discard", now, field(args["sender_identity"], field(args["stream_id"]))
        elif name == "register_rpc_method":
            yield "register_method", now, args["method"].encode()
        elif name == "register_stream_topic":
            kind = b"\x01" if args["kind"] == "bytes" else b"\x00"
            yield "register_topic", now, kind + args["topic"].encode()
        elif name == "publish_data":
            flags = (0 if args["reliable"] else 1) | (2 if args["topic"] else 0)
            flags |= 4 if args["destination_identities"] else 0
            yield "publish", now, bytes((flags,)) + args["payload"]
        elif name == "send_stream":
            yield from _ids(drawn)
            flags = 1 if args["kind"] == "bytes" else 0
            payload = args["payload"]
            raw = payload if isinstance(payload, bytes) else payload.encode()
            yield "send_stream", now, bytes((flags,)) + field(args["topic"], raw)
        elif name in ("data_channel_opened", "data_channel_closed"):
            flags = (1 if args["channel"] == "_lossy" else 0) | (
                2 if name == "data_channel_closed" else 0
            )
            yield "channel", now, bytes((flags,))


def stream_ops(calls: list[Any]) -> Iterator[Op]:
    for name, args, _drawn, _result_value in calls:
        now = args.get("now")
        if name == "receive":
            if args.get("encryption", 0):
                yield "packet_encrypted", now, bytes((args["encryption"],)) + _pb(args["packet"])
            else:
                yield "packet", now, _pb(args["packet"])
        elif name == "consumed":
            body = field(args["sender_identity"], field(args["stream_id"]))
            yield "consume", now, body + args["nbytes"].to_bytes(4, "little")
        elif name == "discard":
            yield "discard", now, field(args["sender_identity"], field(args["stream_id"]))
        elif name in ("add_topic", "remove_topic"):
            if name == "add_topic" and (args["kind"], args["topic"]) in _DEFAULT_TOPICS:
                continue
            kind = b"\x01" if args["kind"] == "bytes" else b"\x00"
            yield name, now, kind + args["topic"].encode()
        elif name == "handle_timer":
            yield "timer", now, b""
        elif name == "sender_left":
            yield "sender_left", now, args["identity"].encode()
        elif name == "abort_all":
            yield "abort_all", now, args["message"].encode()


def rpc_ops(calls: list[Any]) -> Iterator[Op]:
    state = ("1.13.5", False, True)
    for name, args, drawn, _result_value in calls:
        now = args.get("now")
        if args["_table_state"] != state:
            state = args["_table_state"]
            version, hidden, can_publish = state
            flags = (1 if hidden else 0) | (0 if can_publish else 2) | 4
            yield "state", now, bytes((flags,)) + version.encode()
        if name == "perform":
            timeout = args["response_timeout"]
            quarters = min(63, round(timeout * 4)) if timeout else 0
            flags = (args["destination_client_protocol"] & 3) | quarters << 2
            yield from _ids(drawn)
            body = field(args["destination_identity"], field(args["method"]))
            yield "perform", now, bytes((flags,)) + body + args["payload"].encode()
        elif name == "ack_received":
            yield "ack", now, field(args["sender_identity"], args["request_id"])
        elif name == "response_received":
            yield "response", now, field(args["sender_identity"], _pb(args["response"]))
        elif name == "request_received":
            registered = b"\x01" if args["registered"] else b"\x00"
            yield "request", now, field(args["caller_identity"], registered + _pb(args["request"]))
        elif name in ("stream_request_opened", "stream_request_failed"):
            op = "stream_opened" if name == "stream_request_opened" else name
            yield op, now, field(args["caller_identity"], _attrs(args["attributes"]))
        elif name == "stream_request_received":
            registered = b"\x01" if args["registered"] else b"\x00"
            body = registered + _two(_attrs(args["attributes"])) + args["payload"].encode()
            yield "stream_request", now, field(args["caller_identity"], body)
        elif name == "stream_response_received":
            body = _two(_attrs(args["attributes"])) + args["payload"].encode()
            yield "stream_response", now, field(args["sender_identity"], body)
        elif name == "stream_response_failed":
            body = _attrs(args["attributes"])
            yield "stream_response_failed", now, field(args["sender_identity"], body)
        elif name == "respond":
            yield "respond", now, field(args["request_id"], _result(args["result"]))
        elif name == "respond_exception":
            yield "respond", now, field(args["request_id"], b"\x03" + args["exc"][2].encode())
        elif name == "handle_timer":
            yield "timer", now, b""
        elif name == "participant_left":
            yield "participant_left", now, args["identity"].encode()
        elif name == "disconnected":
            yield "disconnected", now, b""


def _as_me(message: spb.SignalResponse, local: str) -> spb.SignalResponse:
    """The message with our real identity renamed "me", the datatracks harness's."""
    kind = message.WhichOneof("message")
    if kind == "update" and local:
        message = spb.SignalResponse.FromString(message.SerializeToString())
        for info in message.update.participants:
            if info.identity == local:
                info.identity = "me"
    return message


def _update(infos: Iterable[Any], local: str) -> bytes:
    update = ppb.ParticipantUpdate(
        participants=[ppb.ParticipantInfo.FromString(_pb(i)) for i in infos]
    )
    return _as_me(spb.SignalResponse(update=update), local).SerializeToString()


class _Replay:
    """Records for the `datatracks` target, replayed through its harness as they are made."""

    def __init__(self) -> None:
        self.machine = _datatracks.DataTracks()
        self.records: list[Record] = []
        self.start: float | None = None
        self.elapsed = 0  # ticks the replay has advanced
        self.broken = False

    def add(self, op: str, payload: bytes, now: float | None) -> None:
        if self.broken:
            return
        names = _datatracks.OPS
        ticks = 0
        if now is not None:
            if self.start is None:
                self.start = now
            ticks = max(0, round((now - self.start) / TICK) - self.elapsed)
        out = []
        while ticks > 255:
            out.append(Record(names.index("timer"), 255, b""))
            ticks -= 255
        out.append(Record(names.index(op), ticks, payload[: MAX_SEED - 64]))
        try:
            for record in out:
                self.machine.step(names[record.op], record)
        except InvariantViolation:
            self.broken = True  # what the harness cannot follow ends the seed here
            return
        self.elapsed += sum(r.dt for r in out)
        self.records += out


def datatrack_records(calls: list[Any]) -> list[Record]:
    """A `DataTrackManager`'s recorded inputs as `datatracks` operations, replayed through
    the target's own harness as they are converted (selections pick what the harness knows
    by then: a subscribed SID among its remote tracks, a pushed handle among its live ones).
    The harness starts joined as "me" with bob's two tracks; the recorded join becomes an
    update listing the real others, and a rejoin keeps none of the harness's."""
    replay = _Replay()
    machine = replay.machine
    local = ""
    joins = 0
    for name, args, _drawn, _result in calls:
        now = args.get("now")
        if name == "joined":
            joins += 1
            local = args["local_identity"]
            if joins > 1:
                replay.add("rejoin", b"\x00", now)
            replay.add("signal", _update(args["other_participants"], local), now)
        elif name == "receive_signal":
            message = spb.SignalResponse.FromString(_pb(args["message"]))
            replay.add("signal", _as_me(message, local).SerializeToString(), now)
        elif name == "participants_updated":
            replay.add("signal", _update(args["infos"], local), now)
        elif name in _SIGNAL_FIELDS:
            field_name, arg = _SIGNAL_FIELDS[name]
            message = spb.SignalResponse()
            getattr(message, field_name).MergeFromString(_pb(args[arg]))
            replay.add("signal", message.SerializeToString(), now)
        elif name == "receive_packet":
            data = args["data"]
            replay.add("packet", data if isinstance(data, bytes) else str(data).encode(), now)
        elif name == "publish_data_track":
            flags = 2 | (1 if args.get("uses_e2ee") else 0)
            replay.add("publish", bytes((flags,)) + args["name"].encode(), now)
        elif name in ("unpublish_data_track", "try_push"):
            live = sorted(machine.live)
            handle = args["pub_handle"]
            sel = live.index(handle) if handle in live else 255
            if name == "unpublish_data_track":
                replay.add("unpublish", bytes((sel, 0)), now)
            else:
                frame = args["frame"][1]
                stamp = frame["user_timestamp"]
                flags = (8 | (stamp & 7)) if stamp is not None else 0
                replay.add("push", bytes((sel, flags)) + frame["payload"][:2048], now)
        elif name == "frames_to_send":
            limit = args.get("max_frames")
            replay.add("pull", b"" if limit is None else bytes((min(limit, 3),)), now)
        elif name in ("subscribe", "unsubscribe", "set_pipeline_options"):
            sids = sorted(machine.remote)
            sid = args["sid"]
            sel = sids.index(sid) if sid in sids else 250
            if name == "set_pipeline_options":
                value = args.get("max_partial_frames") or 0
                replay.add("pipeline", bytes((sel, value % 5)), now)
            else:
                replay.add(name, bytes((sel,)), now)
        elif name in _SIMPLE:
            op, payload = _SIMPLE[name]
            if name == "reconnecting" and args["full"]:
                payload = b"\x01"
            replay.add(op, payload, now)
    return replay.records


_SIGNAL_FIELDS = {
    "request_response_received": ("request_response", "response"),
    "subscriber_handles_received": ("data_track_subscriber_handles", "handles"),
    "subscription_permission_changed": ("subscription_permission_update", "update"),
}
_SIMPLE = {
    "handle_timer": ("timer", b""),
    "reconnecting": ("reconnect", b"\x00"),
    "resumed": ("resumed", b""),
    "disconnected": ("disconnect", b""),
}


# -- operations to seed files -----------------------------------------------------------------


def records(ops: Iterable[Op], names: tuple[str, ...], start: float | None) -> list[Record]:
    """Records whose dt replays the recorded times (relative to `start`, else the first
    time seen); a gap over 255 ticks is bridged by timer records."""
    out: list[Record] = []
    elapsed = 0  # ticks the replay has advanced
    for name, now, payload in ops:
        ticks = 0
        if now is not None:
            if start is None:
                start = now
            ticks = max(0, round((now - start) / TICK) - elapsed)
            while ticks > 255 and "timer" in names:
                out.append(Record(names.index("timer"), 255, b""))
                ticks -= 255
                elapsed += 255
            ticks = min(ticks, 255)
            elapsed += ticks
        out.append(Record(names.index(name), ticks, payload[: MAX_SEED - 64]))
    return out


def windows(recs: list[Record]) -> list[bytes]:
    """The session cut into inputs of at most MAX_SEED bytes; the first few and the last."""
    pieces: list[bytes] = []
    current: list[Record] = []
    size = 0
    for rec in recs:
        n = 4 + len(rec.payload)
        if current and size + n > MAX_SEED:
            pieces.append(encode(current))
            current, size = [], 0
        current.append(rec)
        size += n
    if current:
        pieces.append(encode(current))
    return pieces[:WINDOWS] + pieces[WINDOWS:][-1:]


def seeds(logs: list[dict[str, Any]]) -> dict[str, list[bytes]]:
    out: dict[str, list[bytes]] = {name: [] for name in OPS}
    for log in logs:
        calls = log["calls"]
        if log["kind"] == "Connection":
            signals = [i for i, call in enumerate(calls) if call[0] == "receive_signal"]
            start = next((c[1]["now"] for c in calls if c[0] == "connect"), None)
            ops = list(connection_ops(calls, data=False))
            out["signal_connecting"] += windows(records(ops, OPS["signal_connecting"], start))
            if not signals:
                continue
            after_join = calls[signals[0] + 1 :]
            join_time = calls[signals[0]][1]["now"]
            before = [c for c in calls[: signals[0]] if c[0].startswith("register_")]
            ops = list(connection_ops(after_join, data=False))
            out["signal_joined"] += windows(records(ops, OPS["signal_joined"], join_time))
            ops = list(connection_ops(before + after_join, data=True))
            out["data_packet"] += windows(records(ops, OPS["data_packet"], join_time))
        elif log["kind"] == "StreamAssembler":
            out["streams"] += windows(records(stream_ops(calls), OPS["streams"], None))
        elif log["kind"] == "RpcTable":
            out["rpc"] += windows(records(rpc_ops(calls), OPS["rpc"], None))
        elif log["kind"] == "DataTrackManager":
            out["datatracks"] += windows(datatrack_records(calls))
    out["datatracks"] += list(_datatracks.seeds().values())  # hand-made: the rare paths
    return out


def write(corpora: dict[str, list[bytes]], root: Path = CORPUS, only: tuple[str, ...] = ()) -> None:
    for target, inputs in corpora.items():
        if only and target not in only:
            continue
        directory = root / target
        directory.mkdir(parents=True, exist_ok=True)
        for old in directory.iterdir():
            old.unlink()
        unique = {hashlib.sha1(data).hexdigest(): data for data in inputs if data}
        for name, data in sorted(unique.items()):
            (directory / name).write_bytes(data)
        total = sum(len(d) for d in unique.values())
        print(f"{target}: {len(unique)} seeds, {total} bytes")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", type=Path, help="keep the raw capture in this file")
    parser.add_argument("--from-log", type=Path, help="skip the capture; use this raw log")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds for the e2e run")
    parser.add_argument("--out", type=Path, default=CORPUS, help="corpus root to rewrite")
    parser.add_argument(
        "--only", nargs="+", default=(), help="rewrite only these targets (and run their tests)"
    )
    args = parser.parse_args(argv)
    only = tuple(args.only)
    selection = tuple(sorted({f for t in only for f in SELECTION_FOR.get(t, SELECTION)}))
    if args.from_log:
        log = args.from_log
    else:
        log = args.log or Path(tempfile.mkdtemp(prefix="lkproto-capture-")) / "capture.pkl"
        capture(log, args.timeout, selection or SELECTION)
    with open(log, "rb") as f:
        logs = pickle.load(f)
    if not logs:
        raise SystemExit("nothing was captured")
    write(seeds(logs), args.out, only)


if __name__ == "__main__":
    main()
