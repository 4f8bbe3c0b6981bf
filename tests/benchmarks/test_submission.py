"""`bench report --glue-submission`: the leaderboard's file names, header and label strings, from a real run that
predicted RTE's real test file."""

import numpy as np

from benchmarks import submission
from kdfd.tasks import get_task

from .helpers import bench


def test_files_carry_the_leaderboard_names_header_and_label_strings(tmp_path):
    mnli = submission.write_run(tmp_path, get_task("mnli"), {
        "test_matched": np.array([0, 2]), "test_mismatched": np.array([1]), "diagnostic": np.array([2])})
    assert sorted(p.name for p in mnli) == ["AX.tsv", "MNLI-m.tsv", "MNLI-mm.tsv"]
    assert (tmp_path / "MNLI-m.tsv").read_text() == "index\tprediction\n0\tentailment\n1\tcontradiction\n"
    assert (tmp_path / "MNLI-mm.tsv").read_text() == "index\tprediction\n0\tneutral\n"
    (stsb,) = submission.write_run(tmp_path, get_task("stsb"), {"test": np.array([1.23456, 4.0], dtype=np.float32)})
    assert stsb.name == "STS-B.tsv" and stsb.read_text() == "index\tprediction\n0\t1.235\n1\t4.000\n"
    (cola,) = submission.write_run(tmp_path, get_task("cola"), {"test": np.array([1, 0])})
    assert cola.name == "CoLA.tsv" and cola.read_text() == "index\tprediction\n0\t1\n1\t0\n"


def test_a_run_with_predict_test_gives_the_rte_submission_file(glue, tmp_path):
    suite = tmp_path / "rte.toml"
    suite.write_text('tasks = ["rte"]\nseeds = [1]\nmethods = ["finetune"]\ndata_source = "tsv"\n'
                     '[student]\nname = "tiny"\n[train]\nepochs = 1\nmax_train_examples = 32\nmax_eval_examples = 32\n'
                     "predict_test = true\n")
    results, out = tmp_path / "results", tmp_path / "reports"
    run = bench("run", "--suite", str(suite), "--results", str(results), "--glue-dir", str(glue), "--no-progress")
    assert run.returncode == 0, run.stderr
    rep = bench("report", "--suite", str(suite), "--results", str(results), "--out", str(out), "--glue-submission")
    assert rep.returncode == 0, rep.stderr
    assert "GLUE submission: 1 files in 1 folders" in rep.stdout
    lines = (out / "rte" / "glue-submission" / "finetune" / "seed1" / "RTE.tsv").read_text().splitlines()
    n_test = len((glue / "RTE" / "test.tsv").read_text(encoding="utf-8").strip("\n").split("\n")) - 1
    assert lines[0] == "index\tprediction" and len(lines) == 1 + n_test == 3001
    assert [int(x.split("\t")[0]) for x in lines[1:]] == list(range(n_test))
    assert {x.split("\t")[1] for x in lines[1:]} <= {"entailment", "not_entailment"}
