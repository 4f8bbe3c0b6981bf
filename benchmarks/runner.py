"""The runner: runs a suite's jobs in order, in this process, one record per job (benchmarks.store).

A job whose record says `done` under the same id is skipped. A job that raises (or meets a NaN loss) is recorded as
`failed` with its error, the other jobs go on, and a job whose teacher failed is recorded as failed without running.
Each job runs under its lock, so that two runs on one results root (or an executor's tasks beside a local run) never
run it twice. Where everything goes on disk is the store's to say; what a run is given besides its suite is the
run context's (benchmarks.options.RunContext). The runner knows no executor: benchmarks.slurm submits tasks that
call `execute` with the same context.
"""

from __future__ import annotations

import datetime as dt
import errno
import fnmatch
import functools
import json
import logging
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from kdfd import events, method_code, parallel, parallel_launch, provenance
from kdfd import job as kdfd_job
from kdfd.checkpoint import Checkpointer
from kdfd.data import load_task, load_test
from kdfd.distiller import ModelInfo
from kdfd.errors import ConfigError, NonFiniteLossError, StorageError
from kdfd.models import describe, require_loadable, resolve_path

from . import store
from .expansion import Job, Suite
from .lock import JobLock
from .options import RunContext
from .store import Record

log = logging.getLogger(__name__)  # `bench -q` keeps warnings only, `bench -v` adds debug lines (benchmarks.cli)


def preflight(suite: Suite, ctx: RunContext, gpus_at: Callable[[], str | None] | None = None) -> None:
    """Fail early (exit code 2) on what would fail every job: data that cannot be read, models that do not exist,
    method parameters that do not fit the models (a latent dimension above the hidden size, head counts that differ,
    a student deeper than its teacher: `kdfd.job.check_models` on the models' configs, before any weight loads); and
    first, a GPU asked for that is not there (`check_gpus`, with the executor's `gpus_at`). Only the jobs not done
    yet are checked: a suite whose jobs are all done runs without its data (nothing reads it). With `--nproc N`,
    each such job must train data-parallel (`check_parallel`)."""
    check_gpus(suite, ctx, gpus_at)
    check_parallel(suite, ctx)
    seen = set()
    names = []  # every model and tokenizer the jobs load: require_loadable after the loop
    for job in (j for j in suite.jobs if not store.is_done(ctx.results, j)):
        c = job.config
        if (c.task, c.data_source) not in seen:
            seen.add((c.task, c.data_source))
            load_task(job.resolved.task, c.data_source, ctx.glue_dir)
        for kind in trackers(c, ctx):
            events.require(kind)
        if c.train.predict_test and ("test", c.task) not in seen:
            seen.add(("test", c.task))
            load_test(job.resolved.task, ctx.glue_dir)
        for spec in (c.student, c.teacher):
            if spec is not None and spec.pretrained:
                resolve_path(spec.name)
                names.append(spec.name)
        names.append(c.resolved_tokenizer())
        if c.train.save_model:
            check_exportable(c.student, f"{suite.path} [{job.label}]")
        key = json.dumps([c.method, c.params, c.task, str(c.student), str(c.teacher)], sort_keys=True, default=str)
        if key in seen:
            continue
        seen.add(key)
        infos = [describe(spec) if spec is not None else None for spec in (c.student, c.teacher)]
        if infos[0] is None or (c.teacher is not None and infos[1] is None):
            continue  # a hub model: checked when the job builds it (kdfd.job.build_models)
        student, teacher = (ModelInfo(*i) if i else None for i in infos)
        try:
            kdfd_job.check_models(job.resolved, student, teacher)
        except ConfigError as e:
            raise ConfigError(f"{suite.path} [{job.label}]: {e}") from None
    require_loadable(names)


