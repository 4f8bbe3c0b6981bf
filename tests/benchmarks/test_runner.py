import os

from benchmarks import runner
from benchmarks import suite as suites
from benchmarks.options import RunContext

from .helpers import tiny_suite, tiny_train

GRID_SUITE = tiny_suite(
    methods=("vanilla-kd",), seeds=(1, 2),
    train=tiny_train(epochs=1, max_train_examples=64, max_eval_examples=32),
    methods_tables="[method.vanilla-kd]\ntemperature = [1.0, 2.0, 4.0]\nalpha = [0.2, 0.8]\n")


def test_a_3x2_grid_with_2_seeds_is_12_jobs_and_each_teacher_trains_once(tmp_path):
    path = tmp_path / "grid.toml"
    path.write_text(GRID_SUITE)
    suite = suites.load(str(path))
    teachers = [j for j in suite.jobs if j.config.role == "teacher"]
    methods = [j for j in suite.jobs if j.config.role != "teacher"]
    assert len(methods) == 12 and len(teachers) == 2  # one teacher per seed, shared by the 6 grid points
    assert {j.label for j in methods} == {f"vanilla-kd[temperature={t},alpha={a}]"
                                          for t in (1.0, 2.0, 4.0) for a in (0.2, 0.8)}
    outcomes = runner.run_suite(suite, RunContext(tmp_path / "results", progress=False))
    ran = [o.job for o in outcomes if o.status == "done"]
    assert len(ran) == 14 and sum(j.config.role == "teacher" for j in ran) == 2  # each teacher trained once
    for seed in (1, 2):
        ids = {j.config.teacher_job for j in methods if j.config.seed == seed}
        assert ids == {t.id for t in teachers if t.config.seed == seed}
    again = runner.run_suite(suite, RunContext(tmp_path / "results", progress=False))
    assert all(o.status == "skipped" for o in again)  # nothing trains twice


def test_a_job_two_suites_share_keeps_the_record_of_the_suite_that_ran_it_and_counts_for_both(tmp_path):
    """The record's `suite` names the suite that ran the job; the other suite skips it (the record is not rewritten)
    and still finds it, by job id."""
    import io

    import pandas as pd

    from benchmarks import results as results_table

    from .helpers import bench, records, tiny_suite, tiny_train

    text = tiny_suite(methods=("finetune",), methods_tables="", train=tiny_train(epochs=1, max_train_examples=64))
    first, second = tmp_path / "first.toml", tmp_path / "second.toml"
    first.write_text(text)
    second.write_text('description = "the same job under another name"\n' + text)
    root = tmp_path / "results"
    assert bench("run", "--suite", str(first), "--results", str(root), "--no-progress").returncode == 0
    (record,) = records(root)
    path = next(root.rglob("s1-*.json"))
    before = path.read_bytes()
    again = bench("run", "--suite", str(second), "--results", str(root), "--no-progress")
    assert again.returncode == 0 and "skipped" in again.stdout
    assert record.suite == "first" and path.read_bytes() == before
    out = bench("results", "--suite", str(second), "--results", str(root))
    rows = pd.read_csv(io.StringIO(out.stdout))
    assert list(rows["suite"]) == ["first"] and list(rows["status"]) == ["done"]
    assert len(results_table.load(root, str(second))) == 1


def test_a_job_that_asked_for_a_gpu_and_sees_none_fails_in_its_record_instead_of_training_on_cpu(tmp_path):
    """What a SLURM task does on a node whose GPU torch cannot see (the preflight ran on the login node): the job's
    record fails in one line naming the request, nothing trains; with --device cpu the same job trains."""
    import pytest
    import torch

    from kdfd import provenance

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible: the job would train on it")
    path = tmp_path / "gpu.toml"
    path.write_text(tiny_suite(methods=("finetune",), train=tiny_train(epochs=1, max_train_examples=32)))
    (job,) = suites.load(str(path)).jobs
    ctx = RunContext(tmp_path / "results", progress=False, executor="slurm", gpus=1)
    failed = runner.execute("gpu", job, ctx, provenance.collect(), block=True)
    assert failed.status == "failed" and failed.record.result is None
    message = failed.record.error["message"]
    assert "\n" not in message and "asked for 1 GPU" in message and "torch sees none" in message
    done = runner.execute("gpu", job, ctx.replace(device="cpu"), provenance.collect(), block=True)
    assert done.status == "done" and (done.record.result.device, done.record.result.precision) == ("cpu", "fp32")


def test_two_workers_share_the_jobs_and_write_the_records_one_process_writes(tmp_path):
    """`bench run --workers 2`: two processes on one root, a teacher trained before its students start, each job
    once, and records that train exactly as a single process's on as many threads (the 2 threads split into 1 per
    worker, against --workers 1 on 1 thread: another thread count sums floats in another order)."""
    from .helpers import bench, records, same_training

    path = tmp_path / "workers.toml"
    path.write_text(tiny_suite(methods=("vanilla-kd", "finetune"), seeds=(1, 2), methods_tables="",
                               train=tiny_train(epochs=1, max_train_examples=64, max_eval_examples=32)))
    common = ("run", "--suite", str(path), "--no-progress", "--workers")
    one = bench(*common, "1", "--results", str(tmp_path / "one"), env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert one.returncode == 0, one.stdout + one.stderr
    assert len(records(tmp_path / "one")) == 6  # 2 teachers, 2 students each
    out = bench(*common, "2", "--results", str(tmp_path / "two"), env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert out.returncode == 0, out.stdout + out.stderr
    first, two = ({r.id: r for r in records(tmp_path / root)} for root in ("one", "two"))
    assert set(two) == set(first)
    for job_id, r in first.items():
        assert same_training(r, two[job_id]), r.label
    assert len({r.executor["pid"] for r in two.values()}) == 2  # both workers ran jobs
    for r in two.values():
        if r.config["teacher_job"]:
            assert r.started >= two[r.config["teacher_job"]].finished
