"""The modules of `benchmarks` import one another without a circle: each imports alone in a fresh interpreter, and
the graph of their imports (module level and inside functions alike: an import moved into a function to dodge a
circle still closes it at run time) has no cycle. The runner knows nothing of SLURM; the SLURM executor uses it."""

from __future__ import annotations

import ast
import graphlib
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ..conftest import ROOT
from .helpers import NO_TORCH

PACKAGE = ROOT / "benchmarks"
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")


def imports_of(path: Path) -> set[str]:
    """The `benchmarks` modules a file imports, anywhere in it (`from . import x`, `from .x import y`,
    `from benchmarks.x import y`, `import benchmarks.x`)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                out |= {node.module.split(".")[0]} if node.module else {a.name for a in node.names}
            elif node.level == 0 and node.module == "benchmarks":
                out |= {a.name for a in node.names}
            elif node.level == 0 and (node.module or "").startswith("benchmarks."):
                out.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            out |= {a.name.split(".")[1] for a in node.names if a.name.startswith("benchmarks.")}
    return out & set(MODULES)


def graph() -> dict[str, set[str]]:
    return {m: imports_of(PACKAGE / f"{m}.py") for m in MODULES}


def reachable(g: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for dep in g[todo.pop()] - seen:
            seen.add(dep)
            todo.append(dep)
    return seen


def test_the_import_graph_of_benchmarks_has_no_cycle():
    g = graph()
    assert g["slurm"] >= {"runner", "suite"}  # sanity: the parser sees the package's own imports
    try:
        order = list(graphlib.TopologicalSorter(g).static_order())
    except graphlib.CycleError as e:
        raise AssertionError(f"import cycle among benchmarks' modules: {' -> '.join(e.args[1])}") from None
    assert set(order) == set(MODULES)


def test_the_runner_knows_nothing_of_slurm_and_the_suite_nothing_of_either():
    g = graph()
    assert "slurm" not in reachable(g, "runner") and "slurm" in reachable(g, "status")
    assert not reachable(g, "suite") & {"runner", "slurm"}
    assert not reachable(g, "options")  # the lowest layer: the run context and SLURM options


def test_a_cycle_is_found():
    """The check itself: the import circle this package had (suite -> slurm -> runner -> suite) is reported."""
    g = {**graph(), "suite": {"slurm"}}
    with pytest.raises(graphlib.CycleError):
        list(graphlib.TopologicalSorter(g).static_order())


def _import_alone(module: str) -> tuple[str, int, str]:
    out = subprocess.run([sys.executable, "-c", f"import benchmarks.{module}"], cwd=ROOT, capture_output=True,
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
# records as a DataFrame (bench results without --suite), a suite's cached expansion, `bench status` and
# `bench report` (tests/benchmarks/test_suite_cache.py runs both without torch), the source fingerprints
TORCH_FREE = ("benchmarks.store", "benchmarks.options", "benchmarks.lock", "benchmarks.slurm", "benchmarks.results",
              "benchmarks.suite_cache", "benchmarks.status", "benchmarks.report", "benchmarks.report_writer",
              "benchmarks.cli", "kdfd.config", "kdfd.fingerprint")


def test_the_modules_that_only_read_results_import_without_torch():
    out = subprocess.run([sys.executable, "-c", WITHOUT_TORCH, *TORCH_FREE], cwd=ROOT, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    refused = subprocess.run([sys.executable, "-c", WITHOUT_TORCH, "benchmarks.runner"], cwd=ROOT,
                             capture_output=True, text=True, timeout=600)
    assert refused.returncode != 0 and "no torch here" in refused.stderr  # the blocker blocks
