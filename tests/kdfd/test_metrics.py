import math

import numpy as np
import pytest

from kdfd import metrics
from kdfd.tasks import get_task


def test_accuracy_and_f1_hand_computed():
    pred, gold = [1, 1, 0, 0, 1], [1, 0, 1, 0, 1]
    assert metrics.accuracy(pred, gold) == 3 / 5
    tp, fp, fn = 2, 1, 1
    assert math.isclose(metrics.f1(pred, gold), 2 * tp / (2 * tp + fp + fn))


def test_mcc_hand_computed():
    pred, gold = [1, 1, 1, 0], [1, 1, 0, 0]
    tp, tn, fp, fn = 2, 1, 1, 0
    expected = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert math.isclose(metrics.mcc(pred, gold), expected)


def test_pearson_and_spearman_hand_computed():
    x, y = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 3.0, 2.0, 5.0])
    xc, yc = x - x.mean(), y - y.mean()
    assert math.isclose(metrics.pearson(x, y), (xc * yc).sum() / math.sqrt((xc**2).sum() * (yc**2).sum()))
    # ranks of y: 1, 3, 2, 4 -> d = 0, 1, 1, 0 -> 1 - 6 * 2 / (4 * 15)
    assert math.isclose(metrics.spearman(x, y), 1 - 6 * 2 / (4 * (16 - 1)))


def test_constant_prediction_correlation_is_zero_not_nan():
    assert metrics.pearson([1.0, 1.0, 1.0], [0.0, 1.0, 2.0]) == 0.0


@pytest.mark.parametrize("task,names", [("cola", ["mcc"]), ("mrpc", ["f1", "accuracy"]),
                                        ("stsb", ["pearson", "spearman"]), ("qqp", ["f1", "accuracy"]),
                                        ("rte", ["accuracy"]), ("sst2", ["accuracy"])])
def test_each_task_reports_its_official_metrics(task, names):
    t = get_task(task)
    logits = np.array([[0.2, 0.8], [0.9, 0.1], [0.3, 0.7]]) if t.labels else np.array([[1.0], [2.0], [0.5]])
    gold = np.array([1, 0, 0]) if t.labels else np.array([1.5, 2.5, 0.0])
    assert list(metrics.compute(t, logits, gold)) == names


def test_mnli_has_matched_and_mismatched_dev_splits():
    assert list(get_task("mnli").dev_files) == ["dev_matched", "dev_mismatched"]
    assert metrics.score(get_task("mnli"),
                         {"dev_matched": {"accuracy": 0.8}, "dev_mismatched": {"accuracy": 0.6}}) == 0.7


def test_constant_baseline_is_the_majority_class_or_a_constant_score():
    import numpy as np

    from kdfd.metrics import constant_baseline
    from kdfd.tasks import get_task

    gold = np.array([1, 1, 1, 0])
    mrpc = constant_baseline(get_task("mrpc"), gold)
    assert mrpc == {"f1": 2 * 0.75 / 1.75, "accuracy": 0.75} or (abs(mrpc["f1"] - 6 / 7) < 1e-12
                                                                  and mrpc["accuracy"] == 0.75)
    assert constant_baseline(get_task("cola"), gold) == {"mcc": 0.0}
    assert constant_baseline(get_task("stsb"), np.array([0.5, 3.0, 4.0])) == {"pearson": 0.0, "spearman": 0.0}
