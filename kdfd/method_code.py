"""A method's code fingerprint: each record keeps the fingerprint of the code that made it, so that a method whose
math changed without a `version` bump cannot hide behind its old records (the runner stops before any job, naming it;
`benchmarks.runner.check_code`).

Which files count: the method's own code and the loss code it calls.
- The module of the method's class and of each base class below `Distiller` (kdfd-ae: baselines/kdfd_ae.py and
  kdfd/kdfd.py), and of its `Params` dataclass and its bases (kdfd's `NoParams` aside: framework, below).
- The modules those import, followed import by import, that hold method code: kdfd's loss modules (`METHOD_CODE`:
  losses.py, vae.py, kdfd.py) and any module of `baselines` or of the method's own top-level package (reptile-distil
  takes its soft loss from baselines/metadistil.py; a lab package's helpers).
- Not the rest of kdfd (distiller.py's interface and StudentFunction, models.py's projections and pooling, the engine,
  the data): the framework every method runs in. A change there touches every method alike, is the project's change
  (each record keeps its git commit) rather than one method's, and counted here it would call every record stale at
  each new hook of the interface. Nor third-party packages (the record keeps their versions).

How: a module's hash is sha256 of its syntax tree written out canonically (node types and non-empty fields, no
positions) with docstrings dropped: whitespace, comments, docstrings and line wrapping leave it as it is, any change
of code (a constant, an operator, a renamed variable) changes it. Empty fields are left out: the fields newer Pythons
add (3.12's type_params) are empty in code that does not use them, so one source keeps one hash across versions
(`ast.dump`, whose output changed in 3.13, is not used). A method's fingerprint hashes its (module, hash) pairs.
Both are computed once per process, at the first ask (the runner's check before its first job), so a file edited
while a long run goes on does not relabel the code the run had already imported.

A method whose own module has no source file (built in memory) has no fingerprint (None), like the records written
before fingerprints existed: both are accepted as they are.
"""

from __future__ import annotations

import ast
import datetime as dt
import hashlib
import importlib.util
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ConfigError
from .files import atomic_write

if TYPE_CHECKING:  # the method classes import torch; `bench status` checks records from the source files alone
    from .distiller import Distiller

METHOD_CODE = ("kdfd.losses", "kdfd.vae", "kdfd.kdfd")
METHOD_PACKAGES = ("baselines",)
FIELD = "method_code"  # the record's field: {"fingerprint": ..., "modules": {module: hash}}

_modules: dict[str, str | None] = {}
_codes: dict[type, dict | None] = {}


def of(cls: type[Distiller]) -> dict | None:
    """{"fingerprint": 16 hex digits, "modules": {module name: 16 hex digits}} of a method class, or None when one of
    its own modules has no source file."""
    if cls not in _codes:
        _codes[cls] = _compute(cls)
    return _codes[cls]


def _compute(cls: type[Distiller]) -> dict | None:
    from .distiller import Distiller

    own = [c.__module__ for c in cls.__mro__ if issubclass(c, Distiller) and c is not Distiller]
    own += [c.__module__ for c in cls.Params.__mro__ if c is not object]
    own = [m for m in own if m.split(".")[0] != "kdfd" or m in METHOD_CODE]  # NoParams lives in the framework
    return _follow(own, cls.__module__.split(".")[0], _source, _is_package)


def _follow(own: list[str], top: str, source_of, is_package) -> dict | None:
    """The fingerprint of modules `own` and the method code they import, followed import by import."""
    hashes: dict[str, str] = {}
    todo = list(dict.fromkeys(own))
    while todo:
        name = todo.pop()
        if name in hashes:
            continue
        source = source_of(name)
        if source is None:
            if name in own:
                return None
            continue
        tree = ast.parse(source)
        hashes[name] = module_hash(tree)
        todo += [m for m in imported(tree, name, is_package(name)) if counts(m, top) and m not in hashes]
    blob = json.dumps(sorted(hashes.items()), separators=(",", ":"))
    return {"fingerprint": hashlib.sha256(blob.encode()).hexdigest()[:16], "modules": dict(sorted(hashes.items()))}


