"""The phased xdist scheduler (harness/phases.py), driven by simulated workers.

A simulated worker behaves as xdist's does: it runs the first test it holds only once it holds
another one too (xdist needs `nextitem`), or once it has been told to shut down. Time moves in
steps; every running test takes one step. What is checked is what the phases promise: serial
tests alone, together tests beside each other only, groups one at a time, last tests alone at
the end, and every test run exactly once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from harness.phases import (
    GROUP,
    LAST,
    PARALLEL,
    SERIAL,
    TOGETHER,
    PhasedScheduling,
    groups_of,
    heavy_kind,
    nice_of,
    phase_of,
    realtime,
    set_tree_nice,
)


class Worker:
    def __init__(self, name: str) -> None:
        self.gateway = type("Gateway", (), {"id": name})()
        self.shutting_down = False
        self.held: list[int] = []

    def send_runtest_some(self, indices: list[int]) -> None:
        self.held.extend(indices)

    def shutdown(self) -> None:
        self.shutting_down = True


class Config:
    def __init__(self, workers: int) -> None:
        self.workers = workers

    def getvalue(self, name: str) -> list[str]:
        assert name == "tx"
        return [f"{self.workers}*popen"]


def run(
    tmp_path: Path, phases: list[str], groups: list[str | None], workers: int = 4
) -> list[list[tuple[str, int]]]:
    """The steps of a simulated run: in each, which worker ran which test."""
    ids = [f"t{i}" for i in range(len(phases))]
    table = {
        "ids": ids,
        "phases": phases,
        "weights": [1] * len(ids),
        "variants": [0] * len(ids),
        "groups": groups,
    }
    nodes = [Worker(f"gw{i}") for i in range(workers)]
    (tmp_path / "phases-gw0.json").write_text(json.dumps(table))
    sched = PhasedScheduling(Config(workers), tmp_path, type("Log", (), {"phasedsched": print})())  # type: ignore[arg-type]
    for node in nodes:
        sched.add_node(node)
    for node in nodes:
        sched.add_node_collection(node, ids)
    sched.schedule()
    steps: list[list[tuple[str, int]]] = []
    alive = list(nodes)
    for _ in range(10 * len(ids) + 10):
        running = [
            (node, node.held[0])
            for node in alive
            if node.held and (len(node.held) >= 2 or node.shutting_down)
        ]
        if not running:
            for node in [n for n in alive if n.shutting_down and not n.held]:
                alive.remove(node)
                sched.remove_node(node)
            if not alive:
                break
            assert any(n.shutting_down for n in nodes), "stuck: nothing runs and nobody exits"
            continue
        steps.append([(node.gateway.id, index) for node, index in running])
        for node, index in running:
            node.held.pop(0)
            sched.mark_test_complete(node, index)
    return steps


def phase_list(counts: dict[str, int]) -> list[str]:
    return [phase for phase, n in counts.items() for _ in range(n)]


def test_together_tests_run_after_the_serial_ones_beside_each_other_and_nothing_else(
    tmp_path: Path,
) -> None:
    phases = phase_list({SERIAL: 3, TOGETHER: 5, PARALLEL: 20, LAST: 1})
    steps = run(tmp_path, phases, [None] * len(phases))
    ran = [index for step in steps for _, index in step]
    assert sorted(ran) == list(range(len(phases)))  # each exactly once
    kinds = [{phases[i] for _, i in step} for step in steps]
    # serial: alone, first
    assert [len(step) for step in steps[:3]] == [1, 1, 1]
    assert kinds[:3] == [{SERIAL}] * 3
    # together: beside each other only, four workers at once, then the fifth
    assert kinds[3:5] == [{TOGETHER}, {TOGETHER}]
    assert [len(step) for step in steps[3:5]] == [4, 1]
    # then the rest, and the last test alone at the very end
    assert all(k == {PARALLEL} for k in kinds[5:-1])
    assert steps[-1] == [(steps[-1][0][0], len(phases) - 1)]


@pytest.mark.parametrize(
    "counts", [{TOGETHER: 3}, {TOGETHER: 2, PARALLEL: 1}, {SERIAL: 1, TOGETHER: 6}]
)
def test_small_selections_finish(tmp_path: Path, counts: dict[str, int]) -> None:
    phases = phase_list(counts)
    steps = run(tmp_path, phases, [None] * len(phases))
    assert sorted(i for step in steps for _, i in step) == list(range(len(phases)))
    for step in steps:
        kinds = {phases[i] for _, i in step}
        assert len(kinds) == 1 and (SERIAL not in kinds or len(step) == 1)


def test_groups_run_one_at_a_time_on_one_worker(tmp_path: Path) -> None:
    phases = [TOGETHER, TOGETHER, *[GROUP] * 6, *[PARALLEL] * 8]
    groups: list[str | None] = [None, None, *["a", "b"] * 3, *[None] * 8]
    steps = run(tmp_path, phases, groups)
    assert sorted(i for step in steps for _, i in step) == list(range(len(phases)))
    assert [{phases[i] for _, i in step} for step in steps[:1]] == [{TOGETHER}]
    for name in ("a", "b"):
        runs: list[Any] = [
            (n, w) for n, step in enumerate(steps) for w, i in step if groups[i] == name
        ]
        assert len({w for _, w in runs}) == 1  # one worker
        assert len({n for n, _ in runs}) == 3  # one at a time


class Item:
    """What `heavy_lane`, `groups_of` and `realtime` read of a pytest item: its markers."""

    def __init__(self, nodeid: str, **marks: tuple[str, ...]) -> None:
        self.nodeid = nodeid
        self.marks = {name: getattr(pytest.mark, name)(*args).mark for name, args in marks.items()}

    def get_closest_marker(self, name: str) -> pytest.Mark | None:
        return self.marks.get(name)


def test_heavy_tests_go_to_the_lane_they_name_and_media_comes_first_on_the_cpu() -> None:
    items: list[Any] = [
        Item("a", heavy=("media",)),
        Item("b", heavy=("bulk",)),
        Item("c", xdist_group=("js-peer",)),
        Item("d", xdist_group=("faults",)),
        Item("e"),
        Item("f", heavy=("bulk",)),
        Item("g", heavy=("media",)),
        Item("h", heavy=("bulk",)),
    ]
    assert groups_of(items) == [
        "heavy-media",
        "heavy-bulk-0",
        "js-peer",
        "faults",
        None,
        "heavy-bulk-1",
        "heavy-media",
        "heavy-bulk-0",
    ]
    assert [realtime(item) for item in items] == [
        True,
        False,
        True,
        True,
        False,
        False,
        True,
        False,
    ]
    assert [nice_of(item) for item in items] == [-5, 10, -5, 0, 10, 10, -5, 10]
    assert [phase_of(item) for item in items] == [GROUP] * 4 + [PARALLEL] + [GROUP] * 3


@pytest.mark.parametrize("args", [(), ("video",)])
def test_a_heavy_test_without_a_known_lane_is_refused(args: tuple[str, ...]) -> None:
    with pytest.raises(pytest.UsageError, match=r"t::x: @pytest.mark.heavy takes its kind"):
        heavy_kind(Item("t::x", heavy=args))  # type: ignore[arg-type]


def test_the_nice_value_reaches_every_thread_and_child() -> None:
    """Raising it needs no privilege; a thread and a child started before both get it."""
    ready, stop = threading.Event(), threading.Event()

    def wait() -> None:
        ready.set()
        stop.wait(10)

    thread = threading.Thread(target=wait)
    thread.start()
    ready.wait(10)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(10)"])
    before = os.getpriority(os.PRIO_PROCESS, 0)
    try:
        assert set_tree_nice(before + 1)
        assert os.getpriority(os.PRIO_PROCESS, 0) == before + 1
        assert os.getpriority(os.PRIO_PROCESS, thread.native_id or 0) == before + 1
        assert os.getpriority(os.PRIO_PROCESS, child.pid) == before + 1
    finally:
        stop.set()
        thread.join()
        child.kill()
        child.wait()
        set_tree_nice(before)  # back (as root; otherwise this test process stays nicer)
