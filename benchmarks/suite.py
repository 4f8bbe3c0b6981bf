"""Suites: short declarative TOML files expanded into jobs (seed x task x method x grid).

    base = "glue-cpu"               # optional: start from another suite; tables merge, other values replace
    description = "..."
    tasks = ["rte", "mrpc"]
    seeds = [1, 2, 3]
    methods = ["kdfd", "vanilla-kd", "finetune"]
    data_source = "auto"            # optional: auto | tsv | hf | synthetic
    tokenizer = "auto"              # optional
    paper = "kdfd"                  # optional: the paper its report is about (benchmarks.paper; default: the only one)
    [teacher]  ...                  # a kdfd.models.ModelSpec
    [student]  ...
    [train]    ...                  # a kdfd.config.TrainConfig
    [method.kdfd]                   # method parameters
    temperature = [1.0, 1.5]        # a list is a grid axis; axes expand to their cartesian product
    [method.kdfd.train]             # training settings for this method only (lists are axes too)
    lr = [1e-5, 3e-5, 5e-5]
    [method.prokt]
    seeds = [1, 2, 3]               # this method's seeds, in place of the suite's (`--seeds` replaces both)
    [method.bert-pkd.student]       # this method's own student model (BERT-PKD: the teacher's first k layers)
    layers = 6
    [slurm]                         # resources of one SLURM task: benchmarks.options.SlurmOptions
    partition = "gpu"

Each job comes out resolved (`kdfd.job.resolve`: its task, method class, typed parameters and needs, computed once
here); the runner, preflight and the engine take it as it is. Methods that start from a fine-tuned teacher get one
teacher fine-tuning job per (teacher model, task, seed, teacher training settings), shared by every job that needs
it and run before them.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from dataclasses import dataclass
from pathlib import Path

from kdfd.config import RunConfig, TrainConfig, build
from kdfd.data import SOURCES
from kdfd.distiller import params_dict, parse_params
from kdfd.errors import ConfigError
from kdfd.job import ResolvedJob, resolve
from kdfd.models import ModelSpec
from kdfd.registry import METHODS, get_method, load_methods
from kdfd.tasks import get_task

from . import paper as papers
from . import store
from .options import SlurmOptions
from .selection import Selection
from .suite_cache import SUITES_DIR, available, merge, read_raw, suite_path  # noqa: F401 (this module's names too)

LIST_FIELDS = {"tasks": str, "seeds": int, "methods": str}


@dataclass(frozen=True)
class Job:
    """One job of a suite: resolved once at expansion (its config, task, method class, typed parameters, needs), its
    label, and the teacher fine-tuning job it starts from."""

    resolved: ResolvedJob
    label: str  # `method[k=v,...]` for grid points, `teacher` for teacher fine-tuning
    teacher: "Job | None" = None

    @property
    def config(self) -> RunConfig:
        return self.resolved.config

    @functools.cached_property
    def id(self) -> str:
        return self.config.hash()


@dataclass
class Suite:
    name: str
    path: Path
    description: str
    jobs: list[Job]  # teacher jobs first, then method jobs; no two with the same id
    slurm: dict = dataclasses.field(default_factory=dict)  # the `[slurm]` table: benchmarks.options.SlurmOptions
    select: Selection | None = None  # the `[select]` table: tuning on held-out seeds (benchmarks.selection)
    claims: list[str] | None = None  # the pre-registered family of claims its report tests (benchmarks.verdicts)


def load(name: str, tasks=None, methods=None, seeds=None) -> Suite:
    """Read and expand a suite; `tasks`, `methods`, `seeds` replace the file's lists when given (`methods = ["all"]`:
    every registered method)."""
    if methods == ["all"]:
        methods = sorted(load_methods())
    path = suite_path(name)
    raw = read_raw(path)
    where = str(path)
    lists = {}
    for key, tp in LIST_FIELDS.items():
        value = {"tasks": tasks, "seeds": seeds, "methods": methods}[key] or raw.get(key)
        if (not isinstance(value, list) or not value
                or not all(isinstance(v, tp) and not isinstance(v, bool) for v in value)):
            raise ConfigError(f"{where}: {key} must be a non-empty list of {tp.__name__} values, got {value!r}")
        if key == "seeds" and min(value) < 0:  # NumPy's seeding refuses it: every job would fail
            raise ConfigError(f"{'--seeds' if seeds else where}: seed {min(value)} is not allowed (allowed: "
                              "integers >= 0)")
        lists[key] = value
    for t in lists["tasks"]:
        get_task(t)
    for m in lists["methods"]:
        get_method(m)
    source = raw.get("data_source", "auto")
    if source not in SOURCES:
        raise ConfigError(f"{where}: data_source {source!r} is not allowed (allowed: {', '.join(SOURCES)})")
    teacher = build(ModelSpec, raw.get("teacher"), f"{where} [teacher]") if "teacher" in raw else None
    student = build(ModelSpec, raw.get("student"), f"{where} [student]")
    student_raw = raw.get("student", {})
    method_tables = raw.get("method", {})
    for m in method_tables:
        get_method(m)

    teacher_seeds = seeds_of(raw.get("teacher_seeds"), f"{where} teacher_seeds")
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = {k: v for k, v in raw.get("train", {}).items() if k not in known}
    if unknown:  # named as the suite's own [train], not as the first method's that merges it
        build(TrainConfig, unknown, f"{where} [train]")
    rows = [(m, m, dict(method_tables.get(m, {}))) for m in lists["methods"]]
    parents = {}
    for arm, table in raw.get("arm", {}).items():
        table = dict(table)
        parent = table.pop("of", None)
        if parent is None:
            raise ConfigError(f"{where} [arm.{arm}]: missing key 'of' (the method this arm changes)")
        get_method(parent)
        if arm in METHODS:
            raise ConfigError(f"{where} [arm.{arm}]: an arm cannot take a method's name ({arm!r})")
        lists_in = [k for k, v in {**table, **table.get("train", {})}.items() if isinstance(v, list)
                    and k not in ("seeds", "tasks")]
        if lists_in:
            raise ConfigError(f"{where} [arm.{arm}]: {lists_in[0]} is a list; an arm runs at its parent's chosen "
                              "point with single values (give the grid to the parent method)")
        if parent not in lists["methods"]:
            continue
        merged = merge(dict(method_tables.get(parent, {})), table)  # the parent's tasks and seeds unless its own
        if seeds:
            merged.pop("seeds", None)
        parents[arm] = parent
        rows.append((arm, parent, merged))

    jobs: dict[str, Job] = {}
    for row, method, table in rows:
        what = f"{where} [{'arm' if row != method else 'method'}.{row}]"
        own_seeds = seeds_of(table.pop("seeds", None), what)
        method_seeds = lists["seeds"] if seeds or own_seeds is None else own_seeds
        own_tasks = table.pop("tasks", None)
        method_tasks = lists["tasks"] if tasks or own_tasks is None else [t for t in own_tasks if get_task(t)]
        method_student = student
        if "student" in table:
            method_student = build(ModelSpec, {**student_raw, **table.pop("student")}, f"{what} student")
        train_raw = {**raw.get("train", {}), **table.pop("train", {})}
        points = expand({**{f"train.{k}": v for k, v in train_raw.items()}, **table}, what)
        for point, label_items in points:
            train = build(TrainConfig, {k[6:]: v for k, v in point.items() if k.startswith("train.")},
                          f"{what} train")
            params = parse_params(get_method(method), {k: v for k, v in point.items() if not k.startswith("train.")},
                                  where)
            label = row + (f"[{','.join(f'{k}={v}' for k, v in label_items)}]" if label_items else "")
            for task in method_tasks:
                for seed in method_seeds:
                    seed_train = train
                    if teacher_seeds:  # the run seeds spread over the teachers, every method of a seed on one
                        seed_train = dataclasses.replace(
                            train, teacher_seed=teacher_seeds[(seed - 1) % len(teacher_seeds)])
                    cfg = RunConfig(task=task, method=method, seed=seed, student=method_student, teacher=teacher,
                                    params=params_dict(params), train=seed_train, data_source=source,
                                    tokenizer=raw.get("tokenizer", "auto"))
                    resolved = resolve(cfg, params)
                    teacher_job = None
                    if resolved.needs.needs_finetuned_teacher and not resolved.config.teacher.finetuned:
                        teacher_job = _teacher_job(resolved.config)
                        jobs.setdefault(teacher_job.id, teacher_job)
                        resolved = dataclasses.replace(
                            resolved, config=dataclasses.replace(resolved.config, teacher_job=teacher_job.id))
                    job = Job(resolved, label, teacher_job)
                    jobs.setdefault(job.id, job)
    select = None
    if "select" in raw:
        select = Selection.build(raw["select"], parents, where)
    elif raw.get("arm"):
        raise ConfigError(f"{where}: arms need a [select] table (the tuning seeds and split)")
    ordered = store.teachers_first(jobs.values())
    slurm_table = raw.get("slurm", {})
    build(SlurmOptions, slurm_table, f"{where} [slurm]")  # checked now, not at submission
    claims = raw.get("claims")
    if claims is not None and (not isinstance(claims, list) or not all(isinstance(c, str) for c in claims)):
        raise ConfigError(f"{where}: claims must be a list of claim ids, got {claims!r}")
    if "paper" in raw:  # checked now, not when the report is written
        if not isinstance(raw["paper"], str):
            raise ConfigError(f"{where}: paper must be a paper's name or folder, got {raw['paper']!r}")
        try:
            papers.load(raw["paper"], path.parent)
        except ConfigError as e:
            raise ConfigError(f"{where}: {e}") from None
    return Suite(path.stem, path, raw.get("description", ""), ordered, slurm_table, select, claims)


def seeds_of(value, where: str) -> list[int] | None:
    """A method table's own `seeds` list (None when it has none)."""
    if value is None:
        return None
    if (not isinstance(value, list) or not value
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        raise ConfigError(f"{where}: seeds must be a non-empty list of int values, got {value!r}")
    if min(value) < 0:
        raise ConfigError(f"{where}: seed {min(value)} is not allowed (allowed: integers >= 0)")
    return value


def _teacher_job(cfg: RunConfig) -> Job:
    """The fine-tuning job of cfg's teacher: method finetune on the teacher model, with the teacher's settings."""
    t = cfg.train
    # module_lr and teacher_seed are the students' settings: out of the teacher's config (and its id)
    tc = dataclasses.replace(t, lr=t.teacher_lr, epochs=t.teacher_epochs, teacher_cache=False, module_lr=None,
                             teacher_seed=None, max_train_examples=t.teacher_max_train_examples or t.max_train_examples,
                             holdout=t.holdout if t.teacher_holdout is None else t.teacher_holdout,
                             teacher_holdout=None)
    seed = cfg.seed if t.teacher_seed is None else t.teacher_seed
    tcfg = RunConfig(task=cfg.task, method="finetune", seed=seed, student=cfg.teacher, teacher=None, params={},
                     train=tc, data_source=cfg.data_source, tokenizer=cfg.resolved_tokenizer(), role="teacher")
    return Job(resolve(tcfg), "teacher")


def expand(table: dict, where: str) -> list[tuple[dict, list[tuple[str, object]]]]:
    """Cartesian product of the list-valued entries. Returns (values, the grid coordinates for the label)."""
    axes = {k: v for k, v in table.items() if isinstance(v, list)}
    for k, v in axes.items():
        if not v:
            raise ConfigError(f"{where}: grid axis {k!r} is empty (give at least one value)")
    fixed = {k: v for k, v in table.items() if k not in axes}
    out = []
    for combo in itertools.product(*axes.values()):
        point = dict(zip(axes, combo))
        label = [(k.removeprefix("train."), v) for k, v in point.items() if len(axes[k]) > 1]
        out.append(({**fixed, **point}, label))
    return out
