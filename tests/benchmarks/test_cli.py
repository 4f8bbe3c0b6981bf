"""End to end: the real `bench` command on tiny synthetic data and on real GLUE files."""

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import time

import pytest

from benchmarks import store

from .helpers import NO_TORCH, bench, tiny_suite, tiny_train

TINY_SUITE = tiny_suite(methods=("kdfd", "vanilla-kd", "finetune"), description="test suite",
                        train=tiny_train(epochs=1, max_train_examples=128))


def test_run_writes_a_record_per_job_then_skips_them(tmp_path):
    suite = tmp_path / "tiny.toml"
    suite.write_text(TINY_SUITE)
    results = tmp_path / "results"
    first = bench("run", "--suite", str(suite), "--results", str(results), "--no-progress")
    assert first.returncode == 0, first.stderr
    records = sorted(results.rglob("*.json"))
    assert len(records) == 4  # one teacher fine-tuning + three methods
    recs = [json.loads(p.read_text()) for p in records]  # the JSON as jq and pandas read it
    assert all(r["status"] == "done" and r["schema"] == store.SCHEMA for r in recs)
    kdfd = next(r for r in recs if r["method"] == "kdfd")
    result = kdfd["result"]
    assert set(result["metrics"]["dev"]) == {"accuracy"} and result["teacher_metrics"]["dev"]["accuracy"] > 0
    assert {"git", "packages", "hardware"} <= set(kdfd["provenance"])
    assert "config_hash" not in kdfd and kdfd["method_version"] == "1"
    assert {"teacher/vae", "student/kd"} <= set(result["curves"][0]["loss"])
    counts = result["param_counts"]  # the method's parameters are config.params
    assert counts["student"] > 0 and counts["teacher"] > counts["student"] and "params" not in kdfd
    assert len(list(results.rglob("*.pt"))) == 1  # the shared teacher checkpoint
    mtimes = [p.stat().st_mtime_ns for p in records]

    second = bench("run", "--suite", str(suite), "--results", str(results), "--no-progress")
    assert second.returncode == 0 and second.stdout.count("skipped") == 4
    assert [p.stat().st_mtime_ns for p in records] == mtimes


def test_a_failing_job_is_recorded_and_the_others_go_on(tmp_path):
    suite = tmp_path / "fail.toml"
    suite.write_text(TINY_SUITE)
    results = tmp_path / "results"
    # the kdfd job raises when it starts (fault injection); the others run
    out = bench("run", "--suite", str(suite), "--results", str(results), "--no-progress",
                env={**os.environ, "KDFD_FAIL_JOBS": "kdfd"})
    assert out.returncode == 1
    recs = {r.label: r for r in _records(results)}
    assert recs["kdfd"].status == "failed" and "failure injected" in recs["kdfd"].error["message"]
    assert recs["kdfd"].result is None and recs["finetune"].status == recs["vanilla-kd"].status == "done"
    rerun = bench("run", "--suite", str(suite), "--results", str(results), "--no-progress")
    assert rerun.returncode == 0 and rerun.stdout.count("│ skipped ") == 3  # only the failed job ran again


def _one_line_error(out, *fragments):
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


def test_usage_errors_are_one_line_with_exit_code_2(tmp_path):
    _one_line_error(bench("run", "--suite", "smoke", "--tasks", "nope", "--dry-run"), "unknown task 'nope'", "rte")
    _one_line_error(bench("run", "--suite", "smoke", "--methods", "nope", "--dry-run"), "unknown method 'nope'", "kdfd")
    _one_line_error(bench("run", "--suite", "nope", "--dry-run"), "unknown suite 'nope'", "smoke")
    _one_line_error(bench("run", "--suite", "glue-tiny", "--glue-dir", str(tmp_path / "missing"),
                          "--results", str(tmp_path)), "GLUE dir", "does not exist")
    bad = tmp_path / "lam.toml"
    bad.write_text(TINY_SUITE.replace("latent_dim = 8", "latent_dim = 8\nvae_lambda = -0.5"))
    _one_line_error(bench("run", "--suite", str(bad), "--dry-run"), "vae_lambda = -0.5", "[0.0, inf]")


