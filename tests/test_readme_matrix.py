"""Every cell of the README's interop matrix is backed by a collected test.

The README's "### Interop matrix" has two tables: rows of lkproto's adapters by columns of
peers, each cell the feature suites that pass for that pair; and rows of features by the same
columns, each cell the test file. This test (no server: it only collects) parses both, then
collects the named files once in a subprocess (`pytest --collect-only -q`) and checks that
for every feature in every cell a test of that feature exists for that adapter and that peer,
and that the file the second table names is the one holding it. `TESTS` says which tests
prove a feature for a peer; a feature the README claims that is not there fails.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

ADAPTERS = {  # README row -> harness/adapters.py id
    "anyio on asyncio": "anyio-asyncio",
    "anyio on trio": "anyio-trio",
    "trio-native": "trio",
    "threaded": "threaded",
}
PEERS = {  # README column -> harness/peers.py kind
    "official Python SDK": "official",
    "JavaScript in Chromium": "js",
    "Go SDK": "go",
}
MATRIX = ("test_peer_matrix.py", ["test_interop_both_ways"], True)

# feature -> peer -> (file under tests/e2e, every test that must exist, ids name the peer)
TESTS: dict[str, dict[str, tuple[str, list[str], bool]]] = {
    "join": dict.fromkeys(PEERS.values(), MATRIX),
    "attributes": dict.fromkeys(PEERS.values(), MATRIX),
    "data": dict.fromkeys(PEERS.values(), MATRIX),
    "RPC": dict.fromkeys(PEERS.values(), MATRIX),
    "streams": dict.fromkeys(PEERS.values(), MATRIX),
    "audio": {
        "official": (
            "test_audio.py",
            [
                "test_a_440_hz_tone_published_by_lkproto_reaches_the_official_sdk",
                "test_an_official_1_khz_tone_reaches_lkproto_at_16_khz_mono_and_48_khz_stereo",
            ],
            False,
        ),
        "js": ("test_js_media.py", ["test_a_tone_each_way_is_heard_at_its_frequency"], False),
        "go": ("test_go_media.py", ["test_a_tone_each_way_is_heard_at_its_frequency"], False),
    },
    "video": {
        "official": (
            "test_video.py",
            [
                "test_lkproto_publishes_a_640x360_pattern_the_official_sdk_sees_then_mutes_and_unpublishes",
                "test_an_official_640x360_pattern_reaches_lkproto_in_rgba_and_i420_beside_audio_and_data",
            ],
            False,
        ),
        "js": (
            "test_js_media.py",
            ["test_a_colour_pattern_each_way_arrives_at_640x360_in_order"],
            False,
        ),
        "go": ("test_go_media.py", ["test_a_colour_pattern_each_way_arrives_in_order"], False),
    },
    "data tracks": {
        "official": (
            "test_datatracks.py",
            ["test_frames_of_every_size_cross_both_ways_with_timestamps_and_unpublish_is_seen"],
            False,
        ),
        "js": (
            "test_js_media.py",
            ["test_data_track_frames_of_every_size_cross_both_ways_exactly"],
            False,
        ),
        # The Go SDK has none: the boundary (its documented absence) is what is tested.
        "go": (
            "test_go_media.py",
            ["test_an_lkproto_data_track_beside_the_go_peer_which_has_no_data_tracks"],
            False,
        ),
    },
    "E2EE": {
        "official": (
            "test_e2ee_interop.py",
            ["test_encrypted_data_streams_and_rpc_cross_both_ways_and_eve_reads_none"],
            False,
        ),
        "js": (
            "test_js_media.py",
            ["test_encrypted_data_text_rpc_and_data_tracks_both_ways_and_eve_reads_none"],
            False,
        ),
        "go": (
            "test_go_media.py",
            ["test_encrypted_data_text_and_rpc_both_ways_and_eve_reads_none"],
            False,
        ),
    },
    "resume": {
        "official": (
            "test_resilience.py",
            [
                "test_reliable_packets_survive_both_sides_resuming_lkproto_sending",
                "test_reliable_packets_survive_both_sides_resuming_official_sending",
            ],
            False,
        ),
        "js": (
            "test_peer_resilience.py",
            ["test_js_both_sides_resume_while_reliable_packets_flow_both_ways"],
            False,
        ),
        "go": (
            "test_peer_resilience.py",
            ["test_go_both_sides_resume_while_reliable_packets_flow_both_ways"],
            False,
        ),
    },
}


def tables(text: str) -> list[list[list[str]]]:
    """The markdown tables of the README's "### Interop matrix" section, as rows of cells
    (header first, separator dropped)."""
    section = text.split("### Interop matrix\n", 1)[1].split("\n### ", 1)[0]
    found: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in [*section.splitlines(), ""]:
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not all(re.fullmatch(r"-+", c) for c in cells):
                current.append(cells)
        elif current:
            found.append(current)
            current = []
    return found


def claims(text: str) -> dict[tuple[str, str], list[str]]:
    """(adapter id, peer kind) -> the features its cell lists."""
    matrix = tables(text)[0]
    header, rows = matrix[0], matrix[1:]
    assert header[0] == "adapter" and [PEERS[h] for h in header[1:]] == list(PEERS.values())
    assert [ADAPTERS[r[0]] for r in rows] == list(ADAPTERS.values())
    return {
        (ADAPTERS[row[0]], PEERS[column]): [f.strip() for f in cell.split("·") if f.strip()]
        for row in rows
        for column, cell in zip(header[1:], row[1:], strict=True)
    }


def files_named(text: str) -> dict[tuple[str, str], str]:
    """(feature, peer kind) -> the file the second table names."""
    where = tables(text)[1]
    header, rows = where[0], where[1:]
    found = {}
    for row in rows:
        feature = row[0].split(" (")[0]
        for column, cell in zip(header[1:], row[1:], strict=True):
            found[feature, PEERS[column]] = cell
    return found


def tokens(node_id: str) -> set[str]:
    """The parameter ids of a collected test: "x[anyio-trio-go]" -> {"anyio-trio", "go"}."""
    params = node_id.partition("[")[2].rstrip("]")
    for adapter in ("anyio-asyncio", "anyio-trio"):
        params = params.replace(adapter, adapter.replace("-", "_"))
    return {p.replace("_", "-") for p in params.split("-")} if params else set()


OPTIONS = ("-p", "no:cacheprovider", "-p", "no:xdist")


def collect(files: Iterable[str]) -> list[str]:
    paths = sorted({f"tests/e2e/{f}" for f in files})
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "--no-cov", *OPTIONS, *paths],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return [line for line in done.stdout.splitlines() if "::" in line]


def missing(text: str, collected: list[str]) -> list[str]:
    """Every claim of the README with no test behind it, as a sentence."""
    problems = []
    named = files_named(text)
    for (adapter, peer), features in claims(text).items():
        for feature in features:
            if feature not in TESTS:
                problems.append(f"{adapter} x {peer}: unknown feature {feature!r}")
                continue
            file, names, by_peer = TESTS[feature][peer]
            if named.get((feature, peer)) != file:
                said = named.get((feature, peer))
                problems.append(f"{feature} x {peer}: the README names {said!r}, not {file}")
            for name in names:
                prefix = f"tests/e2e/{file}::{name}["
                want = {adapter, peer} if by_peer else {adapter}
                if not [n for n in collected if n.startswith(prefix) and want <= tokens(n)]:
                    problems.append(f"{adapter} x {peer}: no {file}::{name} for {feature!r}")
    return problems


def all_files() -> set[str]:
    return {file for peers in TESTS.values() for file, _, _ in peers.values()}


def test_the_tokens_of_a_node_id_tell_the_adapters_apart() -> None:
    assert tokens("f.py::t[anyio-trio-go]") == {"anyio-trio", "go"}
    assert tokens("f.py::t[trio]") == {"trio"}
    assert tokens("f.py::t[anyio-asyncio]") == {"anyio-asyncio"}
    assert "trio" not in tokens("f.py::t[anyio-trio]")


@pytest.fixture(scope="module")
def collected() -> list[str]:
    return collect(all_files())


def test_every_green_cell_of_the_readme_matrix_is_a_collected_test(collected: list[str]) -> None:
    text = README.read_text()
    assert len(claims(text)) == 12
    assert missing(text, collected) == []


def test_a_cell_claiming_a_feature_without_a_test_fails(collected: list[str]) -> None:
    """The check can fail: a claim with no test, an unknown feature, a wrong file."""
    text = README.read_text()
    # Pretend the Go tone test did not exist on trio-native.
    gone = [
        n for n in collected if not ("test_go_media.py::test_a_tone" in n and n.endswith("[trio]"))
    ]
    assert missing(text, gone) == [
        "trio x go: no test_go_media.py::test_a_tone_each_way_is_heard_at_its_frequency for 'audio'"
    ]
    broken = text.replace("| threaded | join ·", "| threaded | join · telepathy ·", 1)
    assert missing(broken, collected) == ["threaded x official: unknown feature 'telepathy'"]
    moved = text.replace("| audio | test_audio.py |", "| audio | test_video.py |", 1)
    assert (
        missing(moved, collected)
        == ["audio x official: the README names 'test_video.py', not test_audio.py"] * 4
    )
