"""`bench status` and `bench wait` on real results roots: records, locks, and a `sacct` that cannot be run."""

import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

from benchmarks import status, store
from benchmarks import suite as suites
from benchmarks.lock import JobLock

from .helpers import bench, tiny_suite

# two jobs that need no teacher: nothing runs before them
TWO_JOBS = tiny_suite(methods=("finetune",), seeds=(1, 2), methods_tables="")


def _suite(tmp_path: Path) -> tuple[str, list]:
    path = tmp_path / "two.toml"
    path.write_text(TWO_JOBS)
    return str(path), suites.load(str(path)).jobs


def test_a_failing_sacct_is_a_warning_beside_what_the_records_say_and_exit_3(tmp_path):
    suite, (a, b) = _suite(tmp_path)
    results = tmp_path / "results"
    state = results / ".slurm" / "two" / "submitted.json"
    state.parent.mkdir(parents=True)
    state.write_text(json.dumps({a.id: {"slurm_id": "41_0", "submitted": "-"}, b.id: {"slurm_id": "41_1",
                                                                                   "submitted": "-"}}))
    store.write_json(store.record_path(results, a), {"status": "done", "config_hash": a.id, "id": a.id})
    # a real failure to run sacct: a PATH without SLURM's commands (the interpreter is called by its full path)
    env = {**os.environ, "PATH": str(Path(sys.executable).parent)}
    out = bench("status", "--suite", suite, "--results", str(results), env=env)
    assert out.returncode == 3, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bench: warning: cannot run sacct (") and "unknown" in lines[0]
    assert "1 done, 1 unknown" in out.stdout  # the record still counts; the other job's state is not guessed

    submit = bench("run", "--suite", suite, "--results", str(results), "--executor", "slurm", env=env)
    assert submit.returncode == 3, submit.stdout + submit.stderr
    assert "cannot run sacct" in submit.stderr and "nothing was submitted" in submit.stderr
    assert len(submit.stderr.strip().splitlines()) == 1 and "Traceback" not in submit.stderr
    assert json.loads(state.read_text())[b.id]["slurm_id"] == "41_1"  # untouched


def test_debug_before_the_subcommand_shows_the_traceback(tmp_path):
    for argv in (["--debug", "status", "--suite", "nope"], ["status", "--suite", "nope", "--debug"]):
        out = bench(*argv)
        assert out.returncode == 1 and "Traceback" in out.stderr, (argv, out.stderr)
        assert "ConfigError: unknown suite 'nope'" in out.stderr
    out = bench("status", "--suite", "nope")
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1


def test_wait_without_a_terminal_prints_a_line_when_the_counts_change_only(tmp_path):
    """Jobs held by another process (here: their locks, held by this test) are `running`; `bench wait` into a pipe
    polls every 0.1 s and must print one line per change of the counts, not one frame per poll."""
    suite, (a, b) = _suite(tmp_path)
    results = tmp_path / "results"
    first, second = JobLock(store.lock_path(results, a)), JobLock(store.lock_path(results, b))
    assert first.acquire(block=False)
    wait = subprocess.Popen([sys.executable, "-m", "benchmarks.cli", "wait", "--suite", suite, "--results",
                             str(results), "--poll", "0.1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        seen = [wait.stderr.readline()]  # its first look (after its imports)
        time.sleep(2)  # some 20 more looks at the same counts
        assert second.acquire(block=False)
        seen.append(wait.stderr.readline())
        time.sleep(2)
    finally:
        first.release()
        second.release()
    out, err = wait.communicate(timeout=120)
    err = "".join(seen) + err
    assert wait.returncode == 0, err
    assert "\r" not in err and err.splitlines() == ["suite two: 1 running, 1 to run", "suite two: 2 running",
                                                    "suite two: 2 to run"], err  # the last: the look that ended it


def test_a_teachers_done_record_without_its_weights_is_to_run_not_failed(tmp_path):
    """A fresh clone has the committed teacher records and never their weights: the teacher retrains, and status
    must say so rather than call a job that succeeded `failed`."""
    path = tmp_path / "kd.toml"
    path.write_text(tiny_suite(methods=("vanilla-kd",), methods_tables=""))
    suite = suites.load(str(path))
    teacher = next(j for j in suite.jobs if j.config.role == "teacher")
    results = tmp_path / "results"
    store.write_json(store.record_path(results, teacher), {"status": "done", "config_hash": teacher.id,
                                                           "id": teacher.id})
    (state,) = [s for s in status.states(suite, results, sacct=False) if s.job is teacher]
    assert (state.state, state.error) == ("to run", "its weights are absent; it retrains")
    store.weights_path(results, teacher).parent.mkdir(parents=True, exist_ok=True)
    store.weights_path(results, teacher).write_bytes(b"weights")  # no archive, as torch.save writes: damaged
    (state,) = [s for s in status.states(suite, results, sacct=False) if s.job is teacher]
    assert state.state == "damaged" and "not a complete archive" in state.error
    with zipfile.ZipFile(store.weights_path(results, teacher), "w") as z:
        z.writestr("archive/data/0", b"weights")
    (state,) = [s for s in status.states(suite, results, sacct=False) if s.job is teacher]
    assert state.state == "done"


def test_status_says_what_the_jobs_not_done_will_cost_at_what_the_done_ones_took(tmp_path):
    suite, (a, b) = _suite(tmp_path)
    results = tmp_path / "results"
    store.write_json(store.record_path(results, a), {"status": "done", "config_hash": a.id, "id": a.id,
                                                     "task": a.config.task, "label": a.label, "wall_seconds": 3600})
    out = bench("status", "--suite", suite, "--results", str(results))
    text = " ".join(out.stdout.split())  # rich wraps the paragraph at the terminal's width
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 done, 1 to run" in text
    assert "1 job is not done yet" in text and "about 1.0 job-hours, 0.5 wall-clock hours more" in text
    store.write_json(store.record_path(results, b), {"status": "done", "config_hash": b.id, "id": b.id,
                                                     "task": b.config.task, "label": b.label, "wall_seconds": 60})
    assert "not done yet" not in bench("status", "--suite", suite, "--results", str(results)).stdout
