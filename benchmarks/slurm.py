"""The SLURM executor: submits a suite's unfinished jobs through submitit as job arrays, and returns.

- Jobs with no unfinished teacher go into one array; the jobs that need a teacher being trained in this submission go
  into one array per teacher, with `--dependency=afterok:<teacher task>` (and `--kill-on-invalid-dep=yes`, so that a
  failed teacher cancels its students instead of leaving them pending forever).
- `jobs_per_task` packs several small jobs into one SLURM task (run one after the other).
- Each task runs its jobs through `runner.execute`, with the run's own `RunContext` (pickled whole by submitit): a lock
  per job, done jobs skipped, a checkpoint as it goes. On a time limit or a preemption, submitit signals the task
  ahead of time, calls `TaskRunner.checkpoint` and requeues it; the requeued task skips its finished jobs and resumes
  the interrupted one from its last checkpoint.
- What was submitted is kept in `<results>/.slurm/<suite>/submitted.json` (job id -> SLURM id), which `bench status`,
  `bench wait` and `bench cancel` read together with the records and `sacct`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from kdfd import provenance
from kdfd.config import build
from kdfd.errors import ConfigError, ExternalError

from . import store
from .expansion import Job, Suite
from .options import RunContext, SlurmOptions

# The runner (and with it torch) is imported where a task runs or a submission is prepared, not here: `bench status`
# and `bench cancel` read SLURM's accounting through this module alone.


class SlurmError(ExternalError):
    """A SLURM command that failed or is missing (sacct, sbatch, scancel): the cluster, not the input. The command
    line says which command and why, and exits with 3 (2 is kept for bad input)."""


ACTIVE = {"PENDING", "RUNNING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING", "SUSPENDED", "COMPLETING",
          "CONFIGURING", "STAGE_OUT", "SIGNALING", "PREEMPTED"}


def options(suite: Suite, overrides: dict) -> SlurmOptions:
    """The suite's `[slurm]` table with the command line's values (those not None) on top."""
    raw = {**suite.slurm, **{k: v for k, v in overrides.items() if v is not None}}
    return build(SlurmOptions, raw, f"{suite.path} [slurm]")


class TaskRunner:
    """What one SLURM task runs (pickled by submitit): its jobs, in order, with the run's context. Subclasses
    submitit's Checkpointable at import time below, so that this module imports without submitit installed."""

    def __call__(self, suite_name: str, jobs: list[Job], ctx: RunContext) -> list[str]:
        from . import runner

        prov = provenance.collect()
        return [runner.execute(suite_name, job, ctx, prov, block=True, executor=executor_info()).status
                for job in jobs]


def executor_info() -> dict:
    """Where a SLURM task's job ran, for its record: host and process, and SLURM's job, array and restart ids."""
    env = os.environ
    info = {"kind": "slurm", "host": os.uname().nodename, "pid": os.getpid()}
    for key in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_RESTART_COUNT"):
        if key in env:
            info[key.lower()] = env[key]
    return info


def _submitit():
    try:
        import submitit
    except ImportError:
        raise ConfigError("--executor slurm needs submitit: pip install 'kdfd-bench[slurm]'") from None
    return submitit


def _checkpointable():
    submitit = _submitit()

    class Task(TaskRunner, submitit.helpers.Checkpointable):
        """The default checkpoint(): requeue with the same arguments (the jobs' own checkpoints hold the progress)."""

    return Task


def state_path(results: Path, suite: Suite) -> Path:
    return store.slurm_state_path(results, suite.name)


def submitted(results: Path, suite: Suite) -> dict:
    """Job id -> {"slurm_id", "submitted"}; {} where nothing was submitted, or the list is damaged (which `bench
    status` names: store.read_submitted)."""
    return store.read_submitted(state_path(results, suite))[0]


