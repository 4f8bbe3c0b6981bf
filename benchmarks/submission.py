"""`bench report --glue-submission`: the GLUE leaderboard's prediction files, from runs that saved test-set
predictions (`[train] predict_test = true`).

One folder per method and seed, `glue-submission/<method>/seed<k>/`, holding one file per test split under the name
the leaderboard expects (CoLA.tsv, ..., MNLI-m.tsv, MNLI-mm.tsv, AX.tsv): a header `index<TAB>prediction`, then one
row per test example in file order, the label written as the task's TSV writes it (`entailment`, `0`/`1`) and
STS-B scores with three decimals. Zip one folder's files to submit them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kdfd.files import atomic_write
from kdfd.tasks import Task, get_task

from .record_set import RecordSet
from .store import predictions_file

HEADER = "index\tprediction\n"


def rows(task: Task, values: np.ndarray) -> str:
    """The body of one leaderboard file: `index<TAB>label` per example."""
    if task.is_regression:
        labels = [f"{v:.3f}" for v in values]
    else:
        labels = [task.labels[int(i)] for i in values]
    return "".join(f"{i}\t{label}\n" for i, label in enumerate(labels))


def write_run(folder: Path, task: Task, predicted: dict[str, np.ndarray]) -> list[Path]:
    written = []
    for split, values in sorted(predicted.items()):
        path = folder / task.submission_file(split)
        text = HEADER + rows(task, values)
        atomic_write(path, lambda f: f.write(text.encode()))
        written.append(path)
    return written


def write(out: Path, selected: dict, records: RecordSet) -> tuple[list[Path], list[str]]:
    """For each (task, method)'s selected config, every seed's run with saved predictions (read through `records`).
    Returns the files written and the runs that have none (`task method seed k`). Damaged predictions are left out:
    `bench report` names each such file after the report."""
    written, without = [], []
    for (task_name, method), group in sorted(selected.items()):
        task = get_task(task_name)
        for run in group.runs:
            if not predictions_file(Path(run["path"])).is_file():
                without.append(f"{task_name} {method} seed {run['seed']}")
                continue
            predicted = records.predictions(Path(run["path"]))
            if predicted is None:
                continue
            written += write_run(Path(out) / "glue-submission" / method / f"seed{run['seed']}", task, predicted)
    return written, without