def test_tsv_without_a_needed_column(tmp_path):
    rte = tmp_path / "glue" / "RTE"
    rte.mkdir(parents=True)
    (rte / "train.tsv").write_text("index\tsentence1\tsentence2\n0\ta\tb\n")
    (rte / "dev.tsv").write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n")
    out = bench("run", "--suite", "glue-tiny", "--tasks", "rte", "--glue-dir", str(tmp_path / "glue"),
                "--results", str(tmp_path / "r"))
    _one_line_error(out, "train.tsv", "missing column 'label'")
    assert not (tmp_path / "r").exists()


def test_glue_full_dry_run_is_a_short_plan_ending_in_a_cost_estimate_without_network(tmp_path):
    out = bench("run", "--suite", "glue-full", "--dry-run", "--executor", "slurm", "--results", str(tmp_path / "r"),
                env=_offline_env(tmp_path, HF_HUB_OFFLINE="1"))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) < 12  # a summary, not the 1,680 jobs (--list-jobs shows them)
    assert "1680 jobs (120 teacher fine-tuning, 1560 method): 0 done, 1680 to run" in lines[1]
    assert "to run, by kind: kdfd 720, vanilla-kd 720, teacher 120, finetune 120" in out.stdout
    assert ("SLURM: 121 job arrays, 1680 tasks of 1 job(s) each: one array of 240 tasks that wait for nothing, then "
            "120 arrays of 12 tasks, each after its teacher's task") in out.stdout
    assert "one task: 1 GPU, 4 CPUs, the default memory, 120 min" in out.stdout
    (cost,) = [ln for ln in lines if ln.startswith("estimated cost: ")]
    assert "GPU-hours for the 1680 jobs to run (0 priced from this suite's done records, 1680 from step counts)" in cost
    assert lines[-1].startswith("  assumed: steps = epochs x batches") and "TFLOP/s per device (gpu)" in lines[-1]
    assert not (tmp_path / "r").exists()


def test_a_gpu_suite_without_a_gpu_stops_at_preflight_unless_cpu_is_written_out(tmp_path):
    """glue-full asks for a GPU per job ([slurm] gpus = 1): no GPU here, so a local run stops in one line before
    anything is written, as does --gpus 0 alone; --gpus 0 --device cpu goes on (to the model check of
    test_glue_full_offline_stops_at_preflight)."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible: the suite would run")
    results = tmp_path / "r"
    job = ("run", "--suite", "glue-full", "--tasks", "rte", "--seeds", "1", "--methods", "finetune", "--results",
           str(results))
    _stops_at_preflight(bench(*job), results, "suite glue-full asks for 1 GPU per job ([slurm] gpus = 1) and this "
                        "machine has none", "--gpus 0 --device cpu")
    _stops_at_preflight(bench(*job, "--gpus", "0"), results, "and --gpus 0 gives its jobs none",
                        "--gpus 0 --device cpu")


def test_list_shows_tasks_methods_and_suites():
    out = bench("list")
    assert out.returncode == 0
    for word in ("mnli", "dev_mismatched", "kdfd", "vanilla-kd", "finetune", "vae_lambda=0.005", "glue-cpu"):
        assert word in out.stdout


def test_list_reads_the_suites_without_expanding_them(tmp_path):
    """`bench list` expands no suite (table1 alone is 6360 jobs) and reads them without torch: a suite's job count is
    its cached expansion's, where `bench run` kept one under --results."""
    from benchmarks import suite as suites
    from benchmarks import suite_cache, suite_file
    from kdfd.registry import load_methods

    load_methods()
    suite_cache.save(tmp_path, suites.load("smoke"), suite_cache.key("smoke"))
    code = ("import sys\nfrom benchmarks.cli import main\ncode = main(sys.argv[1:])\n"
            "assert 'benchmarks.suite' not in sys.modules\nsys.exit(code)")
    listed = subprocess.run([sys.executable, "-c", code, "list", "--results", str(tmp_path)], capture_output=True,
                            text=True, timeout=600)
    assert listed.returncode == 0, listed.stderr
    code = NO_TORCH + "import sys\nfrom benchmarks import cli\ncli.console.print(cli.suite_table(sys.argv[1]))"
    alone = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert alone.returncode == 0, alone.stderr
    for out in (listed.stdout, alone.stdout):
        jobs = {cells[1].strip(): cells[2].strip() for cells in (line.split("│") for line in out.splitlines())
                if len(cells) == 5 and cells[1].strip()}
        assert jobs["smoke"] == "12" and jobs["table1"] == "-" and set(suite_file.available()) <= set(jobs)


