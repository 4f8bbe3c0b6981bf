"""Claim by claim, whether the KDFD paper's claims hold in our runs.

The claims are data (`reference/kdfd_claims.toml`); `evaluate` tests each on a table of scores and gives one row per
(claim, scope) with the difference, its interval, its p-value (raw and Holm-adjusted), the power figures, and a
verdict from the interval. No torch: it reads numbers, never records or models.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kdfd.errors import ConfigError, one_of

from . import stats

CLAIMS_TOML = Path(__file__).resolve().parent / "reference" / "kdfd_claims.toml"
MEAN_SCOPE = "mean over tasks"
NOT_RUN = "not run"
COLUMNS = ["claim", "text", "source", "kind", "scope", "a", "b", "n", "mean_diff", "ci_low", "ci_high", "p_value",
           "p_holm", "p_perm", "mde", "seeds_needed", "verdict", "paper_diff", "paper_vs_ours"]

COMMON_KEYS = ("id", "text", "source", "kind")
# kind -> (required keys, optional keys) beyond COMMON_KEYS
KIND_KEYS = {
    "paired": (("a", "b", "tasks"), ("paper_diff",)),
    "sweep_peak": (("method", "param"), ()),
    "decorrelation": (("method",), ()),
}
SWEEP_PARAMS = ("latent_dim", "vae_lambda")

SCORE_COLUMNS = ("task", "method", "seed", "score")
SWEEP_COLUMNS = ("task", "method", "param", "value", "seed", "score")
DECORRELATION_COLUMNS = ("task", "method", "seed", "corr_h", "corr_z")


@dataclass(frozen=True)
class Claim:
    """One testable claim. paired: a should beat b on `tasks` (None: every task with both). sweep_peak: `method`
    peaks at an interior value of `param`. decorrelation: `method`'s z_mu is less correlated than h."""

    id: str
    text: str
    source: str
    kind: str
    a: str | None = None
    b: str | None = None
    tasks: tuple[str, ...] | None = None
    paper_diff: float | None = None
    method: str | None = None
    param: str | None = None


# --- the claims file ------------------------------------------------------------------------------------------------

def _claim(raw: dict, index: int) -> Claim:
    """One `[[claim]]` table, checked: every error names the claim and what is allowed, on one line."""
    name = f"claim {raw['id']!r}" if isinstance(raw.get("id"), str) else f"claim #{index + 1}"
    if "kind" not in raw:
        raise ConfigError(f"{name}: missing key 'kind' (allowed: {', '.join(sorted(KIND_KEYS))})")
    kind = raw["kind"]
    if kind not in KIND_KEYS:
        raise ConfigError(f"{name}: {one_of('kind', kind, KIND_KEYS)}")
    required, optional = KIND_KEYS[kind]
    needs = ", ".join(COMMON_KEYS + required)
    for key in COMMON_KEYS + required:
        if key not in raw:
            raise ConfigError(f"{name}: missing key {key!r} (a {kind} claim needs: {needs})")
    extra = set(raw) - set(COMMON_KEYS + required + optional)
    if extra:  # a typo ("task", "paper-diff") would otherwise be ignored silently
        raise ConfigError(f"{name}: {one_of('key', sorted(extra)[0], COMMON_KEYS + required + optional)}")
    for key in COMMON_KEYS + tuple(k for k in ("a", "b", "method", "param") if k in raw):
        if not isinstance(raw[key], str) or not raw[key]:
            raise ConfigError(f"{name}: {key} must be a non-empty string, not {raw[key]!r}")
    tasks = raw.get("tasks")
    if tasks is not None and tasks != "all" and not (
            isinstance(tasks, list) and tasks and all(isinstance(t, str) for t in tasks)):
        raise ConfigError(f"{name}: tasks must be \"all\" or a list of task names, not {tasks!r}")
    if kind == "sweep_peak" and raw["param"] not in SWEEP_PARAMS:
        raise ConfigError(f"{name}: {one_of('param', raw['param'], SWEEP_PARAMS)}")
    paper = raw.get("paper_diff")
    if paper is not None and (isinstance(paper, bool) or not isinstance(paper, (int, float))):
        raise ConfigError(f"{name}: paper_diff must be a number of points, not {paper!r}")
    return Claim(raw["id"], raw["text"], raw["source"], kind, a=raw.get("a"), b=raw.get("b"),
                 tasks=None if tasks in (None, "all") else tuple(tasks),
                 paper_diff=None if paper is None else float(paper), method=raw.get("method"), param=raw.get("param"))


