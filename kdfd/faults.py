"""Crash points for fault-injection drills: with `KDFD_CRASH_AT="POINT:N"`, the process kills itself (SIGKILL: no
cleanup, no finally blocks, as a node failure or an OOM kill) the N-th time it reaches POINT.

Points: `train-step` (before an optimisation step, teacher fine-tuning included), `eval` (before an evaluation
batch), `checkpoint-write` (a checkpoint's temporary file written, not yet renamed), `record-write` (a record's
temporary file written, not yet renamed). Tests use them to show that a re-run ends as an uninterrupted run would.
"""

from __future__ import annotations

import os
import signal

ENV = "KDFD_CRASH_AT"
POINTS = ("train-step", "eval", "checkpoint-write", "record-write")
_hits: dict[str, int] = {}


def crash_point(name: str) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    point, _, n = spec.partition(":")
    if point not in POINTS:
        raise ValueError(f"{ENV}={spec!r}: unknown point {point!r} (allowed: {', '.join(POINTS)})")
    if point != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] == int(n or 1):
        os.kill(os.getpid(), signal.SIGKILL)
