"""Scheduling the suite over pytest-xdist workers: tests alone, parallel tests and groups, last.

Registered from tests/conftest.py (`pytest_plugins`). Every test belongs to one phase:
- **parallel** (the default): spread over every worker. Each worker is a process of its own,
  confined to its own network namespace (harness/netns.py) with its own livekit-server (the
  session fixture), so tests on different workers share nothing but the CPU. The `slow` ones
  go first; then e2e tests (which mostly wait: on the server, the network, a timeout) are
  interleaved with the others (which mostly compute), so the waiting of the ones overlaps the
  computing of the others instead of all workers computing at once.
- **group** (`@pytest.mark.xdist_group("name")`): the tests of one group run one after the
  other on one worker, which takes nothing else until the group is done, while the other
  workers run the parallel tests. For tests that must not overlap each other but bear the
  rest of the suite beside them: the fault bench ("faults": servers killed and cut, timed
  observations; they mostly wait, with wide margins). Groups are handed out before the
  parallel tests (after the serial ones): they are the longest chains.
- **heavy** (`@pytest.mark.heavy("media")` or `("bulk")`): real-time media and bulk
  transfers, CPU-bound in pure Python (encoders, SCTP, AES-GCM). Four of them side by side
  on 2 cores starved each other into missed deadlines (a tone short of its seconds, a file's
  stream cut by a peer connection that timed out); so they run in lanes, groups of their own
  (`HEAVY_LANES`): one for media ("heavy-media"), two for bulk transfers ("heavy-bulk-0" and
  "-1", dealt in collection order), one test at a time per lane, beside the lighter tests.
  One lane for both (stops 32 to 34) was the longest chain of the run (590-610 s), and so
  was one bulk lane at the back of the CPU queue (481 s, run C of stop 35); two media lanes
  starved each other (runs V and W of stop 32: gaps of 0.45-0.5 s in a tone, a canvas at a
  third of its frame rate), which is why there is one, and it comes first on the CPU.
- **CPU priority.** A test that must keep up with real time or asserts on timing (the media
  lane; the JavaScript peer's group "js-peer"; the fault bench, "faults"; the "solo" lane;
  the TURN tests, "turn", whose relayed ICE must finish within a peer connection timeout)
  runs with its worker process, its threads and its children (livekit-server, peers,
  browsers) at nice 0, and the two that play and measure media (the media lane, "js-peer")
  at `MEDIA_NICE` (-5) above them; every other test at nice
  `BACKGROUND_NICE`, so the kernel serves the real-time test first and the rest of the suite
  takes the CPU it leaves (CFS weights 3121, 1024 and 110: about 9 to 1 when a real-time
  test and another want a core). Media above the other real-time tests: run M of stop 36
  lost 0.5 s of a 3 s tone (2.49 s heard) at the start of the run, where the media lane's
  first test met the adversarial flood ("solo", 11 s of CPU) and Chromium ("js-peer"), all
  at nice 0.
  `set_tree_nice` applies it per test, in the workers only; lowering a nice value back needs
  CAP_SYS_NICE (the harness runs as root to make its network namespaces), and without it a
  worker stays where it is.
- **solo** (`xdist_group("solo")`): the tests that used to need the machine to themselves
  (`serial`, until stop 35): the adversarial flood, the fork/spawn children of a many-threaded
  parent, the 50 participants of one process. A group like the others, first on the CPU, so
  a fresh worker runs them one after the other from the start, beside the suite. The flood
  comes first in it: it failed after a few hundred tests in the same process (docs/testing.md).
- **serial** (`@pytest.mark.serial`) and **together** (`serial(together=True)`): no test uses
  them since stop 35 (the CPU priority replaced them), but they still work: a serial test
  runs first, alone, on the first worker to ask, while every other worker waits; together
  tests run right after, dealt over the workers, each worker one at a time, and nothing else
  runs until all of them are done. Until stop 35 they cost the run its first 90 s at a
  quarter of the CPU: the flood, the children and the 50 participants serial (45 s), the
  four cuts past the ping timeout, the official SDK's cut observation and lint and types
  together (46 s).
- **last** (`@pytest.mark.last`): after everything else (the secrets audit,
  tests/e2e/test_zz_secrets.py), on one worker once every other worker has exited, having
  written what it saw (harness/secrets_audit.py merges it).

Without xdist (`-p no:xdist`, `-n 0`) the tests simply run in collection order, which puts
tests/e2e/test_zz_secrets.py after the other e2e files as before.

How the controller learns the phases: it does not collect, so each worker writes the phase
of every collected test, aligned with the ids it reports, into a directory the controller
made and handed to it (`workerinput`), before it reports its collection. The scheduler
reads the first worker's file when every worker has collected.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from harness.procs import descendants

PARALLEL, GROUP, SERIAL, TOGETHER, LAST = "parallel", "group", "serial", "together", "last"
# `@pytest.mark.heavy(<kind>)`: how many lanes (groups) each kind has; a kind with more than
# one deals its tests over them in collection order ("heavy-bulk-0", "heavy-bulk-1", ...).
HEAVY_LANES = {"media": 1, "bulk": 2}
# MEDIA_NICE for the groups that play and measure media in real time, nice 0 for the other
# real-time groups, BACKGROUND_NICE for every other test:
MEDIA_GROUPS = frozenset({"heavy-media", "js-peer"})
REALTIME_GROUPS = MEDIA_GROUPS | {"faults", "solo", "turn"}
MEDIA_NICE = -5
BACKGROUND_NICE = 10
_DIR_KEY = "lkproto_phases_dir"
_STASH = pytest.StashKey[Path]()


def phase_of(item: pytest.Item) -> str:
    if item.get_closest_marker("last") is not None:
        return LAST
    serial = item.get_closest_marker("serial")
    if serial is not None:
        return TOGETHER if serial.kwargs.get("together", False) else SERIAL
    if group_of(item) is not None or item.get_closest_marker("heavy") is not None:
        return GROUP
    return PARALLEL


def group_of(item: pytest.Item) -> str | None:
    mark = item.get_closest_marker("xdist_group")
    if mark is None:
        return None
    return str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))


def heavy_kind(item: pytest.Item) -> str | None:
    """The kind of a `heavy` test ("media" or "bulk"), else None."""
    mark = item.get_closest_marker("heavy")
    if mark is None:
        return None
    kind = mark.args[0] if mark.args else None
    if kind not in HEAVY_LANES:
        raise pytest.UsageError(
            f"{item.nodeid}: @pytest.mark.heavy takes its kind, one of {sorted(HEAVY_LANES)}"
        )
    return str(kind)


def groups_of(items: Sequence[pytest.Item]) -> list[str | None]:
    """Each item's group: its `xdist_group`, else its heavy lane, else None."""
    dealt = dict.fromkeys(HEAVY_LANES, 0)
    groups: list[str | None] = []
    for item in items:
        group, kind = group_of(item), heavy_kind(item)
        if group is None and kind is not None:
            group = f"heavy-{kind}"
            if HEAVY_LANES[kind] > 1:
                group += f"-{dealt[kind] % HEAVY_LANES[kind]}"
            dealt[kind] += 1
        groups.append(group)
    return groups


