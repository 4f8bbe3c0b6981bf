"""The report's cost section: what was spent, and the estimate of what the jobs not yet run will cost."""

import math

import pandas as pd
import pytest

from benchmarks import cost


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
    whole = {"wall_seconds": 700.0, "curves": curves}
    assert cost.seconds_of(whole) == 700.0  # never resumed: as measured
    assert cost.seconds_of({**whole, "resumed_from_step": 0}) == 700.0
    # the resumed process ran epoch 2 only (380 s); epoch 1's 310 s were spent by the process the sitting stopped
    assert cost.seconds_of({"wall_seconds": 380.0, "curves": curves, "resumed_from_step": 115}) == 690.0
    # a checkpoint that keeps the seconds spent before it (a mid-epoch one, after 70 s of the stopped process's
    # setup and 400 s of training) counts them as kept, not estimated from the epochs it carried
    carried = {"wall_seconds": 380.0, "curves": curves, "resumed_from_step": 150, "timing": {"carried_seconds": 470.0}}
    assert cost.seconds_of(carried) == 850.0


def test_a_short_span_is_given_in_minutes_not_as_zero_hours():
    from benchmarks.cost import span

    assert span(42.0, "job-hours") == "1 job-minute" and span(300.0, "wall-clock hours") == "5 wall-clock minutes"
    assert span(7200.0, "job-hours") == "2.0 job-hours"
