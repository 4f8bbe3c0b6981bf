"""The runner: runs a suite's jobs in order, one JSON record per job, written atomically.

A job whose record says `done` under the same config hash is skipped. A job that raises (or meets a NaN loss) is
recorded as `failed` with its error, the other jobs go on, and a job whose teacher failed is recorded as failed
without running. Records live at <results>/<task>/<method or teacher>/s<seed>-<id>.json; a teacher's fine-tuned
weights sit beside its record as .pt, shared by every suite on the same results root. Beside each record too: a
`.lock` (held while the job runs), a `.ckpt` (the job's last checkpoint while it is unfinished), a `.npz` (the
student's representations on a fixed dev sample, for the report's figures) and, with `train.tensorboard`, a `.tb/`
folder of TensorBoard events.
"""

from __future__ import annotations

import datetime as dt
import errno
import fnmatch
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
from kdfd import events, provenance
from kdfd.checkpoint import Checkpointer
from kdfd.data import load_task, load_test
from kdfd.distiller import ModelInfo
from kdfd.errors import ConfigError, NonFiniteLossError, StorageError
from kdfd.files import atomic_write, move_aside
from kdfd.models import describe, require_loadable, resolve_path
from kdfd.tasks import get_task

from .lock import JobLock
from .suite import Job, Suite

SCHEMA = 1


def record_path(results: Path, job: Job) -> Path:
    c = job.config
    kind = "teacher" if c.role == "teacher" else c.method
    return Path(results) / c.task / kind / f"s{c.seed}-{job.id}.json"


def weights_path(results: Path, job: Job) -> Path:
    return record_path(results, job).with_suffix(".pt")


def write_json(path: Path, data: dict) -> None:
    """Atomic (`kdfd.files.atomic_write`): a reader sees the previous record or the complete new one."""
    text = json.dumps(data, indent=1, sort_keys=True, default=str)
    atomic_write(path, lambda f: f.write(text.encode()), crash_at="record-write")


def keep_unreadable(path: Path) -> None:
    """A record that exists but does not parse (a disk fault: writes are atomic) is moved aside to `.corrupt`, never
    overwritten unseen; the job then runs again."""
    if path.is_file() and read_record(path) is None:
        aside = move_aside(path)
        tqdm.write(f"record {path} is unreadable; kept as {aside.name}, the job runs again")


def remove_stale_temporaries(results: Path, job: Job) -> None:
    """Temporary files a killed run left half-written beside the job's files (`.NAME.PID.tmp`): never read, since
    every write renames only a complete file; removed under the job's lock, where no one else writes them."""
    path = record_path(results, job)
    for tmp in path.parent.glob(f".{path.stem}.*tmp*"):
        tmp.unlink(missing_ok=True)


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
        ok = weights_path(results, job).is_file()
    return ok


def preflight(suite: Suite, glue_dir: str | None) -> None:
    """Fail early (exit code 2) on what would fail every job: data that cannot be read, models that do not exist,
    method parameters that do not fit the models (a latent dimension above the hidden size, head counts that differ,
    a student deeper than its teacher), found by building each method's own modules from the models' configs."""
    seen = set()
    names = []  # every model and tokenizer the jobs load: require_loadable after the loop
    for job in suite.jobs:
        c = job.config
        if (c.task, c.data_source) not in seen:
            seen.add((c.task, c.data_source))
            load_task(get_task(c.task), c.data_source, glue_dir)
        if c.train.tensorboard:
            events.require()
        if c.train.predict_test and ("test", c.task) not in seen:
            seen.add(("test", c.task))
            load_test(get_task(c.task), glue_dir)
        for spec in (c.student, c.teacher):
            if spec is not None and spec.pretrained:
                resolve_path(spec.name)
                names.append(spec.name)
        names.append(c.resolved_tokenizer())
        key = json.dumps([c.method, c.params, c.task, str(c.student), str(c.teacher)], sort_keys=True, default=str)
        if key in seen:
            continue
        seen.add(key)
        task, method, params, _ = kdfd_job.resolve(c)
        infos = [describe(spec) if spec is not None else None for spec in (c.student, c.teacher)]
        if infos[0] is None or (c.teacher is not None and infos[1] is None):
            continue  # a hub model: checked when the job loads it
        student, teacher = (ModelInfo(*i) if i else None for i in infos)
        try:
            if teacher is not None and student.num_layers > teacher.num_layers:
                raise ConfigError(f"the student has {student.num_layers} layers, more than its teacher's "
                                  f"{teacher.num_layers}")
            method(params, task, student, teacher)
        except ConfigError as e:
            raise ConfigError(f"{suite.path} [{job.label}]: {e}") from None
    require_loadable(names)