def test_report_on_a_root_without_the_suites_records_says_where_it_looked_and_writes_nothing(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "more").mkdir()
    out = bench("report", "--suite", "smoke", "--results", str(tmp_path / "empty"), "--also", str(tmp_path / "more"),
                "--out", str(tmp_path / "reports"))
    assert out.returncode == 1, out.stdout + out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith("bench: warning: no record of suite smoke's 12 jobs under ")
    assert f"{tmp_path / 'empty'}, {tmp_path / 'more'}" in line and "no report written" in line
    assert not (tmp_path / "reports").exists()  # an existing report would have stayed as it was


def _offline_env(tmp_path, **extra) -> dict:
    """An empty Hugging Face cache; GLUE from the shared folder when there is one."""
    from ..conftest import glue_dir

    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), **extra}
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_CACHE", "HF_ENDPOINT"):
        if key not in extra:
            env.pop(key, None)
    if glue_dir() is not None:
        env["GLUE_DIR"] = str(glue_dir())
    return env


def _stops_at_preflight(out, results, *fragments):
    """Stopped by the preflight, before any job began: its one line, and nothing under the results root (no record,
    lock, checkpoint or teacher cache). How long that takes is a machine's speed, not a test's business."""
    _one_line_error(out, *fragments)
    assert not results.exists() or not list(results.rglob("*"))


def test_a_hub_model_neither_local_nor_cached_with_no_hub_is_found_at_preflight(tmp_path):
    """The hub answers nothing (a refused port: a real, immediate failure) and the cache is empty: exit 2 before any
    job, one line naming the model and how to point at a local copy, nothing written."""
    suite = tmp_path / "hub.toml"
    suite.write_text(TINY_SUITE.replace('name = "tiny"\nlayers = 1', 'name = "no-such-org/hub-only-model"\nlayers = 1'))
    results = tmp_path / "results"
    out = bench("run", "--suite", str(suite), "--results", str(results), "--no-progress",
                env=_offline_env(tmp_path, HF_ENDPOINT="http://127.0.0.1:9"))
    _stops_at_preflight(out, results, "model 'no-such-org/hub-only-model' is neither a "
                        "local folder nor in the Hugging Face cache", "http://127.0.0.1:9 does not answer",
                        'name = "DIR"')
    out = bench("run", "--suite", str(suite), "--results", str(results), "--no-progress",
                env=_offline_env(tmp_path, HF_HUB_OFFLINE="1"))
    _stops_at_preflight(out, results, "no-such-org/hub-only-model", "HF_HUB_OFFLINE")


def test_glue_full_offline_stops_at_preflight(tmp_path):
    """The new user's command of issue 18, on this machine's own network: without a hub (no internet here)."""
    from kdfd.models import hub_unreachable

    if hub_unreachable() is None:
        pytest.skip("the Hugging Face hub answers from here: the paper's models would download")
    results = tmp_path / "x"
    out = bench("run", "--suite", "glue-full", "--tasks", "rte", "--seeds", "1", "--methods", "finetune",
                "--results", str(results), "--gpus", "0", "--device", "cpu", env=_offline_env(tmp_path))
    _stops_at_preflight(out, results, "huawei-noah/TinyBERT_General_6L_768D",
                        "Hugging Face cache", 'name = "DIR"')


