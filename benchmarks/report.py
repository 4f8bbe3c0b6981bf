"""`bench report`: reads records (never trains), selects a config per (task, method), and builds the paper's tables
beside the paper's own numbers. The paper is data (`benchmarks.paper`): its focal method, swept parameters, and its
tables' columns, rows and the paper row each method fills (read by `paper_tables`); every method with records is in
the every-task table. `RULES` are printed in every report.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from kdfd.metrics import score
from kdfd.tasks import get_task

from . import paper_tables, store
from .expansion import Suite, teachers_first
from .selection import row_of

if TYPE_CHECKING:
    from .record_set import RecordSet

# printed in every report; {method}: the paper's focal method, as its prose names it
RULES = """\
- Only `done` records count; failed and unfinished jobs are listed, never averaged in.
- Records are grouped by (task, method, method version, config without the seed): two method versions or two
  configs are never mixed in one cell.
- Selection: a suite with a `[select]` table chooses each method's grid point on the held-out split of train
  (benchmarks.selection: the best mean held-out score over the tuning seeds), never on dev; an arm runs at its
  parent's point. Without one (the earlier suites), per (task, method) the group with the best mean dev score (the
  task's metrics averaged, GLUE's convention), as the paper's grid search did, over the seeds every group of the
  grid has run; ties go to the group with more seeds, then the first id. A grid picked so on the dev set it is
  scored on is optimistic, more so the closer its settings are (the "Selected configurations" table says which
  setting each cell is).