def check_gpus(suite: Suite, ctx: RunContext, gpus_at: Callable[[], str | None] | None = None) -> None:
    """A suite whose `[slurm] gpus` (or `--gpus`) asks for a GPU per job runs on GPUs or not at all, unless CPU is
    written explicitly (`--device cpu`, or a job's `[train] device = "cpu"`): one line (exit 2) when `--gpus 0` takes
    the suite's GPU away without `--device cpu`, or when `gpus_at` finds no GPU where the jobs will run. `gpus_at`:
    the executor's look (None: there are GPUs, or it cannot tell; else what it found), by default `local_gpus`. A
    job that passes here and still finds no GPU where it runs fails in its record (`require_gpu`) instead of
    training on CPU."""
    suite_gpus = int(suite.slurm.get("gpus", 0))
    if not any(ctx.device_of(j.config.train.device) != "cpu" for j in suite.jobs):
        return  # CPU, written explicitly for every job
    fix = "to train on CPU instead, give --gpus 0 --device cpu"
    if ctx.gpus == 0:
        if suite_gpus > 0:
            raise ConfigError(f"suite {suite.name} asks for {suite_gpus} GPU per job ([slurm] gpus = {suite_gpus}) "
                              f"and --gpus 0 gives its jobs none; {fix}")
        return
    asked = f"[slurm] gpus = {ctx.gpus}" if ctx.gpus == suite_gpus else f"--gpus {ctx.gpus}"
    missing = (gpus_at or local_gpus)()
    if missing is not None:
        raise ConfigError(f"suite {suite.name} asks for {ctx.gpus} GPU per job ({asked}) and {missing}; {fix}")


def check_parallel(suite: Suite, ctx: RunContext) -> None:
    """`--nproc N`: one line (exit 2) for the first job not done that cannot train over N processes
    (`kdfd.parallel.refusal`: a method that cannot, a batch size N does not divide), and, run here on CUDA, for
    fewer GPUs than N."""
    if ctx.nproc == 1:
        return
    todo = [j for j in suite.jobs if not store.is_done(ctx.results, j)]
    for job in todo:
        why = parallel.refusal(job.resolved, ctx.nproc)
        if why:
            raise ConfigError(f"{suite.path} [{job.label}]: {why}")
    if ctx.executor == "local" and any(ctx.device_of(j.config.train.device) != "cpu" for j in todo):
        import torch

        if torch.cuda.is_available() and torch.cuda.device_count() < ctx.nproc:
            raise ConfigError(f"--nproc {ctx.nproc} trains each job on {ctx.nproc} GPUs, one per process, and this "
                              f"machine has {torch.cuda.device_count()} that torch can use")


def local_gpus() -> str | None:
    """`check_gpus`'s look for a local run: None when torch sees a GPU here."""
    import torch

    if torch.cuda.is_available():
        return None
    return "this machine has none that torch can use; run it where there is one (or --executor slurm)"


def require_gpu(job: Job, ctx: RunContext) -> None:
    """Where a job runs: one that asked for a GPU fails, in one line, when torch sees none (a SLURM node without the
    GPU it was given, a local CUDA that broke since the preflight), rather than train on CPU for hours."""
    if not ctx.wants_gpu(job.config.train.device):
        return
    import torch

    if not torch.cuda.is_available():
        raise ConfigError(f"this job asked for {ctx.gpus} GPU ([slurm] gpus or --gpus) and torch sees none on "
                          f"{os.uname().nodename} (CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}); "
                          "it did not train (--gpus 0 --device cpu trains on CPU)")


def check_exportable(spec, where: str) -> None:
    """`train.save_model` on a model that kdfd.export cannot write stops the run before any job (what only the
    built model tells, a method that predicts otherwise, fails its job with the reason)."""
    pooling = spec.pooling
    if spec.pretrained:
        config = Path(resolve_path(spec.name)) / "config.json"
        model_type = json.loads(config.read_text()).get("model_type") if config.is_file() else None
        if model_type not in (None, "bert"):
            raise ConfigError(f"{where}: save_model = true: a {model_type!r} model does not export (only BERT "
                              "models: transformers' BertForSequenceClassification is the head reproduced exactly)")
    if pooling not in ("auto", "pooler"):
        raise ConfigError(f"{where}: save_model = true with pooling = {pooling!r}: does not export "
                          "(BertForSequenceClassification classifies the pooler output; use pooling = 'auto')")


CODE_ACCEPTED = store.CODE_ACCEPTED


