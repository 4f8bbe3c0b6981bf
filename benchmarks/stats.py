"""The statistics behind the claim verdicts: paired seed comparisons, their power, multiplicity, decorrelation.

Pure numpy/scipy (no torch), so a report can be rebuilt anywhere from the scores alone.

Conventions:
- Scores are in points (85.3, not 0.853); a difference is a minus b, so positive means a is better.
- Runs are paired by seed: seed s of method a and seed s of method b share the data order and initialisation
  draws, so per-seed differences cancel what the seed does to both (the point of pairing).
- Intervals, by `interval` (INTERVALS; default "t"):
  "t": Student-t intervals, the ones a paired t test inverts (`scipy.stats.ttest_1samp(d).confidence_interval()`);
  over tasks, the mean of the task means with a Welch-Satterthwaite t interval. `p_value` is that t test's p, so an
  interval excludes zero exactly when p_value < 1 - confidence.
  "percentile": percentile bootstraps (`scipy.stats.bootstrap`), stratified by task over tasks; `p_value` is then
  the permutation p. Why "t" is the default, measured (tests/benchmarks/test_verdicts.py simulates it): with no
  difference at all, a 95% percentile bootstrap of 3-5 normal per-seed differences excludes zero in 16-24% of
  claims, not 5%, because resampling n values cannot reach past their range and their spread is underestimated
  by a factor (n-1)/n; the t interval, exact for normal differences, excludes zero in ~5%.
- `p_perm`, under either interval: a two-sided permutation test (`scipy.stats.permutation_test`) that flips the
  sign of each paired difference, exact (all 2^n flips) at these seed counts. It assumes nothing about the
  differences' distribution, but it cannot go below 2 / 2^n (0.0625 at 5 seeds), so it can never reject at 5% with
  fewer than 6 seeds, less still after Holm.
Every number is an exact function of (data, n_resamples, seed): a reader recomputes it with the same scipy calls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

ALPHA = 0.05  # the test level the power figures assume (two-sided)
INTERVALS = ("t", "percentile")  # see the module docstring; "t" is the default
POWER = 0.80  # the power the minimum detectable effect assumes
# the fewest pairs (per task) an interval is drawn from. A t interval of 2 differences is valid but rests on one
# degree of freedom (t = 12.7); a percentile bootstrap of 2 spans their range, which excludes zero whenever both
# share a sign (half the time with no difference at all)
MIN_INTERVAL_SEEDS = 3
MAX_SEEDS = 1000  # seeds_needed is capped here: beyond it the answer is "not with any affordable budget"


@dataclass(frozen=True)
class Paired:
    """A paired comparison of two methods over seeds; every difference in points, a minus b.

    n: seeds (pairs) used. mean_diff: mean of the per-seed differences. ci_low, ci_high: the interval of that mean
    (t or percentile bootstrap, see the module docstring; None when n < MIN_INTERVAL_SEEDS). p_value: two-sided p of
    the test behind the interval (the paired t test; under "percentile", the permutation p). p_perm: the two-sided
    sign-flip permutation p. Both None when n < 2.
    sd_diff: sample standard deviation of the differences (ddof=1). mde: the smallest true difference a paired t
    test at alpha 0.05 (two-sided) would detect with 80% power with these n seeds and this sd. seeds_needed: the
    smallest number of seeds, at least MIN_INTERVAL_SEEDS, whose mde is at most |mean_diff| (capped at 1000; None
    when mean_diff is 0 or the sd is undefined). `stratified` returns the same fields for a mean over tasks (see
    there).
    """

    n: int
    mean_diff: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    sd_diff: float | None
    mde: float | None
    seeds_needed: int | None
    p_perm: float | None = None


# --- building blocks ------------------------------------------------------------------------------------------------

def _common(a: dict[int, float], b: dict[int, float]) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) as float arrays over the seeds both have a finite score for, in seed order: a seed one method lacks
    (a failed or unfinished run) has nothing to pair with."""
    seeds = sorted(s for s in set(a) & set(b) if np.isfinite(a[s]) and np.isfinite(b[s]))
    return np.array([a[s] for s in seeds], dtype=float), np.array([b[s] for s in seeds], dtype=float)