def realtime(item: pytest.Item) -> bool:
    """Whether `item` must keep up with real time, so comes first on the CPU."""
    return (group_of(item) or f"heavy-{heavy_kind(item)}") in REALTIME_GROUPS


def nice_of(item: pytest.Item) -> int:
    """The nice value `item` runs at: media first, then the other real-time tests, then the
    rest."""
    if (group_of(item) or f"heavy-{heavy_kind(item)}") in MEDIA_GROUPS:
        return MEDIA_NICE
    return 0 if realtime(item) else BACKGROUND_NICE


def set_tree_nice(value: int) -> bool:
    """Set the nice value of every thread of this process and of its descendants; False if
    the kernel refused (lowering it needs CAP_SYS_NICE). A thread or child started later
    inherits the value of the thread that starts it."""
    for pid in [os.getpid(), *descendants(os.getpid())]:
        try:
            threads = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue  # it exited
        for tid in threads:
            try:
                os.setpriority(os.PRIO_PROCESS, int(tid), value)
            except ProcessLookupError:
                continue
            except PermissionError:
                return False
    return True


def _weight(item: pytest.Item) -> int:
    """0: slow (first), 1: e2e (mostly waiting), 2: the rest (mostly computing)."""
    if item.get_closest_marker("slow") is not None:
        return 0
    if item.get_closest_marker("e2e") is not None:
        return 1
    return 2


