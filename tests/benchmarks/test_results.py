"""Records as a DataFrame: one row per record, metrics in points, config flattened; `bench results` writes it."""

import pandas as pd

from benchmarks import results, store
from benchmarks.store import Record
from kdfd.result import JobResult

from ..conftest import ROOT
from .helpers import bench


def write_record(root, task, method, seed, rid, metrics, status="done", **extra):
    path = root / task / method / f"s{seed}-{rid}.json"
    config = {"task": task, "method": method, "method_version": "1", "seed": seed, "role": "student",
              "params": {"temperature": 2.0}, "train": {"lr": 1e-4}}
    result = JobResult(metrics=metrics, majority_metrics={"dev": {"accuracy": 0.5}}, timing={"steps": 10},
                       param_counts={"student": 100, "teacher": 400})
    store.write(path, Record(id=rid, label=method, config=config, status=status,
                             result=result if status == "done" else None, **extra))
    return path


def test_one_row_per_record_with_scores_in_points(tmp_path):
    write_record(tmp_path, "rte", "vanilla-kd", 1, "a1", {"dev": {"accuracy": 0.6}})
    write_record(tmp_path, "rte", "vanilla-kd", 2, "a2", {"dev": {"accuracy": 0.7}})
    write_record(tmp_path, "rte", "finetune", 1, "b1", {}, status="failed", error={"message": "boom"})
    (tmp_path / "rte" / "finetune" / "s9-broken.json").write_text("{not json")
    df = results.load(tmp_path)
    assert len(df) == 3
    done = df[df.status == "done"].sort_values("seed")
    assert list(done["score"].round(6)) == [60.0, 70.0]
    assert list(done["param.temperature"]) == [2.0, 2.0] and list(done["train.lr"]) == [1e-4, 1e-4]
    assert list(done["param_counts.student"]) == [100, 100]  # apart from the method's parameters (`param.*`)
    assert done["majority.dev.accuracy"].iloc[0] == 50.0
    assert df[df.status == "failed"]["error"].iloc[0] == "boom"
    assert results.load(tmp_path, ids={"a2"})["seed"].tolist() == [2]


def test_bench_results_writes_csv_that_pandas_reads_back(tmp_path):
    write_record(tmp_path, "mrpc", "kdfd", 1, "k1", {"dev": {"f1": 0.8, "accuracy": 0.7}})
    out = tmp_path / "r.csv"
    p = bench("results", "--results", str(tmp_path), "--format", "csv", "--out", str(out))
    assert p.returncode == 0, p.stderr
    df = pd.read_csv(out)
    assert df.loc[0, "metrics.dev.f1"] == 80.0 and abs(df.loc[0, "score"] - 75.0) < 1e-9


def test_the_committed_glue_cpu_records_reproduce_a_cell_of_the_committed_table_1(tmp_path):
    root = ROOT / "reports" / "glue-cpu" / "results"
    out = tmp_path / "glue-cpu.csv"
    p = bench("results", "--suite", "glue-cpu", "--results", str(root), "--format", "csv", "--out", str(out))
    assert p.returncode == 0, p.stderr
    df = pd.read_csv(out)
    from benchmarks import suite as suites

    jobs = {j.id for j in suites.load("glue-cpu").jobs}  # the folder also holds the Fig. 5 sweeps' own points
    on_disk = {path.stem.split("-", 1)[1] for path in root.glob("*/*/s*-*.json")} & jobs
    assert len(df) == len(on_disk) and set(df["id"]) == on_disk  # one row per committed record of the suite
    table = pd.read_csv(ROOT / "reports" / "glue-cpu" / "table1.csv")
    cell = table[(table.method == "vanilla-kd") & (table.task == "mrpc") & (table.metric == "f1")].iloc[0]
    runs = df[(df.method == "vanilla-kd") & (df.task == "mrpc") & (df.status == "done")]
    assert len(runs) == cell["n"] and abs(runs["metrics.dev.f1"].mean() - cell["mean"]) < 1e-9
