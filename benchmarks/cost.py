"""What a suite's run cost: the wall-clock seconds of its done records, per job kind and in total.

A job's `wall_seconds` is measured around the job itself (data, models, training, evaluation), on whatever was
running beside it; a run spread over several sittings and processes has no single wall-clock time, so the report
gives the sum of its jobs' seconds and that sum divided by the number of jobs run side by side (the wall-clock
time of the run had it never stopped), with the count stated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kdfd.tasks import get_task

from .store import Record, read


def seconds_of(record: Record) -> float:
    """A done job's seconds: its `wall_seconds`, plus, for a job resumed from a checkpoint (its process stopped by a
    sitting's end), what the processes before it spent up to that checkpoint: `timing.carried_seconds`, which the
    checkpoint keeps. A record written before checkpoints kept it estimates that from the training and evaluation
    seconds of the epochs the checkpoint carried (their curves keep them), missing the stopped processes' setup and
    any part of an epoch. Either way, what a stopped process spent after its last checkpoint is lost to the count."""
    seconds, result = float(record.wall_seconds), record.result
    resumed = result.resumed_from_step or 0
    carried = (result.timing or {}).get("carried_seconds")
    if carried is not None:
        seconds += carried
    elif resumed:
        seconds += sum(c.get("train_seconds", 0.0) + c.get("eval_seconds", 0.0)
                       for c in result.curves or [] if c.get("steps", 0) <= resumed)
    return seconds


def frame(paths: list[Path]) -> pd.DataFrame:
    """One row per done record under `paths`: see `records_frame`."""
    return records_frame(read(path) if path is not None else None for path in paths)


def records_frame(records) -> pd.DataFrame:
    """One row per done record that kept its time: task, job (the label: `teacher`, `kdfd`,
    `internal-kd[schedule=pid]`, ...), seconds."""
    rows = []
    for record in records:
        if record and record.done and record.wall_seconds is not None:
            rows.append({"task": record.task, "job": record.label or record.method,
                         "seconds": seconds_of(record)})
    return pd.DataFrame(rows, columns=["task", "job", "seconds"])


def per_kind(df: pd.DataFrame) -> pd.DataFrame:
    """Median seconds of one job of each kind (rows: job label, columns: task)."""
    if df.empty:
        return pd.DataFrame()
    return df.pivot_table(index="job", columns="task", values="seconds", aggfunc="median")


def span(seconds: float, hours: str) -> str:
    """`1.2 job-hours`, or under 6 minutes, where one decimal of hours says 0.0, `4 job-minutes` (`hours`: the
    unit's name in hours: `job-hours` or `wall-clock hours`)."""
    if seconds >= 360:
        return f"{seconds / 3600:.1f} {hours}"
    n = max(1, round(seconds / 60))
    return f"{n} {hours.replace('hours', 'minute' if n == 1 else 'minutes')}"


def markdown(df: pd.DataFrame, side_by_side: int = 2) -> list[str]:
    """The report's cost section: the median seconds per job kind and task, and the run's totals."""
    if df.empty:
        return ["No done record carries its wall-clock time."]
    total = df.seconds.sum()
    return [f"{len(df)} done job{'s' if len(df) != 1 else ''} took {span(total, 'job-hours')} in all: about "
            f"**{span(total / side_by_side, 'wall-clock hours')} with {side_by_side} jobs side by side** (the "
            "protocol's setting: 2 CPU cores, one "
            "thread per job; each job's time as measured, so one that shared its cores with other work counts that "
            "slowdown). Median seconds of one job, per kind and task:", "",
            per_kind(df).map(lambda v: "-" if pd.isna(v) else f"{v:.0f}").to_markdown(stralign="right"), ""]


def kind(label: str) -> str:
    """A job's cost kind: its method (`internal-kd[schedule=pid]` -> `internal-kd`): grid points of one method cost
    about the same, and a label's grid part depends on the suite that ran the job."""
    return label.split("[", 1)[0]


def fitted(df: pd.DataFrame) -> dict[tuple[str, str], float]:
    """(kind, task) -> seconds of one job: the measured median where the pair ran, else exp(a_kind + b_task) from a
    least-squares fit of log median seconds = a_kind + b_task over the pairs that ran (a kind costs the same factor
    more on every task). Pairs whose kind or task never ran are absent."""
    med = df.assign(kind=df.job.map(kind)).groupby(["kind", "task"]).seconds.median()
    kinds, tasks = sorted(med.index.unique(0)), sorted(med.index.unique(1))
    design = np.zeros((len(med), len(kinds) + len(tasks) - 1))
    for row, (k, t) in enumerate(med.index):
        design[row, kinds.index(k)] = 1.0
        if tasks.index(t):  # the first task is the reference: its b is 0
            design[row, len(kinds) + tasks.index(t) - 1] = 1.0
    coef = np.linalg.lstsq(design, np.log(med.to_numpy()), rcond=None)[0]
    b = dict(zip(tasks, [0.0, *coef[len(kinds):]]))
    out = {(k, t): float(np.exp(coef[i] + b[t])) for i, k in enumerate(kinds) for t in tasks}
    return {**out, **{key: float(v) for key, v in med.items()}}


def to_finish(df: pd.DataFrame, left: list[tuple[str, str]], side_by_side: int = 2) -> list[str]:
    """The estimate (Markdown) of what the jobs not yet run ((task, label) pairs) will cost, from `fitted`: the
    report's and `bench status`'s."""
    if not left:
        return []
    jobs = "1 job is" if len(left) == 1 else f"{len(left)} jobs are"
    if df.empty:
        return [f"{jobs} not done yet; no done record carries a time to estimate their cost from."]
    cost = fitted(df)
    known = [cost[(kind(label), task)] for task, label in left if (kind(label), task) in cost]
    unknown = sorted({f"{kind(label)} on {task}" for task, label in left if (kind(label), task) not in cost})
    total = sum(known)
    return [f"{jobs} not done yet. At the measured median per kind and task, or where a kind has not run "
            "on a task, a fit of log seconds = kind + task over those medians: about "
            f"{span(total, 'job-hours')}, **{span(total / side_by_side, 'wall-clock hours')} more** with "
            f"{side_by_side} side by side" + (f" for {len(known)} of them; no estimate for "
                                               f"{', '.join(unknown)} (no done record of it keeps its time)."
                                               if unknown else "."), ""]


# ----------------------------------------------------------------------------------------- before the first record

# What one device trains per second, counted as 6 x parameters x padded tokens for a model that trains and 2 x for a
# forward pass alone (FLOP/s). cpu: one thread of the project's 2-core machine, as the glue-cpu records ran (MiniLM
# with grouped batches: about 1.6 s a teacher step on MRPC, i.e. 1.5e11 of these padded FLOP/s); gpu: an assumption
# until a GPU record exists, an A100-class GPU under bf16 autocast (BERT-base at batch 32 x 128: about 0.07 s a step).
THROUGHPUT = {"cpu": 1.5e11, "gpu": 3e13}
# (hidden size, layers) of the hub models the paper's suites name, for a plan made offline (no config.json here)
KNOWN_SHAPES = {"bert-base-uncased": (768, 12), "huawei-noah/TinyBERT_General_6L_768D": (768, 6)}
ASSUMPTION = ("steps = epochs x batches of the (capped) training set; a step costs 6 x parameters x batch x max_length "
              "FLOP per model that trains (its forward and backward) and 2 x for a forward alone (a frozen teacher's "
              "targets; an online teacher's second pass), at {rate} per device ({device}); evaluation, setup and the "
              "look-ahead passes of MetaDistil, ReptileDistil and LGTM are not counted")


def model_params(spec) -> float | None:
    """The transformer layers' parameters of the model a spec builds (embeddings left out: they cost no matmul),
    from its shape: 4 h^2 of attention and 2 h x intermediate of feed-forward per layer (intermediate 4 h for a
    pre-trained model). None for a hub model whose shape is not known here."""
    from kdfd.models import describe

    if spec.name == "tiny":
        return (spec.layers or 2) * (4 * spec.hidden**2 + 2 * spec.hidden * spec.intermediate)
    shape = describe(spec)
    if shape is not None:
        hidden, layers = shape[0], shape[1]
    elif spec.name in KNOWN_SHAPES:
        hidden, layers = KNOWN_SHAPES[spec.name]
        layers = spec.layers or layers
    else:
        return None
    return layers * 12 * hidden**2


def job_steps(job) -> int:
    """A job's training steps, from its config and its task's training-set size (no data read, no method imported)."""
    t, task = job.config.train, get_task(job.config.task)
    n = min(task.train_size, t.max_train_examples or task.train_size)
    n = max(1, round(n * (1 - t.holdout)))
    return t.epochs * -(-n // t.batch_size)


def job_seconds(job, device: str) -> float | None:
    """A job's training seconds on one `device` (cpu or gpu) by `ASSUMPTION`; None when a model's shape is unknown."""
    from kdfd.distiller import FROZEN, NONE, ONLINE

    c, needs = job.config, job.resolved.needs
    student = model_params(c.student)
    teacher = model_params(c.teacher) if needs.teacher != NONE else 0.0
    if student is None or teacher is None:
        return None
    per_token = 6 * student + {NONE: 0, FROZEN: 2, ONLINE: 8}[needs.teacher] * teacher
    if needs.teacher == FROZEN and c.train.teacher_cache:
        per_token = 6 * student  # the cached targets: the teacher's forward is paid once, not counted here
    return job_steps(job) * per_token * c.train.batch_size * c.train.max_length / THROUGHPUT[device]


def rate(device: str) -> str:
    return f"{THROUGHPUT[device] / 1e12:g} TFLOP/s"


def time_limit(jobs, device: str = "gpu") -> int:
    """A SLURM time limit for the jobs' tasks, in minutes: the longest job's `job_seconds` with half again for
    evaluation and setup, rounded up to 30 minutes (GPU suites' `[slurm] time`; tests/benchmarks/test_cost.py)."""
    longest = max(job_seconds(j, device) or 0.0 for j in jobs)
    return max(30, 30 * math.ceil(1.5 * longest / 60 / 30))


@dataclass
class Estimate:
    """What jobs not yet run will cost on one device each: seconds in all, how many jobs were priced from done
    records (`fitted`) and how many from step counts (`job_seconds`), and the kinds of those left unpriced."""

    seconds: float
    from_records: int
    from_steps: int
    unpriced: list[str]


def estimate(jobs, done: pd.DataFrame, device: str) -> Estimate:
    """Price `jobs`: a job whose kind and task the done records cover (`fitted`: measured medians and their fit) at
    that; any other by its step count (`job_seconds`)."""
    fit = fitted(done) if not done.empty else {}
    seconds, measured, counted, unpriced = 0.0, 0, 0, set()
    for job in jobs:
        key = (kind(job.label), job.config.task)
        if key in fit:
            seconds, measured = seconds + fit[key], measured + 1
            continue
        s = job_seconds(job, device)
        if s is None:
            unpriced.add(f"{key[0]} on {key[1]}")
        else:
            seconds, counted = seconds + s, counted + 1
    return Estimate(seconds, measured, counted, sorted(unpriced))
