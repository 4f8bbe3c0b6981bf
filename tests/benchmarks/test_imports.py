"""The project's modules (kdfd, baselines, benchmarks) import one another without a circle: the graph of their
imports (module level and inside functions alike: an import moved into a function to dodge a circle still closes it
at run time; not those under `if TYPE_CHECKING:`, which never run) has no cycle, and each module of `benchmarks`
imports alone in a fresh interpreter. kdfd imports neither of the others; the runner knows nothing of SLURM; the SLURM
executor uses it."""

from __future__ import annotations

import ast
import graphlib
import importlib.util
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ..conftest import ROOT
from .helpers import NO_TORCH

PACKAGES = ("kdfd", "baselines", "benchmarks")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


FILES = {_module_name(p): p for top in PACKAGES for p in sorted((ROOT / top).glob("*.py"))}
MODULES = sorted(m for m in FILES if m.startswith("benchmarks."))  # benchmarks' modules, each imported alone


def _run_time_nodes(tree: ast.AST):
    """Every node of a parsed file but those under `if TYPE_CHECKING:`."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and ast.unparse(child.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
                todo += child.orelse
            else:
                todo.append(child)


def imports_of(module: str) -> set[str]:
    """The project modules a module imports, anywhere in its file but under `if TYPE_CHECKING:` (`import a.b`: a and
    a.b; `from a import b`: a, and a.b where b is a module; relative imports resolved against the module's package)."""
    path = FILES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = set()
    for node in _run_time_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                out |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = importlib.util.resolve_name("." * node.level + base, package)
            out |= {base, *(f"{base}.{a.name}" for a in node.names)}
    return (out & set(FILES)) - {module}


def graph() -> dict[str, set[str]]:
    return {m: imports_of(m) for m in FILES}


def reachable(g: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for dep in g[todo.pop()] - seen:
            seen.add(dep)
            todo.append(dep)
    return seen


def test_the_import_graph_of_the_project_has_no_cycle():
    g = graph()
    # sanity: the parser sees relative, absolute and function-level imports, and `from package import module`, and
    # leaves out those under TYPE_CHECKING (slurm's of the suite)
    slurm = g["benchmarks.slurm"]
    assert slurm >= {"benchmarks.runner", "kdfd.provenance"} and "benchmarks.suite" not in slurm
    assert {"kdfd.distiller", "kdfd.losses"} <= g["baselines.vanilla_kd"] and "kdfd.registry" in g["kdfd.distiller"]
    assert "kdfd.registry" in g["kdfd.method_code"]  # inside a function
    try:
        order = list(graphlib.TopologicalSorter(g).static_order())
    except graphlib.CycleError as e:
        raise AssertionError(f"import cycle among the project's modules: {' -> '.join(e.args[1])}") from None
    assert set(order) == set(FILES)


def test_the_registry_and_the_interface_do_not_import_each_other():
    g = graph()
    assert "kdfd.distiller" not in reachable(g, "kdfd.registry")


def test_kdfd_imports_neither_baselines_nor_benchmarks():
    g = graph()
    for module in (m for m in FILES if m.split(".")[0] == "kdfd"):
        assert {d.split(".")[0] for d in reachable(g, module)} <= {"kdfd"}, module


def test_the_runner_knows_nothing_of_slurm_and_the_suite_nothing_of_either():
    g = graph()
    runner, slurm, suite = "benchmarks.runner", "benchmarks.slurm", "benchmarks.suite"
    assert slurm not in reachable(g, runner) and slurm in reachable(g, "benchmarks.status")
    assert not reachable(g, suite) & {runner, slurm}
    assert not {m for m in reachable(g, "benchmarks.options") if m.startswith("benchmarks")}  # the lowest layer


def test_a_cycle_is_found():
    """The check itself: import circles (the job types importing the SLURM executor that takes them; the interface
    and the registry, each importing the other) are reported."""
    g = graph()
    for module, extra in (("benchmarks.expansion", "benchmarks.slurm"), ("kdfd.registry", "kdfd.distiller")):
        with pytest.raises(graphlib.CycleError):
            list(graphlib.TopologicalSorter({**g, module: g[module] | {extra}}).static_order())


def _import_alone(module: str) -> tuple[str, int, str]:
    out = subprocess.run([sys.executable, "-c", f"import {module}"], cwd=ROOT, capture_output=True,
                         text=True, timeout=600)
    return module, out.returncode, out.stderr[-2000:]


def test_each_module_imports_alone_in_a_fresh_interpreter():
    with ThreadPoolExecutor(4) as pool:
        failed = [(m, err) for m, code, err in pool.map(_import_alone, MODULES) if code != 0]
    assert not failed, failed


WITHOUT_TORCH = NO_TORCH + """
import sys
for module in sys.argv[1:]:
    __import__(module)
"""

# what reads results without training: the results layout and records, the run context, SLURM's accounting, the
# records as a DataFrame (bench results without --suite), suite files, a suite's expansion as data and its cache,
# `bench status` and `bench report` (tests/benchmarks/test_suite_cache.py runs both without torch), the source
# fingerprints, the method registry (read, not loaded)
TORCH_FREE = ("benchmarks.store", "benchmarks.options", "benchmarks.lock", "benchmarks.slurm", "benchmarks.results",
              "benchmarks.suite_file", "benchmarks.expansion", "benchmarks.suite_cache", "benchmarks.status",
              "benchmarks.report", "benchmarks.report_writer", "benchmarks.cli", "kdfd.config", "kdfd.method_code",
              "kdfd.registry")


def test_the_modules_that_only_read_results_import_without_torch():
    out = subprocess.run([sys.executable, "-c", WITHOUT_TORCH, *TORCH_FREE], cwd=ROOT, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    refused = subprocess.run([sys.executable, "-c", WITHOUT_TORCH, "benchmarks.runner"], cwd=ROOT,
                             capture_output=True, text=True, timeout=600)
    assert refused.returncode != 0 and "no torch here" in refused.stderr  # the blocker blocks
