"""The report's analysis: from a suite's collected records to everything its report shows, as data frames (and the
paper, the selected groups and the figures to draw, which are no tables). Records and representations come from
the command's `RecordSet` only; nothing is written here: `report_writer` renders an `Analysis` as files and
`report_terminal` prints it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from kdfd.tasks import get_task

from . import cost, paper_tables, stats, store, verdicts
from . import paper as papers
from . import report as rep
from .record_set import RecordSet
from .selection import Selection


@dataclass(frozen=True)
class Figure:
    """One figure: `benchmarks.figures.<draw>(**args)` into figures/<stem>.png (and .pdf), embedded as `alt`."""

    draw: str
    stem: str
    alt: str
    args: dict


@dataclass
class Analysis:
    """What one report shows. The frames' columns are named where each is made (below, and in `report`)."""

    suite: str
    checkpoint: str
    interval: str
    note: str | None  # the suite file's `note`
    paper: papers.Paper
    reference: paper_tables.Reference
    numbers: dict  # (table, paper row, task, metric) -> the paper's value
    collected: rep.Collected
    selected: dict[tuple[str, str], rep.Group]  # (task, row) -> the group its cells show
    tables: dict[str, pd.DataFrame]  # table name -> `report.table`
    every: pd.DataFrame  # `report.all_results`: every method with a selected group
    comparisons: pd.DataFrame  # `report.comparisons`: the focal method against each other
    scores: pd.DataFrame  # the selected runs' scores (`verdict_inputs`)
    verdicts: pd.DataFrame  # `verdicts.evaluate`
    model_check: pd.DataFrame  # `model_check`: the paired t's intervals beside the seed-block model's
    spread: dict[str, float]  # task -> Levene's p of equal spread over methods
    inconsistencies: list[str]  # the paper's own differing numbers (`verdicts.paper_inconsistencies`)
    majority: dict[str, float]  # task -> the majority class's score, in points
    learned: pd.DataFrame  # `above_majority`
    settings: pd.DataFrame  # `method_settings`
    models: pd.DataFrame  # `models`: what the selected runs' records say they trained
    configurations: pd.DataFrame  # `configurations`: each selected group
    spent: pd.DataFrame  # `cost.records_frame` of every done run read
    left: list[tuple[str, str]]  # (task, label) of the jobs not run, for the cost of finishing
    sweep_reads: pd.DataFrame  # per sweep suite read for Fig. 5: its done, failed and missing jobs
    seed_figures: list[Figure]  # one per task: every seed of every method
    figures: list[Figure]  # learning curves, Figs. 3-5, every configuration's curves
    select: Selection | None = None  # the suite's `[select]` table
    choices: dict = field(default_factory=dict)  # (row, task) -> its held-out selection (benchmarks.selection)
    ablations: pd.DataFrame | None = None  # `arm_differences` of the select table's ablations
    arms: pd.DataFrame | None = None  # ... and of its other arms


def analyse(suite_name: str, collected: rep.Collected, records: RecordSet, checkpoint: str = "last",
            paper: papers.Paper | None = None, sweeps: dict[str, rep.Collected] | None = None,
            methods: dict | None = None, interval: str = "t", family: list[str] | None = None,
            choices: dict | None = None, select: Selection | None = None, note: str | None = None) -> Analysis:
    """The report of `collected` (the suite's records, read through `records`). `paper`: the paper its tables,
    claims and prose come from (None: `benchmarks.paper.load()`'s default). `sweeps` (suite name -> its records)
    feed Fig. 5 only: the tables select among the suite's own configurations. `methods`: the methods' versions and
    loss scales (`method_settings`). `interval`: the verdicts' and comparisons' interval (`stats.INTERVALS`).
    `family`: the suite's pre-registered claims (None: every claim); `choices`: its held-out selection ((row,
    task) -> benchmarks.selection.Choice) and `select` its `[select]` table, for suites with one; `note`: the
    suite file's `note`."""
    from .selection import points

    selected = rep.select(collected.groups, points(choices or {}, select) if select is not None else None)
    paper = paper or papers.load()
    numbers = rep.paper_numbers(paper.numbers)
    reference = paper_tables.load(paper.tables, paper.numbers)
    shown = collected.with_references(selected)
    sweeps = sweeps or {}
    sweep_sets = [c.groups for c in sweeps.values()]
    scores, swept, reps = verdict_inputs(collected, selected, sweep_sets, paper, records)
    judged = verdicts.evaluate(verdicts.load_claims(paper.claims, reference), scores, swept, reps, family=family,
                               reference=reference, numbers=numbers)
    checked, spread = model_check(scores, judged)
    majority = collected.majority_points()
    runs = [r["path"] for g in collected.groups + [g for groups in sweep_sets for g in groups] for r in g.runs]
    missing = collected.missing + [m for c in sweeps.values() for m in c.missing]
    out = Analysis(
        suite=suite_name, checkpoint=checkpoint, interval=interval, note=note, paper=paper, reference=reference,
        numbers=numbers, collected=collected, selected=selected,
        tables={name: rep.table(name, shown, numbers, reference) for name in reference.tables},
        every=rep.all_results(shown, reference), comparisons=rep.comparisons(selected, paper.method, interval),
        scores=scores, verdicts=judged, model_check=checked, spread=spread,
        inconsistencies=verdicts.paper_inconsistencies(numbers, reference), majority=majority,
        learned=above_majority(scores, majority), settings=method_settings(selected, methods),
        models=models(selected, records), configurations=configurations(selected),
        spent=cost.records_frame(records.read(path) for path in runs),
        left=list({m["id"]: (m["task"], m["label"]) for m in missing}.values()),  # a sweep shares jobs with its base
        sweep_reads=pd.DataFrame([(name, sum(len(g.runs) for g in c.groups), len(c.failed), len(c.missing))
                                  for name, c in sweeps.items()], columns=["suite", "done", "failed", "missing"]),
        seed_figures=seed_figures(scores, majority, reference, interval),
        figures=figures(collected, selected, paper, sweep_sets, records), select=select, choices=choices or {})
    if select is not None:
        out.ablations = arm_differences(scores, select, [a for a in select.parents if a in select.ablations])
        out.arms = arm_differences(scores, select, [a for a in select.parents if a not in select.ablations])
    return out


