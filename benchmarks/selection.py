"""Configuration selection on a held-out split, the same for the runner, `bench status` and `bench report`.

A suite with a `[select]` table tunes its methods' grids on the first seeds and runs every other seed at the
chosen point only:

    [select]
    seeds = [1, 2]        # tuning seeds: every grid point of a method runs on them
    split = "heldout"     # what chooses: the held-out split of train ([train] holdout > 0); the dev set never does
    phases = [["kdfd", "vanilla-kd"], ["kdfd-no-vae"]]   # optional: the run's order, rows phase by phase
    ablations = ["kdfd-no-vae"]                          # optional: the arms the report shows as ablations

Per (row, task), where a row is a method or an arm (`[arm.NAME] of = "METHOD"`, which runs at its parent's chosen
point with its own overrides), the chosen point is the one with the best mean held-out score (the task's metrics
averaged, `kdfd.metrics.score`) over the tuning seeds, once every tuning job of the grid has a done or failed
record; a point with a failed tuning job is out; ties go to the first point in the grid's order. Until then the
row's other seeds and its arms are pending. A row without a grid needs no choice.

Pure functions of a suite's jobs (labels and configs) and the records under the results roots: nothing here imports
torch, so a cached expansion (benchmarks.suite_cache) is narrowed the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from kdfd.config import check_keys
from kdfd.errors import ConfigError
from kdfd.metrics import score
from kdfd.tasks import get_task

from .record_set import RecordSet
from .store import TEACHER

SPLITS = ("heldout",)


@dataclass(frozen=True)
class Selection:
    """A suite's `[select]` table, with the parent of each arm and the order of its phases."""

    seeds: list[int]
    split: str = "heldout"
    parents: dict[str, str] = field(default_factory=dict)  # arm row -> the method row whose choice it takes
    phases: list[list[str]] = field(default_factory=list)  # rows, phase by phase (rows in none come last)
    ablations: list[str] = field(default_factory=list)  # the arms that are ablations (the report's own table)

    @classmethod
    def build(cls, raw: dict, parents: dict[str, str], where: str) -> "Selection":
        check_keys(raw, ("seeds", "split", "phases", "ablations"), ("seeds",), f"{where} [select]")
        ablations = raw.get("ablations", [])
        if not isinstance(ablations, list) or not all(a in parents for a in ablations):
            raise ConfigError(f"{where} [select]: ablations must list arms of the suite, got {ablations!r}")
        phases = raw.get("phases")
        seeds = raw.get("seeds")
        if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool)
                                                                and s >= 1 for s in seeds):
            raise ConfigError(f"{where} [select]: seeds must be a non-empty list of seeds >= 1, got {seeds!r}")
        split = raw.get("split", "heldout")
        if split not in SPLITS:
            raise ConfigError(f"{where} [select]: split {split!r} is not allowed (allowed: {', '.join(SPLITS)}; "
                              "a configuration is never chosen on the dev set it is scored on)")
        phases = phases or []
        if not isinstance(phases, list) or not all(isinstance(p, list) and all(isinstance(r, str) for r in p)
                                                   for p in phases):
            raise ConfigError(f"{where}: phases must be a list of lists of method or arm names, got {phases!r}")
        return cls(list(seeds), split, dict(parents), [list(p) for p in phases], list(ablations))

    def parent(self, row: str) -> str:
        return self.parents.get(row, row)

    def phase(self, row: str) -> int:
        return next((i for i, rows in enumerate(self.phases) if row in rows), len(self.phases))


def row_of(job) -> str:
    """The job's row: its method, or its arm's name (the label up to its grid coordinates)."""
    return job.label.split("[", 1)[0]


def point_of(job) -> str:
    """The job's grid point: the label's coordinates (`lr=5e-05`), '' for a method without a grid."""
    return job.label[len(row_of(job)):]


@dataclass
class Choice:
    """The chosen point of one (row, task): `point` (None while pending or when every point failed), the mean
    held-out score in points of each point over the tuning seeds (None: a failed or missing tuning job), and how
    many tuning jobs are still to finish."""

    row: str
    task: str
    point: str | None
    scores: dict[str, float | None]
    waiting: int
    seeds: list[int]

    @property
    def budget(self) -> int:
        """Tuning runs spent: points x tuning seeds."""
        return len(self.scores) * len(self.seeds)