def counts(module: str, top: str) -> bool:
    """Whether an imported module is method code (see the module docstring)."""
    first = module.split(".")[0]
    return module in METHOD_CODE or first in METHOD_PACKAGES or (first == top and top != "kdfd")


def imported(tree: ast.Module, module: str, is_package: bool) -> list[str]:
    """The module names an import statement of `module` may bring in: `import a.b` -> a.b; `from a import b` -> a and
    a.b (b may be a module); relative imports resolved against `module`'s package."""
    package = module if is_package else module.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                try:
                    base = importlib.util.resolve_name("." * node.level + base, package)
                except ImportError:
                    continue
            out += [base, *(f"{base}.{a.name}" for a in node.names if a.name != "*")]
    return list(dict.fromkeys(out))


def module_hash(tree: ast.Module) -> str:
    """16 hex digits of the canonical form of a parsed module, docstrings left out."""
    out: list[str] = []
    _canonical(tree, out)
    return hashlib.sha256("".join(out).encode()).hexdigest()[:16]


_DOCUMENTED = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def _canonical(node, out: list[str]) -> None:
    if isinstance(node, ast.AST):
        out.append(type(node).__name__ + "(")
        for name in node._fields:
            value = getattr(node, name, None)
            if name == "body" and isinstance(node, _DOCUMENTED) and value and _is_docstring(value[0]):
                value = value[1:]
            if value is None or (isinstance(value, list) and not value):
                continue
            out.append(name + "=")
            _canonical(value, out)
            out.append(";")
        out.append(")")
    elif isinstance(node, list):
        out.append("[")
        for item in node:
            _canonical(item, out)
            out.append(",")
        out.append("]")
    else:
        out.append(repr(node))


def _is_docstring(stmt) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)


def _spec(name: str):
    module = sys.modules.get(name)
    if module is not None:
        return getattr(module, "__spec__", None)
    try:
        return importlib.util.find_spec(name)
    except (ImportError, ValueError, AttributeError):  # `from a import b` where b is a name, not a module
        return None


def _is_package(name: str) -> bool:
    spec = _spec(name)
    return spec is not None and spec.submodule_search_locations is not None


def _source(name: str) -> str | None:
    """A module's source text (read once per process), or None when it has no .py file."""
    if name not in _modules:
        spec = _spec(name)
        origin = getattr(spec, "origin", None) if spec is not None else None
        text = None
        if origin and origin.endswith(".py"):
            try:
                text = Path(origin).read_text(encoding="utf-8")
            except OSError:
                text = None
        _modules[name] = text
    return _modules[name]


def code_from_source(recorded: dict) -> dict | None:
    """The code now of the modules a record's fingerprint names, read from their files by path (nothing imported,
    so no torch): those modules and the method code they import now, as `of` follows them. None when one of
    them has no source file any more (deleted or renamed: the record's code is gone)."""
    modules = list(recorded.get("modules", {}))
    top = next((m.split(".")[0] for m in modules if m.split(".")[0] not in ("kdfd", *METHOD_PACKAGES)), "kdfd")
    return _follow(modules, top, _source_by_path, lambda name: _file_by_path(name)[1])


def _file_by_path(name: str) -> tuple[Path | None, bool]:
    """A module's .py file and whether it is a package, found from its top-level package's folder: only the top level
    is looked up (`find_spec` of a dotted name would run its parents' `__init__`)."""
    top, *rest = name.split(".")
    spec = _spec(top)
    if spec is None:
        return None, False
    if spec.submodule_search_locations is None:
        ok = not rest and spec.origin and spec.origin.endswith(".py")
        return (Path(spec.origin), False) if ok else (None, False)
    for location in spec.submodule_search_locations:
        base = Path(location).joinpath(*rest)
        if (base / "__init__.py").is_file():
            return base / "__init__.py", True
        if rest and base.with_suffix(".py").is_file():
            return base.with_suffix(".py"), False
    return None, False


