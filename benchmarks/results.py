"""Records as data: every JSON record under a results root as one pandas DataFrame row (no torch import).

    from benchmarks import results
    df = results.load("reports/glue-cpu/results")
    df[df.status == "done"].pivot_table(index="method", columns="task", values="score", aggfunc="mean")

Columns: task, method, version, seed, role, status, label, id, suite (the suite that ran the job first), score
(the task's selection score in points: the mean of its dev metrics), one `metrics.<split>.<metric>` column per
metric of the record's own model (the student's; a teacher record's, the teacher's), in points,
`teacher.<split>.<metric>` for the teacher's final metrics, `majority.<split>.<metric>`, every method parameter as
`param.<name>`, every training setting as `train.<name>`, timings (`wall_seconds`, `train_seconds`, `steps`),
parameter counts (`param_counts.student`, `param_counts.teacher`), `commit`, `error` and `path`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from kdfd.errors import ConfigError
from kdfd.metrics import score
from kdfd.result import JobResult
from kdfd.tasks import get_task

from . import store

FORMATS = ("csv", "parquet", "jsonl")


def row(record: store.Record, path: Path | None = None) -> dict:
    """The flat row of one record (see the module docstring for the columns)."""
    cfg, result = record.config, record.result or JobResult()
    task = record.task
    out = {"task": task, "method": store.kind(record.role, record.method),
           "version": record.method_version, "seed": record.seed, "role": record.role, "status": record.status,
           "label": record.label, "id": record.id, "suite": record.suite, "score": None}
    metrics = result.metrics or {}
    if record.done and metrics:
        out["score"] = 100 * score(get_task(task), metrics)
    for prefix, block in (("metrics", metrics), ("teacher", result.teacher_metrics or {}),
                          ("majority", result.majority_metrics or {})):
        for split, values in block.items():
            for name, value in values.items():
                out[f"{prefix}.{split}.{name}"] = 100 * value
    out.update({f"param.{k}": v for k, v in (cfg.get("params") or {}).items()})
    out.update({f"train.{k}": v for k, v in (cfg.get("train") or {}).items()})
    timing = result.timing or {}
    out.update(wall_seconds=record.wall_seconds, train_seconds=timing.get("train_seconds"), steps=timing.get("steps"))
    counts = result.param_counts or {}
    out.update({"param_counts.student": counts.get("student"), "param_counts.teacher": counts.get("teacher")})
    out["commit"] = ((record.provenance or {}).get("git") or {}).get("commit")
    out["error"] = (record.error or {}).get("message")
    out["path"] = str(path) if path is not None else None
    return out


def load(root: str | Path, suite: str | None = None, ids: set[str] | None = None) -> pd.DataFrame:
    """Every record under `root` (<root>/<task>/<method>/s<seed>-<id>.json), one row each; `suite` keeps the
    records of jobs that suite expands to (by id, so a job run first under another suite counts too), `ids` keeps
    the records with these ids."""
    if suite is not None:
        from kdfd.registry import load_methods  # expanding a suite reads the registry (and imports torch)

        from .suite import load as load_suite

        load_methods()

        ids = {j.id for j in load_suite(suite).jobs} | (ids or set())
    return frame((path, record) for path, record in store.records(root) if ids is None or record.id in ids)


def frame(records) -> pd.DataFrame:
    """One row per (path, record) of `records` (`store.records`, `RecordSet.under`)."""
    return pd.DataFrame([row(record, path) for path, record in records])


def write(df: pd.DataFrame, out: str | Path | None, fmt: str) -> None:
    """The frame as csv, parquet or jsonl, to a file or (csv, jsonl) to standard output."""
    if fmt not in FORMATS:
        raise ConfigError(f"format {fmt!r} is not allowed (allowed: {', '.join(FORMATS)})")
    if fmt == "parquet":
        if out is None:
            raise ConfigError("--format parquet needs --out FILE (parquet is not written to standard output)")
        try:
            import pyarrow  # noqa: F401 (pandas' parquet engine)
        except ImportError:
            raise ConfigError("--format parquet needs pyarrow: pip install 'kdfd-bench[parquet]'") from None
        df.to_parquet(out, index=False)
    elif fmt == "jsonl":
        text = df.to_json(orient="records", lines=True)
        Path(out).write_text(text) if out else print(text, end="")
    else:
        text = df.to_csv(index=False)
        Path(out).write_text(text) if out else print(text, end="")
