"""Resume and locks with real processes: kill -9 in the middle of a job, and two `bench run`s on one results root."""

import os
import signal
import subprocess
import sys
import time

from .helpers import RESUMABLE_SUITE, bench, records, same_training


def _suite(tmp_path):
    path = tmp_path / "resume.toml"
    path.write_text(RESUMABLE_SUITE)
    return str(path)


def test_kill_9_mid_job_then_a_rerun_resumes_and_ends_with_the_same_metrics(tmp_path):
    suite = _suite(tmp_path)
    whole = bench("run", "--suite", suite, "--results", str(tmp_path / "whole"), "--no-progress")
    assert whole.returncode == 0, whole.stderr

    results = tmp_path / "killed"
    run = [sys.executable, "-m", "benchmarks.cli", "run", "--suite", suite, "--results", str(results),
           "--no-progress", "--checkpoint-every", "3"]
    proc = subprocess.Popen(run, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not list((results / "synth-single" / "kdfd").glob("*.ckpt")):  # the KDFD job has saved a checkpoint
        assert proc.poll() is None and time.time() < deadline, "the run ended before the KDFD job checkpointed"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert not records(results, "kdfd")  # it died before writing its record

    rerun = bench("run", "--suite", suite, "--results", str(results), "--no-progress", "--checkpoint-every", "3")
    assert rerun.returncode == 0, rerun.stderr
    assert "synth-single/kdfd: resumed from checkpoint" in rerun.stdout + rerun.stderr
    (resumed,), (reference,) = records(results, "kdfd"), records(tmp_path / "whole", "kdfd")
    assert resumed.result.resumed_from_step >= 3 and reference.result.resumed_from_step is None
    # the killed process's seconds up to its checkpoint are kept (loading data and models took part of them)
    assert resumed.result.timing["carried_seconds"] > 0 and reference.result.timing["carried_seconds"] is None
    assert same_training(resumed, reference)
    assert not list(results.rglob("*.ckpt"))  # a finished job drops its checkpoint


def test_two_runs_on_one_results_root_run_each_job_once(tmp_path):
    suite = _suite(tmp_path)
    results = tmp_path / "shared"
    cmd = [sys.executable, "-m", "benchmarks.cli", "run", "--suite", suite, "--results", str(results), "--no-progress"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    recs = records(results)
    assert len(recs) == 2
    # every job was trained by exactly one of the two processes; the other found it done and skipped it
    assert sum(o[0].count("│ done ") for o in outs) == 2
    assert sum(o[0].count("│ skipped ") for o in outs) == 2
    assert {r.executor["pid"] for r in recs} <= {p.pid for p in procs}