def _source_by_path(name: str) -> str | None:
    path = _file_by_path(name)[0]
    try:
        return path.read_text(encoding="utf-8") if path is not None else None
    except OSError:
        return None


@dataclass(frozen=True)
class Change:
    """A method whose code changed since some of its done records, under the same version, and not accepted."""

    method: str
    version: str
    recorded: str  # the records' fingerprint
    code: str  # the code's fingerprint now
    modules: tuple[str, ...]  # the modules whose hash differs (or that were added or dropped)
    ids: tuple[str, ...]  # the ids of the records concerned

    def describe(self) -> str:
        n = len(self.ids)
        return f"{self.method} v{self.version} ({', '.join(self.modules)}; {n} done record{'s' * (n != 1)})"


def changes(records: list[dict], accepted: Path, by_source: bool = False) -> list[Change]:
    """The changes behind `records` (done records of one suite): each record of a method whose fingerprint differs
    from its code's now, unless that pair was accepted (the file `accepted`). Records without a fingerprint are
    accepted as they are. `by_source`: the code now is read from the recorded modules' files (`code_from_source`,
    no import: `bench status`), not from the method's class (the runner's check); a record whose modules are gone is
    a change."""
    from_source = {}

    def code_now(record: dict) -> dict | None:
        if by_source:
            key = json.dumps(record[FIELD], sort_keys=True)
            if key not in from_source:
                from_source[key] = code_from_source(record[FIELD]) or {"fingerprint": "gone", "modules": {}}
            return from_source[key]
        from .registry import get_method

        return of(get_method(record["method"]))

    known = load_accepted(accepted)
    groups: dict[tuple, list[dict]] = {}
    nows: dict[tuple, dict] = {}
    for record in records:
        kept = record.get(FIELD)
        if not kept:
            continue
        now = code_now(record)
        if now is None or now["fingerprint"] == kept["fingerprint"]:
            continue
        key = (record["method"], str(record.get("method_version")), kept["fingerprint"], now["fingerprint"])
        if key not in known:
            groups.setdefault(key, []).append(record)
            nows[key] = now
    out = []
    for (method, version, recorded, code), recs in sorted(groups.items()):
        before, now = recs[0][FIELD].get("modules", {}), nows[(method, version, recorded, code)]["modules"]
        modules = tuple(m for m in sorted(set(before) | set(now)) if before.get(m) != now.get(m))
        out.append(Change(method, version, recorded, code, modules, tuple(sorted(r["id"] for r in recs))))
    return out


def message(found: list[Change]) -> str:
    """The one line that stops a run."""
    return (f"code changed since done records without a version bump: {'; '.join(c.describe() for c in found)}. "
            "Bump the method's `version` to rerun its jobs, or pass --accept-code-changes to keep the records as "
            "they are")


def load_accepted(path: Path) -> set[tuple[str, str, str, str]]:
    """(method, version, recorded fingerprint, code fingerprint) of every change accepted under a results root."""
    try:
        entries = json.loads(Path(path).read_text())["accepted"]
        return {(e["method"], e["version"], e["recorded"], e["code"]) for e in entries}
    except FileNotFoundError:
        return set()
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"{path} is unreadable ({type(e).__name__}); it lists the accepted code changes: fix or "
                          "delete it (then accept them again with --accept-code-changes)") from None


def accept(path: Path, found: list[Change]) -> None:
    """Keep `found` as accepted (atomically): later runs and `bench status` take those records as current."""
    path = Path(path)
    load_accepted(path)  # an unreadable file stops here, with its one line
    entries = json.loads(path.read_text())["accepted"] if path.exists() else []
    at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    entries += [{"method": c.method, "version": c.version, "recorded": c.recorded, "code": c.code,
                 "modules": list(c.modules), "records": len(c.ids), "accepted": at} for c in found]
    text = json.dumps({"accepted": entries}, indent=1)
    atomic_write(path, lambda f: f.write(text.encode()))
