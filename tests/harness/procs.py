"""The processes below this one, and their CPU time, from /proc (Linux).

A test worker starts children of its own (its livekit-server, the Go peer, Chromium, CLI
subprocesses), and they start theirs; `descendants` finds them all by walking each process's
parent pid up to this one. Used to give a test's whole tree a CPU priority
(harness/phases.py) and to count the CPU a test cost (tests/conftest.py, the timeline).
"""

from __future__ import annotations

import os

__all__ = ["descendants", "tree_cpu"]


def _table() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, CPU clock ticks: its user and system time and its reaped
    children's)."""
    table: dict[int, tuple[int, int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # it exited meanwhile
        table[int(entry)] = (int(fields[1]), sum(int(f) for f in fields[11:15]))
    return table


def _below(root: int, table: dict[int, tuple[int, int]]) -> list[int]:
    found = []
    for pid in table:
        ancestor = table[pid][0]
        while ancestor not in (0, 1, root) and ancestor in table:
            ancestor = table[ancestor][0]
        if ancestor == root and pid != root:
            found.append(pid)
    return found


def descendants(root: int) -> list[int]:
    """Every live process below `root`."""
    return _below(root, _table())


def tree_cpu() -> tuple[float, float]:
    """CPU seconds (user and system) of this process, and of it with its descendants, alive
    or reaped."""
    table = _table()
    times = os.times()
    own = times.user + times.system
    below = sum(table[pid][1] for pid in _below(os.getpid(), table))
    tree = own + times.children_user + times.children_system + below / os.sysconf("SC_CLK_TCK")
    return own, tree