def interleave(first: list[int], second: list[int]) -> list[int]:
    """Both lists in their order, merged evenly: each item at its fraction of its own list."""
    n, m = len(first), len(second)
    keyed = [((i + 0.5) / n, 0, x) for i, x in enumerate(first)]
    keyed += [((j + 0.5) / m, 1, y) for j, y in enumerate(second)]
    return [x for _, _, x in sorted(keyed)]


def phases_dir(config: pytest.Config) -> Path | None:
    """In a worker run by the phased scheduler: the directory shared with the controller and
    the other workers; otherwise None."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None or _DIR_KEY not in workerinput:
        return None
    return Path(workerinput[_DIR_KEY])


def worker_id(config: pytest.Config) -> str:
    workerinput = getattr(config, "workerinput", None)
    return str(workerinput["workerid"]) if workerinput else "main"


# -- in the workers ---------------------------------------------------------------------------


_NICE = pytest.StashKey[int]()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Under the phased scheduler: a real-time test first on the CPU, the rest behind it."""
    config = item.config
    if phases_dir(config) is None:
        return
    wanted = nice_of(item)
    if config.stash.get(_NICE, 0) != wanted and set_tree_nice(wanted):
        config.stash[_NICE] = wanted


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reports the collection
def pytest_collection_finish(session: pytest.Session) -> None:
    where = phases_dir(session.config)
    if where is None:
        return
    seen: dict[str, int] = {}
    variants = []  # 0 for a test function's first parametrization, 1 for its second, ...
    for item in session.items:
        function = item.nodeid.split("[", 1)[0]
        variants.append(seen.get(function, 0))
        seen[function] = variants[-1] + 1
    table = {
        "ids": [item.nodeid for item in session.items],
        "phases": [phase_of(item) for item in session.items],
        "weights": [_weight(item) for item in session.items],
        "variants": variants,
        "groups": groups_of(session.items),
    }
    target = where / f"phases-{worker_id(session.config)}.json"
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(table))
    tmp.replace(target)


# -- in the controller -----------------------------------------------------------------------


def pytest_unconfigure(config: pytest.Config) -> None:
    where = config.stash.get(_STASH, None)
    if where is not None:
        shutil.rmtree(where, ignore_errors=True)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    config = node.config
    if config.getoption("dist") != "load":
        return  # another --dist mode asked for explicitly: xdist schedules as it does
    if _STASH not in config.stash:
        config.stash[_STASH] = Path(tempfile.mkdtemp(prefix="lkproto-phases-"))
    node.workerinput[_DIR_KEY] = str(config.stash[_STASH])


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> PhasedScheduling | None:
    where = config.stash.get(_STASH, None)
    if where is None:
        return None
    return PhasedScheduling(config, where, log)


