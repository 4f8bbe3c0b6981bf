"""The method registry: `load_methods()` imports kdfd's method, every module of baselines/ and the methods of installed
packages (entry points); importing the runner registers nothing."""

import subprocess
import sys

from kdfd.registry import load_methods
from tests.benchmarks.helpers import bench, records
from tests.conftest import ROOT
from tests.method_package import env_with, pip_install, write_dist_info, write_package, write_pyproject


def test_every_module_of_baselines_and_kdfds_method_are_loaded():
    modules = {cls.__module__ for cls in load_methods().values()}
    files = {f"baselines.{p.stem}" for p in (ROOT / "baselines").glob("*.py") if p.stem != "__init__"}
    assert files and files <= modules and "kdfd.kdfd" in modules


def test_importing_the_runner_registers_no_method():
    code = ("import benchmarks.cli, benchmarks.runner, benchmarks.suite, baselines\n"
            "from kdfd.registry import METHODS\nprint(sorted(METHODS))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "[]", (out.stdout, out.stderr)


def test_a_method_of_an_installed_package_runs_on_smoke_and_is_listed(tmp_path):
    # a real pip install, into a folder of its own: the shared environment never sees the throwaway package, and
    # deleting the folder uninstalls it
    source, site = tmp_path / "src", tmp_path / "site"
    write_package(source, "lab_pip", "lab-pip")
    write_pyproject(source, "lab_pip", "lab-pip")
    installed = pip_install(source, site)
    assert installed.returncode == 0, installed.stderr
    assert (site / "lab_pip" / "method.py").is_file() and list(site.glob("lab_pip-0.1.dist-info"))
    env = env_with(site)

    listed = bench("list", env=env)
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if "lab-pip" in line)
    assert "lab_pip.method" in row and "none" in row

    results = tmp_path / "results"
    out = bench("run", "--suite", "smoke", "--tasks", "synth-pair", "--methods", "lab-pip", "--results", str(results),
                "--no-progress", env=env)
    assert out.returncode == 0, out.stderr
    recs = records(results, "lab-pip")
    assert [r.task for r in recs] == ["synth-pair"]
    assert all(r.status == "done" and set(r.method_code["modules"]) == {"lab_pip.method", "lab_pip.loss",
                                                                                "kdfd.losses"} for r in recs)
    # the report of the suite it ran on shows it, in the terminal's every-method table too
    report = bench("report", "--suite", "smoke", "--tasks", "synth-pair", "--results", str(results), "--out",
                   str(tmp_path / "reports"), env=env)
    assert report.returncode == 0, report.stderr
    assert "lab-pip" in report.stdout, report.stdout
    assert "lab-pip" in (tmp_path / "reports" / "smoke" / "report.md").read_text()
    # without the package on the path, the method is unknown again: nothing of it was left behind
    gone = bench("run", "--suite", "smoke", "--methods", "lab-pip", "--dry-run")
    assert gone.returncode == 2 and "unknown method 'lab-pip'" in gone.stderr


def test_an_entry_point_that_does_not_load_is_one_line_naming_it(tmp_path):
    write_dist_info(tmp_path, "lab_broken", "lab-broken = lab_broken_missing.method")
    out = bench("list", env=env_with(tmp_path))
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    [line] = out.stderr.strip().splitlines()
    assert "'lab-broken'" in line and "lab_broken 0.1" in line and "ModuleNotFoundError" in line, line
