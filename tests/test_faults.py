"""Fault injection: a run killed (SIGKILL) at five points, then run again, ends with the records of an uninterrupted
run and leaves no half-written file. Determinism: the same suite and seed on CPU give bit-identical results."""

from __future__ import annotations

import json
import os

import pytest

from .benchmarks.helpers import RESUMABLE_SUITE, bench, records, same_training

# The suite runs a teacher fine-tuning job (10 steps, then 1 evaluation batch) and a KDFD job (20 steps over
# 2 epochs, 2 evaluations of 2 roles, a checkpoint every 3 steps), in that order.
POINTS = {
    "during teacher fine-tuning": "train-step:5",
    "mid-epoch in the KDFD job": "train-step:17",
    "during evaluation": "eval:3",
    "while a checkpoint is written": "checkpoint-write:2",
    "while a record is written": "record-write:2",
}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("reference")
    suite = root / "suite.toml"
    suite.write_text(RESUMABLE_SUITE)
    out = bench("run", "--suite", str(suite), "--results", str(root / "results"), "--no-progress",
                "--checkpoint-every", "3")
    assert out.returncode == 0, out.stderr
    return suite, root / "results"


@pytest.mark.parametrize("where", list(POINTS))
def test_a_run_killed_anywhere_reruns_to_the_uninterrupted_records(reference, tmp_path, where):
    suite, ref = reference
    results = tmp_path / "results"
    args = ("run", "--suite", str(suite), "--results", str(results), "--no-progress", "--checkpoint-every", "3")
    killed = bench(*args, env={**os.environ, "KDFD_CRASH_AT": POINTS[where]})
    assert killed.returncode == -9, f"not killed at {POINTS[where]}: {killed.stdout[-500:]}{killed.stderr[-500:]}"
    assert len(records(results)) < 2
    rerun = bench(*args)
    assert rerun.returncode == 0, rerun.stderr
    got = {(r["role"], r["method"]): r for r in records(results)}
    want = {(r["role"], r["method"]): r for r in records(ref)}
    assert got.keys() == want.keys()
    for key in want:
        assert same_training(got[key], want[key]), key
    leftovers = [p.name for p in results.rglob("*") if p.is_file() and (".tmp" in p.name or p.suffix == ".ckpt")]
    assert leftovers == []
    for p in results.rglob("s[0-9]*-*.json"):
        json.loads(p.read_text())  # every record parses


def test_the_same_suite_and_seed_give_bit_identical_results_twice(reference, tmp_path):
    suite, ref = reference
    again = bench("run", "--suite", str(suite), "--results", str(tmp_path / "again"), "--no-progress")
    assert again.returncode == 0, again.stderr
    first = {(r["role"], r["method"]): r for r in records(ref)}
    for r in records(tmp_path / "again"):
        assert same_training(r, first[(r["role"], r["method"])])
