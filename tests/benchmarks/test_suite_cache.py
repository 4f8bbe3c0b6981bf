"""A suite's cached expansion: `bench run` keeps it, `bench status` and `bench report` read results from it in a
process where torch cannot be imported, with the same tables and states as with torch, also once a method file was
added; a cache made from other inputs (the suite, the code of a method it runs), or whose configs no longer give
their ids, is not used; a new method file changes no suite's key."""

import importlib
import json
import os
import subprocess
import sys

import pytest

from benchmarks import cli, store, suite_cache, suite_file
from benchmarks import suite as suites
from kdfd.registry import METHODS
from tests.method_package import env_with, write_dist_info, write_package

from ..conftest import ROOT
from .helpers import NO_TORCH, tiny_suite

WITHOUT_TORCH = NO_TORCH + """
import sys
from benchmarks.cli import main
code = main(sys.argv[1:])
assert "torch" not in sys.modules
sys.exit(code)
"""


def bench_without_torch(*args, env=None):
    return subprocess.run([sys.executable, "-c", WITHOUT_TORCH, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, env={**(env or os.environ), "OMP_NUM_THREADS": "1"})


KEYS = """
import json, sys
from benchmarks import suite_cache, suite_file
keys = {name: suite_cache.key(name) for name in suite_file.available()}
print(json.dumps({"keys": keys, "all": suite_cache.key("smoke", methods=["all"])}))
"""


def keys_with(env=None) -> dict:
    """Every suite's cache key (and smoke's under `--methods all`), computed in a fresh process seeing `env`."""
    out = subprocess.run([sys.executable, "-c", KEYS], cwd=ROOT, capture_output=True, text=True, timeout=600,
                         env=env or os.environ)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


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

    # a new method in a package of its own (as a new file in baselines/): the cache stays fresh, still no torch
    site = tmp_path / "site"
    write_package(site, "lab_new", "lab-new")
    write_dist_info(site, "lab_new", "lab-new = lab_new.method")
    env = env_with(site)
    status = bench_without_torch("status", "--suite", "smoke", "--tasks", "synth-single", "--results", str(results),
                                 env=env)
    assert status.returncode == 0, status.stderr[-2000:]
    assert status.stdout.strip().splitlines()[-1] == "3 done, 1 stale"
    report = bench_without_torch("report", "--suite", "smoke", "--tasks", "synth-single", "--results", str(results),
                                 "--out", str(out / "added"), env=env)
    assert report.returncode == 0, report.stderr[-2000:]

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
    assert (cached.name, cached.description, cached.slurm, cached.methods, cached.select, cached.claims) == \
        (suite.name, suite.description, suite.slurm, suite.methods, suite.select, suite.claims)
    assert sorted(suite.methods) == ["finetune", "kdfd", "vanilla-kd"]  # what its jobs run, the teachers' too
    assert all(j.resolved.config == j.config for j in cached.jobs)  # resolving a kept job gives it back as it is
    assert suite_cache.load(tmp_path, "smoke", seeds=[2]) is None  # other seeds: not this expansion
    assert suite_cache.load(tmp_path, "glue-cpu") is None

    (path,) = (tmp_path / ".suites").glob("smoke-*.cache")
    data = json.loads(path.read_text())
    data.pop(store.SEAL)
    data["jobs"][-1]["config"]["train"]["lr"] *= 2  # its config no longer gives its id (sealed anew: not damaged)
    store.write_sealed(path, data)
    assert suite_cache.load(tmp_path, "smoke") is None



def test_a_new_method_file_changes_no_suites_key(tmp_path):
    """The key names the suite file, the command line's lists and the framework code, not the method files there
    are: a new one leaves every suite's key as it was, but for `--methods all`, which runs it."""
    site = tmp_path / "site"
    write_package(site, "lab_other", "lab-other")
    write_dist_info(site, "lab_other", "lab-other = lab_other.method")
    before, after = keys_with(), keys_with(env_with(site))
    assert after["keys"] == before["keys"] and set(before["keys"]) == set(suite_file.available())
    assert after["all"] != before["all"]


@pytest.fixture
def lab_method(tmp_path):
    """A throwaway method package, imported here (its method registered) from a folder on sys.path."""
    site = tmp_path / "site"
    package = write_package(site, "lab_kept", "lab-kept")
    sys.path.insert(0, str(site))
    try:
        importlib.import_module("lab_kept.method")
        yield package
    finally:
        sys.path.remove(str(site))
        METHODS.pop("lab-kept", None)
        for name in [m for m in sys.modules if m.split(".")[0] == "lab_kept"]:
            del sys.modules[name]


def test_a_cache_is_stale_once_the_code_of_a_method_it_runs_changes(lab_method, tmp_path):
    """The code of the suite's methods is checked from their files: an edit of a method's loss helper makes the
    cache stale, a comment does not, and another file beside them changes nothing."""
    path = tmp_path / "lab.toml"
    path.write_text(tiny_suite(methods=("lab-kept",), methods_tables=""))
    suite = suites.load(str(path))
    suite_cache.save(tmp_path, suite, suite_cache.key(str(path)))
    assert suite_cache.load(tmp_path, str(path)) is not None
    assert list(suite.methods) == ["lab-kept"]

    (lab_method / "other.py").write_text("WEIGHT = 2.0\n")  # not imported by the method
    loss = lab_method / "loss.py"
    loss.write_text(loss.read_text() + "# a comment\n")
    assert suite_cache.load(tmp_path, str(path)) is not None
    assert suite_cache.job_count(tmp_path, str(path)) == len(suite.jobs)

    loss.write_text(loss.read_text().replace("WEIGHT = 1.0", "WEIGHT = 0.5"))
    assert suite_cache.load(tmp_path, str(path)) is None
    assert suite_cache.job_count(tmp_path, str(path)) == len(suite.jobs)  # counted as last expanded