@pytest.mark.parametrize("command", ["status", "wait", "cancel", "report", "results", "collect"])
def test_a_results_root_that_does_not_exist_is_named_by_every_command_that_reads_one(tmp_path, capsys, command):
    from benchmarks.cli import main

    missing = tmp_path / "nowhere"
    argv = [command, "--results", str(missing)] + ["--suite", "smoke"] * (command != "results")
    argv += ["--into", str(tmp_path / "into")] * (command == "collect")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == f"bench: error: results root {missing} does not exist (see --results, or KDFD_RESULTS)\n"
    assert not missing.exists()


@pytest.mark.parametrize("signum,code,how", [(signal.SIGINT, 130, "interrupted (Ctrl-C)"),
                                             (signal.SIGTERM, 143, "terminated (SIGTERM)")])
def test_an_interrupted_run_ends_with_one_line_that_says_how_to_resume(tmp_path, signum, code, how):
    suite = tmp_path / "suite.toml"
    suite.write_text(tiny_suite(methods=("finetune",), methods_tables="", train=tiny_train(max_train_examples=3200)))
    args = ["run", "--suite", str(suite), "--results", str(tmp_path / "results"), "--no-progress",
            "--checkpoint-every", "3"]
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not list((tmp_path / "results").rglob("*.ckpt")) and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == code, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"bench: {how} during `bench run`; unfinished jobs keep their last checkpoint, and "
                          f"`bench {shlex.join(args)}` resumes them"), err
    assert list((tmp_path / "results").rglob("*.ckpt")) and not list((tmp_path / "results").rglob("*.tmp"))
    again = bench(*args)  # from the checkpoint, which the interrupt left whole (with its checksum, or its zip CRCs)
    assert again.returncode == 0 and "damaged" not in again.stdout + again.stderr, again.stdout + again.stderr
    (record,) = _records(tmp_path / "results")
    assert record.result.resumed_from_step > 0