def code_changes(suite: Suite, results: Path) -> list[method_code.Change]:
    """The methods whose code changed, without a version bump, since some of the suite's done records (kdfd.method_code:
    records without a fingerprint, and changes accepted under this root, are current)."""
    if not Path(results).is_dir():  # nothing done there yet (a root that is a file is named by check_writable)
        return []
    done = [store.find(results, job) for job in suite.jobs if store.is_done(results, job)]
    return method_code.changes([r.to_dict() for r in done if r is not None], Path(results) / CODE_ACCEPTED)


def check_code(suite: Suite, results: Path, accept: bool = False) -> list[method_code.Change]:
    """Before any job: a done record of changed code would be skipped as done, its old numbers reported under the new
    code. Stops (ConfigError, one line naming each method) unless `accept` (`--accept-code-changes`: the change keeps
    the results, a refactoring), which keeps the acceptance beside the records and returns what was accepted."""
    found = code_changes(suite, results)
    if found and not accept:
        raise ConfigError(f"{results}: {method_code.message(found)}")
    if found:
        method_code.accept(Path(results) / CODE_ACCEPTED, found)
    return found


@dataclass
class Outcome:
    job: Job
    status: str  # done | failed | skipped (done before, or by another process)
    record: Record | None


def start(suite: Suite, ctx: RunContext, checked: Callable[[], object] | None = None) -> None:
    """Before the first job: the inputs (`preflight`), the results root, the suite's damaged kept files
    (`set_aside_kept`), `checked`; then the suite's damaged teacher caches are moved aside, to be rebuilt by the next
    job that reads one (the records made with them stand: a cache holds what the teacher computes again)."""
    preflight(suite, ctx)
    store.check_writable(ctx.results)
    set_aside_kept(suite, ctx.results)
    if checked is not None:
        checked()
    for file, aside, why in store.set_aside_caches(ctx.results, sorted({j.config.task for j in suite.jobs})):
        tqdm.write(f"teacher cache {file} is damaged ({why}); kept as {aside.name}, rebuilt when a job next reads it")


def set_aside_kept(suite: Suite, results: Path) -> None:
    """The suite's damaged expansion and submission list moved aside, a line each (store.set_aside_kept), before
    `checked` keeps a new expansion (a local run as a SLURM submission)."""
    for file, aside, why in store.set_aside_kept(results, suite.name):
        if file.suffix == ".cache":
            log.warning(f"suite expansion {file} is damaged ({why}); kept as {aside.name}, made again")
        else:  # which tasks are queued is unknown now: submitted again, they find their jobs locked or done
            log.warning(f"SLURM submission list {file} is damaged ({why}); kept as {aside.name}: tasks queued "
                        "before are no longer followed, and a job one of them runs is never run twice (its lock)")


def run_suite(suite: Suite, ctx: RunContext, checked: Callable[[], object] | None = None) -> list[Outcome]:
    """Run every job of `suite` not yet done, in order, in this process, as `ctx` says (results root, data,
    checkpoints, determinism, progress, TensorBoard). `checked` is called once the inputs passed `preflight`, before
    the first job (`bench run` keeps the suite's expansion then: a bad input leaves the results root as it was).

    A job locked by another process (a second `bench run`, an executor's task) is put off, with the jobs that need it
    as their teacher, until this pass ends; then this run waits for its lock and runs it only if it is still not done.
    """
    start(suite, ctx, checked)
    return run_jobs(suite, ctx)


def run_jobs(suite: Suite, ctx: RunContext) -> list[Outcome]:
    """`run_suite` after `start`: the jobs, in this process (also one worker's part of `run_workers`)."""
    if suite.select is not None:
        return run_selected(suite, ctx)
    progress = ctx.progress
    prov = provenance.collect()
    outcomes: dict[str, Outcome] = {}
    put_off: list[Job] = []
    bar = tqdm(total=len(suite.jobs), desc=f"suite {suite.name}", unit="job", disable=not progress)

    def report(job: Job, outcome: Outcome) -> None:
        outcomes[job.id] = outcome
        bar.update(1)
        log_outcome(outcome)

    for job in suite.jobs:
        bar.set_postfix_str(f"{job.config.task} {job.label} s{job.config.seed}")
        if job.teacher is not None and any(j.id == job.teacher.id for j in put_off):
            put_off.append(job)
            continue
        outcome = execute(suite.name, job, ctx, prov, block=False)
        if outcome is None:
            put_off.append(job)
        else:
            report(job, outcome)
    for job in put_off:
        log.info(f"waiting for another process to finish {job.config.task} {job.label} seed {job.config.seed}")
        report(job, execute(suite.name, job, ctx, prov, block=True))
    bar.close()
    return [outcomes[j.id] for j in suite.jobs]


