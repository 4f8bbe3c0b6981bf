"""The official GLUE metrics, computed with scikit-learn and scipy.

Same formulas as `evaluate`'s `glue` metric (which is fetched from the hub at run time and cannot load offline):
CoLA Matthews correlation; accuracy; binary F1 with label 1 as the positive class (MRPC, QQP); Pearson and Spearman
correlation (STS-B). Values are fractions in [0, 1] (correlations in [-1, 1]); reports print them in percent.
"""

from __future__ import annotations

import numpy as np

from .tasks import Task

# scikit-learn and scipy are imported where a metric is computed: what only reads suites and records (`bench list`,
# `bench status`, the held-out selection's `score`) imports this module without them


def accuracy(pred, gold) -> float:
    return float((np.asarray(pred) == np.asarray(gold)).mean())


def f1(pred, gold) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(gold, pred, pos_label=1, average="binary", zero_division=0.0))


def mcc(pred, gold) -> float:
    from sklearn.metrics import matthews_corrcoef

    return float(matthews_corrcoef(gold, pred))


def _correlation(fn, pred, gold) -> float:
    pred, gold = np.asarray(pred, dtype=float), np.asarray(gold, dtype=float)
    if np.ptp(pred) == 0 or np.ptp(gold) == 0:
        return 0.0  # undefined for a constant input; a collapsed regressor scores zero, not NaN
    return float(fn(pred, gold)[0])


def pearson(pred, gold) -> float:
    from scipy.stats import pearsonr

    return _correlation(pearsonr, pred, gold)


def spearman(pred, gold) -> float:
    from scipy.stats import spearmanr

    return _correlation(spearmanr, pred, gold)


METRICS = {"accuracy": accuracy, "f1": f1, "mcc": mcc, "pearson": pearson, "spearman": spearman}


def predictions(logits: np.ndarray, task: Task) -> np.ndarray:
    """logits [N, num_labels] -> predicted label ids [N], or scores [N] for regression."""
    return logits[:, 0] if task.is_regression else logits.argmax(-1)


def compute(task: Task, logits: np.ndarray, gold: np.ndarray) -> dict[str, float]:
    """Every official metric of the task, from logits [N, num_labels] and gold labels [N]."""
    pred = predictions(logits, task)
    return {name: METRICS[name](pred, gold) for name in task.metrics}


def constant_baseline(task: Task, gold: np.ndarray) -> dict[str, float]:
    """The metrics of the best constant predictor on these gold labels: the majority class for classification (CoLA
    MCC 0, MRPC F1 of always saying "paraphrase"), a constant score for regression (correlations 0). The floor every
    student must clear to have learned anything."""
    gold = np.asarray(gold)
    if task.is_regression:
        pred = np.zeros(len(gold))
    else:
        pred = np.full(len(gold), np.bincount(gold.astype(int)).argmax())
    return {name: METRICS[name](pred, gold) for name in task.metrics}


def score(task: Task, metrics: dict[str, dict[str, float]]) -> float:
    """One number per task for model selection: the mean of its metrics over its dev splits (GLUE's convention)."""
    values = [m[name] for m in metrics.values() for name in task.metrics]
    return float(np.mean(values))
