"""Data-parallel jobs (`bench run --nproc N`, kdfd.parallel) on CPU with two gloo processes: each job trains as in
one process within float rounding, a job killed mid-way resumes (in two processes, or in one) as if it never was,
and a method that cannot train data-parallel is refused in one line before anything runs.

The tolerance: with dropout off and no sampling (KDFD's autoencoder bottleneck), two processes compute the same math
as one; only the order of float32 additions differs (each process sums the gradient of its half of a batch, then the
halves are added), about 1e-7 relative per step, which training grows slowly. Over the 9 + 18 steps here the loss
terms agree within LOSS_RTOL relative and the dev metrics within METRIC_ATOL (measured: 3e-6 and 2e-5); a
resumed job in the same number of processes equals the uninterrupted one exactly.
"""

import math
import shutil
import subprocess
import sys
import time

import pytest

from benchmarks import runner
from benchmarks import suite as suites
from benchmarks.cli import main
from benchmarks.options import RunContext, SlurmOptions
from kdfd.data import EpochSampler, GroupedEpochSampler, ShardedSampler, share

from ..conftest import ROOT
from .helpers import records, same_training

LOSS_RTOL = 1e-4
METRIC_ATOL = 1e-4

# synth-reg: a continuous metric (Pearson) shows the processes' float differences; 65 examples in batches of 8:
# a last batch of 1, which the second process takes as a placeholder weighted 0
SUITE = """description = "data-parallel test"
tasks = ["synth-reg"]
seeds = [1]
methods = ["kdfd"]
data_source = "synthetic"
[teacher]
name = "tiny"
layers = 2
hidden = 32
dropout = 0.0
[student]
name = "tiny"
layers = 1
hidden = 16
dropout = 0.0
[train]
epochs = 2
teacher_epochs = 1
batch_size = 8
max_length = 32
lr = 1e-2
teacher_lr = 1e-2
max_train_examples = 65
max_eval_examples = 64
[method.kdfd]
latent_dim = 8
bottleneck = "ae"
"""


@pytest.fixture(scope="module")
def one_thread():
    """This process trains with one thread, as each of two processes does on 2 cores (and fast on a busy machine)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, one_thread):
    """The suite (a teacher fine-tuning job, then KDFD with an online teacher) in one process and in two."""
    tmp = tmp_path_factory.mktemp("ddp")
    path = tmp / "ddp.toml"
    path.write_text(SUITE)
    suite = suites.load(str(path))
    for nproc in (1, 2):
        outcomes = runner.run_suite(suite, RunContext(tmp / f"nproc{nproc}", progress=False, nproc=nproc))
        assert [o.status for o in outcomes] == ["done", "done"], [o.record.error for o in outcomes]
    return suite, tmp


def by_role(root) -> dict:
    return {r.role: r for r in records(root)}


def differences(a, b) -> tuple[float, float]:
    """The largest relative difference of two records' per-epoch loss terms, and absolute of their dev metrics."""
    loss = max(abs(x["loss"][k] - y["loss"][k]) / max(abs(x["loss"][k]), 1e-12)
               for x, y in zip(a.result.curves, b.result.curves) for k in x["loss"])
    metric = max(abs(x["dev"][role][split][m] - y["dev"][role][split][m])
                 for x, y in zip(a.result.curves, b.result.curves) for role in x["dev"] for split in x["dev"][role]
                 for m in x["dev"][role][split])
    return loss, metric


def test_two_processes_train_each_job_as_one_process_does_within_float_rounding(runs):
    _, tmp = runs
    one, two = by_role(tmp / "nproc1"), by_role(tmp / "nproc2")
    for role in ("teacher", "student"):
        a, b = one[role], two[role]
        assert a.id == b.id  # the number of processes is not part of the job
        assert "processes" not in a.executor and b.executor["processes"] == 2
        assert a.result.timing["steps"] == b.result.timing["steps"] == (9 if role == "teacher" else 18)
        assert a.result.data == b.result.data and len(a.result.curves) == len(b.result.curves)
        loss, metric = differences(a, b)
        print(f"{role}: 1 vs 2 processes: loss terms within {loss:.1e} relative, dev metrics within {metric:.1e}")
        assert loss < LOSS_RTOL and metric < METRIC_ATOL
        assert a.result.metrics.keys() == b.result.metrics.keys()
        assert all(math.isclose(a.result.metrics["dev"][m], b.result.metrics["dev"][m], abs_tol=METRIC_ATOL)
                   for m in a.result.metrics["dev"])
    assert two["student"].result.artifacts is not None  # process 0 wrote the representations