def _mean_of_differences(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """The permutation statistic: swapping x_i and y_i flips the sign of d_i, the paired null."""
    return np.mean(x - y, axis=axis)


def _interval(result) -> tuple[float, float]:
    ci = result.confidence_interval
    return float(ci.low), float(ci.high)


def _mde(sd: float, n_eff: float, df: float) -> float:
    """Minimum detectable effect (points) of a t test: (t_{1-alpha/2, df} + t_{power, df}) * sd / sqrt(n_eff), the
    normal-approximation power formula with t quantiles so that few seeds are not flattered."""
    return float((stats.t.ppf(1 - ALPHA / 2, df) + stats.t.ppf(POWER, df)) * sd / math.sqrt(n_eff))


def _seeds_needed(mean_diff: float | None, sd: float | None, tasks: int = 1) -> int | None:
    """Smallest seeds n' (per task, `tasks` tasks each with n' seeds) whose mde is <= |mean_diff|, from
    MIN_INTERVAL_SEEDS (no verdict is drawn from fewer) to MAX_SEEDS. mde shrinks monotonically in n', so the first
    n' that reaches it is the answer."""
    if mean_diff is None or sd is None or mean_diff == 0 or not np.isfinite(sd):
        return None
    n = np.arange(MIN_INTERVAL_SEEDS, MAX_SEEDS + 1)
    df = tasks * (n - 1)
    mde = (stats.t.ppf(1 - ALPHA / 2, df) + stats.t.ppf(POWER, df)) * sd / np.sqrt(tasks * n)
    hit = np.flatnonzero(mde <= abs(mean_diff))
    return int(n[hit[0]]) if len(hit) else MAX_SEEDS


# --- the tests ------------------------------------------------------------------------------------------------------

def check_interval(interval: str) -> str:
    """The interval's name, or a ValueError naming it and what is allowed."""
    if interval not in INTERVALS:
        raise ValueError(f"interval {interval!r} is not one of: {', '.join(INTERVALS)}")
    return interval


def t_interval(values, confidence: float = 0.95) -> tuple[float, float]:
    """(low, high): the Student-t interval of the mean of `values` [n], n >= 2 (what `paired` gives differences)."""
    ci = stats.ttest_1samp(np.asarray(values, dtype=float), 0.0).confidence_interval(confidence)
    return float(ci.low), float(ci.high)


def _sign_flip_p(x: np.ndarray, y: np.ndarray, statistic, n_resamples: int, seed: int) -> float:
    """Two-sided permutation p of `statistic` when each pair (x_i, y_i) is swapped or not (a sign flip of its
    difference); scipy enumerates all 2^n flips, exactly, when 2^n <= n_resamples."""
    return float(stats.permutation_test((x, y), statistic, permutation_type="samples", vectorized=True,
                                        n_resamples=n_resamples, alternative="two-sided", random_state=seed).pvalue)


def paired(a: dict[int, float], b: dict[int, float], confidence: float = 0.95, n_resamples: int = 9999,
           seed: int = 0, interval: str = "t") -> Paired:
    """Method a against method b over the seeds both have (seed -> score in points); returns a `Paired`.

    d = a - b per seed. "t": the interval and p_value of `scipy.stats.ttest_1samp(d, 0)`. "percentile":
    `scipy.stats.bootstrap((d,), np.mean, method="percentile", random_state=seed)`, p_value = p_perm. p_perm: a
    permutation test on (a, b), permutation_type="samples", statistic mean(a - b), two-sided.
    """
    check_interval(interval)
    x, y = _common(a, b)
    n = len(x)
    if n == 0:
        return Paired(0, None, None, None, None, None, None, None)
    d = x - y
    mean_diff = float(d.mean())
    if n < 2:  # one pair: a difference, but no spread to judge it by
        return Paired(1, mean_diff, None, None, None, None, None, None)
    p_perm = _sign_flip_p(x, y, _mean_of_differences, n_resamples, seed)
    sd = float(d.std(ddof=1))
    low = high = None
    if interval == "t":
        if sd > 0:  # one t test gives both the p-value and the interval
            t = stats.ttest_1samp(d, 0.0)
            p, ci = float(t.pvalue), t.confidence_interval(confidence)
            if n >= MIN_INTERVAL_SEEDS:
                low, high = float(ci.low), float(ci.high)
        else:
            p = 1.0 if mean_diff == 0 else 0.0
            if n >= MIN_INTERVAL_SEEDS:
                low = high = mean_diff
    else:
        p = p_perm
        if n >= MIN_INTERVAL_SEEDS:
            low, high = _interval(stats.bootstrap((d,), np.mean, confidence_level=confidence,
                                                  n_resamples=n_resamples, method="percentile", random_state=seed))
    return Paired(n, mean_diff, low, high, p, sd, _mde(sd, n, n - 1), _seeds_needed(mean_diff, sd), p_perm)


def _per_task_mean_stat(starts: np.ndarray, counts: np.ndarray):
    """The permutation statistic of `stratified` over the concatenated (task, seed) pairs: each task's mean
    difference, then their mean (tasks weigh equally, whatever their seed counts)."""
    def statistic(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        d = np.moveaxis(x - y, axis, -1)
        return np.mean(np.add.reduceat(d, starts, axis=-1) / counts, axis=-1)
    return statistic


def welch_mean_of_means(diffs: list[np.ndarray]) -> tuple[float, float, float]:
    """(mean, standard error, df) of the mean over K tasks of each task's mean difference; diffs: K arrays [n_k],
    n_k >= 2. se^2 = sum_k s_k^2 / n_k / K^2 (each task its own variance: a score's spread differs by task and
    metric); df by Welch-Satterthwaite, (sum v_k)^2 / sum v_k^2 / (n_k - 1) with v_k = s_k^2 / n_k (inf when every
    v_k is 0)."""
    k = len(diffs)
    v = np.array([d.var(ddof=1) / len(d) for d in diffs])
    dof = np.array([len(d) - 1 for d in diffs])
    df = float(v.sum() ** 2 / np.sum(v ** 2 / dof)) if v.any() else float("inf")
    return float(np.mean([d.mean() for d in diffs])), float(np.sqrt(v.sum()) / k), df


def stratified(per_task: dict[str, tuple[dict[int, float], dict[int, float]]], confidence: float = 0.95,
               n_resamples: int = 9999, seed: int = 0, interval: str = "t") -> Paired:
    """The mean over tasks of the per-task mean paired difference (points), as a `Paired`.

    per_task: task -> (a, b), each seed -> score; tasks without a common seed are left out. Fields:
    n: pairs over all tasks. mean_diff: mean over tasks of each task's mean(a - b). ci_low, ci_high: "t", the
    Welch-Satterthwaite t interval of `welch_mean_of_means`, p_value its two-sided p; "percentile", a stratified
    percentile bootstrap (seeds resampled within each task: each task's difference vector a separate sample of
    scipy.stats.bootstrap, paired=False, statistic the mean of the per-sample means), p_value = p_perm. No interval
    unless every task has MIN_INTERVAL_SEEDS pairs (a task with fewer would enter with almost no spread of its
    own). p_perm: a permutation test over all (task, seed) pairs, each pair's sign flipped independently
    (permutation_type="samples"), statistic the same mean of task means; None when fewer than 2 pairs.
    sd_diff: the pooled within-task sd of the differences. mde: the mde of this mean with these seeds (effective n
    K^2 / sum(1/n_k) over K tasks, df sum(n_k - 1)). seeds_needed: seeds per task (every task alike).
    """
    check_interval(interval)
    pairs = [_common(a, b) for a, b in per_task.values()]
    pairs = [(x, y) for x, y in pairs if len(x)]
    if not pairs:
        return Paired(0, None, None, None, None, None, None, None)
    diffs = [x - y for x, y in pairs]
    counts = np.array([len(d) for d in diffs])
    k, n = len(diffs), int(counts.sum())
    mean_diff = float(np.mean([d.mean() for d in diffs]))
    low = high = p = p_perm = sd = mde = None
    varied = [d for d in diffs if len(d) >= 2]
    if n >= 2:
        x, y = np.concatenate([x for x, _ in pairs]), np.concatenate([y for _, y in pairs])
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        p_perm = _sign_flip_p(x, y, _per_task_mean_stat(starts, counts), n_resamples, seed)
    if interval == "percentile":
        p = p_perm
        if counts.min() >= MIN_INTERVAL_SEEDS:

            def mean_of_task_means(*samples, axis=-1):
                return sum(np.mean(s, axis=axis) for s in samples) / k

            low, high = _interval(stats.bootstrap(tuple(diffs), mean_of_task_means, paired=False, vectorized=True,
                                                  confidence_level=confidence, n_resamples=n_resamples,
                                                  method="percentile", random_state=seed))
    elif counts.min() >= 2:  # t: a task with one pair has no variance of its own to enter the statistic with
        _, se, df = welch_mean_of_means(diffs)
        p = float(2 * stats.t.sf(abs(mean_diff) / se, df)) if se > 0 else (1.0 if mean_diff == 0 else 0.0)
        if counts.min() >= MIN_INTERVAL_SEEDS:
            half = float(stats.t.ppf((1 + confidence) / 2, df) * se)
            low, high = mean_diff - half, mean_diff + half
    if varied:
        df = int((counts - 1).sum())
        sd = float(np.sqrt(sum(((d - d.mean()) ** 2).sum() for d in varied) / df))
        mde = _mde(sd, k ** 2 / np.sum(1.0 / counts), df)
    return Paired(n, mean_diff, low, high, p, sd, mde, _seeds_needed(mean_diff, sd, tasks=k), p_perm)


# --- multiplicity and verdicts --------------------------------------------------------------------------------------

def holm(p_values: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input order: the i-th smallest of m is multiplied by m - i + 1,
    made non-decreasing along the sorted order (step-down), capped at 1. None or NaN entries are not tested: they
    stay NaN and do not count in m."""
    p = np.array([np.nan if v is None else v for v in p_values], dtype=float)
    out = np.full(len(p), np.nan)
    tested = np.flatnonzero(np.isfinite(p))
    order = tested[np.argsort(p[tested], kind="stable")]
    m = len(order)
    scaled = p[order] * (m - np.arange(m))
    out[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return out.tolist()


def verdict(ci_low: float | None, ci_high: float | None) -> str:
    """"holds" if the interval lies above 0, "contradicted" if below, else (or with no interval) "inconclusive"."""
    if ci_low is None or ci_high is None or not (np.isfinite(ci_low) and np.isfinite(ci_high)):
        return "inconclusive"
    if ci_low > 0:
        return "holds"
    if ci_high < 0:
        return "contradicted"
    return "inconclusive"


def offdiag_abs_corr(x: np.ndarray) -> float:
    """Mean |Pearson correlation| over the off-diagonal pairs of the columns of x [N examples, D dimensions]: 0 for
    decorrelated features, 1 for copies. Constant columns (correlation undefined: a dead unit) are left out; NaN
    when fewer than 2 columns remain."""
    x = np.asarray(x, dtype=float)
    x = x[:, x.std(axis=0) > 0]
    d = x.shape[1]
    if d < 2:
        return float("nan")
    c = np.corrcoef(x, rowvar=False)
    return float(np.abs(c[~np.eye(d, dtype=bool)]).mean())


def seed_block_contrasts(scores, pairs: list[tuple[str, str, str]], confidence: float = 0.95):
    """The alternative to the paired t: per task, one OLS fit of score ~ C(method) + C(seed) over every method of
    the task (statsmodels), each (task, a, b) of `pairs` a contrast of it (a - b, its interval, the residual degrees
    of freedom). The seed blocks take out what a seed (its teacher, data order) does to every method, as pairing
    does, and the residual variance is pooled over all methods, so an interval borrows degrees of freedom from
    methods that are not compared. Returns a DataFrame (task, a, b, diff, low, high, df) and, per task, Levene's p
    for equal spread across methods (scipy; its median form): pooling is sound only where spreads are alike."""
    import pandas as pd
    import statsmodels.formula.api as smf

    rows, spread = [], {}
    for task, t in scores.groupby("task"):
        t = t.assign(method=t["method"].astype(str), seed=t["seed"].astype(int))
        groups = [g["score"].to_numpy() for _, g in t.groupby("method") if len(g) > 1]
        if len(groups) > 1:
            spread[task] = float(stats.levene(*groups).pvalue)
        if t["method"].nunique() < 2 or t["seed"].nunique() < 2:
            continue
        fit = smf.ols("score ~ C(method) + C(seed)", data=t).fit()
        names = list(fit.params.index)
        for tk, a, b in pairs:
            if tk != task or a not in set(t["method"]) or b not in set(t["method"]):
                continue
            contrast = np.zeros(len(names))
            for method, sign in ((a, 1.0), (b, -1.0)):
                name = f"C(method)[T.{method}]"
                if name in names:
                    contrast[names.index(name)] += sign
            test = fit.t_test(contrast)
            low, high = np.asarray(test.conf_int(alpha=1 - confidence)).ravel()
            rows.append({"task": task, "a": a, "b": b, "diff": float(np.asarray(test.effect).ravel()[0]),
                         "low": float(low), "high": float(high), "df": float(fit.df_resid)})
    return pd.DataFrame(rows, columns=["task", "a", "b", "diff", "low", "high", "df"]), spread