def run_selected(suite: Suite, ctx: RunContext) -> list[Outcome]:
    """A suite with a `[select]` table: the jobs that `selection.narrow` keeps, one at a time in its order, narrowing
    again after each job, so that a row's other seeds and its arms join as soon as its tuning jobs have chosen a
    point (benchmarks.selection). Each job is tried once per run; one locked by another process (a second `bench
    run` on the same root: two workers) is left to it, and this run waits for a lock only when nothing else can run."""
    from . import selection

    progress = ctx.progress
    prov = provenance.collect()
    outcomes: dict[str, Outcome] = {}
    tried: set[str] = set()
    bar = tqdm(total=None, desc=f"suite {suite.name}", unit="job", disable=not progress)  # narrowing sets it
    while True:
        jobs, pending = selection.narrow(suite.jobs, suite.select, [ctx.results])
        bar.total = len(jobs)
        todo = [j for j in jobs if j.id not in tried and not store.is_done(ctx.results, j)]
        if not todo:
            break
        outcome = None
        for job in todo:
            if job.teacher is not None and job.teacher.id not in tried and not store.is_done(ctx.results, job.teacher):
                continue  # its teacher runs elsewhere now
            bar.set_postfix_str(f"{job.config.task} {job.label} s{job.config.seed}")
            outcome = execute(suite.name, job, ctx, prov, block=False)
            if outcome is not None:
                break
        if outcome is None:  # everything left is locked by another process, or waits on a teacher it trains
            job = next((j for j in todo if j.teacher is None or store.is_done(ctx.results, j.teacher)), None)
            job = job or next(j.teacher for j in todo)
            log.info(f"waiting for another process to finish {job.config.task} {job.label} seed {job.config.seed}")
            outcome = execute(suite.name, job, ctx, prov, block=True)
        tried.add(outcome.job.id)
        outcomes[outcome.job.id] = outcome
        bar.update(1)
        log_outcome(outcome)
    bar.close()
    for c in pending:
        log.info(f"pending: {c.row} on {c.task} waits for {c.waiting} tuning job(s) to choose its point")
    return [outcomes[j.id] for j in jobs if j.id in outcomes]


