"""Suite files, and a suite's expansion kept as data so that reading results needs neither the methods nor torch.

Expanding a suite (benchmarks.suite.load) needs each method's class (its typed parameters, whether it starts from a
fine-tuned teacher), and the method modules import torch. `bench run` keeps the expansion it ran under its results
root (`store.suite_cache_path`): per job its id, label, config and teacher job. `bench status` and `bench report`
take it from there when it is fresh and import the methods only when it is not (none kept under the root, or one
kept by other code).

Fresh means made from the same inputs: the key hashes the suite file as read (its `base` merged in), the command
line's task, method and seed lists, the bytes of every file the expansion runs (kdfd's and baselines' modules, the
suite code here, an installed method package's files, found without importing them) and the entry points naming
methods. A cached job whose config no longer hashes to its id is not used either. Nothing here imports torch.

Damaged (it does not parse, or its text no longer matches its checksum: `store.read_expansion`), an expansion is
never used: the reader expands the suite itself, `bench status`, `report` and `results` name the file, and the next
`bench run` of the suite moves it aside (`.corrupt`) and keeps a new one.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.util
import json
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

import tomllib

from kdfd.config import ModelSpec, RunConfig, TrainConfig
from kdfd.errors import ConfigError, one_of
from kdfd.registry import method_facts

from . import store
from .selection import Selection

SUITES_DIR = Path(__file__).resolve().parent / "suites"
TOP_KEYS = ("base", "description", "tasks", "seeds", "methods", "data_source", "tokenizer", "teacher", "student",
            "train", "method", "slurm", "teacher_seeds", "arm", "select", "claims", "note", "paper")
FORMAT = 4  # sealed with its checksum from 4 on (store.SEALED_EXPANSIONS)
GROUP = "kdfd_bench.methods"  # kdfd.registry.GROUP (that module imports the method interface, and torch)
# the code an expansion runs: these packages' files whole, and the suite modules of this package
PACKAGES = ("kdfd", "baselines")
SUITE_CODE = ("suite.py", "suite_cache.py", "options.py")


def available() -> list[str]:
    return sorted(p.stem for p in SUITES_DIR.glob("*.toml"))


def suite_path(name: str) -> Path:
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
    too). Unknown top-level keys are errors naming the allowed ones."""
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None
    for key in raw:
        if key not in TOP_KEYS:
            raise ConfigError(f"{path}: unknown key {key!r} (allowed: {', '.join(TOP_KEYS)})")
    if "base" not in raw:
        return raw
    base = raw.pop("base")
    if not isinstance(base, str):
        raise ConfigError(f"{path}: base must be a suite name, got {base!r}")
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


# ------------------------------------------------------------------------------------------------------ the cache


@dataclass(frozen=True)
class CachedJob:
    """A job as a cached expansion gives it: what reading results needs (id, label, config, teacher job), not the
    method's class."""

    label: str
    config: RunConfig
    teacher: "CachedJob | None" = None

    @functools.cached_property
    def id(self) -> str:
        return self.config.hash()


@dataclass
class CachedSuite:
    """A suite as `benchmarks.suite.Suite` reads, from the cache; `methods`: name -> {"version", "scale", "defaults"}
    of every method registered when it was made (the report's rules per method)."""

    name: str
    path: Path
    description: str
    jobs: list[CachedJob]
    slurm: dict = dataclasses.field(default_factory=dict)
    methods: dict = dataclasses.field(default_factory=dict)
    select: "Selection | None" = None
    claims: list[str] | None = None


def key(name: str, tasks=None, methods=None, seeds=None) -> str:
    """16 hex digits naming an expansion's inputs (the module docstring)."""
    path = suite_path(name)
    blob = json.dumps({"format": FORMAT, "suite": read_raw(path), "tasks": tasks, "methods": methods, "seeds": seeds,
                       "code": _code_hash()}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@functools.cache
def _code_hash() -> str:
    """sha256 of the files an expansion runs and of the method entry points (once per process)."""
    h = hashlib.sha256()
    eps = sorted(entry_points(group=GROUP), key=lambda e: (e.name, e.value))
    files = [Path(__file__).parent / f for f in SUITE_CODE]
    for top in (*PACKAGES, *sorted({e.value.split(":")[0].split(".")[0] for e in eps})):
        files += _files_of(top)
    for ep in eps:
        h.update(f"{ep.name}={ep.value}\n".encode())
    for f in files:
        h.update(f"{f}\n".encode())
        h.update(f.read_bytes() if f.is_file() else b"-")
    return h.hexdigest()


def _files_of(top: str) -> list[Path]:
    """The .py files of a top-level module or package, found without running it."""
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return []
    if spec is None:
        return []
    if spec.submodule_search_locations is None:
        return [Path(spec.origin)] if spec.origin and spec.origin.endswith(".py") else []
    return sorted(f for loc in spec.submodule_search_locations for f in Path(loc).rglob("*.py"))


def save(results: Path, suite, cache_key: str) -> Path:
    """Keep a suite's expansion (a benchmarks.suite.Suite) under `results`, atomically."""
    jobs = [{"id": j.id, "label": j.label, "config": dataclasses.asdict(j.config),
             "teacher": j.teacher.id if j.teacher is not None else None} for j in suite.jobs]
    data = {"format": FORMAT, "key": cache_key, "name": suite.name, "path": str(suite.path),
            "description": suite.description, "slurm": suite.slurm, "jobs": jobs,
            "methods": method_facts(), "select": dataclasses.asdict(suite.select) if suite.select else None,
            "claims": suite.claims}
    path = store.suite_cache_path(results, suite.name, cache_key)
    store.write_sealed(path, data)
    return path


def load(results: Path, name: str, tasks=None, methods=None, seeds=None) -> CachedSuite | None:
    """The cached expansion of suite `name` with these overrides under `results`, or None when there is no fresh one."""
    try:
        path = suite_path(name)
        cache_key = key(name, tasks, methods, seeds)
        data, _ = store.read_expansion(store.suite_cache_path(results, path.stem, cache_key))
    except (OSError, ValueError):
        return None
    if data is None or data.get("format") != FORMAT or data.get("key") != cache_key:
        return None
    try:
        jobs: dict[str, CachedJob] = {}
        for entry in data["jobs"]:
            teacher = jobs[entry["teacher"]] if entry["teacher"] is not None else None
            job = CachedJob(entry["label"], _config(entry["config"]), teacher)
            if job.id != entry["id"]:
                return None
            jobs[job.id] = job
        select = Selection(**data["select"]) if data.get("select") else None
    except (KeyError, TypeError, ValueError, ConfigError):
        return None
    return CachedSuite(path.stem, path, data["description"], list(jobs.values()), data["slurm"], data["methods"],
                       select, data.get("claims"))


def job_count(results: Path, name: str) -> int | None:
    """How many jobs suite `name` (the file's own lists) expands to, as its fresh cached expansion under `results`
    says; None when there is none. The jobs are counted, not rebuilt (`load` checks each one's id)."""
    try:
        cache_key = key(name)
        data = store.read_json(store.suite_cache_path(results, suite_path(name).stem, cache_key))
    except (OSError, ValueError):
        return None
    fresh = isinstance(data, dict) and data.get("format") == FORMAT and data.get("key") == cache_key
    return len(data["jobs"]) if fresh and isinstance(data.get("jobs"), list) else None


def _config(d: dict) -> RunConfig:
    d = dict(d)
    d["student"] = ModelSpec(**d["student"])
    d["teacher"] = ModelSpec(**d["teacher"]) if d["teacher"] is not None else None
    d["train"] = TrainConfig(**d["train"])
    return RunConfig(**d)