def load_claims(path: str | Path = CLAIMS_TOML) -> list[Claim]:
    """The claims of a TOML file of `[[claim]]` tables, validated (ConfigError with a one-line message otherwise)."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"claims file {path}: {e}") from None
    extra = set(raw) - {"claim"}
    if extra:
        raise ConfigError(f"claims file {path}: {one_of('table', sorted(extra)[0], ['claim'])}")
    if not isinstance(raw.get("claim"), list) or not raw["claim"]:
        raise ConfigError(f"claims file {path}: no [[claim]] tables")
    claims = [_claim(c, i) for i, c in enumerate(raw["claim"])]
    ids = [c.id for c in claims]
    dup = next((i for i in ids if ids.count(i) > 1), None)
    if dup is not None:
        raise ConfigError(f"claims file {path}: claim id {dup!r} appears twice (ids must be unique)")
    return claims


# --- evaluation -----------------------------------------------------------------------------------------------------

def _check_frame(df: pd.DataFrame | None, columns: tuple[str, ...], name: str, unique: tuple[str, ...]) -> pd.DataFrame:
    """The frame, or an empty one with the columns; a missing column or a duplicated run is an error, since a
    duplicate would be averaged in silently as an extra seed."""
    if df is None or (len(df) == 0 and len(df.columns) == 0):  # pd.DataFrame([]) of no runs has no columns
        return pd.DataFrame(columns=list(columns))
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{name} lacks column(s) {', '.join(missing)} (needs: {', '.join(columns)})")
    dup = df.duplicated(list(unique))
    if dup.any():
        raise ValueError(f"{name} has more than one row for {dict(df.loc[dup, list(unique)].iloc[0])}")
    return df


def _seed_scores(df: pd.DataFrame, column: str = "score") -> dict[int, float]:
    """seed -> value (points) of a frame's rows."""
    return {int(s): float(v) for s, v in zip(df["seed"], df[column])}


def _row(claim: Claim, scope: str, a: str, b: str, r: stats.Paired | None, paper_diff: float | None) -> dict:
    """One output row; r None is a claim with no data."""
    if r is None:
        r = stats.Paired(0, None, None, None, None, None, None, None)
    return {"claim": claim.id, "text": claim.text, "source": claim.source, "kind": claim.kind, "scope": scope,
            "a": a, "b": b, "n": r.n, "mean_diff": r.mean_diff, "ci_low": r.ci_low, "ci_high": r.ci_high,
            "p_value": r.p_value, "p_perm": r.p_perm, "mde": r.mde, "seeds_needed": r.seeds_needed,
            "verdict": NOT_RUN if r.n == 0 else stats.verdict(r.ci_low, r.ci_high), "paper_diff": paper_diff}


def _paired_rows(claim: Claim, scores: pd.DataFrame, **kw) -> list[dict]:
    """Per task where a and b share a seed, then the stratified mean over those tasks (when there are several: with
    one task it would repeat that task's row and only cost Holm a test)."""
    tasks = claim.tasks if claim.tasks is not None else sorted(scores["task"].unique())
    per_task = {}
    for task in tasks:
        t = scores[scores["task"] == task]
        a, b = _seed_scores(t[t["method"] == claim.a]), _seed_scores(t[t["method"] == claim.b])
        if set(a) & set(b):
            per_task[task] = (a, b)
    rows = [_row(claim, task, claim.a, claim.b, stats.paired(a, b, **kw), None) for task, (a, b) in per_task.items()]
    if len(per_task) > 1:
        rows.append(_row(claim, MEAN_SCOPE, claim.a, claim.b, stats.stratified(per_task, **kw), claim.paper_diff))
    elif rows:  # the paper's average is the only reference there is
        rows[0]["paper_diff"] = claim.paper_diff
    return rows


def _fmt_value(v: float) -> str:
    return f"{v:g}"