def run_workers(suite: Suite, ctx: RunContext, workers: int,
                checked: Callable[[], object] | None = None) -> list[Outcome]:
    """`bench run --workers N`: N processes on this machine, each running `run_jobs` on the same results root with
    an equal share of this process's threads (torch.get_num_threads() // N, at least 1). The jobs' locks share the
    work out, as between two `bench run`s: a job locked by one worker is left to it, a student waits for a teacher
    another worker trains. This process checks the inputs once, then follows the records (a line per finished job)
    and returns every job's outcome: skipped (done before), done or failed as its record says, or `not run` (no
    record: its worker died)."""
    import multiprocessing

    import torch

    if workers < 1:
        raise ConfigError(f"--workers {workers} is not allowed (must be >= 1)")
    start(suite, ctx, checked)
    before = {j.id for j in suite.jobs if store.is_done(ctx.results, j)}
    started = dt.datetime.now(dt.timezone.utc).isoformat()  # a record finished since is this run's
    threads = max(1, torch.get_num_threads() // workers)
    spawn = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked torch thread pools
    procs = [spawn.Process(target=_worker, args=(suite, ctx.replace(progress=False), threads), daemon=False)
             for _ in range(workers)]
    for p in procs:
        p.start()
    if ctx.progress:
        tqdm.write(f"{workers} workers, {threads} thread(s) each")
    bar = tqdm(total=len(suite.jobs), desc=f"suite {suite.name}", unit="job", disable=not ctx.progress)
    seen = set(before)
    bar.update(len(before))
    while True:
        alive = any(p.is_alive() for p in procs)
        for job in suite.jobs:
            record = store.find(ctx.results, job) if job.id not in seen else None
            if record is not None and (record.done or (record.finished or "") >= started):
                seen.add(job.id)
                bar.update(1)
                if ctx.progress:
                    tqdm.write(f"{record.status:>6}  {job.config.task:<12} {job.label:<28} seed {job.config.seed}"
                               + (f"  {record.error['message']}" if record.error else ""))
        if not alive:
            break
        time.sleep(1.0)
    bar.close()
    for p in procs:
        p.join()
    outcomes = []
    for job in suite.jobs:
        record = store.find(ctx.results, job)
        status = "skipped" if job.id in before else record.status if record is not None else "not run"
        outcomes.append(Outcome(job, status, record))
    return outcomes


def _worker(suite: Suite, ctx: RunContext, threads: int) -> None:
    """One process of `run_workers`."""
    import torch

    torch.set_num_threads(threads)
    run_jobs(suite, ctx)


def log_outcome(outcome: Outcome) -> None:
    """One line per finished job (skipped ones too), whether or not progress bars show: a log file of a run without
    a terminal reads job by job (the bars are off there)."""
    rec, c = outcome.record, outcome.job.config
    error = f"  {rec.error['message']}" if rec is not None and rec.error else ""
    seconds = f"  {rec.wall_seconds:.0f} s" if outcome.status == "done" and rec is not None else ""
    log.info(f"{outcome.status:>7}  {c.task:<12} {outcome.job.label:<28} seed {c.seed}{seconds}{error}")


def execute(suite_name: str, job: Job, ctx: RunContext, prov: dict, block: bool,
            executor: dict | None = None) -> Outcome | None:
    """Run one job under its lock unless it is done. Returns None when the lock is held elsewhere and not `block`.
    `executor`: where the job runs, for its record (an executor's own description; default `local_executor()`)."""
    results = ctx.results
    if store.is_done(results, job):
        return Outcome(job, "skipped", store.find(results, job))
    with JobLock(store.lock_path(results, job)) as lock:
        if not lock.acquire(block):
            return None
        if store.is_done(results, job):  # finished by the process that held the lock
            return Outcome(job, "skipped", store.find(results, job))
        for file, aside, why in store.set_aside(results, job):
            what = "record" if file.suffix == ".json" else "file"
            log.warning(f"{what} {file} is {'unreadable' if what == 'record' else 'damaged'} ({why}); kept as "
                        f"{aside.name}, the job runs again")
        for tmp in store.temporaries(results, job):  # under the job's lock, where no one else writes them
            tmp.unlink(missing_ok=True)
        record = run_job(suite_name, job, ctx, prov, executor)
        return Outcome(job, record.status, record)


def run_job(suite_name: str, job: Job, ctx: RunContext, prov: dict, executor: dict | None = None) -> Record:
    c = job.config
    results = ctx.results
    started = dt.datetime.now(dt.timezone.utc)
    # "suite": the suite whose run wrote the record. Every suite expanding to the same job id shares the record and
    # skips it when done, never rewriting it (done records stay byte for byte), so a suite's records are found by
    # job id (bench report, bench results --suite), never by this field
    executor = executor or local_executor()
    if ctx.nproc != 1:  # how it ran, not what it is: the same id at any number of processes
        executor = {**executor, "processes": ctx.nproc}
    record = Record(id=job.id, suite=suite_name, label=job.label, config=c.to_dict(),
                    method_code=method_code.of(job.resolved.method), started=started.isoformat(),
                    provenance=prov, executor=executor)
    t0 = time.perf_counter()
    checkpointer = Checkpointer(store.checkpoint_path(results, job), ctx.checkpoint_every)
    try:
        if job.teacher is not None and not store.is_done(results, job.teacher):
            raise RuntimeError(f"its teacher job {job.teacher.id} did not finish")
        inject_failure(job)
        require_gpu(job, ctx)
        train = kdfd_job.run if ctx.nproc == 1 else functools.partial(parallel_launch.run, nproc=ctx.nproc)
        result = train(
            job.resolved, glue_dir=ctx.glue_dir,
            teacher_checkpoint=store.weights_path(results, job.teacher) if job.teacher else None,
            save_model_to=store.weights_path(results, job) if c.role == "teacher" else None,
            progress=ctx.progress, checkpointer=checkpointer,
            artifacts_to=store.artifacts_path(results, job) if c.role != "teacher" else None,
            predictions_to=store.predictions_path(results, job),
            teacher_cache_dir=store.teacher_cache_path(results, c.task),
            token_cache_dir=store.token_cache_path(results, c.task),
            events_to=tracking(suite_name, job, ctx),
            deterministic=ctx.deterministic, device=ctx.device,
            export_to=store.model_path(results, job) if c.train.save_model else None,
            about={"job": job.id, "suite": suite_name, "task": c.task, "method": c.method, "label": job.label,
                   "seed": c.seed},
        )
        record = record.finish("done", result, checksums=store.checksums(results, job))
    except OSError as e:
        if e.errno not in STORAGE_ERRNOS:
            record = record.finish("failed", error=error_of(e))
        else:  # not this job's fault, and every later job would fail alike: stop, losing nothing
            raise StorageError(
                f"results root {results} cannot take {e.filename or 'a file'} ({e.strerror}); the run stops, "
                "records already written are untouched, and a re-run after freeing space resumes this job from "
                "its last checkpoint") from None
    except Exception as e:  # a failed job is recorded, never lost; the suite goes on
        record = record.finish("failed", error=error_of(e))
    record = record.finish(record.status, finished=dt.datetime.now(dt.timezone.utc).isoformat(),
                           wall_seconds=time.perf_counter() - t0)
    store.write(store.record_path(results, job), record)
    if record.done:
        checkpointer.remove()  # a failed job keeps it: a retry after a crash goes on from there
    return record


def trackers(c, ctx: RunContext) -> tuple[str, ...]:
    """What a job reports to: `--report-to`, and TensorBoard where its suite or `--tensorboard` says so."""
    kinds = tuple(ctx.report_to)
    wants_tensorboard = c.train.tensorboard or ctx.tensorboard
    return kinds + ("tensorboard",) if wants_tensorboard and "tensorboard" not in kinds else kinds


def tracking(suite_name: str, job: Job, ctx: RunContext):
    """The engine's opener of the job's trackers (called with the step it resumes from), or None without any."""
    kinds = trackers(job.config, ctx)
    if not kinds:
        return None
    c, task = job.config, job.resolved.task
    run = events.Run(
        name=store.run_name(job), group=suite_name, role=c.role, params=events.flatten(c.to_dict()),
        tags={"task": c.task, "method": c.method, "label": job.label, "seed": c.seed, "role": c.role,
              "suite": suite_name, "job": job.id},
        metrics=tuple(f"{c.role}/{split}/{m}" for split in task.dev_files for m in task.metrics))
    return functools.partial(events.Events, store.events_path(ctx.results, job), report_to=kinds, run=run,
                             stores={k: store.tracker_store(ctx.results, k) for k in ("mlflow", "wandb")})


STORAGE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


def error_of(e: Exception) -> dict:
    """A failed job's `error`: what was raised, its message and traceback; for a non-finite loss, where."""
    error = {"type": type(e).__name__, "message": str(e), "traceback": traceback.format_exc()}
    if isinstance(e, NonFiniteLossError):
        error.update(step=e.step, term=e.term, role=e.role)
    return error


FAIL_ENV = "KDFD_FAIL_JOBS"


def inject_failure(job: Job) -> None:
    """Fault injection for tests and drills: `KDFD_FAIL_JOBS="kdfd*,teacher"` makes the jobs whose label matches
    one of the globs raise before training (an executor that passes on the environment passes it on too)."""
    patterns = [p for p in os.environ.get(FAIL_ENV, "").split(",") if p]
    if any(fnmatch.fnmatchcase(job.label, p) for p in patterns):
        raise RuntimeError(f"failure injected by {FAIL_ENV}={os.environ[FAIL_ENV]!r} into job {job.label}")


def local_executor() -> dict:
    """Where a job ran, for its record, unless its executor says otherwise: this host and process."""
    return {"kind": "local", "host": os.uname().nodename, "pid": os.getpid()}
