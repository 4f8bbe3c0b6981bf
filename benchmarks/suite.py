"""Suite expansion: a suite file (`benchmarks.suite_file`) into its jobs (seed x task x method x grid), each checked
against its method's parameters now, not when it runs.

Methods that start from a fine-tuned teacher get one teacher fine-tuning job per (teacher model, task, seed, teacher
training settings), shared by every job that needs it and run before them. Expanding needs the methods' classes
(their typed parameters, what they need of a teacher), and so torch; the expansion it gives is plain data
(`benchmarks.expansion`), kept by `bench run` for what reads results (`benchmarks.suite_cache`).
"""

from __future__ import annotations

import dataclasses
import itertools

from kdfd.config import RunConfig, TrainConfig, build
from kdfd.data import SOURCES
from kdfd.distiller import params_dict, parse_params
from kdfd.errors import ConfigError
from kdfd.job import resolve
from kdfd.models import ModelSpec
from kdfd.registry import METHODS, get_method, load_methods, method_facts
from kdfd.tasks import get_task

from . import paper as papers
from .expansion import Job, Suite, teachers_first
from .options import SlurmOptions
from .selection import Selection
from .suite_file import merge, read_raw, suite_path

LIST_FIELDS = {"tasks": str, "seeds": int, "methods": str}


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
                    resolved = resolve(cfg, params)  # normalised by what the method needs, as ids always were
                    config, teacher_job = resolved.config, None
                    if resolved.needs.needs_finetuned_teacher and not config.teacher.finetuned:
                        teacher_job = _teacher_job(config)
                        jobs.setdefault(teacher_job.id, teacher_job)
                        config = dataclasses.replace(config, teacher_job=teacher_job.id)
                    job = Job(config, label, teacher_job)
                    jobs.setdefault(job.id, job)
    select = None
    if "select" in raw:
        select = Selection.build(raw["select"], parents, where)
    elif raw.get("arm"):
        raise ConfigError(f"{where}: arms need a [select] table (the tuning seeds and split)")
    slurm_table = raw.get("slurm", {})
    build(SlurmOptions, slurm_table, f"{where} [slurm]")  # checked now, not at submission
    if "paper" in raw:  # checked now, not when the report is written
        try:
            papers.load(raw["paper"], path.parent)
        except ConfigError as e:
            raise ConfigError(f"{where}: {e}") from None
    facts = method_facts()
    used = sorted({j.config.method for j in jobs.values()})
    return Suite(path.stem, path, raw.get("description", ""), teachers_first(jobs.values()), slurm_table, select,
                 raw.get("claims"), {m: facts[m] for m in used})


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
    return Job(resolve(tcfg).config, "teacher")


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
