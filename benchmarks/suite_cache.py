"""A suite's expansion kept under its results root, so that reading results needs neither the methods nor torch.

Expanding a suite (`benchmarks.suite.load`) needs each method's class, and the method modules import torch. `bench
run` keeps the expansion it ran (`benchmarks.expansion.Suite`, as data) under its results root
(`store.suite_cache_path`); `bench status` and `bench report` take it from there when it is fresh, `bench list` its
number of jobs.

Fresh means that expanding again would give the same jobs. What can change an expansion:
- the suite file as read (its `base` merged in) and the command line's task, method and seed lists;
- the framework code that expands it: kdfd's modules other than method code, and the suite modules here
  (`FRAMEWORK`);
- the code of the methods its jobs run: their parameters, defaults, versions and needs live in their modules. Each
  method's code fingerprint (`kdfd.method_code`, the one a record keeps) is kept with the expansion and compared
  with the fingerprint of its modules' files now, read by path.
The first two name the file (`key`); the third is checked when it is read. A method file the suite does not run
touches neither, so adding one leaves every other suite's expansion fresh (`--methods all` aside: its key lists the
method modules there are). A kept job whose config no longer hashes to its id is not used either. Nothing here
imports torch.

Damaged (it does not parse, or its text no longer matches its checksum: `store.read_expansion`), an expansion is
never used: the reader expands the suite itself, `bench status`, `report` and `results` name the file, and the next
`bench run` of the suite moves it aside (`.corrupt`) and keeps a new one.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import pkgutil
from importlib.metadata import entry_points
from pathlib import Path

from kdfd import method_code
from kdfd.errors import ConfigError
from kdfd.registry import BASELINES, GROUP

from . import store
from .expansion import Suite
from .suite_file import read_raw, suite_path

FORMAT = 5  # the kept data's shape (sealed with its checksum from format 4 on: store.SEALED_EXPANSIONS)
# the framework code an expansion runs: kdfd's modules (its method code aside, which each method's fingerprint
# covers) and these modules of this package
FRAMEWORK = ("suite.py", "suite_file.py", "expansion.py", "suite_cache.py", "selection.py", "options.py")


def key(name: str, tasks=None, methods=None, seeds=None) -> str:
    """16 hex digits naming an expansion's inputs other than its methods' code (the module docstring)."""
    blob = json.dumps({"format": FORMAT, "suite": read_raw(suite_path(name)), "tasks": tasks, "methods": methods,
                       "seeds": seeds, "framework": _framework_hash(),
                       "all": _method_modules() if methods == ["all"] else None}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@functools.cache
def _framework_hash() -> str:
    """sha256 of the framework files an expansion runs (once per process)."""
    kdfd = Path(method_code.__file__).parent
    own = {f"{m.split('.')[-1]}.py" for m in method_code.METHOD_CODE if m.startswith("kdfd.")}
    files = [f for f in sorted(kdfd.glob("*.py")) if f.name not in own]
    files += [Path(__file__).parent / f for f in FRAMEWORK]
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.name}\n".encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def _method_modules() -> list[str]:
    """What `--methods all` runs, found without importing a method: the modules of the baselines package and the
    method entry points."""
    spec = importlib.util.find_spec(BASELINES)
    modules = [m.name for m in pkgutil.iter_modules(spec.submodule_search_locations or [])] if spec else []
    return sorted(modules) + sorted(f"{e.name}={e.value}" for e in entry_points(group=GROUP))


def save(results: Path, suite: Suite, cache_key: str) -> Path:
    """Keep a suite's expansion under `results` with its methods' code fingerprints, atomically."""
    from kdfd.registry import get_method

    code = {m: method_code.of(get_method(m)) for m in suite.methods}
    data = {"format": FORMAT, "key": cache_key, **suite.to_dict(), "code": code}
    path = store.suite_cache_path(results, suite.name, cache_key)
    store.write_sealed(path, data)
    return path


def load(results: Path, name: str, tasks=None, methods=None, seeds=None) -> Suite | None:
    """The kept expansion of suite `name` with these overrides under `results`, or None when there is no fresh one."""
    data = _fresh(results, name, tasks, methods, seeds)
    if data is None:
        return None
    try:
        return Suite.from_dict(data, suite_path(name))
    except (KeyError, TypeError, ValueError, ConfigError):
        return None


def job_count(results: Path, name: str) -> int | None:
    """How many jobs suite `name` (the file's own lists) expanded to when last kept under `results`, with the same
    file and framework; None when there is no such expansion. Its methods' code is not read (a method's code decides
    the jobs' configs, seldom their number): `bench list` counts every suite at once."""
    data = _kept(results, name)
    return len(data["jobs"]) if data is not None and isinstance(data.get("jobs"), list) else None


def _fresh(results: Path, name: str, tasks=None, methods=None, seeds=None) -> dict | None:
    """The kept expansion's data when its inputs are those of now, else None."""
    data = _kept(results, name, tasks, methods, seeds)
    code = data.get("code") if data is not None else None
    if not isinstance(code, dict) or not all(_unchanged(c) for c in code.values()):
        return None
    return data


def _kept(results: Path, name: str, tasks=None, methods=None, seeds=None) -> dict | None:
    """The data of the expansion kept under the key of now (suite file, lists, framework), or None."""
    try:
        cache_key = key(name, tasks, methods, seeds)
        data, _ = store.read_expansion(store.suite_cache_path(results, suite_path(name).stem, cache_key))
    except (OSError, ValueError, ConfigError):
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("key") != cache_key:
        return None
    return data


def _unchanged(code) -> bool:
    """Whether a method's kept code fingerprint is that of its modules' files now (None: a method without source
    files, which cannot be checked)."""
    if not isinstance(code, dict) or not isinstance(code.get("modules"), dict):
        return False
    now = method_code.code_from_source(code)
    return now is not None and now["fingerprint"] == code.get("fingerprint")