def verdict_inputs(collected: rep.Collected, selected: dict, sweep_sets: list[list[rep.Group]],
                   paper: papers.Paper, records: RecordSet) -> tuple:
    """What the claims are tested on, as DataFrames: the selected runs (task, method, seed, score in points); every
    run of the paper's swept parameters (task, method, param, value, seed, score; per value the best group, the
    selection rule); and per selected run with saved representations (verdicts.REPRESENTATION_COLUMNS) the mean
    |off-diagonal correlation| of its feature h and of its z_mu, and their silhouettes by label (h reduced by PCA to
    z_mu's dimension, or the paper's `latent`; NaN on a regression task)."""
    scores, reps = [], []
    for (task, method), g in sorted(selected.items()):
        if method in rep.NOT_METHODS:
            continue
        scores += [{"task": task, "method": method, "seed": seed, "score": points}
                   for seed, points in rep.seed_points(g).items()]
        for run in g.runs:
            found = representation_scores(records.representations(run["path"]), get_task(task).is_regression,
                                          paper.latent)
            if found is not None:
                reps.append({"task": task, "method": method, "seed": int(run["seed"]), **found})
    swept = []
    for task, method, param, best in rep.suite_sweeps([collected.groups, *sweep_sets], tuple(paper.swept)):
        for v, g in best.items():
            swept += [{"task": task, "method": method, "param": param, "value": v, "seed": seed, "score": points}
                      for seed, points in rep.seed_points(g).items()]
    return (pd.DataFrame(scores, columns=list(verdicts.SCORE_COLUMNS)),
            pd.DataFrame(swept, columns=list(verdicts.SWEEP_COLUMNS)),
            pd.DataFrame(reps, columns=list(verdicts.REPRESENTATION_COLUMNS)))


def representation_scores(arrays: dict | None, regression: bool, latent: int | None = None) -> dict | None:
    """corr_h, corr_z, sil_h, sil_z of one run's saved representations (`RecordSet.representations`; NaN where a
    part is absent), or None without them. h is reduced by PCA to z_mu's dimension, without z_mu to `latent` (None:
    h's own)."""
    from sklearn.decomposition import PCA
    from sklearn.metrics import silhouette_score

    if arrays is None or "features" not in arrays:
        return None
    arrays = {k: v.astype(np.float64) for k, v in arrays.items()}
    labels = arrays.get("labels")
    h, zmu = arrays["features"], arrays.get("z_mu")

    def silhouette(x):
        if regression or labels is None or len(set(labels.tolist())) < 2:
            return float("nan")
        return float(silhouette_score(x, labels.astype(int)))

    dim = min(zmu.shape[1] if zmu is not None else latent or h.shape[1], *h.shape)
    return {"corr_h": stats.offdiag_abs_corr(h),
            "corr_z": stats.offdiag_abs_corr(zmu) if zmu is not None else float("nan"),
            "sil_h": silhouette(PCA(n_components=dim, random_state=0).fit_transform(h)),
            "sil_z": silhouette(zmu) if zmu is not None else float("nan")}