def _dev_accuracy_with_transformers(folder, task_name: str, n: int) -> float:
    """The dev accuracy of an exported folder, with transformers alone, on the job's dev subset."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from kdfd import synthetic
    from kdfd.data import subset

    examples = subset(list(synthetic.generate(task_name, "dev")), n)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    with torch.no_grad():
        enc = tokenizer([e.text_a for e in examples], truncation=True, max_length=32, padding=True,
                        return_tensors="pt")
        predicted = model(**enc).logits.argmax(1).numpy()
    return float((predicted == [int(e.label) for e in examples]).mean())


def test_save_model_and_export_give_folders_transformers_loads_and_a_teacher_comes_back_in(tmp_path, capsys):
    from benchmarks.cli import main  # in this process: `bench run` in a subprocess is the part that trains

    suite = tmp_path / "keep.toml"
    suite.write_text(tiny_suite(train=tiny_train(epochs=1, max_train_examples=128, save_model=True)))
    results = tmp_path / "results"
    run = bench("run", "--suite", str(suite), "--results", str(results), "--no-progress")
    assert run.returncode == 0, run.stderr
    kdfd = next(r for r in _records(results) if r.method == "kdfd")
    assert "save_model" not in kdfd.config["train"]  # out of the job's id and its record
    out, teacher = tmp_path / "student", tmp_path / "teacher"
    job = ["--suite", str(suite), "--task", "synth-single", "--seed", "1", "--results", str(results)]
    assert main(["export", *job, "--method", "kdfd", "--out", str(out)]) == 0
    assert json.loads((out / "kdfd-export.json").read_text())["job"] == kdfd.id
    assert _dev_accuracy_with_transformers(out, "synth-single", 64) == kdfd.result.metrics["dev"]["accuracy"]
    assert main(["export", *job, "--method", "teacher", "--out", str(teacher)]) == 0

    taught = tmp_path / "taught.toml"  # the exported teacher as a suite's fine-tuned teacher: no fine-tuning job
    taught.write_text(tiny_suite(methods=("vanilla-kd",), train=tiny_train(epochs=1, max_train_examples=128),
                                 methods_tables="").replace('name = "tiny"\nlayers = 2\nhidden = 32\n',
                                                            f'name = "{teacher}"\nfinetuned = true\n', 1))
    again = bench("run", "--suite", str(taught), "--results", str(tmp_path / "r2"), "--no-progress")
    assert again.returncode == 0, again.stderr
    (rec,) = _records(tmp_path / "r2")
    teacher_rec = next(r for r in _records(results) if r.role == "teacher")
    assert rec.result.teacher_metrics_start == teacher_rec.result.metrics and rec.teacher_job is None

    capsys.readouterr()
    assert main(["export", "--suite", str(taught), "--task", "synth-single", "--method", "vanilla-kd", "--seed", "1",
                 "--out", str(tmp_path / "x"), "--results", str(tmp_path / "r2")]) == 2
    assert "kept no model: run its suite with [train] save_model = true" in capsys.readouterr().err
    mean = tmp_path / "mean.toml"
    mean.write_text(suite.read_text().replace('[student]\nname = "tiny"\n',
                                              '[student]\nname = "tiny"\npooling = "mean"\n'))
    assert main(["run", "--suite", str(mean), "--results", str(tmp_path / "r3")]) == 2
    assert "save_model = true with pooling = 'mean': does not export" in capsys.readouterr().err


def _records(results):
    return [store.read(p) for p in sorted(results.rglob("s*-*.json"))]


def test_a_run_without_a_terminal_logs_a_line_per_job_and_no_control_codes(tmp_path):
    """`bench run --suite S > log 2>&1`: no progress bars (no terminal), one line per finished job, then the table."""
    import subprocess
    import sys

    suite = tmp_path / "logged.toml"
    suite.write_text(tiny_suite(methods=("vanilla-kd", "finetune"), train=tiny_train(epochs=1, max_train_examples=64)))
    log = tmp_path / "log"
    for attempt in ("done", "skipped"):
        with open(log, "w") as f:
            out = subprocess.run([sys.executable, "-m", "benchmarks.cli", "run", "--suite", str(suite), "--results",
                                  str(tmp_path / "results")], stdout=f, stderr=subprocess.STDOUT, timeout=600)
        text = log.read_text()
        assert out.returncode == 0, text[-3000:]
        assert "\x1b" not in text and "\r" not in text, repr(text[:500])  # no cursor moves, colours or redraws
        lines = [ln.split() for ln in text.splitlines() if ln.strip().startswith(attempt)]
        assert sorted(ln[2] for ln in lines) == ["finetune", "teacher", "vanilla-kd"], text  # one line per job

    quiet = bench("run", "-q", "--suite", str(suite), "--results", str(tmp_path / "results"))
    assert quiet.returncode == 0 and quiet.stderr == "" and "skipped" not in quiet.stdout.split("┃")[0]


def test_every_flag_says_what_it_does_and_bench_has_a_version():
    from benchmarks.cli import parser

    def flags(p, where):
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from flags(sub, f"{where} {name}")
            elif action.option_strings and not isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
                yield where, action

    missing = [f"{where} {a.option_strings[0]}" for where, a in flags(parser(), "bench") if not a.help]
    assert not missing
    out = bench("--version")
    assert out.returncode == 0 and out.stdout.startswith("bench ")


def test_a_missing_optional_package_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    from benchmarks.cli import main

    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if pyarrow were not installed
    assert main(["results", "--results", str(tmp_path), "--format", "parquet", "--out", str(tmp_path / "r.pq")]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == ("bench: error: --format parquet needs pyarrow: pip "
                                                                "install 'kdfd-bench[parquet]'")
    assert main(["results", "--results", str(tmp_path), "--format", "parquet"]) == 2
    assert "--format parquet needs --out FILE" in capsys.readouterr().err
