"""A method whose code changed without a version bump cannot hide behind its done records: `bench run` stops before
any job naming it, `--accept-code-changes` keeps the records (and is remembered), a version bump reruns the jobs,
and `bench status` shows such records as stale. The method is a throwaway package outside the repository."""

import json
from pathlib import Path

from benchmarks import runner, store
from benchmarks import suite as suites
from tests.method_package import env_with, write_dist_info, write_package

from .helpers import bench, records, tiny_suite, tiny_train

ROOT = Path(__file__).resolve().parents[2]


def test_a_changed_loss_stops_the_run_until_accepted_or_bumped(tmp_path):
    site = tmp_path / "site"
    package = write_package(site, "lab_weighted", "lab-ce")
    write_dist_info(site, "lab_weighted", "lab-ce = lab_weighted.method")
    env = env_with(site)
    suite = tmp_path / "lab.toml"
    suite.write_text(tiny_suite(methods=("lab-ce",), methods_tables="",
                                train=tiny_train(epochs=1, max_train_examples=64)))
    results = tmp_path / "results"

    def run(*extra):
        return bench("run", "--suite", str(suite), "--results", str(results), "--no-progress", *extra, env=env)

    first = run()
    assert first.returncode == 0, first.stderr
    [record] = records(results)
    assert record.status == "done" and record.method_version == "1"
    assert set(record.method_code["modules"]) == {"lab_weighted.method", "lab_weighted.loss", "kdfd.losses"}
    path = next(results.rglob("s1-*.json"))
    before = path.read_bytes()

    # comments, blank lines and docstrings are not code: the record stays current
    method = package / "method.py"
    method.write_text(method.read_text().replace('    @classmethod', '    # why: nothing\n\n    @classmethod')
                      .replace('"""A throwaway method', '"""Reworded: a throwaway method'))
    cosmetic = run()
    assert cosmetic.returncode == 0 and "skipped" in cosmetic.stdout, cosmetic.stderr

    # the loss changes, the version does not: stop before any job, one line naming the method and the module
    loss = package / "loss.py"
    loss.write_text(loss.read_text().replace("WEIGHT = 1.0", "WEIGHT = 0.5"))
    stopped = run()
    assert stopped.returncode == 2, (stopped.stdout, stopped.stderr)
    [line] = stopped.stderr.strip().splitlines()
    assert "lab-ce v1 (lab_weighted.loss; 1 done record)" in line and "--accept-code-changes" in line, line
    assert "version" in line and "Traceback" not in stopped.stderr
    assert path.read_bytes() == before and len(records(results)) == 1

    status = bench("status", "--suite", str(suite), "--results", str(results), env=env)
    assert status.stdout.strip().splitlines()[-1] == "1 stale" and "lab_weighted.loss" in status.stdout, status.stdout
    dry = bench("run", "--suite", str(suite), "--results", str(results), "--dry-run", "--list-jobs", env=env)
    assert dry.returncode == 0 and "stale" in dry.stdout

    # accepted: the records stand, and stay accepted on the next run
    accepted = run("--accept-code-changes")
    assert accepted.returncode == 0, accepted.stderr
    assert "accepted the code change of lab-ce v1" in accepted.stdout and "skipped" in accepted.stdout
    assert path.read_bytes() == before
    again = run()
    assert again.returncode == 0 and "skipped" in again.stdout, again.stderr
    status = bench("status", "--suite", str(suite), "--results", str(results), env=env)
    assert status.stdout.strip().splitlines()[-1] == "1 done", status.stdout

    # another change of the math, this time with the version bumped: a new job id, so the job runs again
    loss.write_text(loss.read_text().replace("WEIGHT = 0.5", "WEIGHT = 0.25"))
    method.write_text(method.read_text().replace('version = "1"', 'version = "2"'))
    bumped = run()
    assert bumped.returncode == 0, bumped.stderr
    versions = sorted(r.method_version for r in records(results))
    assert versions == ["1", "2"] and path.read_bytes() == before


def test_committed_records_with_and_without_a_fingerprint_are_current():
    """The committed records made before fingerprints existed are accepted as they are; those made since carry the
    fingerprint of the code in this checkout, or of code whose change was accepted as keeping their results (the
    committed acceptance beside them: options added with the old behaviour as their default, a helper moved into
    the framework): none of them stops a run, and checking them writes nothing."""
    root = ROOT / "reports" / "glue-cpu" / "results"
    suite = suites.load("glue-cpu")
    done = [j for j in suite.jobs if store.is_done(root, j)]
    assert done, "the committed glue-cpu records are part of the checkout"
    kept = {"method_code" in json.loads(store.record_path(root, j).read_text()) for j in done}
    assert kept == {True, False}, "both kinds are committed"
    accepted = root / runner.CODE_ACCEPTED
    before = accepted.read_bytes() if accepted.exists() else None
    assert runner.code_changes(suite, root) == []
    runner.check_code(suite, root)  # does not raise, and writes nothing
    assert (accepted.read_bytes() if accepted.exists() else None) == before
