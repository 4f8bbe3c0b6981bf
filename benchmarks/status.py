"""Where each job of a suite stands, from its record, its lock and (for submitted jobs) SLURM's accounting.

States: done · failed (the record's error, or the SLURM state of a task that ended without writing one) · running
(its lock is held, or its SLURM task runs) · pending (queued in SLURM) · to run (nothing yet) · unknown (submitted,
no record yet, and `sacct` could not be asked: `states(..., sacct=False)`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import runner, slurm
from .lock import JobLock
from .suite import Job, Suite

FINAL = ("done", "failed")


@dataclass
class JobState:
    job: Job
    state: str
    slurm_id: str | None = None
    error: str | None = None
    record: dict | None = None


def states(suite: Suite, results: Path, sacct: bool = True) -> list[JobState]:
    """Each job's state. Asking `sacct` fails with slurm.SlurmError; with sacct=False it is not asked, and submitted
    jobs that are neither done, failed nor locked are `unknown`."""
    results = Path(results)
    sub = slurm.submitted(results, suite)
    live = slurm.slurm_states([v["slurm_id"] for v in sub.values()]) if sub and sacct else {}
    out = []
    for job in suite.jobs:
        sid = sub.get(job.id, {}).get("slurm_id")
        record = runner.read_record(runner.record_path(results, job))
        if record is not None and record.get("config_hash") != job.id:
            record = None
        if runner.is_done(results, job):
            out.append(JobState(job, "done", sid, record=record))
        elif _locked(runner.lock_path(results, job)):
            out.append(JobState(job, "running", sid))
        elif sid is not None and not sacct:
            out.append(JobState(job, "unknown", sid, "sacct could not be asked"))
        elif sid is not None and slurm.is_active(sub[job.id], live):
            out.append(JobState(job, "running" if live.get(sid) in ("RUNNING", "COMPLETING") else "pending", sid))
        elif record is not None:  # failed, and not requeued since
            out.append(JobState(job, "failed", sid, (record.get("error") or {}).get("message"), record))
        elif sid is not None:
            out.append(JobState(job, "failed", sid, f"SLURM task ended {live.get(sid, 'UNKNOWN')} without a record"
                                + (" (its teacher did not finish)" if job.teacher is not None
                                   and not runner.is_done(results, job.teacher) else "")))
        else:
            out.append(JobState(job, "to run"))
    return out


def _locked(path: Path) -> bool:
    if not path.exists():
        return False
    lock = JobLock(path)
    if lock.acquire(block=False, mark=False):
        lock.release()
        return False
    return True


def counts(items: list[JobState]) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in items:
        out[s.state] = out.get(s.state, 0) + 1
    return out
