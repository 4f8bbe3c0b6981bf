"""`bench run --report-to mlflow,wandb`: a real run's offline MLflow store and W&B runs, read back with MLflow's own
client (and W&B's run files), each run named task/label/seed with the job's config as its parameters."""

import pytest

from benchmarks.cli import main
from kdfd.events import flatten, store_uri

from .helpers import bench, records, tiny_suite, tiny_train

pytest.importorskip("mlflow")  # the [mlflow] and [wandb] extras, in the dev extra too
pytest.importorskip("wandb")


def test_a_run_reported_to_mlflow_and_wandb_leaves_offline_runs_with_the_jobs_params_and_metrics(tmp_path):
    from mlflow.tracking import MlflowClient

    suite = tmp_path / "tracked.toml"
    suite.write_text(tiny_suite(train=tiny_train(epochs=1, max_train_examples=128)))
    results = tmp_path / "results"
    out = bench("run", "--suite", str(suite), "--results", str(results), "--no-progress", "--report-to", "mlflow,wandb")
    assert out.returncode == 0, out.stderr[-3000:]
    client = MlflowClient(tracking_uri=store_uri(results / ".mlflow"))
    experiment = client.get_experiment_by_name("tracked")  # the suite
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    jobs = records(results)
    assert len(runs) == len(jobs) == 2  # the teacher fine-tuning job and kdfd
    for rec in jobs:
        role = rec.role
        run = runs[f"synth-single/{rec.label}/s1-{rec.id[:8]}"]
        assert run.info.status == "FINISHED"
        assert run.data.params == {k: str(v) for k, v in flatten(rec.config).items()}  # config and params
        assert {"task": "synth-single", "method": rec.method, "role": role, "seed": "1", "job": rec.id,
                "suite": "tracked"}.items() <= run.data.tags.items()
        assert run.data.metrics[f"{role}/dev/accuracy"] == pytest.approx(rec.result.metrics["dev"]["accuracy"])
        history = client.get_metric_history(run.info.run_id, f"{role}/loss/total")
        assert [m.step for m in history] == list(range(1, rec.result.timing["steps"] + 1))
        assert not any(k.startswith(("dev/", "loss/student")) for k in run.data.metrics)  # by role, no repeats
    kdfd = runs[next(name for name in runs if "/kdfd/" in name)]
    assert {"student/loss/vae", "teacher/loss/vae", "student/lr", "teacher/dev/accuracy"} <= set(kdfd.data.metrics)
    assert kdfd.data.params["params.latent_dim"] == "8"

    files = sorted((results / ".wandb").rglob("offline-run-*/run-*.wandb"))  # W&B's offline runs, to `wandb sync`
    assert len(files) == 2
    kept = b"".join(f.read_bytes() for f in files)
    for rec in jobs:
        assert f"synth-single/{rec.label}/s1-{rec.id[:8]}".encode() in kept
    assert b"params.latent_dim" in kept and b"student/dev/accuracy" in kept


def test_an_unknown_or_missing_tracker_is_one_line_and_exit_2_before_any_job(tmp_path, capsys, monkeypatch):
    suite = tmp_path / "s.toml"
    suite.write_text(tiny_suite(train=tiny_train()))
    args = ["run", "--suite", str(suite), "--results", str(tmp_path / "r")]
    assert main([*args, "--report-to", "mlflow,neptune"]) == 2
    assert capsys.readouterr().err.strip() == ("bench: error: --report-to 'neptune' is not allowed (allowed: "
                                               "tensorboard, mlflow, wandb)")
    monkeypatch.setitem(__import__("sys").modules, "mlflow", None)  # as if the extra were not installed
    assert main([*args, "--report-to", "mlflow"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["bench: error: --report-to mlflow needs the mlflow package: pip install 'kdfd-bench[mlflow]'"]
    assert not (tmp_path / "r").exists()