- Checkpoint: `last` (the final epoch, the default) or `best` (each run's best dev epoch: optimistic, dev is also the
  report's test set).
- Reference rows: `majority` is the best constant predictor on the dev labels (majority class; a constant score on
  STS-B, whose correlations are then 0): a student at or below it has learned nothing. `teacher` is the fine-tuned
  teacher the offline methods distil from.
- Cells: mean and sample standard deviation over seeds, with n. {method} against a baseline: the mean paired
  difference over the seeds both have, with the 95% interval of the verdicts (Student-t by default, `--interval`),
  marked * where it excludes zero."""

CHECKPOINTS = ("last", "best")
MAJORITY = paper_tables.MAJORITY
paper_numbers = paper_tables.paper_numbers  # (table, paper row, task, metric) -> the paper's value
NOT_METHODS = (store.TEACHER,)  # selected groups that are references, not students (the majority is not selected)


@dataclass
class Group:
    """The runs of one config over seeds."""

    task: str
    method: str  # `teacher` for teacher fine-tuning records
    version: str
    key: str  # hash of the config without seed
    label: str
    params: dict = field(default_factory=dict)  # the method's parameters
    runs: list[dict] = field(default_factory=list)  # {"seed", "metrics" (split -> metric -> value), "id", "path"}

    @property
    def scores(self) -> list[float]:
        task = get_task(self.task)
        return [score(task, r["metrics"]) for r in self.runs]

    def values(self, split: str, metric: str) -> list[float]:
        return [r["metrics"][split][metric] for r in self.runs if metric in r["metrics"].get(split, {})]


@dataclass
class Collected:
    groups: list[Group]
    failed: list[dict]  # {"task", "label", "seed", "error"}
    missing: list[dict]  # jobs of the suite with no record
    # (task, "majority") -> the constant predictor's one-run Group, from the dev labels a record saw: a reference
    # row of the tables, never a run (no record, no figure, no submission, no verdict)
    majority: dict[tuple[str, str], Group] = field(default_factory=dict)

    def majority_points(self) -> dict[str, float]:
        """task -> the majority class's dev score, in points."""
        return {task: 100 * g.scores[0] for (task, _), g in self.majority.items()}

    def with_references(self, selected: dict) -> dict:
        """The selected groups and the majority rows: what the tables show."""
        return {**selected, **self.majority}


def config_key(record: store.Record) -> str:
    """A hash of the record's config without what varies with the seed: the seed, its teacher job and the teacher's
    seed (a suite's `teacher_seeds` spread the run seeds over several teachers: one configuration still)."""
    cfg = dict(record.config)
    for k in ("seed", "teacher_job"):
        cfg.pop(k, None)
    cfg["train"] = {k: v for k, v in cfg.get("train", {}).items() if k != "teacher_seed"}
    return hashlib.sha256(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()[:12]


def checkpoint_metrics(record: store.Record, checkpoint: str) -> dict:
    result = record.result
    if checkpoint == "last" or not result.curves:
        return result.metrics
    task = get_task(record.task)
    return max((c["dev"]["student"] for c in result.curves), key=lambda m: score(task, m))


def collect(suite: Suite, records: RecordSet, checkpoint: str = "last") -> Collected:
    """The suite's records from the record set's roots (the first root holding a done record wins)."""
    if checkpoint not in CHECKPOINTS:
        raise ValueError(f"checkpoint {checkpoint!r} is not allowed (allowed: {', '.join(CHECKPOINTS)})")
    groups: dict[tuple, Group] = {}
    majority: dict[tuple, Group] = {}  # the constant predictor per task, from the dev labels a record saw
    failed, missing = [], []
    for job in suite.jobs:
        root, done = records.find(job)
        c = job.config
        if done is None or not done.done:
            entry = {"task": c.task, "label": job.label, "seed": c.seed, "id": job.id}
            if done is not None:
                failed.append({**entry, "error": (done.error or {}).get("message", "")})
            else:
                missing.append(entry)
            continue
        method = row_of(job)  # the method, or the arm's name: an arm is a row of its own
        key = (c.task, method, done.method_version, config_key(done))
        g = groups.setdefault(key, Group(c.task, method, done.method_version, key[3], job.label, dict(c.params)))
        g.runs.append({"seed": c.seed, "metrics": checkpoint_metrics(done, checkpoint), "id": job.id,
                       "path": store.record_path(root, job), "heldout": done.result.heldout_metrics})
        if done.result.majority_metrics and (c.task, MAJORITY) not in majority:
            majority[(c.task, MAJORITY)] = Group(c.task, MAJORITY, "-", "constant", "majority class of the dev labels",
                                                 runs=[{"seed": 0, "metrics": done.result.majority_metrics, "id": None,
                                                        "path": None}])
    return Collected(list(groups.values()), failed, missing, majority)


def widen(suite: Suite, records: RecordSet, tasks: list[str] | None = None, seeds: list[int] | None = None) -> Suite:
    """The suite and the jobs of every method it does not name whose records (`records`) are jobs of the suite
    as if it named that method too: the suite's tasks, seeds, models and training settings, its `[method.NAME]`
    table where it has one, else the method's defaults (what `bench run --suite S --methods NAME` runs). A method
    added after the suite was written so reaches the suite's report once it has run on it, while records of other
    settings under the same roots (another suite's models, a sweep's grid points) stay out of the tables.
    `tasks` / `seeds`: the command line's replacements, as the suite was loaded with."""
    import dataclasses

    from kdfd.errors import ConfigError

    from . import results, suite_cache

    own = {j.config.method for j in suite.jobs if j.config.role != store.TEACHER}
    suite_tasks = {j.config.task for j in suite.jobs}
    roots = records.roots
    recorded: dict[str, set[str]] = {}  # method -> ids of its records on the suite's tasks
    for root in roots:
        df = results.frame(records.under(root))
        if df.empty:
            continue
        df = df[(df["method"] != store.TEACHER) & df["task"].isin(suite_tasks) & ~df["method"].isin(own)]
        for method, ids in df.groupby("method")["id"]:
            recorded.setdefault(method, set()).update(ids)
    jobs = {j.id: j for j in suite.jobs}
    methods = dict(suite.methods)
    for method, ids in sorted(recorded.items()):
        try:
            extra = next(filter(None, (suite_cache.load(r, str(suite.path), tasks, [method], seeds) for r in roots)),
                         None)
            if extra is None:  # not run with these lists (no cached expansion): expanded here, with the methods
                from . import suite as suites

                extra = suites.load(str(suite.path), tasks=tasks, methods=[method], seeds=seeds)
        except ConfigError:  # not registered here, or not runnable with the suite's settings: none of it is the suite's
            continue
        if ids & {j.id for j in extra.jobs}:
            for job in extra.jobs:
                jobs.setdefault(job.id, job)
            methods.update(extra.methods)
    return dataclasses.replace(suite, jobs=teachers_first(jobs.values()), methods=methods)


def select(groups: list[Group], points: dict[tuple[str, str], str | None] | None = None
           ) -> dict[tuple[str, str], Group]:
    """(task, row) -> the group shown for it. Where `points` ((row, task) -> the grid point a suite's held-out
    selection chose, `benchmarks.selection.points`; None while pending) names one, the group at that point (none
    while pending); else the group with the best mean dev score, over the seeds all of that (task, row)'s groups
    have run (`best`)."""
    by_cell: dict[tuple[str, str], list[Group]] = {}
    for g in groups:
        by_cell.setdefault((g.task, g.method), []).append(g)
    out = {}
    for (task, row), mine in by_cell.items():
        if points is not None and (row, task) in points:
            point = points[(row, task)]
            chosen = [g for g in mine if point is not None and g.label == row + point]
            if chosen:
                out[(task, row)] = chosen[0]
            continue
        out[(task, row)] = best(mine)
    return out


def best(groups: list[Group]) -> Group:
    """The group with the best mean score over the seeds every one of `groups` has run (over each one's own seeds
    when they share none); ties go to more seeds, then the first config key. A grid whose seeds are not all in yet
    is so compared seed for seed (same seed: same teacher and data order), not a one-seed setting's score against
    another's mean over three."""
    shared = set.intersection(*({r["seed"] for r in g.runs} for g in groups))

    def mean_score(g: Group) -> float:
        kept = [s for r, s in zip(g.runs, g.scores) if not shared or r["seed"] in shared]
        return float(np.mean(kept))

    return min(sorted(groups, key=lambda g: g.key), key=lambda g: (-mean_score(g), -len(g.runs)))


# a table's columns as data (its .csv): one row per (row of the table, column of the paper's tables)
TABLE_COLUMNS = ["table", "method", "paper_row", "task", "split", "metric", "mean", "std", "n", "paper", "diff"]
# beside them in `table`'s frame: the column's header, the row's average (of a complete row) and, for a paper row
# no method here runs, why
TABLE_FRAME = [*TABLE_COLUMNS, "header", "average", "why"]
EVERY_COLUMNS = ["method", "paper_row", "task", "split", "metric", "header", "mean", "std", "n"]
COMPARISON_COLUMNS = ["task", "baseline", "n", "diff", "low", "high", "p_value", "significant"]


def cell(values: list[float], paper: float | None = None) -> dict:
    """mean and sample std (ddof 1) in percent (std None for a single seed, both None without values), n, the
    paper's value and our difference from it."""
    mean = std = None
    if values:
        v = 100 * np.asarray(values, dtype=float)
        mean, std = float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else None
    diff = None if mean is None or paper is None else mean - paper
    return {"mean": mean, "std": std, "n": len(values), "paper": paper, "diff": diff}


def table(name: str, selected: dict[tuple[str, str], Group], paper: dict,
          reference: paper_tables.Reference | None = None) -> pd.DataFrame:
    """One of the paper's tables (`reference`: the tables file, `paper_tables.load()` by default), as `TABLE_FRAME`
    rows: per row of the table that a method here fills, a cell per column and the average of the complete row;
    then the paper's rows no method here runs, with the reason."""
    reference = reference or paper_tables.load()
    spec = reference.tables[name]
    out = []
    for method, paper_row in spec.rows:
        cells = []
        for col in reference.columns:
            g = selected.get((col.task, method))
            p = paper.get((name, paper_row, col.task, col.paper_metric)) if paper_row else None
            cells.append((col, cell(g.values(col.split, col.metric) if g else [], p)))
        means = [c["mean"] for _, c in cells]
        avg = float(np.mean(means)) if all(m is not None for m in means) else None
        if any(m is not None for m in means) or paper_row:
            out += _rows(name, method, paper_row or "-", cells, avg)
    for paper_row, why in spec.not_run:
        cells = [(col, cell([], paper.get((name, paper_row, col.task, col.paper_metric)))) for col in reference.columns]
        # named by the paper's row, the reason beside it: a sentence is no method name (nor a table column's width)
        out += _rows(name, f"{paper_row} (not run)", paper_row, cells, None, why)
    return pd.DataFrame(out, columns=TABLE_FRAME)


def _rows(name: str, method: str, paper_row: str, cells: list, average: float | None, why: str | None = None
          ) -> list[dict]:
    return [{"table": name, "method": method, "paper_row": paper_row, "task": col.task, "split": col.split,
             "metric": col.metric, **c, "header": col.header, "average": average, "why": why} for col, c in cells]


def all_results(selected: dict[tuple[str, str], Group],
                reference: paper_tables.Reference | None = None) -> pd.DataFrame:
    """Every task and metric present (synthetic tasks too) and every method with a selected group, whether or not
    the paper's tables name it, as `EVERY_COLUMNS` rows: one per (method, task, split, metric), methods sorted,
    the columns in the tasks' order; `paper_row`: the paper's row the method fills in the first table that maps
    it."""
    reference = reference or paper_tables.load()
    columns = []
    for task in sorted({t for t, _ in selected}):
        t = get_task(task)
        for split in t.dev_files:
            columns += [(task, split, m, f"{task}{'/' + split if len(t.dev_files) > 1 else ''} {m}") for m in t.metrics]
    out = []
    for method in sorted({m for _, m in selected}):
        for task, split, metric, header in columns:
            g = selected.get((task, method))
            c = cell(g.values(split, metric) if g else [])
            out.append({"method": method, "paper_row": reference.paper_row(method) or "-", "task": task,
                        "split": split, "metric": metric, "header": header, "mean": c["mean"], "std": c["std"],
                        "n": c["n"]})
    return pd.DataFrame(out, columns=EVERY_COLUMNS)


def sweep_groups(groups: list[Group], params) -> list[tuple[str, str, str, dict]]:
    """(task, method, param, value -> Group) for every parameter in `params` with several values among a
    (task, method)'s groups; per value the group with the best mean score over seeds (the selection rule)."""
    out = []
    for task, method in sorted({(g.task, g.method) for g in groups}):
        mine = [g for g in groups if (g.task, g.method) == (task, method)]
        for param in params:
            values = {g.params.get(param) for g in mine} - {None}
            if len(values) < 2:
                continue
            at = {float(v): best([g for g in mine if g.params.get(param) == v]) for v in values}
            out.append((task, method, param, at))
    return out


def suite_sweeps(group_sets: list[list[Group]], params) -> list[tuple[str, str, str, dict]]:
    """`sweep_groups` of each suite's own groups, one list per suite: a sweep suite holds every parameter but its
    own at one setting, so another suite's runs at some value (a sweep of one parameter at another's default, a main
    suite's other gradient) never stand for that value in this sweep. The first suite that sweeps a (task,
    method, param) gives its points."""
    out, seen = [], set()
    for groups in group_sets:
        for t, m, p, points in sweep_groups(groups, params):
            if (t, m, p) not in seen:
                seen.add((t, m, p))
                out.append((t, m, p, points))
    return out


def sweeps(group_sets: list[list[Group]], params) -> list[tuple[str, str, str, dict]]:
    """(task, method, param, value -> seed scores) of `suite_sweeps`: what Fig. 5 draws."""
    return [(t, m, p, {v: g.scores for v, g in best.items()}) for t, m, p, best in suite_sweeps(group_sets, params)]


def comparisons(selected: dict[tuple[str, str], Group], against: str, interval: str = "t") -> pd.DataFrame:
    """`against` (the paper's focal method) against every other method, per task, on the task's selection score in
    points, paired by seed (`stats.paired` on the seeds both have; `interval` as there), as `COMPARISON_COLUMNS`:
    diff (mean of against - baseline), low, high (None under stats.MIN_INTERVAL_SEEDS pairs), p_value, n (pairs),
    significant (the interval excludes zero)."""
    from . import stats

    out = []
    for (task, method), g in sorted(selected.items()):
        if method == against or method in NOT_METHODS or (task, against) not in selected:
            continue
        r = stats.paired(seed_points(selected[(task, against)]), seed_points(g), interval=interval)
        out.append({"task": task, "baseline": method, "n": r.n, "diff": r.mean_diff, "low": r.ci_low,
                    "high": r.ci_high, "p_value": r.p_value,
                    "significant": r.ci_low is not None and (r.ci_low > 0 or r.ci_high < 0)})
    return pd.DataFrame(out, columns=COMPARISON_COLUMNS)


def seed_points(g: Group) -> dict[int, float]:
    """seed -> the run's selection score, in points."""
    return {int(r["seed"]): 100 * s for r, s in zip(g.runs, g.scores)}