def submit(suite: Suite, ctx: RunContext, checked: Callable[[], object] | None = None) -> dict[str, str]:
    """Submit every job not done and not already queued or running, each task with its resources (`ctx.slurm`) and
    `ctx.jobs_per_task` jobs; returns job id -> SLURM id of the new ones. The tasks run with `ctx` as it is (its
    results root made absolute, progress off). `checked`: as `benchmarks.runner.run_suite`'s, before any submission."""
    submitit = _submitit()

    opts, jobs_per_task = ctx.slurm, ctx.jobs_per_task
    results = ctx.results.resolve()
    task_ctx = ctx.replace(results=results, progress=False)
    from . import runner

    runner.preflight(suite, ctx, gpus_at=lambda: no_gpus_in(opts.partition))
    runner.set_aside_kept(suite, results)
    state = submitted(results, suite)
    try:
        live = slurm_states([v["slurm_id"] for v in state.values()])
    except SlurmError as e:
        raise SlurmError(f"{e}: which jobs are queued already is unknown, so nothing was submitted") from None
    if checked is not None:
        checked()
    todo = [j for j in suite.jobs if not store.is_done(results, j) and not is_active(state.get(j.id), live)]
    if not todo:
        return {}
    folder = store.slurm_folder(results, suite.name)
    before = set(folder.iterdir()) if folder.is_dir() else set()
    executor = submitit.AutoExecutor(folder=folder / "%j", cluster="slurm", slurm_max_num_timeout=opts.max_requeues)
    executor.update_parameters(name=f"bench-{suite.name}", **opts.executor_parameters(ctx.nproc))
    slurm_ids = {job_id: v["slurm_id"] for job_id, v in state.items() if is_active(v, live)}
    new: dict[str, str] = {}
    todo_ids = {j.id for j in todo}
    for teacher_id, chunks in arrays(todo, results, jobs_per_task):
        extra = {"kill_on_invalid_dep": "yes"}
        if teacher_id is not None:
            dep = new.get(teacher_id) or slurm_ids.get(teacher_id)
            if dep is None and teacher_id not in todo_ids:
                raise ConfigError(f"teacher job {teacher_id} is neither done nor submitted")
            extra["dependency"] = f"afterok:{dep}"
        executor.update_parameters(slurm_additional_parameters=extra)
        n = len(chunks)
        try:
            # submitit prints sbatch's complaint to stderr before raising it: it is said once, in refused()'s line
            with contextlib.redirect_stderr(io.StringIO()):
                handles = executor.map_array(_checkpointable()(), [suite.name] * n, chunks, [task_ctx] * n)
        except submitit.core.utils.FailedJobError as e:
            _remove_unsubmitted(folder, before)
            _keep(results, suite, state, new)
            raise ConfigError(refused(str(e), opts, new)) from None
        except FileNotFoundError as e:
            if e.filename != "sbatch":
                raise
            _remove_unsubmitted(folder, before)
            raise SlurmError(f"cannot submit: {e.filename or 'sbatch'} is not installed here (run `bench run "
                             "--executor slurm` on a SLURM login node)") from None
        for chunk, handle in zip(chunks, handles):
            for job in chunk:
                new[job.id] = handle.job_id
    _keep(results, suite, state, new)
    return new


def arrays(todo: list[Job], results: Path, jobs_per_task: int) -> list[tuple[str | None, list[list[Job]]]]:
    """The job arrays that submitting `todo` makes, in submission order: (the id of the teacher job the array waits
    for, None for the first array; its tasks, each `jobs_per_task` jobs run one after the other). `bench run
    --dry-run` shows the same plan."""
    groups: dict[str | None, list[Job]] = {}
    for job in todo:
        waits_for = job.teacher.id if job.teacher is not None and not store.is_done(results, job.teacher) else None
        groups.setdefault(waits_for, []).append(job)
    order = [None, *[k for k in groups if k is not None]]  # first the array the others depend on
    return [(t, [groups[t][i:i + jobs_per_task] for i in range(0, len(groups[t]), jobs_per_task)])
            for t in order if groups.get(t)]


def _keep(results: Path, suite: Suite, state: dict, new: dict[str, str]) -> None:
    """Add the tasks SLURM accepted to the suite's submitted.json (written only when there are any)."""
    if not new:
        return
    now = dt.datetime.now(dt.timezone.utc).isoformat()
    state.update({job_id: {"slurm_id": sid, "submitted": now} for job_id, sid in new.items()})
    store.write_sealed(state_path(results, suite), state)


# sbatch's reason for refusing a submission -> the options that can fix it (Slurm's own messages, matched lowercase)
REFUSALS = (
    ("more processors requested than permitted", ("cpus",)),
    ("cpu count per node can not be satisfied", ("cpus",)),
    ("memory specification can not be satisfied", ("mem_gb",)),
    ("memory required by task is not available", ("mem_gb",)),
    ("invalid generic resource (gres) specification", ("gpus",)),
    ("invalid partition name specified", ("partition",)),
    ("invalid account", ("account",)),
    ("invalid qos specification", ("qos",)),
    ("requested time limit is invalid", ("time",)),
    ("invalid feature specification", ("constraint",)),
    ("requested node configuration is not available", ("cpus", "mem_gb", "gpus", "constraint")),
    ("job violates accounting/qos policy", ("time", "cpus", "gpus", "qos", "account")),
)