def peak_pairs(sweep: pd.DataFrame) -> tuple[float, float, float, dict[int, float], dict[int, float]] | None:
    """One task's sweep of one parameter (rows value, seed, score) -> (best interior value, low end, high end,
    seed -> score at the best interior value, seed -> max of the two ends' scores), over the seeds that have all
    three; None with fewer than 3 values or no such seed.

    The interior value is chosen by its mean over seeds, on the same seeds it is then tested on: a winner's-curse
    bias towards the interior when several interior values are close; the per-seed max over the two ends biases the
    other way."""
    values = sorted(sweep["value"].unique())
    if len(values) < 3:
        return None
    low, high = values[0], values[-1]
    interior = sweep[sweep["value"].isin(values[1:-1])]
    best = interior.groupby("value")["score"].mean().idxmax()
    at = {v: _seed_scores(sweep[sweep["value"] == v]) for v in (best, low, high)}
    seeds = sorted(set(at[best]) & set(at[low]) & set(at[high]))
    if not seeds:
        return None
    return (best, low, high, {s: at[best][s] for s in seeds}, {s: max(at[low][s], at[high][s]) for s in seeds})


def _sweep_rows(claim: Claim, sweeps: pd.DataFrame, **kw) -> list[dict]:
    """Per task: per seed, the score at the best interior value minus the better of the two ends, tested against 0
    (a paired test of those two per-seed scores is exactly that one-sample test on the differences)."""
    rows = []
    mine = sweeps[(sweeps["method"] == claim.method) & (sweeps["param"] == claim.param)]
    for task in sorted(mine["task"].unique()):
        found = peak_pairs(mine[mine["task"] == task])
        if found is None:
            continue
        best, low, high, a, b = found
        p = claim.param
        rows.append(_row(claim, task, f"{p}={_fmt_value(best)} (best interior)",
                         f"max({p}={_fmt_value(low)}, {p}={_fmt_value(high)})", stats.paired(a, b, **kw), None))
    return rows


def _decorrelation_rows(claim: Claim, decorrelation: pd.DataFrame, **kw) -> list[dict]:
    """Per task: per seed corr_h - corr_z (positive: z_mu is the less correlated), tested against 0 as above."""
    rows = []
    mine = decorrelation[decorrelation["method"] == claim.method]
    for task in sorted(mine["task"].unique()):
        t = mine[mine["task"] == task]
        r = stats.paired(_seed_scores(t, "corr_h"), _seed_scores(t, "corr_z"), **kw)
        if r.n:
            rows.append(_row(claim, task, "mean |corr| of h", "mean |corr| of z_mu", r, None))
    return rows


def evaluate(claims: list[Claim], scores: pd.DataFrame, sweeps: pd.DataFrame | None = None,
             decorrelation: pd.DataFrame | None = None, confidence: float = 0.95, n_resamples: int = 9999,
             seed: int = 0, interval: str = "t") -> pd.DataFrame:
    """One row per (claim, scope), in claim order, with columns COLUMNS.

    Inputs, one row per selected run: scores (task, method, seed, score in points); sweeps (task, method, param,
    value, seed, score); decorrelation (task, method, seed, corr_h, corr_z: mean |off-diagonal correlation|, see
    `stats.offdiag_abs_corr`). Scopes: paired claims give a row per task where a and b share a seed, then
    "mean over tasks" (stratified); sweep_peak and decorrelation a row per task. Differences are a minus b in the
    row's units (points; correlation for decorrelation); a claim with no data gives one row, verdict "not run", n 0.

    interval: "t" or "percentile" (`stats.INTERVALS`; the module docstring of `stats` says why "t" is the default):
    it sets ci_low, ci_high and p_value, the p of the test behind the interval; p_perm, the exact sign-flip
    permutation p, is there under either.
    Several claims are tested at once, so p_holm adjusts every row's p_value together (Holm-Bonferroni over all
    rows that have one). The verdict comes from the row's own 95% interval (per comparison, not family-wise): read
    it beside p_holm.
    """
    scores = _check_frame(scores, SCORE_COLUMNS, "scores", ("task", "method", "seed"))
    sweeps = _check_frame(sweeps, SWEEP_COLUMNS, "sweeps", ("task", "method", "param", "value", "seed"))
    decorrelation = _check_frame(decorrelation, DECORRELATION_COLUMNS, "decorrelation", ("task", "method", "seed"))
    kw = {"confidence": confidence, "n_resamples": n_resamples, "seed": seed,
          "interval": stats.check_interval(interval)}
    rows = []
    for claim in claims:
        if claim.kind == "paired":
            got = _paired_rows(claim, scores, **kw)
        elif claim.kind == "sweep_peak":
            got = _sweep_rows(claim, sweeps, **kw)
        else:
            got = _decorrelation_rows(claim, decorrelation, **kw)
        if not got:
            a, b = (claim.a, claim.b) if claim.kind == "paired" else (claim.method, claim.param or "")
            got = [_row(claim, "-", a, b, None, claim.paper_diff)]
        rows += got
    df = pd.DataFrame(rows)
    df["p_holm"] = stats.holm(df["p_value"].astype(float).tolist())
    df["n"] = df["n"].astype(int)
    df["seeds_needed"] = df["seeds_needed"].astype("Int64")  # None where it is undefined
    for c in ("mean_diff", "ci_low", "ci_high", "p_value", "p_perm", "mde", "paper_diff"):
        df[c] = df[c].astype(float)
    df["paper_vs_ours"] = paper_vs_ours(df["paper_diff"], df["ci_low"], df["ci_high"])
    return df[COLUMNS]


