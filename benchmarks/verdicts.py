"""Claim by claim, whether a paper's claims hold in our runs, decided family-wise.

The claims are data (the paper folder's `claims.toml`, `benchmarks.paper`): each names what it compares, on which
tasks, and where the paper says it (`source`). `evaluate` turns every claim into tests (one per task, per comparator),
each on per-seed values paired by seed (same seed: same teacher and data order), and gives one row per test:

- **the family**: the tests of the pre-registered primary claims (a suite's `claims` list; every claim of the file
  when it has none), each tested once. Their p-values are Holm-adjusted together (statsmodels' `multipletests`) and
  their intervals are simultaneous (Bonferroni: each at 1 - alpha / m, m the family's size). A test **holds** or is
  **contradicted** only when its adjusted p is below alpha, in that direction; it is **smaller than the paper's**
  when the paper's own difference on the same task lies above the simultaneous interval; else **inconclusive**.
- **exploratory** rows: every other claim's tests, the means over tasks, ablations and arms: unadjusted 95%
  intervals, and a reading (`above zero`, `below zero`, `covers zero`), never a verdict.

Kinds of claim: `better` (a beats each of `b`, per task: a paired t test on the seed differences); `equivalent` (a
and b differ by less than `margin` points: two one-sided t tests, TOST); `best` (a beats every other student of the
task: an intersection-union test, p the largest of the one-sided p's); `sweep_compression` (the mean over compressed
values of `param` beats the uncompressed one, per seed); `sweep_peak` (the best interior value beats both ends);
`decorrelation` (z_mu's mean |off-diagonal correlation| is below h's); `compactness` (the silhouette of a's z_mu above
that of b's feature, at z_mu's dimension).

The paper's difference on a task is computed from the paper's tables (`paper = "table3"`: the rows our methods fill
there, the paper's `tables.toml`, each the mean of the task's metrics, as our scores), never written by hand. No
torch: numbers in, numbers out.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from kdfd.config import build, check_keys, nonempty, read_toml
from kdfd.errors import ConfigError, one_of
from kdfd.tasks import get_task

from . import paper as papers
from . import paper_tables, stats

ALPHA = 0.05
MEAN_SCOPE = "mean over tasks"
NOT_RUN = "not run"
VERDICTS = ("holds", "contradicted", "smaller than the paper's", "inconclusive", NOT_RUN)
READINGS = ("above zero", "below zero", "covers zero", NOT_RUN)
KINDS = {  # kind -> (required keys, optional keys) beyond id, text, source, kind
    "better": (("a", "b", "tasks"), ("paper",)),
    "equivalent": (("a", "b", "tasks", "margin"), ("paper",)),
    "best": (("a", "tasks"), ("b", "paper")),
    "sweep_compression": (("method", "param"), ()),
    "sweep_peak": (("method", "param"), ()),
    "decorrelation": (("method",), ("tasks",)),
    "compactness": (("a", "b"), ("tasks",)),
}
COMMON = ("id", "text", "source", "kind")
SCORE_COLUMNS = ("task", "method", "seed", "score")
SWEEP_COLUMNS = ("task", "method", "param", "value", "seed", "score")
REPRESENTATION_COLUMNS = ("task", "method", "seed", "corr_h", "corr_z", "sil_h", "sil_z")
COLUMNS = ["claim", "text", "source", "kind", "family", "scope", "a", "b", "n", "mean_diff", "sd_diff", "ci_low",
           "ci_high", "p_value", "p_holm", "verdict", "paper_diff", "paper_vs_ours", "mde", "seeds_for_paper"]


@dataclass(frozen=True)
class Claim:
    """One claim of the paper (see the module docstring for the kinds). `b` is a tuple of comparators (empty for
    `best`: every other student); `tasks` None: every task with data; `paper`: the paper's table its numbers come
    from; `margin`: the equivalence margin in points."""

    id: str = nonempty()
    text: str = nonempty()
    source: str = nonempty()
    kind: str = nonempty()
    a: str | None = nonempty(None)
    b: tuple[str, ...] = ()
    tasks: tuple[str, ...] | None = None
    paper: str | None = nonempty(None)
    margin: float | None = None
    method: str | None = nonempty(None)
    param: str | None = nonempty(None)

    def __post_init__(self):
        if self.margin is not None and not self.margin > 0:
            raise ConfigError(f"margin must be a positive number of points, not {self.margin!r}")


@dataclass
class Test:
    """One test of a claim: per-seed values of a and b on one task (for `best`, of a and each rival)."""

    claim: Claim
    scope: str
    a: str
    b: str
    x: dict[int, float]
    y: dict[int, float] | dict[str, dict[int, float]]
    paper_diff: float | None = None
    rivals: dict[str, dict[int, float]] = field(default_factory=dict)


# --- the claims file ------------------------------------------------------------------------------------------------

def _strings(value, key: str, name: str) -> tuple[str, ...]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(isinstance(v, str) and v for v in values):
        raise ConfigError(f"{name}: {key} must be a name or a non-empty list of names, not {value!r}")
    return tuple(values)


def _claim(raw, index: int, tables: set[str]) -> Claim:
    """One `[[claim]]` table, checked: every error names the claim and what is allowed, on one line."""
    name = f"claim {raw['id']!r}" if isinstance(raw, dict) and isinstance(raw.get("id"), str) else f"claim #{index + 1}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{name}: must be a table, not {raw!r}")
    kind = raw.get("kind")
    if kind not in KINDS:
        raise ConfigError(f"{name}: {one_of('kind', kind, KINDS)}")
    required, optional = KINDS[kind]
    check_keys(raw, COMMON + required + optional, COMMON + required, name)  # the keys of this kind of claim
    values = dict(raw)
    if "b" in raw:
        values["b"] = _strings(raw["b"], "b", name)
    tasks = raw.get("tasks", "all")
    values["tasks"] = None if tasks == "all" else _strings(tasks, "tasks", name)
    claim = build(Claim, values, name)
    if claim.paper is not None and claim.paper not in tables:
        raise ConfigError(f"{name}: {one_of('paper table', claim.paper, sorted(tables))}")
    return claim


def load_claims(path: str | Path | None = None, reference: paper_tables.Reference | None = None) -> list[Claim]:
    """The claims of a TOML file of `[[claim]]` tables (None: the default paper's), validated (ConfigError with a
    one-line message otherwise)."""
    path = Path(path or papers.load().claims)
    raw = read_toml(path, f"claims file {path}")
    check_keys(raw, ("claim",), ("claim",), f"claims file {path}")
    if not isinstance(raw["claim"], list) or not raw["claim"]:
        raise ConfigError(f"claims file {path}: no [[claim]] tables")
    tables = set((reference or paper_tables.load()).tables)
    claims = [_claim(c, i, tables) for i, c in enumerate(raw["claim"])]
    ids = [c.id for c in claims]
    dup = next((i for i in ids if ids.count(i) > 1), None)
    if dup is not None:
        raise ConfigError(f"claims file {path}: claim id {dup!r} appears twice (ids must be unique)")
    return claims


def check_family(claims: list[Claim], family: list[str] | None) -> set[str]:
    """The ids of the family's claims: `family` (a suite's `claims` list), each checked, or every claim."""
    ids = [c.id for c in claims]
    for claim_id in family or []:
        if claim_id not in ids:
            raise ConfigError(one_of("claim", claim_id, ids))
    return set(family) if family else set(ids)


# --- the paper's differences ----------------------------------------------------------------------------------------

def paper_score(numbers: dict, table: str, row: str | None, task: str) -> float | None:
    """The paper's score of `row` in `table` on `task`: the mean of the task's metrics (None where one is missing)."""
    if row is None:
        return None
    values = [numbers.get((table, row, task, m)) for m in get_task(task).metrics]
    return None if any(v is None for v in values) else float(np.mean(values))


def paper_difference(claim: Claim, a: str, b: str, task: str, reference: paper_tables.Reference,
                     numbers: dict) -> float | None:
    """The paper's own a - b on `task`, in points, from the claim's table (None where it reports either not)."""
    if claim.paper is None:
        return None
    spec = reference.tables[claim.paper]
    sa, sb = (paper_score(numbers, claim.paper, spec.paper_row(m), task) for m in (a, b))
    return None if sa is None or sb is None else sa - sb


def paper_inconsistencies(numbers: dict, reference: paper_tables.Reference | None = None) -> list[str]:
    """Where the paper reports one of our methods in several tables (rows of several tables fill it) with different
    numbers: one line per (task, metric)."""
    reference = reference or paper_tables.load()
    out = []
    methods = {m for spec in reference.tables.values() for m, row in spec.rows if row}
    for method in sorted(methods):
        rows = [(t, spec.paper_row(method)) for t, spec in reference.tables.items() if spec.paper_row(method)]
        keys = sorted({(task, metric) for (table, row, task, metric) in numbers
                       if (table, row) in set(rows)})
        for task, metric in keys:
            values = {f"{t} {row!r}": numbers.get((t, row, task, metric)) for t, row in rows}
            known = {k: v for k, v in values.items() if v is not None}
            if len(set(known.values())) > 1:
                out.append(f"`{method}` on {task} {metric}: " + ", ".join(f"{k} {v:g}" for k, v in known.items()))
    return out


# --- building the tests ---------------------------------------------------------------------------------------------

def _seeds(df: pd.DataFrame, column: str) -> dict[int, float]:
    return {int(s): float(v) for s, v in zip(df["seed"], df[column]) if not pd.isna(v)}


def _tasks(claim: Claim, available) -> list[str]:
    return list(claim.tasks) if claim.tasks is not None else sorted(set(available))


def build_tests(claims: list[Claim], scores: pd.DataFrame, sweeps: pd.DataFrame, reps: pd.DataFrame,
                reference: paper_tables.Reference, numbers: dict) -> list[Test]:
    """Every test of every claim, with its per-seed values (empty where a side has no runs)."""
    tests = []
    by = {key: _seeds(g, "score") for key, g in scores.groupby(["task", "method"])}
    for claim in claims:
        if claim.kind in ("better", "equivalent"):
            for task in _tasks(claim, scores["task"]):
                for b in claim.b:
                    paper = paper_difference(claim, claim.a, b, task, reference, numbers)
                    if claim.paper and paper is None and claim.kind == "better":
                        continue  # the paper makes no such comparison on this task
                    tests.append(Test(claim, task, claim.a, b, by.get((task, claim.a), {}), by.get((task, b), {}),
                                      paper))
        elif claim.kind == "best":
            for task in _tasks(claim, scores["task"]):
                rivals = claim.b or sorted(m for t, m in by if t == task and m != claim.a)
                rivals = {b: by[(task, b)] for b in rivals if (task, b) in by}
                tests.append(Test(claim, task, claim.a, "every other student", by.get((task, claim.a), {}), {},
                                  rivals=rivals))
        elif claim.kind in ("sweep_compression", "sweep_peak"):
            mine = sweeps[(sweeps["method"] == claim.method) & (sweeps["param"] == claim.param)]
            for task in sorted(mine["task"].unique()):
                found = (compression_pairs if claim.kind == "sweep_compression" else peak_pairs)(
                    mine[mine["task"] == task])
                if found is not None:
                    a, b, x, y = found
                    tests.append(Test(claim, task, a, b, x, y))
        elif claim.kind == "decorrelation":
            mine = reps[reps["method"] == claim.method]
            for task in _tasks(claim, mine["task"]):
                t = mine[mine["task"] == task]
                tests.append(Test(claim, task, "mean abs corr of h", "mean abs corr of z_mu", _seeds(t, "corr_h"),
                                  _seeds(t, "corr_z")))
        elif claim.kind == "compactness":
            for task in _tasks(claim, reps[reps["method"] == claim.a]["task"]):
                t = reps[reps["task"] == task]
                tests.append(Test(claim, task, f"silhouette of {claim.a}'s z_mu", f"silhouette of {claim.b[0]}'s h",
                                  _seeds(t[t["method"] == claim.a], "sil_z"), _seeds(t[t["method"] == claim.b[0]],
                                                                                     "sil_h")))
    return tests


def compression_pairs(sweep: pd.DataFrame):
    """A sweep of the compression dimension (rows value, seed, score) -> (a label, b label, seed -> mean score over
    the compressed values, seed -> score at the largest value: no compression), over the seeds with every value."""
    values = sorted(sweep["value"].unique())
    if len(values) < 2:
        return None
    wide = sweep.pivot_table(index="seed", columns="value", values="score").dropna()
    if wide.empty:
        return None
    top = values[-1]
    return (f"mean over {', '.join(f'{v:g}' for v in values[:-1])}", f"{top:g} (uncompressed)",
            wide[values[:-1]].mean(axis=1).to_dict(), wide[top].to_dict())


def peak_pairs(sweep: pd.DataFrame):
    """A sweep (rows value, seed, score) -> (a label, b label, seed -> score at the best interior value, seed -> the
    better end's score), over the seeds with all three; None with fewer than 3 values. The interior value is chosen
    by its mean on the same seeds it is tested on: a winner's-curse bias toward the interior, stated in the rules."""
    values = sorted(sweep["value"].unique())
    if len(values) < 3:
        return None
    low, high = values[0], values[-1]
    interior = sweep[sweep["value"].isin(values[1:-1])]
    best = interior.groupby("value")["score"].mean().idxmax()
    at = {v: _seeds(sweep[sweep["value"] == v], "score") for v in (best, low, high)}
    seeds = sorted(set(at[best]) & set(at[low]) & set(at[high]))
    if not seeds:
        return None
    return (f"{best:g} (best interior)", f"max({low:g}, {high:g})", {s: at[best][s] for s in seeds},
            {s: max(at[low][s], at[high][s]) for s in seeds})


# --- testing --------------------------------------------------------------------------------------------------------

def _differences(x: dict[int, float], y: dict[int, float]) -> np.ndarray:
    seeds = sorted(set(x) & set(y))
    return np.array([x[s] - y[s] for s in seeds], dtype=float)


def _t(d: np.ndarray, alternative: str = "two-sided", popmean: float = 0.0):
    return sps.ttest_1samp(d, popmean, alternative=alternative)


def _p(d: np.ndarray, alternative: str = "two-sided", popmean: float = 0.0) -> float:
    """The t test's p; differences with no spread (identical runs) decide by their sign alone."""
    if np.ptp(d) == 0:
        gap = d[0] - popmean
        hit = {"two-sided": gap != 0, "greater": gap > 0, "less": gap < 0}[alternative]
        return 0.0 if hit else 1.0
    return float(_t(d, alternative, popmean).pvalue)


def test_row(test: Test) -> dict:
    """The test's statistics before multiplicity: n, mean difference, sd, p (two-sided t; TOST for equivalence;
    the intersection-union p for best), and the differences themselves (for the adjusted interval)."""
    kind = test.claim.kind
    if kind == "best":
        diffs = {b: _differences(test.x, y) for b, y in test.rivals.items()}
        diffs = {b: d for b, d in diffs.items() if len(d) >= stats.MIN_INTERVAL_SEEDS}
        if not diffs or len(diffs) < len(test.rivals):
            return {"n": min((len(d) for d in diffs.values()), default=0), "d": np.array([]), "p": None}
        closest = min(diffs, key=lambda b: diffs[b].mean())
        p = max(_p(d, "greater") for d in diffs.values())
        return {"n": len(diffs[closest]), "d": diffs[closest], "p": p, "b": f"every other student (closest: {closest})"}
    d = _differences(test.x, test.y)
    if len(d) < stats.MIN_INTERVAL_SEEDS:
        return {"n": len(d), "d": d, "p": None}
    if kind == "equivalent":
        m = test.claim.margin
        p = max(_p(d, "greater", -m), _p(d, "less", m))
    else:
        p = _p(d)
    return {"n": len(d), "d": d, "p": p}


def interval(d: np.ndarray, confidence: float) -> tuple[float, float]:
    """The Student-t interval of the mean of d at `confidence` (the one a t test inverts)."""
    if np.ptp(d) == 0:
        return float(d[0]), float(d[0])
    ci = _t(d).confidence_interval(confidence)
    return float(ci.low), float(ci.high)


def power_row(d: np.ndarray, alpha: float, paper_diff: float | None) -> tuple[float | None, int | None]:
    """Prospective power, from the spread of the differences, never the observed mean: the smallest difference
    this n detects with 80% power at `alpha` (two-sided), and the seeds that would detect the paper's own difference
    so (None without a paper difference; capped at stats.MAX_SEEDS)."""
    from statsmodels.stats.power import TTestPower

    if len(d) < 2 or not np.std(d, ddof=1) > 0:
        return None, None
    sd = float(np.std(d, ddof=1))
    power = TTestPower()
    mde = float(power.solve_power(nobs=len(d), alpha=alpha, power=stats.POWER)) * sd
    need = None
    if paper_diff is not None and paper_diff != 0:
        es = abs(paper_diff) / sd
        try:
            need = math.ceil(float(power.solve_power(effect_size=es, alpha=alpha, power=stats.POWER, nobs=None)))
        except (ValueError, RuntimeError):
            need = stats.MAX_SEEDS
        need = min(max(need, 2), stats.MAX_SEEDS)
    return mde, need


def holm(p_values: list[float]) -> list[float]:
    """Holm-adjusted p-values of a family, in its order (statsmodels' `multipletests`)."""
    from statsmodels.stats.multitest import multipletests

    if not p_values:
        return []
    return [float(p) for p in multipletests(p_values, alpha=ALPHA, method="holm")[1]]


def verdict(kind: str, p_holm: float | None, mean: float, low: float, high: float, margin: float | None,
            paper_diff: float | None) -> str:
    """A family test's verdict (module docstring)."""
    if p_holm is None:
        return NOT_RUN
    if kind == "equivalent":
        if p_holm < ALPHA:
            return "holds"
        return "contradicted" if low > margin or high < -margin else "inconclusive"
    if p_holm < ALPHA:
        return "holds" if mean > 0 else "contradicted"
    if kind == "best" and high < 0:
        return "contradicted"
    if paper_diff is not None and paper_diff > high:
        return "smaller than the paper's"
    return "inconclusive"


def reading(low: float | None, high: float | None) -> str:
    if low is None:
        return NOT_RUN
    return "above zero" if low > 0 else "below zero" if high < 0 else "covers zero"


def evaluate(claims: list[Claim], scores: pd.DataFrame, sweeps: pd.DataFrame | None = None,
             reps: pd.DataFrame | None = None, family: list[str] | None = None,
             reference: paper_tables.Reference | None = None, numbers: dict | None = None,
             power: bool = True) -> pd.DataFrame:
    """One row per test, columns COLUMNS: the family's tests first (claim order), then the exploratory ones (the
    other claims' tests, and each `better` claim's mean over its tasks). Differences are a minus b in points
    (correlation and silhouette for those kinds). `power`: compute mde and seeds_for_paper (root finding: the
    simulations of the tests leave it out)."""
    reference = reference or paper_tables.load()
    numbers = paper_tables.paper_numbers() if numbers is None else numbers
    scores = _frame(scores, SCORE_COLUMNS, ("task", "method", "seed"))
    sweeps = _frame(sweeps, SWEEP_COLUMNS, ("task", "method", "param", "value", "seed"))
    reps = _frame(reps, REPRESENTATION_COLUMNS, ("task", "method", "seed"))
    members = check_family(claims, family)
    tests = build_tests(claims, scores, sweeps, reps, reference, numbers)
    rows = []
    for test in tests:
        r = test_row(test)
        rows.append({"test": test, "claim": test.claim.id, "text": test.claim.text, "source": test.claim.source,
                     "kind": test.claim.kind, "family": test.claim.id in members, "scope": test.scope, "a": test.a,
                     "b": r.get("b", test.b), "n": r["n"], "d": r["d"], "p_value": r["p"],
                     "paper_diff": test.paper_diff})
    rows += _means_over_tasks(tests, reference, numbers)
    fam = [r for r in rows if r["family"] and r["p_value"] is not None]
    m = len(fam)
    for r, p in zip(fam, holm([r["p_value"] for r in fam])):
        r["p_holm"] = p
    out = []
    for r in rows:
        alpha = ALPHA / m if r["family"] and m else ALPHA
        r.pop("test", None)
        d, fixed = r.pop("d"), r.pop("fixed", None)
        if fixed is not None:  # a mean over tasks: its stratified interval, as computed
            mean, sd, low, high = fixed
            mde = need = None
        else:
            has = r["p_value"] is not None and len(d) >= stats.MIN_INTERVAL_SEEDS
            low, high = interval(d, 1 - alpha) if has else (None, None)
            mean = float(d.mean()) if len(d) else None
            sd = float(np.std(d, ddof=1)) if len(d) > 1 else None
            mde, need = power_row(d, alpha, r["paper_diff"]) if has and power else (None, None)
        if r["family"]:
            v = verdict(r["kind"], r.get("p_holm"), mean, low, high, _margin(claims, r["claim"]), r["paper_diff"])
        else:
            v = reading(low, high)
        out.append({**r, "mean_diff": mean, "sd_diff": sd, "ci_low": low, "ci_high": high, "verdict": v,
                    "mde": mde, "seeds_for_paper": need, "p_holm": r.get("p_holm")})
    df = pd.DataFrame(out, columns=COLUMNS)
    for c in ("mean_diff", "sd_diff", "ci_low", "ci_high", "p_value", "p_holm", "paper_diff", "mde"):
        df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
    df["paper_vs_ours"] = paper_vs_ours(df["paper_diff"], df["ci_low"], df["ci_high"])
    df = df.sort_values("family", ascending=False, kind="stable").reset_index(drop=True)
    df["n"] = df["n"].astype(int)
    df["seeds_for_paper"] = df["seeds_for_paper"].astype("Int64")
    return df


def _margin(claims: list[Claim], claim_id: str) -> float | None:
    return next(c.margin for c in claims if c.id == claim_id)


def _means_over_tasks(tests: list[Test], reference, numbers) -> list[dict]:
    """Exploratory rows: per `better` / `equivalent` claim and comparator tested on several tasks, the mean of the
    per-task mean differences (its p from the Welch-Satterthwaite t of `stats.stratified`), beside the paper's mean
    of its per-task differences over the same tasks (None unless the paper reports each of them)."""
    out = []
    groups: dict[tuple[str, str], list[Test]] = {}
    for t in tests:
        if t.claim.kind in ("better", "equivalent"):
            groups.setdefault((t.claim.id, t.b), []).append(t)
    for (claim_id, b), ts in groups.items():
        per_task = {t.scope: (t.x, t.y) for t in ts if len(_differences(t.x, t.y)) >= stats.MIN_INTERVAL_SEEDS}
        if len(per_task) < 2:
            continue
        r = stats.stratified(per_task)
        diffs = [t.paper_diff for t in ts if t.scope in per_task]
        paper = float(np.mean(diffs)) if all(x is not None for x in diffs) else None
        claim = ts[0].claim
        out.append({"claim": claim_id, "text": claim.text, "source": claim.source, "kind": claim.kind,
                    "family": False, "scope": f"{MEAN_SCOPE} ({', '.join(sorted(per_task))})", "a": claim.a, "b": b,
                    "n": r.n, "d": None, "fixed": (r.mean_diff, r.sd_diff, r.ci_low, r.ci_high),
                    "p_value": r.p_value, "paper_diff": paper})
    return out


def _frame(df: pd.DataFrame | None, columns: tuple[str, ...], unique: tuple[str, ...]) -> pd.DataFrame:
    """The frame, or an empty one with the columns; a missing column or a duplicated run is an error, since a
    duplicate would be averaged in silently as an extra seed."""
    if df is None or (len(df) == 0 and len(df.columns) == 0):
        return pd.DataFrame(columns=list(columns))
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"a frame lacks column(s) {', '.join(missing)} (needs: {', '.join(columns)})")
    dup = df.duplicated(list(unique))
    if dup.any():
        raise ValueError(f"more than one row for {dict(df.loc[dup, list(unique)].iloc[0])}")
    return df