def refused(stderr: str, opts: SlurmOptions, accepted: dict[str, str] | None = None) -> str:
    """One line for a submission sbatch refused: its reason, the option to change (flag, [slurm] key, value now)."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    reason = "; ".join(ln.split("error:")[-1].replace("Batch job submission failed:", "").strip() for ln in lines
                       if "error" in ln.lower()) or (lines[-1] if lines else "no reason given")
    names = next((names for text, names in REFUSALS if text in reason.lower()), None)
    if names is None:
        fix = "check the SLURM options (--partition, --time, --cpus, --mem-gb, --gpus, --account, --qos, --constraint)"
    else:
        fix = "change " + ", ".join(f"--{n.replace('_', '-')} (now {getattr(opts, n)})" for n in names) + \
              " or the suite's [slurm] " + ", ".join(names)
    done = (f"; the {len(set(accepted.values()))} tasks accepted before it stay queued" if accepted
            else "; nothing was submitted")
    return f"sbatch refused the submission ({reason}): {fix}{done}"


def _remove_unsubmitted(folder: Path, before: set[Path]) -> None:
    """The pickles and sbatch script submitit wrote for an array that sbatch then refused: never read, removed."""
    if not folder.is_dir():
        return
    for path in set(folder.iterdir()) - before:
        if path.is_file() and (path.suffix == ".pkl" or path.name.startswith(".submission_file_")):
            path.unlink(missing_ok=True)


def is_active(entry: dict | None, live: dict[str, str]) -> bool:
    """Queued or running. A SLURM id that sacct does not show yet counts as queued: sacct lags behind sbatch."""
    return entry is not None and live.get(entry["slurm_id"], "PENDING") in ACTIVE


def slurm_states(ids: list[str]) -> dict[str, str]:
    """SLURM id -> state from `sacct` (one call). Ids sacct does not know yet (it lags the controller) are left out."""
    ids = [i for i in ids if i]
    if not ids:
        return {}
    try:
        out = subprocess.run(["sacct", "-n", "-P", "-X", "-o", "JobID,State", "-j", ",".join(sorted(set(ids)))],
                             capture_output=True, text=True, timeout=60, check=True).stdout
    except subprocess.CalledProcessError as e:
        raise SlurmError(f"sacct failed (exit {e.returncode}: {(e.stderr or '').strip()[:200] or 'no message'})") \
            from None
    except (OSError, subprocess.SubprocessError) as e:
        raise SlurmError(f"cannot run sacct ({e})") from None
    states = {}
    for line in out.splitlines():
        job_id, _, state = line.partition("|")
        state = state.split()[0] if state else "UNKNOWN"  # "CANCELLED by 0" -> CANCELLED
        for one in expand_array_id(job_id):
            states[one] = state
    return states


def no_gpus_in(partition: str | None) -> str | None:
    """`runner.check_gpus`'s look under this executor: what sinfo says when no node of the partition has a GPU."""
    if partition_gpus(partition) != 0:
        return None
    return (f"no node of SLURM partition {partition or '(the default)'} has a GPU (sinfo lists no gpu GRES): choose "
            "one with --partition")


def partition_gpus(partition: str | None) -> int | None:
    """How many nodes of `partition` (None: the default one, which sinfo marks with `*`) have GPUs, from sinfo's GRES
    column; None where sinfo cannot tell (not installed, failing, an unknown partition: sbatch then says so itself)."""
    try:
        out = subprocess.run(["sinfo", "-h", "-N", "-o", "%P %G"], capture_output=True, text=True, timeout=30,
                             check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    rows = [line.split(None, 1) for line in out.splitlines() if line.strip()]
    gres = [g for p, *g in rows if (p.rstrip("*") == partition if partition else p.endswith("*"))]
    if not gres:
        return None
    return sum("gpu" in " ".join(g) for g in gres)


def expand_array_id(job_id: str) -> list[str]:
    """sacct shows an array's still-pending tasks as one line: `123_[0-3,7%64]` -> 123_0 ... 123_3, 123_7."""
    if "_[" not in job_id:
        return [job_id]
    base, _, spec = job_id.partition("_[")
    out = []
    for part in spec.rstrip("]").split("%")[0].split(","):
        lo, _, hi = part.partition("-")
        out += [f"{base}_{i}" for i in range(int(lo), int(hi or lo) + 1)]
    return out


def cancel(results: Path, suite: Suite) -> list[str]:
    """scancel the suite's SLURM tasks that are still queued or running; returns their ids."""
    state = submitted(results, suite)
    live = slurm_states([v["slurm_id"] for v in state.values()])
    ids = sorted({v["slurm_id"] for v in state.values() if is_active(v, live)})
    if ids:
        try:
            subprocess.run(["scancel", *ids], check=True, timeout=60, capture_output=True, text=True)
        except subprocess.CalledProcessError as e:
            raise SlurmError(f"scancel failed (exit {e.returncode}: {(e.stderr or '').strip()[:200]})") from None
        except (OSError, subprocess.SubprocessError) as e:
            raise SlurmError(f"cannot run scancel ({e})") from None
    return ids

