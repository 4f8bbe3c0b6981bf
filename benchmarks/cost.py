"""What a suite's run cost: the wall-clock seconds of its done records, per job kind and in total.

A job's `wall_seconds` is measured around the job itself (data, models, training, evaluation), on whatever was
running beside it; a run spread over several sittings and processes has no single wall-clock time, so the report
gives the sum of its jobs' seconds and that sum divided by the number of jobs run side by side (the wall-clock
time of the run had it never stopped), with the count stated.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .store import read


def frame(paths: list[Path]) -> pd.DataFrame:
    """One row per record: task, job (the label: `teacher`, `kdfd`, `internal-kd[schedule=pid]`, ...), seconds."""
    rows = []
    for path in paths:
        record = read(path) if path is not None else None
        if record and record.get("status") == "done" and record.get("wall_seconds") is not None:
            rows.append({"task": record["task"], "job": record.get("label") or record["method"],
                         "seconds": float(record["wall_seconds"])})
    return pd.DataFrame(rows, columns=["task", "job", "seconds"])


def per_kind(df: pd.DataFrame) -> pd.DataFrame:
    """Median seconds of one job of each kind (rows: job label, columns: task)."""
    if df.empty:
        return pd.DataFrame()
    return df.pivot_table(index="job", columns="task", values="seconds", aggfunc="median")


def markdown(df: pd.DataFrame, side_by_side: int = 2) -> list[str]:
    """The report's cost section: the median seconds per job kind and task, and the run's totals."""
    if df.empty:
        return ["No done record carries its wall-clock time."]
    total = df.seconds.sum()
    return [f"{len(df)} done jobs took {total / 3600:.1f} job-hours in all: about **{total / side_by_side / 3600:.1f} "
            f"wall-clock hours with {side_by_side} jobs side by side** (the protocol's setting: 2 CPU cores, one "
            "thread per job; each job's time as measured, so one that shared its cores with other work counts that "
            "slowdown). Median seconds of one job, per kind and task:", "",
            per_kind(df).map(lambda v: "-" if pd.isna(v) else f"{v:.0f}").to_markdown(stralign="right"), ""]
