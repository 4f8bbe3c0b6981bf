"""Where each job of a suite stands, from its record, its lock and (for submitted jobs) SLURM's accounting.

States: done · stale (done, by code that changed since without a version bump: `bench run` stops on it, see
kdfd.method_code) · failed (the record's error, or the SLURM state of a task that ended without writing one) · running
(its lock is held, or its SLURM task runs) · pending (queued in SLURM) · damaged (its record does not parse, or a
file its record describes, or its checkpoint, fails its checksum: `benchmarks.store.damaged`; the next `bench run`
moves the file aside and redoes the job) · to run (nothing yet, or a teacher's done record without its weights, as
in a fresh clone: weights are never committed) · unknown (submitted, no record yet, and `sacct` could not be asked:
`states(..., sacct=False)`; or no record, and the suite's SLURM submission list is damaged).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kdfd import method_code

from . import slurm, store
from .expansion import Job, Suite
from .lock import JobLock
from .store import Record

FINAL = ("done", "stale", "failed")


@dataclass
class JobState:
    job: Job
    state: str
    slurm_id: str | None = None
    error: str | None = None
    record: Record | None = None


def states(suite: Suite, results: Path, sacct: bool = True) -> list[JobState]:
    """Each job's state. Asking `sacct` fails with slurm.SlurmError; with sacct=False it is not asked, and submitted
    jobs that are neither done, failed nor locked are `unknown`."""
    results = Path(results)
    sub, unreadable = store.read_submitted(slurm.state_path(results, suite))
    live = slurm.slurm_states([v["slurm_id"] for v in sub.values()]) if sub and sacct else {}
    stale = {i: change for change in code_changes(suite, results) for i in change.ids}
    out = []
    for job in suite.jobs:
        sid = sub.get(job.id, {}).get("slurm_id")
        record = store.find(results, job)
        if job.id in stale:  # done records only
            out.append(JobState(job, "stale", sid, f"{job.config.method}'s code changed since, same version: "
                                + ", ".join(stale[job.id].modules), record))
        elif store.is_done(results, job):
            out.append(JobState(job, "done", sid, record=record))
        elif _locked(store.lock_path(results, job)):
            out.append(JobState(job, "running", sid))
        elif damaged := store.damaged(results, [job], suites=()):  # the job's own files (the list: `unreadable`)
            out.append(JobState(job, "damaged", sid, "; ".join(d.line() for d in damaged)
                                + ": the next `bench run` moves it aside and redoes the job", record))
        elif sid is not None and not sacct:
            out.append(JobState(job, "unknown", sid, "sacct could not be asked"))
        elif sid is not None and slurm.is_active(sub[job.id], live):
            out.append(JobState(job, "running" if live.get(sid) in ("RUNNING", "COMPLETING") else "pending", sid))
        elif record is not None and record.done:  # a teacher's record without its weights (not committed): retrains
            absent = ", ".join(f.name for f in store.companion_damage(store.record_path(results, job), record))
            out.append(JobState(job, "to run", sid, "its weights are absent; it retrains" if job.config.role
                                == "teacher" else f"{absent} absent; it reruns", record))
        elif record is not None:  # failed, and not requeued since
            out.append(JobState(job, "failed", sid, (record.error or {}).get("message"), record))
        elif sid is not None:
            ended = live.get(sid, "UNKNOWN")
            resumes = ended.startswith("CANCELLED") and store.checkpoint_path(results, job).is_file()
            out.append(JobState(job, "failed", sid, f"SLURM task ended {ended} without a record"
                                + (" (its teacher did not finish)" if job.teacher is not None
                                   and not store.is_done(results, job.teacher) else "")
                                + ("; its checkpoint is kept: the next `bench run` resumes it" if resumes else "")))
        elif unreadable is not None:  # it may be queued: the list that would say so is damaged (named apart)
            out.append(JobState(job, "unknown", None, f"whether it was submitted is unknown: "
                                f"{slurm.state_path(results, suite).name} is damaged"))
        else:
            out.append(JobState(job, "to run"))
    return out


def code_changes(suite: Suite, results: Path) -> list[method_code.Change]:
    """As `benchmarks.runner.code_changes`, with the code read from the recorded modules' files (no method imported,
    no torch): the same changes, as long as a method's class stays in the modules its records name."""
    if not Path(results).is_dir():
        return []
    done = [store.find(results, job) for job in suite.jobs if store.is_done(results, job)]
    return method_code.changes([r.to_dict() for r in done if r is not None], Path(results) / store.CODE_ACCEPTED,
                               by_source=True)


def _locked(path: Path) -> bool:
    if not path.exists():
        return False
    lock = JobLock(path)
    if lock.acquire(block=False, mark=False):
        lock.release()
        return False
    return True


ORDER = ("done", "stale", "failed", "damaged", "running", "pending", "to run", "unknown")


def counts(items: list[JobState]) -> dict[str, int]:
    """State -> how many, in one order (ORDER) whatever the jobs' order: `bench wait`'s lines keep their fields."""
    found = {state: sum(s.state == state for s in items) for state in ORDER}
    return {state: n for state, n in found.items() if n}
