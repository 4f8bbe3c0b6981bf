"""The SLURM executor against the real single-node SLURM of ../shared/slurm (started here; skipped, with the
reason, where it cannot start: no script, not root)."""

import os
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from ..conftest import ROOT
from .helpers import RESUMABLE_SUITE, bench, records, same_training, tiny_suite, tiny_train

SLURM_DIR = Path(os.environ.get("KDFD_SLURM_SCRIPTS", ROOT.parent / "shared" / "slurm"))
RESOURCES = ["--cpus", "1", "--mem-gb", "2", "--time", "10"]


@pytest.fixture(scope="module")
def cluster():
    start = SLURM_DIR / "start-local-slurm.sh"
    if not start.is_file():
        pytest.skip(f"no local SLURM scripts at {SLURM_DIR} (set KDFD_SLURM_SCRIPTS)")
    if os.geteuid() != 0 and shutil.which("sudo") is None:
        pytest.skip("starting the local SLURM needs root")
    cmd = ["bash", str(start)] if os.geteuid() == 0 else ["sudo", "-n", "bash", str(start)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if out.returncode != 0 or "LOCAL SLURM READY" not in out.stdout:
        pytest.skip(f"the local SLURM did not start: {(out.stdout + out.stderr)[-500:]}")
    yield
    # left running: other tests and the next session reuse it (the start script is idempotent)


@pytest.fixture(scope="module", autouse=True)
def timed_out_job(cluster, tmp_path_factory):
    """A job far longer than its 2-minute limit, submitted before the module's other tests so that its minutes of
    waiting for the limit and the requeue overlap theirs (it takes one of the cluster's 2 CPUs; they need one).

    submitit is signalled 60 s ahead (SLURM may signal up to a minute early, and a limit of 1 minute could signal
    before Python has installed submitit's handler), requeues the task, and the requeued task takes up the job's
    checkpoint. Yields the results folder; cancelled at the end of the module."""
    root = tmp_path_factory.mktemp("timed-out")
    long = tiny_suite(methods=("finetune",), train=tiny_train(epochs=1000))
    suite = root / "long.toml"
    suite.write_text(long + "\n[slurm]\ntime = 2\nsignal_delay_s = 60\nmax_requeues = 5\ncpus = 1\nmem_gb = 2\n")
    results = root / "slurm"
    sub = bench("run", "--suite", str(suite), "--results", str(results), "--executor", "slurm",
                "--checkpoint-every", "2")
    assert sub.returncode == 0, sub.stderr
    yield results
    bench("cancel", "--suite", str(suite), "--results", str(results))


def _suite(tmp_path, extra: str = "") -> str:
    path = tmp_path / "slurm.toml"
    path.write_text(RESUMABLE_SUITE + extra)
    return str(path)


def test_submit_returns_at_once_then_wait_and_status_show_the_local_metrics(cluster, tmp_path):
    suite = _suite(tmp_path)
    local = bench("run", "--suite", suite, "--results", str(tmp_path / "local"), "--no-progress")
    assert local.returncode == 0, local.stderr

    results = str(tmp_path / "slurm")
    sub = bench("run", "--suite", suite, "--results", results, "--executor", "slurm", *RESOURCES)
    assert sub.returncode == 0, sub.stderr
    assert "submitted 2 jobs as 2 SLURM tasks" in sub.stdout
    assert len(records(results)) < 2  # it returned before the jobs finished (the student waits for its teacher)
    early = bench("status", "--suite", suite, "--results", results)  # the tiny jobs may finish while it starts
    assert early.returncode == 0 and any(s in early.stdout for s in ("pending", "running", "2 done")), early.stdout

    wait = bench("wait", "--suite", suite, "--results", results, "--poll", "1", "--no-progress")
    assert wait.returncode == 0, wait.stdout + wait.stderr
    status = bench("status", "--suite", suite, "--results", results)
    assert status.returncode == 0 and "2 done" in status.stdout
    (on_slurm,), (here,) = records(results, "kdfd"), records(tmp_path / "local", "kdfd")
    assert on_slurm.executor["kind"] == "slurm" and on_slurm.executor["slurm_job_id"]
    assert same_training(on_slurm, here)
    again = bench("run", "--suite", suite, "--results", results, "--executor", "slurm", *RESOURCES)
    assert "submitted 0 jobs" in again.stdout  # nothing left to do


def test_a_failing_job_shows_as_failed_the_others_finish_and_a_rerun_retries_only_it(cluster, tmp_path):
    suite = _suite(tmp_path, '\n[method.finetune]\n')
    results = str(tmp_path / "slurm")
    env = {**os.environ, "KDFD_FAIL_JOBS": "kdfd"}
    sub = bench("run", "--suite", suite, "--methods", "kdfd", "finetune", "--results", results, "--executor", "slurm",
                "--jobs-per-task", "2", *RESOURCES, env=env)
    assert sub.returncode == 0, sub.stderr
    assert "submitted 3 jobs as 2 SLURM tasks" in sub.stdout  # teacher + finetune packed; kdfd waits for the teacher
    wait = bench("wait", "--suite", suite, "--methods", "kdfd", "finetune", "--results", results, "--poll", "1",
                 "--no-progress")
    assert wait.returncode == 1
    status = bench("status", "--suite", suite, "--methods", "kdfd", "finetune", "--results", results)
    assert status.returncode == 1
    assert "2 done, 1 failed" in status.stdout and "failure injected" in status.stdout
    finetune = records(results, "finetune")[0]

    retry = bench("run", "--suite", suite, "--methods", "kdfd", "finetune", "--results", results, "--executor", "slurm",
                  *RESOURCES)
    assert "submitted 1 jobs as 1 SLURM tasks" in retry.stdout, retry.stdout + retry.stderr
    wait = bench("wait", "--suite", suite, "--methods", "kdfd", "finetune", "--results", results, "--poll", "1",
                 "--no-progress")
    assert wait.returncode == 0, wait.stdout
    assert records(results, "finetune")[0].started == finetune.started  # not run again


def test_cancel_stops_what_is_queued(cluster, tmp_path):
    # a teacher far longer than the test, so that its task is still running when `bench cancel` looks (a tiny one
    # could finish in the seconds between submission and cancel, leaving only its student's task to cancel)
    suite = tmp_path / "slurm.toml"
    suite.write_text(tiny_suite(train=tiny_train(teacher_epochs=1000)))
    suite = str(suite)
    results = str(tmp_path / "slurm")
    assert bench("run", "--suite", suite, "--results", results, "--executor", "slurm", *RESOURCES).returncode == 0
    cancel = bench("cancel", "--suite", suite, "--results", results)
    assert cancel.returncode == 0 and "cancelled 2 SLURM tasks" in cancel.stdout
    deadline = time.time() + 120
    while True:  # sacct learns of the cancellation a moment later
        status = bench("status", "--suite", suite, "--results", results)
        if "pending" not in status.stdout and "running" not in status.stdout:
            break
        assert time.time() < deadline, status.stdout
        time.sleep(1)
    assert "CANCELLED" in status.stdout


def test_a_task_past_its_time_limit_is_requeued_and_resumes_from_its_checkpoint(timed_out_job):
    deadline, logs = time.time() + 420, ""
    while "resumed from checkpoint" not in logs:
        assert time.time() < deadline, f"no resume within 7 minutes; logs:\n{logs[-3000:]}"
        time.sleep(3)
        logs = "".join(p.read_text(errors="replace") for p in (timed_out_job / ".slurm").rglob("*_log.*"))
    assert "timed-out" in logs  # submitit's own line: the requeue came from the time limit
    step = int(logs.split("resumed from checkpoint")[1].split("at step ")[1].split()[0])
    assert step > 0


def _readme_commands(prefix: str) -> list[str]:
    """A command of the docs' SLURM example (docs/running.md), as written there (its comment cut off)."""
    readme = (ROOT / "docs" / "running.md").read_text().splitlines()
    line = next(x for x in readme if x.startswith(prefix))
    return shlex.split(line.split("#")[0])[1:]  # without `bench`


def test_a_submission_sbatch_refuses_is_one_line_naming_the_option_and_nothing_is_recorded(cluster, tmp_path):
    results = tmp_path / "slurm"
    out = bench("run", "--suite", "smoke", "--results", str(results), "--executor", "slurm", "--cpus", "64")
    assert out.returncode == 2, out.stdout + out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert line == ("bench: error: sbatch refused the submission (More processors requested than permitted): change "
                    "--cpus (now 64) or the suite's [slurm] cpus; nothing was submitted"), line
    folder = results / ".slurm" / "smoke"
    assert not (folder / "submitted.json").exists()
    assert not [p.name for p in folder.iterdir() if p.is_file()]  # submitit's pickles and sbatch script removed


def test_a_gpu_suite_on_a_cluster_without_gpus_is_refused_before_anything_is_submitted(cluster, tmp_path):
    """glue-full asks for a GPU per job; this cluster's only partition has none (sinfo's GRES): one line naming the
    request, exit 2, no SLURM job and nothing under the results root. --gpus 0 --device cpu is taken past that check
    (here it then stops at the model check: the paper's models are not on this machine; the local preflight test
    shows it)."""
    results = tmp_path / "slurm"
    before = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True, check=True).stdout
    # one task and seed keep the suite's expansion short; the check is the same for its 1,680 jobs
    out = bench("run", "--suite", "glue-full", "--tasks", "rte", "--seeds", "1", "--results", str(results),
                "--executor", "slurm")
    assert out.returncode == 2, out.stdout + out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith("bench: error: suite glue-full asks for 1 GPU per job ([slurm] gpus = 1) and no node of "
                           "SLURM partition (the default) has a GPU"), line
    assert line.endswith("to train on CPU instead, give --gpus 0 --device cpu"), line
    assert not results.exists()
    assert subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True, check=True).stdout == before
    from benchmarks import runner
    from benchmarks import suite as suites
    from benchmarks.options import RunContext, SlurmOptions

    suite = suites.load("glue-full", tasks=["rte"], seeds=[1], methods=["finetune"])
    ctx = RunContext(results, executor="slurm", slurm=SlurmOptions(gpus=0), gpus=0, device="cpu")
    runner.check_gpus(suite, ctx)  # passes: CPU written out


def test_the_readme_slurm_example_submits_and_finishes_on_a_two_cpu_node(cluster, tmp_path):
    # the docs' commands as written, on a root of the test's own, one of smoke's tasks and one of its distilling
    # methods (2 of its 12 jobs: a teacher and a student that waits for it are the whole path; the other jobs would
    # only repeat it on the 2 CPUs)
    own = ("--results", str(tmp_path / "slurm"), "--tasks", "synth-pair", "--methods", "vanilla-kd")
    results = own[1]
    sub = bench(*_readme_commands("bench run --suite smoke --executor slurm"), *own)
    assert sub.returncode == 0, sub.stdout + sub.stderr
    assert "submitted 2 jobs as 2 SLURM tasks" in sub.stdout
    wait = bench(*_readme_commands("bench wait --suite smoke"), *own, "--poll", "2")
    assert wait.returncode == 0, wait.stdout + wait.stderr
    assert "\r" not in wait.stderr and wait.stderr.strip().splitlines()[-1] == "suite smoke: 2 done", wait.stderr
    assert all(r.status == "done" and r.executor["kind"] == "slurm" for r in records(results))
