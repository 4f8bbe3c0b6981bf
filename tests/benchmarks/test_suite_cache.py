"""A suite's cached expansion: `bench run` keeps it, `bench status` and `bench report` read results from it in a
process where torch cannot be imported, with the same tables and states as with torch; a cache made from other
inputs, or whose configs no longer give their ids, is not used."""

import json
import os
import subprocess
import sys

from benchmarks import cli, store, suite_cache
from benchmarks import suite as suites

from ..conftest import ROOT
from .helpers import NO_TORCH

WITHOUT_TORCH = NO_TORCH + """
import sys
from benchmarks.cli import main
code = main(sys.argv[1:])
assert "torch" not in sys.modules
sys.exit(code)
"""


def bench_without_torch(*args):
    return subprocess.run([sys.executable, "-c", WITHOUT_TORCH, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_status_and_report_read_a_real_run_without_torch(tmp_path):
    results, out = tmp_path / "results", tmp_path / "reports"
    assert cli.main(["run", "--suite", "smoke", "--tasks", "synth-single", "--results", str(results),
                     "--no-progress"]) == 0
    assert len(list((results / ".suites").glob("smoke-*.cache"))) == 1
    # vanilla-kd's record made by other code than there is now, same version: stale, told from the source files
    (path,) = (results / "synth-single" / "vanilla-kd").glob("s1-*.json")
    record = json.loads(path.read_text())
    record["method_code"]["modules"]["kdfd.losses"] = "0" * 16
    record["method_code"]["fingerprint"] = "0" * 16
    record.pop(store.SEAL)  # written by that other code, sealed as it would have been: stale, not damaged
    store.write(path, store.Record.from_dict(record))

    status = bench_without_torch("status", "--suite", "smoke", "--tasks", "synth-single", "--results", str(results))
    assert status.returncode == 0, status.stderr[-2000:]
    assert "stale" in status.stdout and "kdfd.losses" in status.stdout
    assert status.stdout.strip().splitlines()[-1] == "3 done, 1 stale"

    report = bench_without_torch("report", "--suite", "smoke", "--tasks", "synth-single", "--results", str(results),
                                 "--out", str(out / "without"))
    assert report.returncode == 0, report.stderr[-2000:]
    assert cli.main(["report", "--suite", "smoke", "--tasks", "synth-single", "--results", str(results),
                     "--out", str(out / "with")]) == 0
    without, with_ = out / "without" / "smoke", out / "with" / "smoke"
    names = sorted(p.name for p in with_.glob("*.*"))
    assert "table1.md" in names and "report.md" in names
    assert sorted(p.name for p in without.glob("*.*")) == names
    for name in names:
        a, b = (d.joinpath(name).read_text().splitlines() for d in (without, with_))
        if name == "report.md":  # its third line says when it was generated
            a, b = a[:2] + a[3:], b[:2] + b[3:]
        assert a == b, name
    assert "- `vanilla-kd` v1:" in (without / "report.md").read_text()  # the methods' rules, from the cache

    # a root `bench run` never filled: without torch, one line saying what is missing, exit 3, no traceback
    (tmp_path / "never-run").mkdir()  # (one that does not exist is named as such, exit 2: tests/test_bad_inputs.py)
    empty = bench_without_torch("status", "--suite", "smoke", "--results", str(tmp_path / "never-run"))
    assert empty.returncode == 3, empty.stderr[-2000:]
    assert "no current expansion" in empty.stderr and "torch" in empty.stderr and "Traceback" not in empty.stderr


def test_a_cache_is_used_only_for_the_inputs_it_was_made_from(tmp_path):
    suite = suites.load("smoke")
    suite_cache.save(tmp_path, suite, suite_cache.key("smoke"))
    cached = suite_cache.load(tmp_path, "smoke")
    assert [(j.id, j.label, j.config, j.teacher and j.teacher.id) for j in cached.jobs] == \
        [(j.id, j.label, j.config, j.teacher and j.teacher.id) for j in suite.jobs]
    assert (cached.name, cached.description, cached.slurm) == (suite.name, suite.description, suite.slurm)
    assert suite_cache.load(tmp_path, "smoke", seeds=[2]) is None  # other seeds: not this expansion
    assert suite_cache.load(tmp_path, "glue-cpu") is None

    (path,) = (tmp_path / ".suites").glob("smoke-*.cache")
    data = json.loads(path.read_text())
    data.pop(store.SEAL)
    data["jobs"][-1]["config"]["train"]["lr"] *= 2  # its config no longer gives its id (sealed anew: not damaged)
    store.write_sealed(path, data)
    assert suite_cache.load(tmp_path, "smoke") is None