def model_check(scores: pd.DataFrame, judged: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, float]]:
    """The family's difference tests by the paired t (the verdicts') and by the seed-block model
    (`stats.seed_block_contrasts`), 95% intervals side by side (task, a, b, paired_low, paired_high, the model's
    columns, width_ratio: the model's interval's width over the paired one's), and per task Levene's p of equal
    spread over methods."""
    fam = judged[judged["family"] & judged["kind"].eq("better") & judged["n"].gt(0)]
    pairs = [(r.scope, r.a, r.b) for r in fam.itertuples()]
    model, spread = stats.seed_block_contrasts(scores, pairs)
    paired = []
    for r in fam.itertuples():
        mine = scores[scores["task"] == r.scope]
        d = verdicts._differences(verdicts._seeds(mine[mine["method"] == r.a], "score"),
                                  verdicts._seeds(mine[mine["method"] == r.b], "score"))
        low, high = verdicts.interval(d, 0.95) if len(d) >= stats.MIN_INTERVAL_SEEDS else (None, None)
        paired.append({"task": r.scope, "a": r.a, "b": r.b, "paired_low": low, "paired_high": high})
    both = pd.DataFrame(paired, columns=["task", "a", "b", "paired_low", "paired_high"]).merge(
        model, on=["task", "a", "b"], how="left")
    both["width_ratio"] = (both["high"] - both["low"]) / (both["paired_high"] - both["paired_low"])
    return both, spread


ARM_COLUMNS = ["arm", "parent", "task", "arm_score", "n", "diff", "low", "high"]


def arm_differences(scores: pd.DataFrame, select: Selection, rows: list[str]) -> pd.DataFrame:
    """For each arm of `rows` and task: its parent minus the arm (what the arm's one change costs; an ablation's:
    what the part it removes adds), paired by seed, as `ARM_COLUMNS`: the arm's mean score, the pairs, the mean
    difference and its 95% t interval (None under stats.MIN_INTERVAL_SEEDS pairs; exploratory: no correction)."""
    out = []
    for arm in rows:
        parent = select.parent(arm)
        for task in sorted(set(scores["task"])):
            t = scores[scores["task"] == task]
            d = verdicts._differences(verdicts._seeds(t[t["method"] == parent], "score"),
                                      verdicts._seeds(t[t["method"] == arm], "score"))
            if not len(d):
                continue
            low, high = verdicts.interval(d, 0.95) if len(d) >= stats.MIN_INTERVAL_SEEDS else (None, None)
            out.append({"arm": arm, "parent": parent, "task": task, "arm_score": t[t["method"] == arm]["score"].mean(),
                        "n": len(d), "diff": d.mean(), "low": low, "high": high})
    return pd.DataFrame(out, columns=ARM_COLUMNS)


def above_majority(scores: pd.DataFrame, majority: dict) -> pd.DataFrame:
    """Did each student learn? Per (method, task): the mean score's margin over the constant predictor (points), the
    seeds' sample std, n, and the answer: `yes` (margin above the std, and above 0), `within spread` (0 < margin <=
    std), `no` (margin <= 0: at or below the majority class), `1 seed` (a positive margin with no spread to weigh it
    against). The CPU-protocol issue's criterion: every student above its task's majority by more than its spread."""
    rows = []
    for (method, task), g in scores.groupby(["method", "task"]):
        if task not in majority:
            continue
        margin, sd, n = g.score.mean() - majority[task], g.score.std(ddof=1), len(g)
        learned = ("no" if margin <= 0 else "1 seed" if n < 2 else "yes" if margin > sd else "within spread")
        rows.append({"method": method, "task": task, "margin": margin, "std": sd if n > 1 else float("nan"), "n": n,
                     "learned": learned})
    return pd.DataFrame(rows, columns=["method", "task", "margin", "std", "n", "learned"])


def method_settings(selected: dict, methods: dict | None = None) -> pd.DataFrame:
    """Each method as run here: its version, how its losses are normalised (the method's own `scale`), and the
    parameters this run set unlike the method's defaults (`changed`: `name = value`, sorted; a protocol's departures
    from a paper show here). `methods`: kdfd.registry.method_facts() (a cached suite's, benchmarks.suite_cache);
    None: the registry's."""
    if methods is None:
        from kdfd.registry import method_facts

        methods = method_facts()
    rows = []
    for method in sorted({m for _, m in selected if m in methods}):
        info = methods[method]
        defaults = info.get("defaults", {})
        changed = sorted({f"{k} = {v!r}" for (_, m), g in selected.items() if m == method
                          for k, v in g.params.items() if k in defaults and defaults[k] != v})
        rows.append({"method": method, "version": info["version"], "scale": info["scale"], "changed": changed})
    return pd.DataFrame(rows, columns=["method", "version", "scale", "changed"])