@dataclass
class Outcome:
    job: Job
    status: str  # done | failed | skipped (done before, or by another process)
    record: dict | None


def run_suite(suite: Suite, results: Path, glue_dir: str | None = None, progress: bool = True,
              checkpoint_every: int = 500) -> list[Outcome]:
    """Run every job of `suite` not yet done, in order, in this process.

    A job locked by another process (a second `bench run`, a SLURM task) is put off, with the jobs that need it as
    their teacher, until this pass ends; then this run waits for its lock and runs it only if it is still not done.
    """
    results = Path(results)
    preflight(suite, glue_dir)
    check_writable(results)
    prov = provenance.collect()
    outcomes: dict[str, Outcome] = {}
    put_off: list[Job] = []
    bar = tqdm(total=len(suite.jobs), desc=f"suite {suite.name}", unit="job", disable=not progress)

    def report(job: Job, outcome: Outcome) -> None:
        outcomes[job.id] = outcome
        bar.update(1)
        if progress and outcome.status != "skipped":
            rec = outcome.record
            tqdm.write(f"{outcome.status:>6}  {job.config.task:<12} {job.label:<28} seed {job.config.seed}"
                       + (f"  {rec['error']['message']}" if rec["error"] else ""))

    for job in suite.jobs:
        bar.set_postfix_str(f"{job.config.task} {job.label} s{job.config.seed}")
        if job.teacher is not None and any(j.id == job.teacher.id for j in put_off):
            put_off.append(job)
            continue
        outcome = execute(suite.name, job, results, glue_dir, prov, progress, checkpoint_every, block=False)
        if outcome is None:
            put_off.append(job)
        else:
            report(job, outcome)
    for job in put_off:
        if progress:
            tqdm.write(f"waiting for another process to finish {job.config.task} {job.label} seed {job.config.seed}")
        report(job, execute(suite.name, job, results, glue_dir, prov, progress, checkpoint_every, block=True))
    bar.close()
    return [outcomes[j.id] for j in suite.jobs]


def artifacts_path(results: Path, job: Job) -> Path:
    return record_path(results, job).with_suffix(".npz")


def events_path(results: Path, job: Job) -> Path:
    """A job's TensorBoard events (`train.tensorboard`): `<record>.tb/<label>/`, so that `tensorboard --logdir
    RESULTS` names each run by task, method, seed, id and label (rte/kdfd/s1-<id>.tb/kdfd[latent_dim=16])."""
    return record_path(results, job).with_suffix(".tb") / job.label.replace("/", "_")


def teacher_cache_path(results: Path, task: str) -> Path:
    """Cached frozen-teacher outputs of one task (kdfd.teacher_cache), shared by its seeds and methods."""
    return results / task / "teacher-cache"


def predictions_path(results: Path, job: Job) -> Path:
    """The GLUE test-set predictions of a job run with `train.predict_test`."""
    return predictions_file(record_path(results, job))


def predictions_file(record: Path) -> Path:
    return record.with_suffix(".test.npz")


def check_writable(results: Path) -> None:
    """Before any job: the results root takes a file (not read-only, not full, a folder)."""
    probe = results / f".write-probe.{os.getpid()}"
    try:
        results.mkdir(parents=True, exist_ok=True)
        try:
            probe.write_bytes(b"x" * 4096)
        finally:
            probe.unlink(missing_ok=True)  # a probe that did not fit is not left behind
    except OSError as e:
        raise StorageError(f"results root {results} is not writable ({e.strerror or e})") from None


def lock_path(results: Path, job: Job) -> Path:
    return record_path(results, job).with_suffix(".lock")


def resume_path(results: Path, job: Job) -> Path:
    return record_path(results, job).with_suffix(".ckpt")