def held_score(task: str, record) -> float | None:
    """The record's held-out score in points, or None (not done, or no held-out metrics)."""
    if record is None or not record.done or not record.result.heldout_metrics:
        return None
    return 100 * score(get_task(task), record.result.heldout_metrics)


def choose(row: str, task: str, records: dict[str, list], seeds: list[int]) -> Choice:
    """The choice among `records`: point -> the tuning seeds' records (None where a job has none yet), in the grid's
    order. The dev metrics are never read."""
    scores, waiting = {}, 0
    for point, recs in records.items():
        waiting += sum(1 for r in recs if r is None or r.status not in ("done", "failed"))
        held = [held_score(task, r) for r in recs]
        scores[point] = None if any(h is None for h in held) else sum(held) / len(held)
    ranked = [p for p in records if scores[p] is not None]
    point = None
    if not waiting and ranked:
        point = max(ranked, key=lambda p: (scores[p], -list(records).index(p)))
    return Choice(row, task, point, scores, waiting, list(seeds))


def choices(jobs: list, select: Selection, records: RecordSet) -> dict[tuple[str, str], Choice]:
    """(method row, task) -> its Choice, for every method row of `jobs` with more than one grid point, from the
    tuning jobs' records (`RecordSet.find`: the first done one over its roots, else a failed one)."""
    grid: dict[tuple[str, str], dict[str, dict[int, object]]] = {}
    for job in jobs:
        row, c = row_of(job), job.config
        if row == TEACHER or row in select.parents or c.seed not in select.seeds:
            continue
        grid.setdefault((row, c.task), {}).setdefault(point_of(job), {})[c.seed] = job
    out = {}
    for (row, task), points in grid.items():
        if len(points) < 2:
            continue
        found = {p: [records.find(by_seed[s])[1] if s in by_seed else None for s in select.seeds]
                 for p, by_seed in points.items()}
        out[(row, task)] = choose(row, task, found, select.seeds)
    return out


def narrow(jobs: list, select: Selection | None, roots: list[Path]) -> tuple[list, list[Choice]]:
    """(the jobs to run or report now, the choices still pending). Tuning jobs stay; a row's other seeds, and its
    arms at every seed, stay at the chosen point only; teachers stay where a kept job needs them. Ordered: each
    teacher just before the first job that needs it, then by phase, seed (tuning seeds first), task and row."""
    if select is None:
        return jobs, []
    picked = choices(jobs, select, RecordSet(roots))  # read afresh: jobs finish between two calls
    kept = []
    for job in jobs:
        row = row_of(job)
        if row == TEACHER:
            continue
        choice = picked.get((select.parent(row), job.config.task))
        tuning = row not in select.parents and job.config.seed in select.seeds
        if choice is None or tuning or choice.point == point_of(job):
            kept.append(job)
    tasks = list(dict.fromkeys(j.config.task for j in jobs))
    rows = list(dict.fromkeys(row_of(j) for j in jobs))
    kept.sort(key=lambda j: (select.phase(row_of(j)), j.config.seed not in select.seeds, j.config.seed,
                             tasks.index(j.config.task), rows.index(row_of(j))))
    ordered, placed = [], set()
    for job in kept:
        if job.teacher is not None and job.teacher.id not in placed:
            placed.add(job.teacher.id)
            ordered.append(job.teacher)
        ordered.append(job)
    return ordered, [c for c in picked.values() if c.point is None and c.waiting]


def points(picked: dict[tuple[str, str], Choice], select: Selection) -> dict[tuple[str, str], str | None]:
    """(row, task) -> the grid point its seeds beyond the tuning ones run at (None while its choice is pending), for
    every gridded method row of `picked` (`choices`) and every arm of one: what a report shows for it."""
    out = {}
    for (row, task), choice in picked.items():
        out[(row, task)] = choice.point
        out.update({(arm, task): choice.point for arm, parent in select.parents.items() if parent == row})
    return out
