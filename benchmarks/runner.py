"""The runner: runs a suite's jobs in order, one JSON record per job, written atomically.

A job whose record says `done` under the same config hash is skipped. A job that raises (or meets a NaN loss) is
recorded as `failed` with its error, the other jobs go on, and a job whose teacher failed is recorded as failed
without running. Records live at <results>/<task>/<method or teacher>/s<seed>-<id>.json; a teacher's fine-tuned
weights sit beside its record as .pt, shared by every suite on the same results root.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

import kdfd.kdfd  # noqa: F401  (registers the KDFD method)
import baselines  # noqa: F401  (registers the baselines)
from kdfd import job as kdfd_job
from kdfd import provenance
from kdfd.data import load_task
from kdfd.errors import NonFiniteLossError
from kdfd.models import resolve_path
from kdfd.tasks import get_task

from .suite import Job, Suite

SCHEMA = 1


def record_path(results: Path, job: Job) -> Path:
    c = job.config
    kind = "teacher" if c.role == "teacher" else c.method
    return Path(results) / c.task / kind / f"s{c.seed}-{job.id}.json"


def checkpoint_path(results: Path, job: Job) -> Path:
    return record_path(results, job).with_suffix(".pt")


def write_json(path: Path, data: dict) -> None:
    """Atomic: write a temporary file in the same folder, flush it to disk, rename it over the target."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True, default=str)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_record(path: Path) -> dict | None:
    """A record, or None when it is missing or unreadable (a truncated file is redone, never trusted)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def is_done(results: Path, job: Job) -> bool:
    rec = read_record(record_path(results, job))
    ok = rec is not None and rec.get("status") == "done" and rec.get("config_hash") == job.id
    if ok and job.config.role == "teacher":
        ok = checkpoint_path(results, job).is_file()
    return ok


def preflight(suite: Suite, glue_dir: str | None) -> None:
    """Fail early (exit code 2) on what would fail every job: data that cannot be read, models that do not exist."""
    seen = set()
    for job in suite.jobs:
        c = job.config
        if (c.task, c.data_source) not in seen:
            seen.add((c.task, c.data_source))
            load_task(get_task(c.task), c.data_source, glue_dir)
        for spec in (c.student, c.teacher):
            if spec is not None and spec.pretrained:
                resolve_path(spec.name)


@dataclass
class Outcome:
    job: Job
    status: str  # done | failed | skipped
    record: dict | None


def run_suite(suite: Suite, results: Path, glue_dir: str | None = None, progress: bool = True) -> list[Outcome]:
    results = Path(results)
    preflight(suite, glue_dir)
    prov = provenance.collect()
    outcomes, status = [], {}
    bar = tqdm(suite.jobs, desc=f"suite {suite.name}", unit="job", disable=not progress)
    for job in bar:
        bar.set_postfix_str(f"{job.config.task} {job.label} s{job.config.seed}")
        if is_done(results, job):
            status[job.id] = "done"
            outcomes.append(Outcome(job, "skipped", read_record(record_path(results, job))))
            continue
        record = run_job(suite, job, results, glue_dir, prov, status, progress)
        status[job.id] = record["status"]
        outcomes.append(Outcome(job, record["status"], record))
        if progress:
            tqdm.write(f"{record['status']:>6}  {job.config.task:<12} {job.label:<28} seed {job.config.seed}"
                       + (f"  {record['error']['message']}" if record["error"] else ""))
    return outcomes


def run_job(suite: Suite, job: Job, results: Path, glue_dir, prov: dict, status: dict, progress: bool) -> dict:
    c = job.config
    started = dt.datetime.now(dt.timezone.utc)
    record = {
        "schema": SCHEMA, "id": job.id, "config_hash": job.id, "suite": suite.name, "label": job.label,
        "task": c.task, "method": c.method, "method_version": c.method_version, "seed": c.seed, "role": c.role,
        "config": c.to_dict(), "teacher_job": c.teacher_job, "status": "failed", "error": None,
        "started": started.isoformat(), "provenance": prov,
    }
    t0 = time.perf_counter()
    try:
        if job.teacher is not None and status.get(job.teacher.id) != "done" and not is_done(results, job.teacher):
            raise RuntimeError(f"its teacher job {job.teacher.id} did not finish")
        result = kdfd_job.run(
            c, glue_dir=glue_dir,
            teacher_checkpoint=checkpoint_path(results, job.teacher) if job.teacher else None,
            save_model_to=checkpoint_path(results, job) if c.role == "teacher" else None,
            progress=progress,
        )
        record.update(result, status="done")
    except Exception as e:  # a failed job is recorded, never lost; the suite goes on
        error = {"type": type(e).__name__, "message": str(e), "traceback": traceback.format_exc()}
        if isinstance(e, NonFiniteLossError):
            error.update(step=e.step, term=e.term, role=e.role)
        record["error"] = error
    record["finished"] = dt.datetime.now(dt.timezone.utc).isoformat()
    record["wall_seconds"] = time.perf_counter() - t0
    write_json(record_path(results, job), record)
    return record
