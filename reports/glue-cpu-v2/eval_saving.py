"""What scoring dev at epoch ends only (`eval_every = 0`, PROTOCOL.md section 1) saves per job, measured on the
committed glue-cpu records, which scored dev every 23 steps as well. An evaluation pass costs what the record's
epoch-end passes cost on average (`timing.eval_seconds` over its epoch ends; the passes within an epoch are inside
`train_seconds`), so the within-epoch passes cost (their count) x (that mean). v2 adds one held-out pass to each
epoch end (10% of train; MRPC 367 examples beside dev's 408, CoLA 855 beside 1,043), priced in proportion.
Run from the repository root: `python reports/glue-cpu-v2/eval_saving.py`."""

from pathlib import Path

import pandas as pd

from benchmarks import store

DEV = {"mrpc": 408, "cola": 1043}
HELDOUT = {"mrpc": 367, "cola": 855}

rows = []
for path in Path("reports/glue-cpu/results").rglob("*.json"):
    r = store.read(path)
    if r is None or r.get("status") != "done" or r["task"] not in DEV:
        continue
    timing, ends = r["timing"], len(r["curves"])
    per_pass = timing["eval_seconds"] / ends
    rows.append({"task": r["task"], "kind": "teacher" if r["role"] == "teacher" else r["method"],
                 "wall_s": timing["wall_seconds"], "saved_s": len(r.get("step_curves") or []) * per_pass,
                 "added_s": ends * per_pass * HELDOUT[r["task"]] / DEV[r["task"]]})
df = pd.DataFrame(rows)
df["net_share"] = (df.saved_s - df.added_s) / df.wall_s
table = df.groupby(["task", "kind"]).agg(jobs=("wall_s", "size"), wall_s=("wall_s", "median"),
                                         saved_s=("saved_s", "median"), added_s=("added_s", "median"),
                                         net_saved=("net_share", "median"))
print(table.assign(net_saved=lambda d: (100 * d.net_saved).map("{:.1f}%".format)).round(0).to_markdown())
print()
print(df.groupby("task").net_share.median().map(lambda x: f"{100 * x:.1f}%").to_markdown())
