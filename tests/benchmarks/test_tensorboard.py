"""`bench run --tensorboard`: a real GLUE run's events, read back as `tensorboard --logdir RESULTS/.tensorboard` reads
them, and
a job killed mid-training whose resumed events match an uninterrupted run's step for step."""

import os
import subprocess
import sys

from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer
from tensorboard.plugins.hparams import plugin_data_pb2

from benchmarks import store
from benchmarks import suite as suites

from .helpers import RESUMABLE_SUITE, bench, records, tiny_suite, tiny_train


def runs(results) -> EventMultiplexer:
    """Every run under a results root, named as TensorBoard names them (the folder under the root)."""
    mux = EventMultiplexer()
    mux.AddRunsFromDirectory(str(results))
    mux.Reload()
    return mux


def test_a_glue_tiny_run_with_tensorboard_shows_each_job_by_label_with_its_losses_rates_and_dev_metrics(glue, tmp_path):
    results = tmp_path / "results"
    args = ("--suite", "glue-tiny", "--tasks", "rte", "--methods", "kdfd", "--glue-dir", str(glue), "--results",
            str(results), "--no-progress")
    out = bench("run", *args, "--tensorboard")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]

    jobs = suites.load("glue-tiny", tasks=["rte"], methods=["kdfd"]).jobs  # ids as without --tensorboard
    mux = runs(results / ".tensorboard")
    assert set(mux.Runs()) == {f"rte/{j.label}/s1-{j.id[:8]}" for j in jobs}
    for job in jobs:
        record = store.find(results, job)
        assert record.status == "done" and "tensorboard" not in record.config["train"]
        acc = mux.GetAccumulator(str(store.events_path(results, job).relative_to(results / ".tensorboard")))
        tags = set(acc.Tags()["scalars"])
        role = job.config.role  # a teacher fine-tuning job's model is tagged teacher, not the engine's student
        terms = {k.replace("student/", f"{role}/") for k in record.result.curves[0]["loss"]}  # every term, per role
        assert {t for t in tags if "/loss/" in t} == {"{}/loss/{}".format(*k.split("/", 1)) for k in terms}
        steps = record.result.timing["steps"]
        assert [e.step for e in acc.Scalars(f"{role}/loss/total")] == list(range(1, steps + 1))
        assert len(acc.Scalars(f"{role}/lr")) == steps
        last = acc.Scalars(f"{role}/dev/accuracy")[-1]
        assert last.step == steps and abs(last.value - record.result.metrics["dev"]["accuracy"]) < 1e-6
        assert not any(t.startswith("dev/") or "/dev/dev/" in t for t in tags)  # no repeated words
        start = plugin_data_pb2.HParamsPluginData.FromString(
            acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]).session_start_info
        assert start.hparams["task"].string_value == "rte" and start.hparams["seed"].number_value == 1  # config
        assert start.hparams["train.lr"].number_value == record.config["train"]["lr"]
    assert {"teacher/loss/total", "teacher/lr", "teacher/dev/accuracy", "student/loss/total"} <= set(
        mux.GetAccumulator(next(r for r in mux.Runs() if "/kdfd/" in r)).Tags()["scalars"])  # online teacher

    again = bench("run", *args)  # without the flag: the same jobs, all done
    assert again.returncode == 0 and again.stdout.count("skipped") == len(jobs), again.stdout[-3000:]


def test_a_job_killed_mid_training_resumes_its_events_as_an_uninterrupted_run_wrote_them(tmp_path):
    suite = tmp_path / "resume.toml"
    suite.write_text(RESUMABLE_SUITE)
    common = ("run", "--suite", str(suite), "--no-progress", "--checkpoint-every", "3", "--tensorboard")
    whole = bench(*common, "--results", str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr[-3000:]

    results = tmp_path / "killed"
    # the teacher's 10 steps, then the KDFD job's: killed before its 15th, 2 steps after its checkpoint at step 12
    env = {**os.environ, "KDFD_CRASH_AT": "train-step:25"}
    killed = bench(*common, "--results", str(results), env=env)
    assert killed.returncode == -9 and not records(results, "kdfd")
    rerun = bench(*common, "--results", str(results))
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    (resumed,) = records(results, "kdfd")
    assert resumed.result.resumed_from_step == 12

    (job,) = [j for j in suites.load(str(suite)).jobs if j.label == "kdfd"]
    folder = store.events_path(results, job)
    assert len(list(folder.glob("events.out.tfevents.*"))) == 2  # the killed run's file and the resumed run's
    got = runs(results).GetAccumulator(str(folder.relative_to(results)))
    want = runs(tmp_path / "whole").GetAccumulator(str(store.events_path(tmp_path / "whole", job).relative_to(
        tmp_path / "whole")))
    assert set(got.Tags()["scalars"]) == set(want.Tags()["scalars"])
    for tag in want.Tags()["scalars"]:  # each step once, with the uninterrupted run's value
        assert [(e.step, e.value) for e in got.Scalars(tag)] == [(e.step, e.value) for e in want.Scalars(tag)], tag


def test_bench_run_tensorboard_needs_the_package_and_says_so_before_any_job(tmp_path):
    suite = tmp_path / "resume.toml"
    suite.write_text(RESUMABLE_SUITE)
    code = ("import sys; sys.modules['torch.utils.tensorboard'] = None; from benchmarks.cli import main; "
            f"sys.exit(main(['run', '--suite', {str(suite)!r}, '--results', {str(tmp_path / 'r')!r}, '--tensorboard', "
            "'--no-progress']))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "needs the tensorboard package: pip install 'kdfd-bench[tensorboard]'" in out.stdout + out.stderr
    assert not list((tmp_path / "r").rglob("*.json"))


def test_the_suite_key_turns_it_on_and_changes_no_job_id(tmp_path):
    plain, on = tmp_path / "plain.toml", tmp_path / "on.toml"
    plain.write_text(tiny_suite(train=tiny_train()))
    on.write_text(tiny_suite(train=tiny_train(tensorboard=True)))
    a, b = suites.load(str(plain)).jobs, suites.load(str(on)).jobs
    assert [j.id for j in a] == [j.id for j in b]
    assert all(j.config.train.tensorboard for j in b) and not any(j.config.train.tensorboard for j in a)