def paper_vs_ours(paper: pd.Series, low: pd.Series, high: pd.Series) -> pd.Series:
    """Where the paper's own difference lies against our interval: "above", "inside" or "below" (None where either
    is missing)."""
    known = paper.notna() & low.notna() & high.notna()
    position = np.select([paper > high, paper < low], ["above", "below"], "inside")
    return pd.Series(np.where(known, position, None), index=paper.index, dtype=object)


# --- output ---------------------------------------------------------------------------------------------------------

def summary(df: pd.DataFrame) -> str:
    """The report's first sentence: the family's verdicts counted (tests, not claims: a claim is tested per task and
    comparator), each decided one named, then the size of the exploratory part."""
    fam = df[df["family"] & (df["verdict"] != NOT_RUN)]
    counts = fam["verdict"].value_counts()
    parts = [f"{counts[v]} {v}" for v in VERDICTS if v in counts]
    decided = fam[fam["verdict"].isin(["holds", "contradicted"])]
    named = "".join(f" {r.verdict.capitalize()}: {r.claim} on {r.scope}." for r in decided.itertuples())
    if fam.empty:
        return "**In short:** no test of the pre-registered claims has data yet."
    return (f"**In short:** of {len(fam)} family-wise tests of {fam['claim'].nunique()} pre-registered claims, "
            f"{', '.join(parts)} (Holm across the family).{named} {int((~df['family']).sum())} more rows are "
            "exploratory (no verdict).")


