"""Fault injection: a run killed (SIGKILL) at five points, then run again, ends with the records of an uninterrupted
run and leaves no half-written file; a results root that fills up or turns read-only stops the run with one line
and loses nothing. Determinism: the same suite and seed on CPU give bit-identical results."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

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
    got = {(r.role, r.method): r for r in records(results)}
    want = {(r.role, r.method): r for r in records(ref)}
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
    first = {(r.role, r.method): r for r in records(ref)}
    for r in records(tmp_path / "again"):
        assert same_training(r, first[(r.role, r.method)])


@pytest.fixture
def small_disk(tmp_path):
    """A real filesystem that can fill up: a 64 MiB tmpfs (mounting needs root; skipped, saying so, elsewhere)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill needs root")
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(disk)], capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {out.stderr.strip()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=True)


def fill(disk: Path, leave: int) -> Path:
    """Fill `disk` to the last byte, then give `leave` bytes back."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError:
            pass
    os.truncate(filler, max(filler.stat().st_size - leave, 0))
    return filler


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file() and p.suffix != ".lock"}


def test_a_full_or_read_only_results_root_stops_the_run_with_one_line_and_loses_nothing(reference, small_disk):
    suite, ref = reference
    results = small_disk / "results"
    args = ("run", "--suite", str(suite), "--results", str(results), "--no-progress", "--checkpoint-every", "3")
    assert bench(*args).returncode == 0
    (student,) = [p for p in results.rglob("s1-*.json") if "teacher" not in str(p)]
    student.unlink()  # the KDFD job runs again; its teacher's record and weights stay
    before = snapshot(results)

    # full in the middle of the job: its first checkpoint does not fit
    filler = fill(small_disk, leave=32 * 1024)
    full = bench(*args)
    assert full.returncode == 2
    # one error line, beside the runner's line per finished job (the teacher's, skipped)
    lines = [line for line in full.stderr.strip().splitlines() if not line.lstrip().startswith(("skipped", "done"))]
    assert len(lines) == 1 and "No space left on device" in lines[0] and "untouched" in lines[0], full.stderr
    assert snapshot(results) == before  # nothing written is touched, no temporary is left, no failed record
    # full before the run: the results root is refused before any job
    os.truncate(filler, filler.stat().st_size + 32 * 1024)
    fill(small_disk, leave=0)
    refused = bench(*args)
    assert refused.returncode == 2 and "is not writable (No space left on device)" in refused.stderr
    # read-only
    for p in small_disk.glob("filler*"):
        p.unlink()
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    try:
        ro = bench(*args)
        assert ro.returncode == 2 and "is not writable (Read-only file system)" in ro.stderr, ro.stderr
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    assert snapshot(results) == before

    # space again: the run ends with the uninterrupted records
    assert bench(*args).returncode == 0
    got = {(r.role, r.method): r for r in records(results)}
    for r in records(ref):
        assert same_training(got[(r.role, r.method)], r)
