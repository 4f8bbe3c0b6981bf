"""Held-out selection (benchmarks.selection) and the suites that use it: arms, teacher seeds, phases; one real run
of a tiny select-suite through `bench run`."""

import json
from pathlib import Path

import pytest

from benchmarks import selection, store
from benchmarks import suite as suites
from benchmarks.record_set import RecordSet
from benchmarks.store import Record
from kdfd.errors import ConfigError
from kdfd.result import JobResult

from .helpers import bench, records, tiny_train


def record(held: float, dev: float) -> Record:
    return Record(id="x", status="done", result=JobResult(heldout_metrics={"heldout": {"accuracy": held}},
                                                           metrics={"dev": {"accuracy": dev}}))


def test_choose_reads_the_held_out_split_never_dev():
    """A planted point is best on dev and worst on the held-out split: it is not chosen."""
    planted = [record(0.50, 0.99), record(0.52, 0.98)]
    honest = [record(0.80, 0.60), record(0.78, 0.61)]
    middle = [record(0.70, 0.70), record(0.69, 0.70)]
    choice = selection.choose("m", "sst2", {"[lr=1]": planted, "[lr=2]": honest, "[lr=3]": middle}, [1, 2])
    assert choice.point == "[lr=2]" and choice.waiting == 0
    assert choice.scores["[lr=1]"] == pytest.approx(51.0) and choice.budget == 6


def test_choose_waits_for_every_tuning_job_and_drops_failed_points():
    pending = selection.choose("m", "sst2", {"[a]": [record(0.9, 0.5), None], "[b]": [record(0.1, 0.5)] * 2}, [1, 2])
    assert pending.point is None and pending.waiting == 1
    failed = selection.choose("m", "sst2", {"[a]": [record(0.9, 0.5), Record(id="x")],
                                            "[b]": [record(0.1, 0.5)] * 2}, [1, 2])
    assert failed.point == "[b]" and failed.scores["[a]"] is None
    tie = selection.choose("m", "sst2", {"[a]": [record(0.5, 0.1)] * 2, "[b]": [record(0.5, 0.9)] * 2}, [1, 2])
    assert tie.point == "[a]"  # ties go to the grid's first point


SUITE = """
tasks = ["synth-single"]
seeds = [1, 2, 3, 4]
methods = ["kdfd", "vanilla-kd", "finetune"]
data_source = "synthetic"
teacher_seeds = [1, 2]
[teacher]
name = "tiny"
layers = 2
hidden = 32
[student]
name = "tiny"
layers = 1
hidden = 16
[train]
{train}
[select]
seeds = [1, 2]
phases = [["kdfd"], ["kdfd-no-vae"]]
ablations = ["kdfd-no-vae"]
[method.kdfd]
latent_dim = 8
[method.finetune]
seeds = [1, 2]
[arm.kdfd-no-vae]
of = "kdfd"
vae_lambda = 0.0
seeds = [3, 4]
"""


def suite_file(tmp_path: Path, **train) -> Path:
    values = {**tiny_train(epochs=1, max_train_examples=96, holdout=0.25), "lr": [1e-3, 3e-3], **train}
    path = tmp_path / "select.toml"
    path.write_text(SUITE.format(train="\n".join(f"{k} = {json.dumps(v)}" for k, v in values.items())))
    return path


def test_expansion_spreads_seeds_over_teachers_and_narrows_to_tuning_first(tmp_path):
    s = suites.load(str(suite_file(tmp_path)))
    students = [j for j in s.jobs if j.config.role != "teacher"]
    assert {j.config.seed: j.config.train.teacher_seed for j in students} == {1: 1, 2: 2, 3: 1, 4: 2}
    assert {selection.row_of(j) for j in students} == {"kdfd", "vanilla-kd", "finetune", "kdfd-no-vae"}
    arm = next(j for j in students if selection.row_of(j) == "kdfd-no-vae")
    assert arm.config.method == "kdfd" and arm.config.params["vae_lambda"] == 0.0
    jobs, pending = selection.narrow(s.jobs, s.select, [tmp_path / "none"])
    rows = [(selection.row_of(j), j.config.seed) for j in jobs if j.config.role != "teacher"]
    # nothing beyond the tuning seeds until a choice is made; the arm waits for its parent's
    assert {seed for _, seed in rows} == {1, 2} and ("kdfd-no-vae", 3) not in rows
    assert {(c.row, c.task) for c in pending} == {("kdfd", "synth-single"), ("vanilla-kd", "synth-single"),
                                                   ("finetune", "synth-single")}
    first_teacher = next(i for i, j in enumerate(jobs) if j.config.role == "teacher")
    assert first_teacher < next(i for i, j in enumerate(jobs) if j.teacher is not None)


def test_bad_select_tables_are_one_line_errors(tmp_path):
    path = suite_file(tmp_path)
    path.write_text(path.read_text().replace('seeds = [1, 2]\nphases', 'seeds = [1, 2]\nsplit = "dev"\nphases'))
    with pytest.raises(ConfigError, match="split 'dev' is not allowed"):
        suites.load(str(path))
    path = suite_file(tmp_path)
    path.write_text(path.read_text().replace("vae_lambda = 0.0", "vae_lambda = [0.0, 0.1]"))
    with pytest.raises(ConfigError, match="arm.kdfd-no-vae.*is a list"):
        suites.load(str(path))


def test_a_select_suite_runs_end_to_end(tmp_path):
    """`bench run`: the tuning jobs, then the chosen point's other seeds and the arm at it; the records' held-out
    scores choose; every student trains on the same 75% of the examples; the report shows the choice."""
    path, results = suite_file(tmp_path), tmp_path / "results"
    done = bench("run", "--suite", str(path), "--results", str(results), "--no-progress")
    assert done.returncode == 0, done.stderr
    students = records(results)
    students = [r for r in students if r.role != "teacher"]
    s = suites.load(str(path))
    choice = selection.choices(s.jobs, s.select, RecordSet([results]))[("kdfd", "synth-single")]
    chosen = {r.label for r in students if r.method == "kdfd" and r.seed in (3, 4)}
    assert chosen == {f"kdfd{choice.point}", f"kdfd-no-vae{choice.point}"}
    assert all(r.result.heldout_metrics and r.result.data["heldout_examples"] == 24 for r in students)
    assert {r.result.data["train_examples"] for r in students} == {72}
    teachers = [r for r in records(results) if r.role == "teacher"]
    assert sorted(r.seed for r in teachers) == [1, 2] and all(r.result.data["train_examples"] == 72 for r in teachers)
    jobs, pending = selection.narrow(s.jobs, s.select, [results])
    assert not pending and all(store.is_done(results, j) for j in jobs)
    out = bench("report", "--suite", str(path), "--results", str(results), "--out", str(tmp_path / "out"))
    assert out.returncode == 0, out.stderr
    report = (tmp_path / "out" / "select" / "report.md").read_text()
    assert "Chosen on the held-out split of train" in report and "## Ablations" in report