def paper_vs_ours(paper: pd.Series, low: pd.Series, high: pd.Series) -> pd.Series:
    """Where the paper's own difference lies against our interval: "above", "inside" or "below" (None where either
    is missing). A second question beside the verdict's: an inconclusive row whose interval excludes the paper's
    number still rules out an effect as large as the paper's, on our protocol (the paper's number comes from a
    BERT-base teacher on the GLUE test server, so this is a statement about our setting, not a refutation)."""
    known = paper.notna() & low.notna() & high.notna()
    position = np.select([paper > high, paper < low], ["above", "below"], "inside")
    return pd.Series(np.where(known, position, None), index=paper.index, dtype=object)


def headline(df: pd.DataFrame) -> pd.DataFrame:
    """One row per claim, in claim order (columns claim, text, scope, ours, n, verdict, paper_vs_ours; ours as in
    the table): the claim's mean-over-tasks row where it has one, else its only row; a claim tested on several
    tasks with no mean (sweep_peak, decorrelation) takes its tasks' verdict when they agree and "mixed" when they do
    not (scope "every task", ours each task's "task: diff [interval]" joined by "; ", n their sum)."""
    out = []
    for claim, rows in df.groupby("claim", sort=False):
        mean = rows[rows["scope"] == MEAN_SCOPE]
        if len(mean) or len(rows) == 1:
            r = (mean if len(mean) else rows).iloc[0]
            out.append((claim, r["text"], r["scope"], _ours(r), int(r["n"]), r["verdict"], r["paper_vs_ours"]))
        else:
            same = rows["verdict"].nunique() == 1
            ours = "; ".join(f"{r['scope']}: {_ours(r)}" for _, r in rows.iterrows())
            out.append((claim, rows["text"].iloc[0], "every task", ours, int(rows["n"].sum()),
                        rows["verdict"].iloc[0] if same else "mixed", None))
    return pd.DataFrame(out, columns=["claim", "text", "scope", "ours", "n", "verdict", "paper_vs_ours"])


def summary(df: pd.DataFrame) -> str:
    """The verdict table in a sentence: how many claims hold, are contradicted, etc. (by `headline`), the claims
    that are not inconclusive named, and those whose paper number lies outside our interval."""
    heads = headline(df)
    order = ["holds", "contradicted", "mixed", "inconclusive", NOT_RUN]
    counts = heads["verdict"].value_counts()
    parts = [f"{counts[v]} {v}" for v in order if v in counts]
    decided = heads[~heads["verdict"].isin(["inconclusive", NOT_RUN])]
    named = "".join(f" {r.verdict.capitalize()}: {r.text}" for r in decided.itertuples())
    outside = heads[heads["paper_vs_ours"].isin(["above", "below"])]
    ruled = (f" The paper's own difference lies outside our interval for {len(outside)}: "
             + "; ".join(f"{r.text.rstrip('.')} ({r.paper_vs_ours} it)"
                         for r in outside.itertuples()) + ".") if len(outside) else ""
    return (f"**In short:** of {len(heads)} claims, {', '.join(parts)} (a claim's verdict: its mean over tasks where "
            f"it has one, else its tasks' when they agree).{named}{ruled}")


