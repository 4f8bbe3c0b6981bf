"""Suite files: short declarative TOML files, read here without the methods (nor torch); `benchmarks.suite` expands
them into jobs (seed x task x method x grid).

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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from kdfd.config import build, read_toml
from kdfd.errors import ConfigError, one_of

SUITES_DIR = Path(__file__).resolve().parent / "suites"


@dataclass(frozen=True)
class SuiteFile:
    """The top-level keys of a suite file and their types. Its tables stay plain here: they merge with a base
    suite's before the expansion checks them against the models, training settings and methods."""

    base: str | None = None
    description: str = ""
    tasks: tuple[str, ...] | None = None
    seeds: tuple[int, ...] | None = None
    methods: tuple[str, ...] | None = None
    data_source: str = "auto"
    tokenizer: str = "auto"
    teacher: dict | None = None
    student: dict | None = None
    train: dict = field(default_factory=dict)
    method: dict[str, dict] = field(default_factory=dict)  # method name -> its parameters (and train, seeds, ...)
    slurm: dict = field(default_factory=dict)
    teacher_seeds: tuple[int, ...] | None = None
    arm: dict[str, dict] = field(default_factory=dict)  # arm name -> the method it changes (`of`) and how
    select: dict | None = None  # held-out selection: benchmarks.selection.Selection
    claims: tuple[str, ...] | None = None  # the claims its report tests as the family (benchmarks.verdicts)
    note: str | None = None
    paper: str | None = None


def available() -> list[str]:
    return sorted(p.stem for p in SUITES_DIR.glob("*.toml"))


def suite_path(name: str) -> Path:
    """A suite's file: `name` under SUITES_DIR, or a path ending in `.toml`."""
    if name.endswith(".toml"):
        path = Path(name)
        if not path.is_file():
            raise ConfigError(f"suite file {name!r} does not exist")
        return path
    path = SUITES_DIR / f"{name}.toml"
    if not path.is_file():
        raise ConfigError(one_of("suite", name, available()))
    return path


def read_raw(path: Path, chain: tuple[Path, ...] = ()) -> dict:
    """A suite file's table, with its `base` suite merged under it (tables merge key by key; any other value,
    lists included, replaces the base's; a `seeds` or `tasks` list replaces the base's method and arm tables' lists
    too). Each file's keys and their types are checked (`SuiteFile`)."""
    raw = read_toml(path, str(path))
    build(SuiteFile, raw, str(path))
    if "base" not in raw:
        return raw
    base = raw.pop("base")
    base_path = suite_path(base if not base.endswith(".toml") else str(path.parent / base))
    if base_path.resolve() in {p.resolve() for p in (*chain, path)}:
        raise ConfigError(f"{path}: base {base!r} makes a cycle")
    base_raw = read_raw(base_path, (*chain, path))
    for key in ("seeds", "tasks"):  # a suite's own list replaces every such list of its base (as --seeds, --tasks)
        if key in raw:
            for table in ("method", "arm"):
                base_raw[table] = {m: {k: v for k, v in t.items() if k != key}
                                   for m, t in base_raw.get(table, {}).items()}
    return merge(base_raw, raw)


def merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out

