"""The fuzz targets' smoke pass, run by `make test` (issue 11; see fuzz/README.md).

- Every seed in fuzz/corpus/<target>/ (real traffic, from `fuzz/capture_corpus.py`; built by
  `fuzz/e2ee_corpus.py` for `e2ee`) and
  every saved crasher in fuzz/crashers/<target>/ goes through the target's one-input
  function, in process: deterministic, and each must satisfy the invariant of
  fuzz/_invariants.py.
- Each atheris target runs for a few seconds in a subprocess and must exit 0.
- The framing that seeds are written in reads back exactly, and the invariant is not
  vacuous: a core that leaks is caught.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fuzz import _targets, e2ee_corpus
from fuzz._framing import Record, decode, encode, field, split_field
from fuzz._invariants import InvariantViolation
from fuzz._targets import OPS, TARGETS, run
from lkproto._pb import data_pb2 as dpb
from lkproto.e2ee import KeyProvider
from lkproto.streams import StreamAssembler

ROOT = Path(__file__).resolve().parents[2]
FUZZ = ROOT / "fuzz"
NAMES = sorted(TARGETS)
SMOKE_SECONDS = 3


def _inputs(kind: str, target: str) -> list[Path]:
    directory = FUZZ / kind / target
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.is_file() and not p.name.startswith("."))


def test_every_target_has_a_module_a_seed_corpus_and_a_crasher_directory() -> None:
    assert NAMES == ["data_packet", "e2ee", "rpc", "signal_connecting", "signal_joined", "streams"]
    for name in NAMES:
        assert (FUZZ / f"fuzz_{name}.py").is_file()
        assert len(_inputs("corpus", name)) >= 10, name
        assert (FUZZ / "crashers" / name).is_dir(), name


def test_the_seed_corpora_stay_small() -> None:
    total = sum(p.stat().st_size for p in (FUZZ / "corpus").rglob("*") if p.is_file())
    assert 0 < total < 1_000_000


@pytest.mark.parametrize("target", NAMES)
def test_every_seed_and_crasher_satisfies_the_invariant(target: str) -> None:
    files = _inputs("corpus", target) + _inputs("crashers", target)
    assert files
    for path in files:
        run(target, path.read_bytes())  # raises InvariantViolation (or worse) on a finding


def test_seeds_reach_deep_state() -> None:
    """The captured sessions replay as sessions: joins, RPC results, stream payloads."""
    seen: set[str] = set()
    for path in _inputs("corpus", "data_packet"):
        session = _targets._Session(joined=True, data=True)
        ops = OPS["data_packet"]
        for record in decode(path.read_bytes(), len(ops)):
            session.step(ops[record.op], record)
        session.finish()
        seen |= {type(event).__name__ for event in session.checker.events}
    assert {
        "RpcInvoked",
        "RpcSucceeded",
        "StreamOpened",
        "StreamChunkReceived",
        "StreamFinished",
        "DataReceived",
        "ParticipantConnected",
        "Disconnected",
    } <= seen


def test_the_e2ee_seeds_are_exactly_what_the_generator_writes() -> None:
    """No capture has encrypted traffic yet: fuzz/e2ee_corpus.py builds the seeds."""
    committed = {p.read_bytes() for p in _inputs("corpus", "e2ee")}
    assert committed == set(e2ee_corpus.seeds())


def test_the_e2ee_seeds_reach_every_outcome() -> None:
    """Decrypted (with and without ratchets), passed through in clear, and every failure."""
    seen: set[str] = set()
    ops = OPS["e2ee"]
    for path in _inputs("corpus", "e2ee"):
        machine = _targets._E2ee()
        receive = machine._receive

        def spy(packet: dpb.DataPacket, receive: Any = receive) -> Any:
            result = receive(packet)
            reason = getattr(result, "reason", None)
            seen.add(
                reason.value if reason else f"{result.encryption_type.name}/{result.ratchets > 0}"
            )
            return result

        machine._receive = spy  # type: ignore[method-assign]
        for record in decode(path.read_bytes(), len(ops)):
            machine.step(ops[record.op], record)
        machine.finish()
    assert seen == {
        "GCM/False",
        "GCM/True",
        "NONE/False",
        "malformed_envelope",
        "missing_key",
        "key_invalid",
        "decryption_failed",
        "malformed_payload",
    }


# -- the framing ------------------------------------------------------------------------------


def test_encode_and_decode_are_inverse() -> None:
    records = [
        Record(0, 0, b""),
        Record(3, 255, b"\x00\xff" * 300),
        Record(18, 7, field("caller", field("id-1", b"rest"))),
    ]
    assert list(decode(encode(records), 19)) == records


def test_decode_reads_any_bytes_ops_modulo_and_a_short_tail() -> None:
    assert list(decode(b"", 5)) == []
    assert list(decode(b"\x07", 5)) == [Record(2, 0, b"")]
    assert list(decode(b"\x01\x02\x05\x00abc", 5)) == [Record(1, 2, b"abc")]
    assert split_field(b"\x02abcd") == (b"ab", b"cd")
    assert split_field(b"") == (b"", b"")


# -- the invariant has teeth ------------------------------------------------------------------


def _failing_stream_input() -> bytes:
    """A header on `chat`, one delivered chunk, then a gap: the stream fails unconsumed."""
    header = dpb.DataPacket(
        participant_identity="peer",
        stream_header=dpb.DataStream.Header(
            stream_id="s1", topic="chat", text_header=dpb.DataStream.TextHeader()
        ),
    )
    chunks = [
        dpb.DataPacket(
            participant_identity="peer",
            stream_chunk=dpb.DataStream.Chunk(stream_id="s1", chunk_index=i, content=b"hello"),
        )
        for i in (0, 5)
    ]
    packet = OPS["streams"].index("packet")
    return encode([Record(packet, 0, p.SerializeToString()) for p in [header, *chunks]])


def test_the_failing_stream_input_passes_on_the_real_assembler() -> None:
    run("streams", _failing_stream_input())


def test_a_leak_in_the_buffer_accounting_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """If a failed stream kept its charge (a leak that would starve every later stream),
    the invariant reports it."""
    monkeypatch.setattr(StreamAssembler, "_release", lambda self, key, nbytes: None)
    with pytest.raises(InvariantViolation, match="buffered 5 != delivered and unconsumed 0"):
        run("streams", _failing_stream_input())


def test_an_exception_escaping_a_remote_input_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: object, data: bytes, *, now: float) -> None:
        raise KeyError("boom")

    monkeypatch.setattr(_targets.Connection, "receive_signal", broken)
    signal = OPS["signal_connecting"].index("signal")
    with pytest.raises(InvariantViolation, match="receive_signal raised KeyError: 'boom'"):
        run("signal_connecting", encode([Record(signal, 0, b"")]))


def test_a_failed_decryption_that_changed_the_key_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """If a window that failed kept its last ratchet instead of restoring the key, the
    invariant reports it."""
    unseal = KeyProvider._unseal

    def leaky(
        self: KeyProvider, identity: str, key_index: int, iv: bytes, data: bytes, **kw: Any
    ) -> Any:
        result = unseal(self, identity, key_index, iv, data, **kw)
        if getattr(result, "reason", None) is not None and self._view(identity) is not None:
            self.ratchet_key(identity, key_index % 4)
        return result

    monkeypatch.setattr(KeyProvider, "_unseal", leaky)
    sealed = OPS["e2ee"].index("sealed")
    with pytest.raises(InvariantViolation, match="a failed decryption changed the key"):
        run("e2ee", encode([Record(sealed, 0, bytes((0, 0, 1)) + b"wrong key")]))


# -- the atheris targets, for a few seconds each ------------------------------------------------


@pytest.mark.timeout(120)
@pytest.mark.parametrize("target", NAMES)
def test_the_atheris_target_runs_clean(target: str, tmp_path: Path) -> None:
    work = tmp_path / "corpus"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("COV_CORE")}
    command = [
        sys.executable,
        "-m",
        f"fuzz.fuzz_{target}",
        f"-max_total_time={SMOKE_SECONDS}",
        "-seed=1",  # the same mutations every run: a smoke pass, not a campaign
        "-rss_limit_mb=1024",
        "-timeout=10",
        "-print_final_stats=1",
        f"-artifact_prefix={tmp_path}/",
        str(work),
        str(FUZZ / "corpus" / target),
    ]
    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=90, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert "stat::number_of_executed_units:" in output
    assert not list(tmp_path.glob("crash-*")), output[-4000:]