# --- output ---------------------------------------------------------------------------------------------------------

def write(out_dir: str | Path, df: pd.DataFrame) -> tuple[Path, Path]:
    """verdicts.csv and verdicts.json (a list of row records, NaN as null) under out_dir, both at full float
    precision, so every number can be recomputed and compared exactly; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = out / "verdicts.csv", out / "verdicts.json"
    df.to_csv(csv_path, index=False)
    # json.dumps, not DataFrame.to_json: the latter rounds floats to 10 digits by default
    records = df.astype(object).where(df.notna(), None).to_dict(orient="records")
    json_path.write_text(json.dumps(records, indent=1, ensure_ascii=False, default=_plain) + "\n")
    return csv_path, json_path


def _plain(value):
    """numpy scalars as Python numbers, for json."""
    return value.item()


def _signed(v: float, digits: int = 1) -> str:
    """+1.2 / −0.3 (a true minus sign, as in print)."""
    return f"{v:+.{digits}f}".replace("-", "\u2212")


def _ours(r: pd.Series) -> str:
    """Mean difference [interval]: points to 1 decimal; correlations (decorrelation rows, in [0, 1]) to 3."""
    if r["n"] == 0 or pd.isna(r["mean_diff"]):
        return "\u2014"
    k = 3 if r["kind"] == "decorrelation" else 1
    if pd.isna(r["ci_low"]):
        return f"{_signed(r['mean_diff'], k)} (no interval: under {stats.MIN_INTERVAL_SEEDS} seeds per task)"
    return f"{_signed(r['mean_diff'], k)} [{_signed(r['ci_low'], k)}, {_signed(r['ci_high'], k)}]"


def _p(v: float) -> str:
    if pd.isna(v):
        return "\u2014"
    return "<0.001" if v < 0.001 else f"{v:.3f}"


def _note(r: pd.Series) -> str:
    """For an inconclusive row, the seeds the observed difference would need to be detected (80% power); where the
    paper's number lies outside our interval, on which side."""
    notes = []
    if r["verdict"] == "inconclusive" and not pd.isna(r["seeds_needed"]):
        k = int(r["seeds_needed"])
        per = " per task" if r["scope"] == MEAN_SCOPE else ""
        notes.append(f"needs \u2265{k} seeds{per}" if k >= stats.MAX_SEEDS else f"needs ~{k} seeds{per}")
    if r["paper_vs_ours"] in ("above", "below"):
        notes.append(f"the paper's {_signed(r['paper_diff'])} lies {r['paper_vs_ours']} our interval")
    return "; ".join(notes)


def markdown(df: pd.DataFrame, links: dict[str, str] | None = None) -> str:
    """The verdicts as a Markdown table: claim text (on each claim's first row, its source linked where `links`
    maps the claim's kind or id to a section of the report), scope, the paper's own difference, ours as
    "+1.2 [−0.3, +2.7]" (mean difference [95% interval], points), the verdict in bold, n, Holm p, and for
    inconclusive rows the seeds the observed difference would need."""
    links = links or {}
    first = ~df["claim"].duplicated()

    def source(r) -> str:
        target = links.get(r["claim"]) or links.get(r["kind"])
        return f"[{r['source']}]({target})" if target else r["source"]

    table = pd.DataFrame({
        "claim": np.where(first, df["text"] + " (" + df.apply(source, axis=1) + ")", ""),
        "scope": df["scope"],
        "paper": ["" if pd.isna(v) else _signed(v) for v in df["paper_diff"]],
        "ours": [_ours(r) for _, r in df.iterrows()],
        "verdict": "**" + df["verdict"] + "**",
        "n": df["n"],
        "p (Holm)": [_p(v) for v in df["p_holm"]],
        "note": [_note(r) for _, r in df.iterrows()],
    })
    return table.to_markdown(index=False, disable_numparse=True)  # keeps "+1.7" and "-0.0" as written
