"""`bench run --dry-run`: what a run would do and cost, before any of it is spent (offline, in seconds).

The summary: the jobs by kind and task (done and to run), where they would run (this process, `--workers`, or the
SLURM arrays `benchmarks.slurm.arrays` would submit, with their resources and dependencies), and an estimate in
device-hours (`benchmarks.cost.estimate`: measured seconds of the suite's done records where they cover a job's kind
and task, else step counts at an assumed throughput, the assumption printed with it).
"""

from __future__ import annotations

from collections import Counter

from . import cost, store
from .expansion import Suite
from .options import RunContext


def counts(items) -> str:
    return ", ".join(f"{k} {n}" for k, n in Counter(items).most_common())


def span(values: list[int]) -> str:
    return f"{min(values)}" if min(values) == max(values) else f"{min(values)} to {max(values)}"


def hours(seconds: float) -> str:
    return f"{seconds / 3600:,.1f}" if seconds >= 360 else f"{seconds / 3600:.3f}"


def summary(suite: Suite, ctx: RunContext, workers: int = 1) -> list[str]:
    """The dry run's lines (plain text)."""
    results = ctx.results
    found = {j.id: store.find(results, j) for j in suite.jobs if store.is_done(results, j)}
    todo = [j for j in suite.jobs if j.id not in found]
    n_teacher = sum(j.config.role == "teacher" for j in suite.jobs)
    lines = [f"{len(suite.jobs)} jobs ({n_teacher} teacher fine-tuning, {len(suite.jobs) - n_teacher} method): "
             f"{len(found)} done, {len(todo)} to run (results root {results})"]
    if todo:
        lines.append(f"  to run, by kind: {counts(cost.kind(j.label) for j in todo)}")
        lines.append(f"  to run, by task: {counts(j.config.task for j in todo)}")
    gpu = any(ctx.wants_gpu(j.config.train.device) for j in todo)
    device = "gpu" if gpu else "cpu"
    lines += where(suite, ctx, todo, workers)
    if todo:
        lines += estimate(todo, list(found.values()), device)
    return lines


def where(suite: Suite, ctx: RunContext, todo, workers: int) -> list[str]:
    if ctx.executor == "local":
        devices = counts(ctx.device_of(j.config.train.device) for j in todo) or "-"
        side = "one job at a time" if workers == 1 else f"{workers} jobs at once (--workers)"
        return [f"runs here: {side}, a teacher before its students; devices ([train] device or --device): {devices}"
                + (f"; each job asks for {ctx.gpus} GPU" if ctx.gpus else "")
                + (f"; each job trains over {ctx.nproc} processes (--nproc)" if ctx.nproc != 1 else "")]
    from . import slurm

    o = ctx.slurm
    plan = slurm.arrays(todo, ctx.results, ctx.jobs_per_task)
    tasks = [len(chunks) for _, chunks in plan]
    waiting = tasks[1:] if plan and plan[0][0] is None else tasks
    first = tasks[0] if plan and plan[0][0] is None else 0
    lines = [f"SLURM: {len(plan)} job arrays, {sum(tasks)} tasks of {ctx.jobs_per_task} job(s) each: "
             + (f"one array of {first} tasks that wait for nothing" if first else "no array without a teacher")
             + (f", then {len(waiting)} arrays of {span(waiting)} tasks, each after its teacher's task (afterok; a "
                "failed teacher cancels them)" if waiting else "")]
    memory = f"{o.mem_gb:g} GB" if o.mem_gb else "the default memory"
    gpus = f"{o.gpus * ctx.nproc} GPU" + (f" (--nproc {ctx.nproc} processes of one job)" if ctx.nproc != 1 else "")
    lines.append(f"  one task: {gpus}, {o.cpus} CPUs, {memory}, "
                 f"{o.time} min (requeued from its checkpoint up to {o.max_requeues} times), partition "
                 f"{o.partition or '(default)'}{f', account {o.account}' if o.account else ''}"
                 f"{f', qos {o.qos}' if o.qos else ''}; at most {o.array_parallelism} tasks of an array at once")
    return lines


def estimate(todo, done: list, device: str) -> list[str]:
    e = cost.estimate(todo, cost.records_frame(done), device)
    unit = "GPU" if device == "gpu" else "CPU-thread"
    lines = [f"estimated cost: {hours(e.seconds)} {unit}-hours for the {len(todo)} jobs to run "
             f"({e.from_records} priced from this suite's done records, {e.from_steps} from step counts"
             + (f"; no estimate for {', '.join(e.unpriced)}: shape unknown here" if e.unpriced else "") + ")"]
    if e.from_steps:
        lines.append("  assumed: " + cost.ASSUMPTION.format(rate=cost.rate(device), device=device)
                     + " (benchmarks/cost.py THROUGHPUT; done records replace it job kind by job kind)")
    return lines