class PhasedScheduling:
    """An xdist scheduler (see xdist.scheduler.protocol.Scheduling) for the phases above.

    A worker runs a test only once it holds the next one (xdist needs `nextitem` for fixture
    teardown) or has been told to shut down, so every worker is kept two tests deep. The
    first worker to ask gets every serial test (plus its next one); the others get nothing
    until the serial tests are complete. Then a worker asking for work takes, in this order:
    more of the group it owns; a group nobody owns; the parallel queue. When all three are
    empty, the first worker to find nothing more becomes the last worker; the others are shut
    down as they run dry (they finish what they hold and exit), and once they are gone the
    last worker gets the last tests in collection order, then its shutdown.
    """

    DEPTH = 2

    def __init__(self, config: pytest.Config, where: Path, log: Any) -> None:
        from xdist.workermanage import parse_tx_spec_config

        self.config = config
        self.where = where
        self.log = log.phasedsched
        self.numnodes = len(parse_tx_spec_config(config))
        self.node2collection: dict[Any, list[str]] = {}
        self.node2pending: dict[Any, list[int]] = {}
        self.collection: list[str] | None = None
        self.phase: list[str] = []
        self.parallel: deque[int] = deque()
        self.first: deque[int] = deque()  # serial: alone, before anything else
        self.first_node: Any = None  # the worker running them
        self.first_running: set[int] = set()  # sent to it, not yet complete
        self.together: deque[int] = deque()  # together: after the serial ones, side by side
        self.together_dealt = False  # handed out to the workers (once the serial ones are done)
        self.together_running: set[int] = set()  # sent, not yet complete
        self.alone: deque[int] = deque()  # last: alone, after everything else
        self.groups: dict[str, deque[int]] = {}
        self.group: list[str | None] = []
        self.owner: dict[Any, str] = {}  # worker -> the group it runs
        self.serial_node: Any = None

    # -- the protocol's properties ----------------------------------------------------------

    @property
    def nodes(self) -> list[Any]:
        return list(self.node2pending)

    @property
    def collection_is_completed(self) -> bool:
        return len(self.node2collection) >= self.numnodes

    @property
    def tests_finished(self) -> bool:
        if not self.collection_is_completed or self.collection is None:
            return False
        if self.first or self.together or self.parallel or self.alone:
            return False
        if any(self.groups.values()):
            return False
        return all(len(pending) < 2 for pending in self.node2pending.values())

    @property
    def has_pending(self) -> bool:
        queued = self.first or self.together or self.parallel or self.alone
        queued = queued or any(self.groups.values())
        return bool(queued or any(self.node2pending.values()))

    # -- nodes ------------------------------------------------------------------------------

    def add_node(self, node: Any) -> None:
        assert node not in self.node2pending
        self.node2pending[node] = []

    def add_node_collection(self, node: Any, collection: Sequence[str]) -> None:
        assert node in self.node2pending
        if self.collection is not None and list(collection) != self.collection:
            self.log(f"worker {node.gateway.id} collected other tests: not used")
            return
        self.node2collection[node] = list(collection)

    def remove_node(self, node: Any) -> str | None:
        pending = self.node2pending.pop(node)
        self.owner.pop(node, None)
        if node is self.serial_node:
            self.serial_node = None
        if node is self.first_node:
            self.first_node = None
            self.first_running.difference_update(pending)
        self.together_running.difference_update(pending)
        crashitem = None
        if pending:  # it crashed: the first one was running, the rest go back in the queues
            assert self.collection is not None
            crashitem = self.collection[pending.pop(0)]
            for index in reversed(pending):
                self._requeue(index)
        for other in self.nodes:
            self.check_schedule(other)
        return crashitem

    def remove_pending_tests_from_node(self, node: Any, indices: Sequence[int]) -> None:
        raise NotImplementedError  # only work stealing asks for this

    # -- scheduling -------------------------------------------------------------------------

    def schedule(self) -> None:
        assert self.collection_is_completed
        if self.collection is not None:  # a replacement worker joined later
            for node in self.nodes:
                self.check_schedule(node)
            return
        collections = list(self.node2collection.values())
        if any(c != collections[0] for c in collections[1:]):
            raise pytest.UsageError("xdist workers collected different tests")
        self.collection = collections[0]
        first = next(iter(self.node2collection))
        table = json.loads((self.where / f"phases-{first.gateway.id}.json").read_text())
        if table["ids"] != self.collection:
            raise pytest.UsageError("the phase table does not match the collection")
        self.phase = table["phases"]
        self.group = table["groups"]
        for i, phase in enumerate(self.phase):
            if phase == GROUP:
                self.groups.setdefault(str(self.group[i]), deque()).append(i)
        weights = table["weights"]
        parallel = [i for i, p in enumerate(self.phase) if p == PARALLEL]
        by_weight = [[i for i in parallel if weights[i] == w] for w in (0, 1, 2)]
        # The variants of one e2e test (one per adapter) do the same work: spread them out
        # (every first variant, then every second, ...) rather than run them side by side.
        by_weight[1].sort(key=lambda i: table["variants"][i])  # stable
        self.parallel = deque(by_weight[0] + interleave(by_weight[1], by_weight[2]))
        self.first = deque(i for i, p in enumerate(self.phase) if p == SERIAL)
        self.together = deque(i for i, p in enumerate(self.phase) if p == TOGETHER)
        self.alone = deque(i for i, p in enumerate(self.phase) if p == LAST)
        grouped = {name: len(queue) for name, queue in self.groups.items()}
        self.log(
            f"{len(self.first)} serial first, {len(self.together)} together,"
            f" {len(self.parallel)} parallel, groups {grouped},"
            f" {len(self.alone)} last"
        )
        for node in self.nodes:
            self.check_schedule(node)

    def mark_test_complete(self, node: Any, item_index: int, duration: float = 0) -> None:
        self.node2pending[node].remove(item_index)
        if item_index in self.first_running:
            self.first_running.discard(item_index)
            if not self.first_running and not self.first:
                for other in self.nodes:  # the serial tests are done: everyone to work
                    self.check_schedule(other)
                return
        if item_index in self.together_running:
            self.together_running.discard(item_index)
            if not self.together_running:
                for other in self.nodes:  # the together tests are done: everyone to work
                    self.check_schedule(other)
                return
        self.check_schedule(node)

    def mark_test_pending(self, item: str) -> None:
        assert self.collection is not None
        self._requeue(self.collection.index(item))
        for node in self.nodes:
            self.check_schedule(node)

    def _requeue(self, index: int) -> None:
        if self.phase[index] == PARALLEL:
            self.parallel.appendleft(index)
        elif self.phase[index] == GROUP:
            self.groups[str(self.group[index])].appendleft(index)
        elif self.phase[index] == SERIAL:
            self.first.appendleft(index)
        elif self.phase[index] == TOGETHER:  # once dealt, a crashed worker's go with the rest
            (self.parallel if self.together_dealt else self.together).appendleft(index)
        else:
            self.alone.appendleft(index)

    def check_schedule(self, node: Any, duration: float = 0) -> None:
        if node.shutting_down or self.collection is None:
            return
        pending = self.node2pending[node]
        if self.first or self.first_running:
            # The serial tests run first, alone, on the first worker to ask (a fresh process):
            # the others wait (mark_test_complete wakes them). It is also handed its next
            # test, which runs after them (a worker runs a test once it holds the next one).
            if self.first_node is None:
                self.first_node = node
            if node is not self.first_node:
                return
            if self.first:
                batch = list(self.first)
                self.first.clear()
                self.first_running.update(batch)
                self._send(node, batch)
        elif not self.together_dealt:
            self._deal_together()
        # The together phase: every worker runs the together tests it was dealt, one at a time,
        # then holds one more test, which runs once they are all done.
        if self.together_running and (not pending or pending[-1] not in self.together_running):
            return
        while len(pending) < self.DEPTH and (queue := self._next_queue(node)) is not None:
            self._send(node, [queue.popleft()])
        if len(pending) >= self.DEPTH:
            return  # busy; it asks again when it completes one
        # Nothing more for this worker now or later (the groups left belong to others).
        if not self.alone:
            node.shutdown()  # it runs what it holds, then exits
            return
        # Nothing but tests that run alone remain (and groups other workers are finishing):
        # this worker will run them; every other one finishes what it holds and exits.
        if self.serial_node is None:
            self.serial_node = node
            for other in self.nodes:
                if other is not node and other not in self.owner:
                    other.shutdown()
        if node is not self.serial_node:
            node.shutdown()
            return
        if len(self.node2pending) > 1:
            return  # not before every other worker has exited (remove_node calls back)
        batch = list(self.alone)
        self.alone.clear()
        self._send(node, batch)
        node.shutdown()

    def _deal_together(self) -> None:
        """Hand every together test out (the serial ones are done): each to the worker that
        holds the fewest so far, so that they run side by side, one at a time per worker."""
        self.together_dealt = True
        held = {
            node: [i for i in pending if i in self.together_running]
            for node, pending in self.node2pending.items()
        }
        while self.together:
            node = min(held, key=lambda n: len(held[n]))  # the first of the least loaded
            index = self.together.popleft()
            held[node].append(index)
            self.together_running.add(index)
            self._send(node, [index])

    def _next_queue(self, node: Any) -> deque[int] | None:
        """Where `node`'s next test comes from: a together test during the serial phase (the
        first worker's next test), else the group it owns, else a group nobody owns (it
        becomes the owner), else the parallel queue; None when all are empty for it."""
        if self.together and not self.together_dealt:
            self.together_running.add(self.together[0])
            return self.together
        group = self.owner.get(node)
        if group is not None:
            if self.groups[group]:
                return self.groups[group]
            del self.owner[node]  # done with it (its last tests may still be running here)
        owned = set(self.owner.values())
        for name, queue in self.groups.items():
            if queue and name not in owned:
                self.owner[node] = name
                return queue
        return self.parallel or None

    def _send(self, node: Any, indices: list[int]) -> None:
        if indices:
            self.node2pending[node].extend(indices)
            node.send_runtest_some(indices)


__all__ = [
    "GROUP",
    "LAST",
    "PARALLEL",
    "SERIAL",
    "TOGETHER",
    "PhasedScheduling",
    "group_of",
    "groups_of",
    "heavy_kind",
    "interleave",
    "nice_of",
    "phase_of",
    "phases_dir",
    "realtime",
    "set_tree_nice",
]