def test_a_job_killed_mid_way_resumes_in_two_processes_or_in_one(runs, tmp_path, monkeypatch):
    suite, tmp = runs
    killed = tmp_path / "killed"
    shutil.copytree(tmp / "nproc2", killed)
    shutil.rmtree(killed / "synth-reg" / "kdfd")  # the teacher stays done: only KDFD runs again
    ctx = RunContext(killed, progress=False, nproc=2, checkpoint_every=3)
    with monkeypatch.context() as env:
        env.setenv("KDFD_CRASH_AT", "train-step:12")  # both processes kill -9 themselves before their 12th step
        (teacher, kdfd) = runner.run_suite(suite, ctx)
    assert teacher.status == "skipped" and kdfd.status == "failed"
    message = kdfd.record.error["message"]
    assert "data-parallel processes was killed by SIGKILL" in message and "a re-run resumes" in message
    assert list((killed / "synth-reg" / "kdfd").glob("*.ckpt"))  # a failed job keeps its checkpoint
    in_one = tmp_path / "in-one"
    shutil.copytree(killed, in_one)

    reference = by_role(tmp / "nproc2")["student"]
    (_, again) = runner.run_suite(suite, ctx)
    resumed = by_role(killed)["student"]
    assert again.status == "done" and resumed.result.resumed_from_step == 9
    assert same_training(resumed, reference)  # the same number of processes: exactly the uninterrupted run

    (_, again) = runner.run_suite(suite, RunContext(in_one, progress=False, checkpoint_every=3))
    resumed = by_role(in_one)["student"]
    assert again.status == "done" and resumed.result.resumed_from_step == 9
    loss, metric = differences(resumed, reference)
    assert loss < LOSS_RTOL and metric < METRIC_ATOL  # one process takes up two processes' checkpoint


def test_a_method_that_cannot_train_data_parallel_is_refused_in_one_line(tmp_path, capsys):
    path = tmp_path / "meta.toml"
    path.write_text(SUITE.replace('"kdfd"', '"metadistil"').split("[method.kdfd]")[0])
    results = tmp_path / "results"
    assert main(["run", "--suite", str(path), "--results", str(results), "--nproc", "2", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith(f"bench: error: {path} [metadistil]: method 'metadistil' cannot train data-parallel "
                          "(--nproc 2): its teacher learns from a look-ahead step of the student")
    assert "second order" in err and err.endswith("run it with --nproc 1")
    assert not records(results)  # nothing ran

    assert main(["run", "--suite", str(path), "--results", str(results), "--nproc", "3", "--methods", "kdfd"]) == 2
    assert "[teacher]: batch_size = 8 does not split over --nproc 3 processes" in capsys.readouterr().err
    assert main(["run", "--suite", str(path), "--results", str(results), "--nproc", "2", "--workers", "2"]) == 2
    assert "--workers 2 with --nproc 2 is not allowed" in capsys.readouterr().err


def test_the_methods_that_cannot_train_data_parallel_are_the_look_ahead_ones():
    from kdfd.registry import load_methods

    refused = {name for name, cls in load_methods().items() if cls.data_parallel(cls.Params())}
    assert refused == {"metadistil", "reptile-distil", "lgtm"}


@pytest.mark.parametrize("n,batch", [(65, 8), (64, 8), (7, 4), (9, 4)])
def test_the_processes_share_out_each_batch_of_the_one_process_order(n, batch):
    def base():
        return GroupedEpochSampler([i % 5 for i in range(n)], batch, seed=3, group_size=2) if n == 65 else \
            EpochSampler(n, seed=3)

    single = base()
    single.set_epoch(2)
    order = single.order()
    batches = [order[at:at + batch] for at in range(0, n, batch)]
    parts = []
    for rank in range(2):
        sampler = ShardedSampler(base(), batch, rank, 2)
        sampler.set_epoch(2)
        mine = list(sampler)
        assert len(mine) == len(sampler)
        cuts = [mine[at:at + batch // 2] for at in range(0, len(mine), batch // 2)]
        assert len(cuts) == len(batches)  # every process steps once per batch
        counts = [sampler.local_count(k) for k in range(len(batches))]
        parts.append([cut[:count] for cut, count in zip(cuts, counts)])
        sampler.set_epoch(2, start=batch)  # resumed after one batch: the same parts from the second batch on
        assert list(sampler) == mine[batch // 2:]
    for k, whole in enumerate(batches):
        assert parts[0][k] + parts[1][k] == whole  # the two parts are the batch, in its order
    assert share(1, 1, 2) == 0 and share(7, 0, 2) == 4 and share(8, 1, 2) == 4


def test_a_slurm_task_asks_for_a_gpu_per_process():
    assert SlurmOptions(gpus=1).executor_parameters(4)["gpus_per_node"] == 4
    assert "gpus_per_node" not in SlurmOptions(gpus=0).executor_parameters(4)


CHILD = """
import os, sys, time, multiprocessing
from kdfd.parallel_launch import _die_with, starter
def child(alive):
    _die_with(alive)  # as a job's process does
    time.sleep(60)
if __name__ == "__main__":
    context = starter()
    context.set_forkserver_preload([])
    alive, alive_send = context.Pipe(duplex=False)
    p = context.Process(target=child, args=(alive,), daemon=True)
    p.start()
    print(p.pid, flush=True)
    time.sleep(60)
"""


def test_the_processes_of_a_job_end_with_the_runner_even_on_kill_9(tmp_path):
    """The runner's process killed (kill -9, a node's OOM killer) leaves no training process behind."""
    script = tmp_path / "parent.py"
    script.write_text(CHILD)
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    child = int(parent.stdout.readline())
    parent.kill()
    parent.wait(timeout=30)
    deadline = time.time() + 30
    while _alive(child):
        assert time.time() < deadline, "the process outlived its parent"
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1].split()[0] != "Z"  # a zombie has ended
    except FileNotFoundError:
        return False


def test_the_dry_run_says_each_job_trains_over_n_processes(tmp_path, capsys):
    path = tmp_path / "ddp.toml"
    path.write_text(SUITE)
    assert main(["run", "--suite", str(path), "--results", str(tmp_path / "r"), "--nproc", "2", "--dry-run"]) == 0
    assert "each job trains over 2 processes (--nproc)" in capsys.readouterr().out