def execute(suite_name: str, job: Job, results: Path, glue_dir, prov: dict, progress: bool, checkpoint_every: int,
            block: bool) -> Outcome | None:
    """Run one job under its lock unless it is done. Returns None when the lock is held elsewhere and not `block`."""
    if is_done(results, job):
        return Outcome(job, "skipped", read_record(record_path(results, job)))
    with JobLock(lock_path(results, job)) as lock:
        if not lock.acquire(block):
            return None
        if is_done(results, job):  # finished by the process that held the lock
            return Outcome(job, "skipped", read_record(record_path(results, job)))
        keep_unreadable(record_path(results, job))
        remove_stale_temporaries(results, job)
        record = run_job(suite_name, job, results, glue_dir, prov, progress, checkpoint_every)
        return Outcome(job, record["status"], record)


def run_job(suite_name: str, job: Job, results: Path, glue_dir, prov: dict, progress: bool,
            checkpoint_every: int = 500) -> dict:
    c = job.config
    started = dt.datetime.now(dt.timezone.utc)
    # "suite": the suite whose run wrote the record. Every suite expanding to the same job id shares the record and
    # skips it when done, never rewriting it (done records stay byte for byte), so a suite's records are found by
    # job id (bench report, bench results --suite), never by this field
    record = {
        "schema": SCHEMA, "id": job.id, "config_hash": job.id, "suite": suite_name, "label": job.label,
        "task": c.task, "method": c.method, "method_version": c.method_version, "seed": c.seed, "role": c.role,
        "config": c.to_dict(), "teacher_job": c.teacher_job, "status": "failed", "error": None,
        "started": started.isoformat(), "provenance": prov, "executor": executor_info(),
    }
    t0 = time.perf_counter()
    checkpointer = Checkpointer(resume_path(results, job), checkpoint_every)
    try:
        if job.teacher is not None and not is_done(results, job.teacher):
            raise RuntimeError(f"its teacher job {job.teacher.id} did not finish")
        inject_failure(job)
        result = kdfd_job.run(
            c, glue_dir=glue_dir,
            teacher_checkpoint=weights_path(results, job.teacher) if job.teacher else None,
            save_model_to=weights_path(results, job) if c.role == "teacher" else None,
            progress=progress, checkpointer=checkpointer,
            artifacts_to=artifacts_path(results, job) if c.role != "teacher" else None,
            predictions_to=predictions_path(results, job),
            teacher_cache_dir=teacher_cache_path(results, c.task),
            events_to=events_path(results, job),
        )
        record.update(result, status="done")
    except OSError as e:
        if e.errno not in STORAGE_ERRNOS:
            record_failure(record, e)
        else:  # not this job's fault, and every later job would fail alike: stop, losing nothing
            raise StorageError(
                f"results root {results} cannot take {e.filename or 'a file'} ({e.strerror}); the run stops, "
                "records already written are untouched, and a re-run after freeing space resumes this job from "
                "its last checkpoint") from None
    except Exception as e:  # a failed job is recorded, never lost; the suite goes on
        record_failure(record, e)
    record["finished"] = dt.datetime.now(dt.timezone.utc).isoformat()
    record["wall_seconds"] = time.perf_counter() - t0
    write_json(record_path(results, job), record)
    if record["status"] == "done":
        checkpointer.remove()  # a failed job keeps it: a retry after a crash goes on from there
    return record


STORAGE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


def record_failure(record: dict, e: Exception) -> None:
    error = {"type": type(e).__name__, "message": str(e), "traceback": traceback.format_exc()}
    if isinstance(e, NonFiniteLossError):
        error.update(step=e.step, term=e.term, role=e.role)
    record["error"] = error


FAIL_ENV = "KDFD_FAIL_JOBS"


def inject_failure(job: Job) -> None:
    """Fault injection for tests and drills: `KDFD_FAIL_JOBS="kdfd*,teacher"` makes the jobs whose label matches
    one of the globs raise before training (the variable reaches SLURM tasks too: sbatch exports the environment)."""
    patterns = [p for p in os.environ.get(FAIL_ENV, "").split(",") if p]
    if any(fnmatch.fnmatchcase(job.label, p) for p in patterns):
        raise RuntimeError(f"failure injected by {FAIL_ENV}={os.environ[FAIL_ENV]!r} into job {job.label}")


def executor_info() -> dict:
    """Where the job ran: the SLURM job and array ids when under SLURM, else the local host and process."""
    env = os.environ
    info = {"kind": "slurm" if "SLURM_JOB_ID" in env else "local", "host": os.uname().nodename, "pid": os.getpid()}
    for key in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_RESTART_COUNT"):
        if key in env:
            info[key.lower()] = env[key]
    return info
