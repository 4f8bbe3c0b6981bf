"""The docs' "Adding a method" example (docs/methods.md) works as written: its code block, run as the file it
would be, registers a method that the runner trains end to end on the smoke suite."""

from __future__ import annotations

import re
import sys
import types

import pytest

from benchmarks import suite as suites
from benchmarks.options import RunContext
from benchmarks.runner import run_suite
from kdfd.registry import METHODS
from tests.conftest import ROOT


def readme_example() -> str:
    text = (ROOT / "docs" / "methods.md").read_text()
    section = text.split("## Adding a method", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.fixture
def my_kd():
    module = types.ModuleType("baselines.my_kd")
    sys.modules[module.__name__] = module  # as an imported file would be (dataclasses look their module up)
    try:
        exec(compile(readme_example(), "README.md", "exec"), module.__dict__)
        yield module
    finally:
        METHODS.pop("my-kd", None)
        sys.modules.pop(module.__name__, None)


def test_the_readme_method_registers_and_runs(my_kd, tmp_path):
    assert "my-kd" in METHODS
    path = tmp_path / "readme.toml"  # the smoke suite on a smaller budget: the method's plumbing is what is tested
    path.write_text('base = "smoke"\n[train]\nepochs = 1\nteacher_epochs = 1\nmax_train_examples = 256\n')
    suite = suites.load(str(path), tasks=["synth-single"], methods=["my-kd"])
    outcomes = run_suite(suite, RunContext(tmp_path, progress=False))
    assert [o.status for o in outcomes] == ["done", "done"]  # the teacher's fine-tuning, then my-kd
    record = outcomes[-1].record
    assert record.method == "my-kd" and set(record.result.curves[0]["loss"]) == {"student/total", "student/kd"}
