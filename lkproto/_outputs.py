"""What the track managers (`tracks.TrackManager`, `datatracks.DataTrackManager`) share.

Both are driven the same way: after every call the caller takes the outputs with `drain()`,
carries them out in order and re-arms its timer from `get_timer()` (the `Deadlines` the
manager keeps). Signal requests made while a resume is under way wait in `_deferred` and go
out, in order, when the resume completes (`_send_deferred`). The argument checks and the
participant snapshot they both read are here too.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Generic, Protocol, TypeVar

from lkproto._deadlines import Deadlines
from lkproto._pb import participants_pb2 as ppb
from lkproto._pb import signal_pb2 as spb
from lkproto.errors import LocalProtocolError

__all__ = ["Outputs", "Signal", "is_seconds", "latest_per_identity", "require_now"]

_Out = TypeVar("_Out")
_Out_co = TypeVar("_Out_co", covariant=True)


class Signal(Protocol[_Out_co]):
    """The output that sends a signal request (`SendTrackSignal`, `SendDataTrackSignal`)."""

    def __call__(self, *, request: spb.SignalRequest) -> _Out_co: ...


class Outputs(Generic[_Out]):
    """A manager's outputs (of type `_Out`), deadlines and deferred signal requests; `signal`
    makes the output that sends a request."""

    def __init__(self, signal: Signal[_Out]) -> None:
        self._signal = signal
        self._deadlines = Deadlines()
        self._out: list[_Out] = []
        self._deferred: list[spb.SignalRequest] = []  # waiting for the resume to finish

    def drain(self) -> list[_Out]:
        """Everything produced since the last drain, in order. Carry it out (send the
        signals) in that order."""
        out, self._out = self._out, []
        return out

    def get_timer(self) -> float | None:
        """The earliest deadline (monotonic seconds), or None."""
        return self._deadlines.earliest()

    def _send_deferred(self) -> None:
        deferred, self._deferred = self._deferred, []
        self._out += [self._signal(request=r) for r in deferred]


def is_seconds(value: object) -> bool:
    """A positive, finite number of seconds (not a bool)."""
    return not isinstance(value, bool) and isinstance(value, int | float) and 0 < value < math.inf


def require_now(now: object, call: str) -> float:
    """`now` as a float; LocalProtocolError naming `call` unless it is a finite number."""
    if isinstance(now, bool) or not isinstance(now, int | float) or not math.isfinite(now):
        raise LocalProtocolError(f"{call}: now must be a finite number: {now!r}", call=call)
    return float(now)


def latest_per_identity(
    infos: Iterable[ppb.ParticipantInfo], local_identity: str
) -> dict[str, ppb.ParticipantInfo]:
    """The last `ParticipantInfo` of each other participant in `infos` (ours is skipped)."""
    latest: dict[str, ppb.ParticipantInfo] = {}
    for info in infos:
        if info.identity and info.identity != local_identity:
            latest[info.identity] = info
    return latest
