"""The report's cost section: what was spent, and the estimate of what the jobs not yet run will cost."""

import math

import pandas as pd
import pytest

from benchmarks import cost
from benchmarks.store import Record
from kdfd.result import JobResult


def _frame(rows):
    return pd.DataFrame(rows, columns=["task", "job", "seconds"])


def test_a_pair_that_never_ran_costs_its_kind_times_its_task_factor():
    # kind b costs 3x kind a on mrpc, cola costs 2x mrpc for a: the multiplicative model gives b on cola 600 s
    df = _frame([("mrpc", "a", 100.0), ("mrpc", "a", 140.0), ("cola", "a", 240.0),
                 ("mrpc", "b[x=1]", 360.0), ("mrpc", "b[x=2]", 360.0)])
    got = cost.fitted(df)
    assert got[("a", "mrpc")] == 120.0  # the measured median wins where the pair ran
    assert got[("b", "mrpc")] == 360.0  # grid points of one method are one kind
    assert got[("b", "cola")] == pytest.approx(720.0)  # 360 x (240 / 120)


def test_to_finish_sums_the_left_jobs_and_names_kinds_it_cannot_estimate():
    df = _frame([("mrpc", "a", 10000.0), ("cola", "a", 30000.0), ("mrpc", "b", 5000.0)])
    lines = cost.to_finish(df, [("cola", "b[x=1]"), ("cola", "b[x=2]"), ("mrpc", "a"), ("mrpc", "c")])
    total = 2 * 15000.0 + 10000.0  # b on cola: 5000 x 3; 11.1 job-hours
    assert f"about {total / 3600:.1f} job-hours, **{total / 2 / 3600:.1f} wall-clock hours more**" in lines[0]
    assert "for 3 of them; no estimate for c on mrpc (no done record of it keeps its time)." in lines[0]
    assert cost.to_finish(df, []) == []
    assert math.isclose(cost.fitted(df)[("b", "cola")], 15000.0)


def test_a_resumed_job_counts_the_epochs_its_checkpoint_carried():
    curves = [{"steps": 115, "train_seconds": 300.0, "eval_seconds": 10.0},
              {"steps": 230, "train_seconds": 350.0, "eval_seconds": 10.0}]

    def record(wall_seconds, **result):
        return Record(id="x", status="done", wall_seconds=wall_seconds, result=JobResult(curves=curves, **result))

    assert cost.seconds_of(record(700.0)) == 700.0  # never resumed: as measured
    assert cost.seconds_of(record(700.0, resumed_from_step=0)) == 700.0
    # the resumed process ran epoch 2 only (380 s); epoch 1's 310 s were spent by the process the sitting stopped
    assert cost.seconds_of(record(380.0, resumed_from_step=115)) == 690.0
    # a checkpoint that keeps the seconds spent before it (a mid-epoch one, after 70 s of the stopped process's
    # setup and 400 s of training) counts them as kept, not estimated from the epochs it carried
    carried = record(380.0, resumed_from_step=150, timing={"carried_seconds": 470.0})
    assert cost.seconds_of(carried) == 850.0


def test_a_short_span_is_given_in_minutes_not_as_zero_hours():
    from benchmarks.cost import span

    assert span(42.0, "job-hours") == "1 job-minute" and span(300.0, "wall-clock hours") == "5 wall-clock minutes"
    assert span(7200.0, "job-hours") == "2.0 job-hours"


# ------------------------------------------------------------------------------ before the first record: step counts

@pytest.fixture(scope="module")
def load():
    from benchmarks import suite
    from kdfd.registry import load_methods

    load_methods()
    return suite.load


def test_a_job_s_steps_come_from_its_task_s_size_and_its_budget(load):
    mnli = load("glue-full", tasks=["mnli"], seeds=[1], methods=["finetune"]).jobs
    assert {cost.job_steps(j) for j in mnli} == {3 * math.ceil(392702 / 32)}  # the full set, 3 epochs
    smoke = {j.label: j for j in load("smoke", tasks=["synth-pair"]).jobs}
    assert cost.job_steps(smoke["kdfd"]) == 3 * math.ceil(1000 / 32)  # max_train_examples caps the set


def test_a_step_counts_each_model_as_the_method_runs_it(load):
    """finetune trains the student alone; vanilla KD adds the frozen teacher's forward (2 x its parameters); KDFD's
    online teacher trains and runs again (8 x)."""
    jobs = {j.label: j for j in load("smoke", tasks=["synth-pair"]).jobs}
    s, t = (cost.model_params(jobs["kdfd"].config.student), cost.model_params(jobs["kdfd"].config.teacher))
    assert (s, t) == (2 * (4 * 32**2 + 2 * 32 * 64), 4 * (4 * 64**2 + 2 * 64 * 128))
    per_step = {k: cost.job_seconds(jobs[k], "cpu") / cost.job_steps(jobs[k])
                for k in ("finetune", "vanilla-kd", "kdfd")}
    tokens = 32 * 64 / cost.THROUGHPUT["cpu"]
    assert per_step["finetune"] == pytest.approx(6 * s * tokens)
    assert per_step["vanilla-kd"] == pytest.approx((6 * s + 2 * t) * tokens)
    assert per_step["kdfd"] == pytest.approx((6 * s + 8 * t) * tokens)


@pytest.mark.parametrize("name", ["glue-full", "table1", "table2", "table3", "sweep-dim", "sweep-lambda"])
def test_the_gpu_suites_ask_for_one_gpu_and_a_time_limit_from_their_step_counts(load, name):
    suite = load(name, seeds=[1])  # seeds change no job's steps
    assert suite.slurm["gpus"] == 1
    assert suite.slurm["time"] == cost.time_limit(suite.jobs, "gpu"), "update the suite's [slurm] time"


def test_the_estimate_takes_done_records_where_they_cover_a_kind_and_task_else_step_counts(load):
    jobs = load("smoke").jobs
    done = _frame([("synth-pair", "teacher", 100.0), ("synth-pair", "kdfd", 50.0), ("synth-reg", "kdfd", 80.0)])
    e = cost.estimate(jobs, done, "cpu")
    fit = cost.fitted(done)
    covered = [j for j in jobs if (cost.kind(j.label), j.config.task) in fit]
    assert len(covered) == 4 and e.from_records == 4 and e.from_steps == len(jobs) - 4 and not e.unpriced
    assert e.seconds == pytest.approx(sum(fit[(cost.kind(j.label), j.config.task)] for j in covered)
                                      + sum(cost.job_seconds(j, "cpu") for j in jobs if j not in covered))
