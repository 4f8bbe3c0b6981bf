"""The cost plan of PROTOCOL.md: glue-cpu-v2's jobs, once every choice is made, priced at the medians of the
committed CPU records (glue-cpu and the protocol experiments; a fit of log seconds = kind + task where a kind never
ran on a task). Run from the repository root: `python reports/glue-cpu-v2/cost_plan.py`."""

from collections import Counter
from pathlib import Path

import pandas as pd

from benchmarks import cost, selection, store, suite

ROOTS = [Path("reports/glue-cpu/results"), Path("reports/protocol/results")]
SHARE = 0.9  # every v2 job trains on 90% of the examples a glue-cpu job trained on
# an arm costs what its method costs, but for the offline ablation: a frozen, cached teacher (vanilla KD's step)
# with the student's VAE
PRICED_AS = {"kdfd-offline": "vanilla-kd"}

df = cost.records_frame(store.read(p) for root in ROOTS for p, _ in [(p, None) for p in root.rglob("*.json")])
price = cost.fitted(df)
s = suite.load("glue-cpu-v2")
sel = s.select
# every choice made: one point per (row, task) beyond the tuning seeds
kept = [j for j in s.jobs if selection.row_of(j) == "teacher" or j.config.seed in sel.seeds
        and selection.row_of(j) not in sel.parents or selection.point_of(j) in ("", "[lr=0.0001]")]
kept = [j for j in kept if selection.row_of(j) == "teacher" or selection.row_of(j) not in sel.parents
        or selection.point_of(j) in ("", "[lr=0.0001]")]
teachers_needed = {j.teacher.id for j in kept if j.teacher is not None}
kept = [j for j in kept if selection.row_of(j) != "teacher" or j.id in teachers_needed]
rows = []
for j in kept:
    row = selection.row_of(j)
    kind = "teacher" if row == "teacher" else PRICED_AS.get(row, j.config.method)
    seconds = price.get((kind, j.config.task))
    phase = "teachers" if row == "teacher" else f"phase {sel.phase(row) + 1}"
    rows.append({"phase": phase, "row": row, "task": j.config.task, "seconds": SHARE * seconds if seconds else None})
plan = pd.DataFrame(rows)
print(plan.groupby("phase").agg(jobs=("row", "size"), job_hours=("seconds", lambda s: s.sum() / 3600)).assign(
    wall_hours_2_cores=lambda d: d.job_hours / 2).round(1).to_markdown())
print()
print(plan.groupby(["phase", "row"]).agg(jobs=("row", "size"), job_hours=("seconds", lambda s: s.sum() / 3600))
      .round(1).to_markdown())
missing = plan[plan.seconds.isna()]
if len(missing):
    print("no price:", Counter(zip(missing.row, missing.task)))
print(f"\ntotal: {len(plan)} jobs, {plan.seconds.sum() / 3600:.1f} job-hours, "
      f"{plan.seconds.sum() / 7200:.1f} wall-clock hours on 2 cores")