def models(selected: dict, records: RecordSet) -> pd.DataFrame:
    """Per selected (task, row): the student and teacher model specs (None: none) its first seed's record trained,
    so that a synthetic suite's report names its synthetic tasks and tiny models, not the paper's."""
    rows = []
    for (task, method), g in sorted(selected.items()):
        record = records.read(min(g.runs, key=lambda r: r["seed"])["path"])
        cfg = record.config if record is not None else {}
        rows.append({"task": task, "method": method, "student": cfg.get("student"), "teacher": cfg.get("teacher")})
    return pd.DataFrame(rows, columns=["task", "method", "student", "teacher"])


def configurations(selected: dict) -> pd.DataFrame:
    """Each selected group: task, method (its row), version, label, key (its config's hash), seeds, mean score."""
    return pd.DataFrame([{"task": task, "method": method, "version": g.version, "label": g.label, "key": g.key,
                          "seeds": [r["seed"] for r in g.runs], "score": 100 * sum(g.scores) / len(g.scores)}
                         for (task, method), g in sorted(selected.items())],
                        columns=["task", "method", "version", "label", "key", "seeds", "score"])


def seed_figures(scores: pd.DataFrame, majority: dict, reference: paper_tables.Reference, interval: str = "t"
                 ) -> list[Figure]:
    """One figure per task: each method's seeds as dots with the mean and its interval, in the paper's tables' order
    (then every other method)."""
    order = [m for m in reference.method_order() if m not in rep.NOT_METHODS]
    order += sorted(set(scores["method"]) - set(order))
    return [Figure("seed_dots", f"seeds-{task}", f"{task}: every seed of every method",
                   {"scores": scores[scores.task == task], "task": task, "order": order, "floor": majority.get(task),
                    "interval": interval})
            for task in sorted(set(scores["task"]))]


def figures(collected: rep.Collected, selected: dict, paper: papers.Paper, sweep_sets: list[list[rep.Group]],
            records: RecordSet) -> list[Figure]:
    """Every figure the records allow: learning curves of each selected student; Figs. 3-4 for the paper's
    `represented` methods; every configuration's curves where a method has several; Fig. 5 for the paper's `swept`
    parameters, also from `sweep_sets`, the groups of each sweep suite (`report.suite_sweeps`: a sweep's points come
    from its own suite)."""
    out = []
    for (task, method), g in sorted(selected.items()):
        run = min(g.runs, key=lambda r: r["seed"])
        record = records.read(run["path"])
        label = f"{task}, {g.label}, seed {run['seed']}"
        if method != store.TEACHER and record.result.curves:
            out.append(Figure("learning_curves", f"curves-{task}-{method}", f"learning curves, {label}",
                              {"record": record}))
        reps = records.representations(run["path"]) if method in paper.represented else None
        if reps is not None:  # none saved, or damaged: `bench report` names a damaged file
            t = get_task(task)
            out.append(Figure("covariance", f"fig3-covariance-{task}-{method}", f"Fig. 3, covariance, {label}",
                              {"reps": reps, "title": label}))
            out.append(Figure("tsne", f"fig4-tsne-{task}-{method}", f"Fig. 4, t-SNE, {label}",
                              {"reps": reps, "title": label, "regression": t.is_regression, "class_names": t.names,
                               "source": store.artifacts_file(run["path"]), "digest": records.digest(run["path"])}))
    by_method: dict[tuple, list] = {}
    for g in collected.groups:
        if g.method not in rep.NOT_METHODS:
            by_method.setdefault((g.task, g.method), []).append(g)
    for (task, method), gs in sorted(by_method.items()):
        if len(gs) < 2:
            continue
        found = [records.read(min(g.runs, key=lambda r: r["seed"])["path"]) for g in gs]
        found = [r for r in found if r and r.result.step_curves]
        if len(found) > 1:
            out.append(Figure("grid_curves", f"grid-curves-{task}-{method}",
                              f"every configuration of {method} on {task}, against steps",
                              {"records": found, "task": task, "method": method}))
    majority = collected.majority_points()
    for task, method, param, points in rep.sweeps([collected.groups, *sweep_sets], tuple(paper.swept)):
        out.append(Figure("sweep", f"fig5-{param}-{task}-{method}", f"Fig. 5, {param}, {task} {method}",
                          {"points": points, "label": paper.swept[param],
                           "title": f"Fig. 5: {method} on {task} against {param}", "floor": majority.get(task)}))
    return out