def terminal_rows(df: pd.DataFrame) -> list[tuple[str, str, str, str, str]]:
    """(claim, scope, ours, n, verdict) per family test with data: what `bench report` prints."""
    fam = df[df["family"] & (df["verdict"] != NOT_RUN)]
    out = []
    for r in fam.itertuples():
        ours = "-" if pd.isna(r.mean_diff) else f"{r.mean_diff:+.1f}" + (
            "" if pd.isna(r.ci_low) else f" [{r.ci_low:+.1f}, {r.ci_high:+.1f}]")
        out.append((f"{r.claim}: {r.a} - {r.b}", r.scope, ours, str(r.n), r.verdict))
    return out


# a statistic's last digits follow the order its sums ran in (BLAS threads, a machine's SIMD width): a report
# regenerated elsewhere must read the same, and 10 digits are far below any interval's width
DIGITS = 10


def write(out_dir: str | Path, df: pd.DataFrame) -> tuple[Path, Path]:
    """verdicts.csv and verdicts.json (a list of row records, NaN as null) under out_dir, to `DIGITS` significant
    digits; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = out / "verdicts.csv", out / "verdicts.json"
    floats = df.select_dtypes("float").columns
    df = df.assign(**{c: df[c].map(lambda x: float(f"{x:.{DIGITS}g}")) for c in floats})
    df.to_csv(csv_path, index=False)
    records = df.astype(object).where(df.notna(), None).to_dict(orient="records")
    json_path.write_text(json.dumps(records, indent=1, ensure_ascii=False, default=_plain) + "\n")
    return csv_path, json_path


def _plain(value):
    """numpy scalars as Python numbers, for json."""
    return value.item()
