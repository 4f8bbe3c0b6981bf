"""Writes a report folder: report.md (every table, the rules, the excluded jobs), each table as .md, .tex and .csv,
and the KDFD-against-baselines comparison."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from kdfd.tasks import get_task

from . import cost, paper_tables, stats
from . import report as rep
from . import store

INTERVAL_RULES = {
    "t": ("its 95% Student-t interval over seeds (the one a paired t test inverts), the t test's p-value, and an "
          "exact sign-flip permutation p-value (verdicts.csv: p_perm); over tasks, the mean of the per-task "
          "differences with a Welch-Satterthwaite t interval (each task its own variance)"),
    "percentile": ("its 95% percentile bootstrap interval over seeds and an exact sign-flip permutation p-value; "
                   "over tasks, the mean of the per-task differences with a stratified bootstrap (seeds resampled "
                   "within each task)"),
}
INTERVAL_CAUTION = {
    "t": ("Why a t interval and not the bootstrap (`--interval percentile` gives that), measured by simulating "
          "claims with no difference at all (normal per-seed differences; tests/benchmarks/test_verdicts.py): a 95% "
          "percentile bootstrap excluded zero in 24% of them at 3 seeds and 16% at 5, not 5%, since n resampled "
          "values cannot reach past their range; the t interval, exact for normal differences, did so in 5.1% and "
          "6.0% (1,500 claims each), and over two tasks of unequal spread in 5.5% and 5.8%. The permutation p "
          "cannot go below 2 / 2^n (0.0625 at 5 seeds), so it never rejects at 5% below 6 seeds; Holm's correction "
          "is applied to the t test's p-values."),
    "percentile": ("Caution, measured: at so few seeds a percentile bootstrap interval is too narrow. With no "
                   "difference at all (normal per-seed differences), it excluded zero in 24% of simulated claims "
                   "at 3 seeds and 16% at 5, against the 5% a 95% interval promises (the default Student-t "
                   "interval: 5.1% and 6.0%). Read a holds / contradicted verdict with its Holm p beside it."),
}


def verdict_rules(interval: str) -> str:
    """The verdict table's rules, for the interval it was computed with (`stats.INTERVALS`)."""
    return (
        "Each claim is tested on the selected runs, paired by seed (same seed: same teacher and data order): the "
        f"mean difference of the task's score (points), {INTERVAL_RULES[interval]}. **holds**: the interval lies "
        "above zero; **contradicted**: below zero; **inconclusive**: it covers zero (with the seeds that would "
        "resolve the observed difference at 80% power), or there is no interval: one is drawn from "
        f"{stats.MIN_INTERVAL_SEEDS} seeds per task or more. Several claims are tested at once: the p-values are "
        "Holm-corrected across every row; a verdict is per comparison, its Holm p family-wise. The paper's number "
        "is its own difference on the same tasks (GLUE test server, BERT-base teacher), for orientation only; where "
        "it lies outside our interval, the note says so (verdicts.csv: paper_vs_ours): an effect as large as the "
        "paper's is then ruled out on this protocol, whatever the verdict. "
        + INTERVAL_CAUTION[interval])


# where each kind of claim's evidence sits in report.md (Markdown heading anchors) or beside it
VERDICT_LINKS = {"paired": "table1.md", "sweep_peak": "#figures", "decorrelation": "#figures",
                 "vae-vs-ae": "table2.md", "kdfd-vs-vanilla-kd": "table3.md", "kdfd-vs-vanilla-kd-small": "table3.md"}


def _model(spec: dict | None) -> str:
    """A model as its config names it: `minilm, first 3 layers`, `tiny random BERT (2 layers, hidden 32)`."""
    if not spec:
        return "none"
    if spec.get("name") == "tiny":
        return f"tiny random BERT ({spec.get('layers') or 2} layers, hidden {spec.get('hidden')})"
    layers = spec.get("layers")
    return spec["name"] + (f", {spec.get('layer_choice', 'first')} {layers} layers" if layers else "")


def _listing(by_value: dict[str, list[str]]) -> str:
    """`A` when every method shares one value, else `A (m1, m2); B (m3)`."""
    if len(by_value) == 1:
        return next(iter(by_value))
    return "; ".join(f"{v} ({', '.join(sorted(ms))})" for v, ms in sorted(by_value.items()))


def ours_caption(selected: dict) -> str:
    """What our cells are, read from the selected runs' own records (their tasks' data and their models), so that a
    synthetic suite's report names its synthetic tasks and tiny models, not the paper's GLUE and BERT-base."""
    tasks, teachers, students = set(), {}, {}
    for (task, method), g in sorted(selected.items()):
        record = store.read(min(g.runs, key=lambda r: r["seed"])["path"]) or {}
        cfg = record.get("config") or {}
        tasks.add(task)
        if method == "teacher":
            teachers.setdefault(_model(cfg.get("student")), []).append("fine-tuned")
        else:
            students.setdefault(_model(cfg.get("student")), []).append(method)
            if cfg.get("teacher"):
                teachers.setdefault(_model(cfg.get("teacher")), []).append(method)
    glue = sorted(get_task(t).glue_dir for t in tasks if not get_task(t).synthetic)
    synthetic = sorted(t for t in tasks if get_task(t).synthetic)
    data = [f"GLUE dev sets ({', '.join(glue)})"] * bool(glue)
    data += [f"dev sets of the synthetic tasks {', '.join(synthetic)} (generated by kdfd.synthetic)"] * bool(synthetic)
    teachers = {k: sorted(set(v) - {"fine-tuned"}) or ["fine-tuned"] for k, v in teachers.items()}
    parts = [f"Ours: {' and '.join(data) or 'no runs'}"]
    parts += [f"teacher {_listing(teachers)}"] * bool(teachers) + [f"student {_listing(students)}"] * bool(students)
    return "; ".join(parts) + "; mean ± sample std over seeds (n seeds)."


def caption(ours: str, reference: paper_tables.Reference) -> str:
    return f"{ours} Paper: {reference.paper}, so the differences mix model and split."


def frame(rows: list[dict], headers: list[str]) -> pd.DataFrame:
    """A table's rows (`report.table`, `report.all_results`) as text cells: method, paper row, one column per
    header (`Cell.text`: mean ± std (n) · paper (difference)), average."""
    return pd.DataFrame([[r["method"], r["paper_row"], *[c.text() for _, c in r["cells"]],
                          f"{r['average']:.1f}" if r["average"] is not None else "-"] for r in rows],
                        columns=["method", "paper row", *headers, "avg"])


def markdown(df: pd.DataFrame) -> str:
    # numparse off: tabulate would reformat "82.0" as "82" and align it as a number
    return df.to_markdown(index=False, disable_numparse=True)


def not_run_notes(rows: list[dict]) -> list[str]:
    """`ICR-KD: not run: ...` for each paper row no method here runs: said under a table, never as its method."""
    return [f"{r['paper_row']}: {r['why']}" for r in rows if r.get("why")]


def latex(rows: list[dict], headers: list[str], title: str, caption_text: str) -> str:
    """One table for a paper: mean$\\pm$std, the paper's number in parentheses, booktabs rules (\\toprule,
    \\midrule, \\bottomrule: \\usepackage{booktabs}). A column no run of ours fills is left out (the paper's
    numbers stay in its .md and .csv), and the paper's rows not run here are named in the caption."""
    def fmt(c: rep.Cell) -> str:
        if c.mean is None:
            return "-"
        s = f"{c.mean:.1f}" + (f"$\\pm${c.std:.1f}" if c.std is not None else "")
        return s + (f" ({c.paper:.1f})" if c.paper is not None else "")

    kept = [i for i in range(len(headers)) if any(r["cells"][i][1].mean is not None for r in rows)] or list(
        range(len(headers)))  # a table with nothing of ours (a synthetic suite) keeps its columns
    with_avg = any(r["average"] is not None for r in rows)
    df = pd.DataFrame([[r["method"], *[fmt(r["cells"][i][1]) for i in kept]]
                       + ([f"{r['average']:.1f}" if r["average"] is not None else "-"] if with_avg else [])
                       for r in rows if not r.get("why")],
                      columns=["Method", *[headers[i] for i in kept]] + (["Avg"] if with_avg else []))
    notes = " ".join(f"{n}." for n in not_run_notes(rows))
    styler = (df.style.hide(axis="index").format(escape="latex", subset=["Method"]).format_index(escape="latex", axis=1)
              .set_table_styles([{"selector": "small", "props": ":;"}]))  # \small, after \centering
    return styler.to_latex(environment="table*", position_float="centering", hrules=True,
                           column_format="l" + "c" * (len(df.columns) - 1),
                           caption=f"{title}. {caption_text} The paper's number is in parentheses."
                                   + (f" {notes}" if notes else ""))


def long_rows(name: str, rows: list[dict], reference: paper_tables.Reference) -> pd.DataFrame:
    """A table as data: one row per (row, column) with mean, std, n, the paper's value and the difference."""
    out = []
    for r in rows:
        for col, (_, c) in zip(reference.columns, r["cells"]):
            out.append({"table": name, "method": r["method"], "paper_row": r["paper_row"], "task": col.task,
                        "split": col.split, "metric": col.metric, "mean": c.mean, "std": c.std, "n": c.n,
                        "paper": c.paper, "diff": c.diff})
    return pd.DataFrame(out)


REPRESENTED = ("kdfd", "kdfd-ae")  # methods with a bottleneck: Figs. 3-4 compare their z_mu with the raw feature


def draw_figures(out: Path, collected: rep.Collected, selected: dict, sweeps: list[list[rep.Group]] = ()) -> list[str]:
    """Every figure the records allow; returns the report.md lines that embed them. Fig. 5 also draws on
    `sweeps`, the groups of each sweep suite (`rep.suite_sweeps`: a sweep's points come from its own suite)."""
    import numpy as np

    from . import figures

    fig_dir = out / "figures"
    md = ["", "## Figures", ""]
    for (task, method), g in sorted(selected.items()):
        run = min(g.runs, key=lambda r: r["seed"])
        record = store.read(run["path"])
        label = f"{task}, {g.label}, seed {run['seed']}"
        if method != "teacher" and record.get("curves"):
            stem = f"curves-{task}-{method}"
            figures.learning_curves(record, fig_dir, stem)
            md += [f"![learning curves, {label}](figures/{stem}.png)", ""]
        npz = store.artifacts_file(run["path"])
        if method in REPRESENTED and npz.is_file():
            with np.load(npz) as z:
                reps = {k: z[k] for k in z.files}
            stem = f"fig3-covariance-{task}-{method}"
            figures.covariance(reps, label, fig_dir, stem)
            md += [f"![Fig. 3, covariance, {label}](figures/{stem}.png)", ""]
            stem = f"fig4-tsne-{task}-{method}"
            figures.tsne(reps, label, fig_dir, stem, get_task(task).is_regression, get_task(task).names, source=npz)
            md += [f"![Fig. 4, t-SNE, {label}](figures/{stem}.png)", ""]
    by_method: dict[tuple, list] = {}
    for g in collected.groups:
        if g.method not in rep.NOT_METHODS:
            by_method.setdefault((g.task, g.method), []).append(g)
    for (task, method), gs in sorted(by_method.items()):
        if len(gs) < 2:
            continue
        records = [store.read(min(g.runs, key=lambda r: r["seed"])["path"]) for g in gs]
        records = [r for r in records if r and r.get("step_curves")]
        if len(records) > 1:
            stem = f"grid-curves-{task}-{method}"
            figures.grid_curves(records, task, method, fig_dir, stem)
            md += [f"![every configuration of {method} on {task}, against steps](figures/{stem}.png)", ""]
    majority = collected.majority_points()
    for task, method, param, points in rep.sweeps([collected.groups, *sweeps]):
        stem = f"fig5-{param}-{task}-{method}"
        figures.sweep(points, param, f"Fig. 5: {method} on {task} against {param}", fig_dir, stem,
                      majority.get(task))
        md += [f"![Fig. 5, {param}, {task} {method}](figures/{stem}.png)", ""]
    return md


def verdict_inputs(collected: rep.Collected, selected: dict, sweep_sets: list[list[rep.Group]]) -> tuple:
    """What the claims are tested on, as DataFrames of points: the selected runs (task, method, seed, score);
    every swept run (task, method, param, value, seed, score; per value the best group, the selection rule); and
    per selected KDFD-family run the mean |off-diagonal correlation| of h and of z_mu (task, method, seed,
    corr_h, corr_z) from its saved representations."""
    import numpy as np
    import pandas as pd

    from .stats import offdiag_abs_corr

    scores, decor = [], []
    for (task, method), g in sorted(selected.items()):
        if method in rep.NOT_METHODS:
            continue
        scores += [{"task": task, "method": method, "seed": seed, "score": points}
                   for seed, points in rep.seed_points(g).items()]
        for run in g.runs if method in REPRESENTED else []:
            npz = store.artifacts_file(run["path"])
            if npz.is_file():
                with np.load(npz) as z:
                    if "z_mu" in z.files:
                        decor.append({"task": task, "method": method, "seed": int(run["seed"]),
                                      "corr_h": offdiag_abs_corr(z["features"]), "corr_z": offdiag_abs_corr(z["z_mu"])})
    swept = []
    for task, method, param, best in rep.suite_sweeps([collected.groups, *sweep_sets]):
        for v, g in best.items():
            swept += [{"task": task, "method": method, "param": param, "value": v, "seed": seed, "score": points}
                      for seed, points in rep.seed_points(g).items()]
    columns = {"scores": ["task", "method", "seed", "score"],
               "sweeps": ["task", "method", "param", "value", "seed", "score"],
               "decor": ["task", "method", "seed", "corr_h", "corr_z"]}
    return (pd.DataFrame(scores, columns=columns["scores"]), pd.DataFrame(swept, columns=columns["sweeps"]),
            pd.DataFrame(decor, columns=columns["decor"]))


def seed_figures(out: Path, scores, majority: dict, interval: str = "t") -> list[str]:
    """One figure per task: each method's seeds as dots with the mean and its interval, in the paper's tables' order
    (then every other method)."""
    from . import figures

    md = []
    order = [m for m in paper_tables.load().method_order() if m not in rep.NOT_METHODS]
    order += sorted(set(scores["method"]) - set(order))
    for task in sorted(set(scores["task"])):
        stem = f"seeds-{task}"
        figures.seed_dots(scores[scores.task == task], task, order, out / "figures", stem, majority.get(task),
                          interval)
        md += [f"![{task}: every seed of every method](figures/{stem}.png)", ""]
    return md


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


def above_majority_markdown(df: pd.DataFrame) -> list[str]:
    if df.empty:
        return ["No task of this report has a majority-class score."]
    cells = df.assign(cell=[f"{r.margin:+.1f}" + (f" ± {r.std:.1f}" if r.n > 1 else "") + f" (n={r.n}): {r.learned}"
                            for r in df.itertuples()])
    table = cells.pivot(index="method", columns="task", values="cell").fillna("-").reset_index()
    bad = df[df.learned.isin(["no", "within spread"])]
    summary = ("Every student stands above its task's majority class by more than its seed spread."
               if bad.empty and (df.learned == "yes").all() else
               f"{len(bad)} of {len(df)} cells are at the majority class or within their seed spread of it"
               + (f"; {int((df.learned == '1 seed').sum())} have one seed, no spread to judge by" if
                  (df.learned == "1 seed").any() else "") + ".")
    return ["Mean score minus the majority class's (points) ± the seeds' std; `yes` where the margin is above the "
            "std, `within spread` where it is not, `no` at or below the majority class. Data: "
            "[above_majority.csv](above_majority.csv).", "", markdown(table), "", summary, ""]


def method_rules(selected: dict, methods: dict | None = None) -> list[str]:
    """The report's rules per method: its version, how its losses are normalised (the method's own `scale`), and the
    parameters this run set unlike the method's defaults (a protocol's departures from a paper show here).
    `methods`: kdfd.distiller.method_facts() (a cached suite's, benchmarks.suite_cache); None: the registry's."""
    if methods is None:
        from kdfd.distiller import method_facts

        methods = method_facts()
    lines = ["Each method as run here (version; the normalisation of its losses, and whose choice it is; the "
             "parameters set here unlike the method's defaults):", ""]
    for method in sorted({m for _, m in selected if m in methods}):
        info = methods[method]
        defaults = info.get("defaults", {})
        changed = sorted({f"{k} = {v!r}" for (_, m), g in selected.items() if m == method
                          for k, v in g.params.items() if k in defaults and defaults[k] != v})
        set_here = f" Set here: {', '.join(changed)}." if changed else ""
        lines.append(f"- `{method}` v{info['version']}: {info['scale'] or 'see its module docstring'}.{set_here}")
    return lines


def write(out: Path, suite_name: str, collected: rep.Collected, checkpoint: str, paper_csv: Path = rep.PAPER_CSV,
          sweeps: dict[str, rep.Collected] | None = None, methods: dict | None = None, interval: str = "t") -> dict:
    """Write everything under `out`; returns the tables, comparisons and verdicts (for the terminal summary). `sweeps`
    (suite name -> its records) feed Fig. 5 only: the tables select among the suite's own configurations. `methods`:
    the methods' versions and loss scales (`method_rules`). `interval`: the verdicts' and comparisons' interval
    (`stats.INTERVALS`)."""
    out.mkdir(parents=True, exist_ok=True)
    # figures of cells the records no longer give (a task left out, a method removed) must not outlive them
    for stale in (out / "figures").glob("*.png"):
        for f in (stale, stale.with_suffix(".pdf")):
            f.unlink(missing_ok=True)
    selected = rep.select(collected.groups)
    paper = rep.paper_numbers(paper_csv)
    reference = paper_tables.load(paper_tables.TABLES_TOML, paper_csv)
    shown = collected.with_references(selected)
    tables = {name: rep.table(name, shown, paper, reference) for name in reference.tables}
    comps = rep.comparisons(selected, interval=interval)
    sweep_sets = [c.groups for c in (sweeps or {}).values()]
    sweep_groups = [g for groups in sweep_sets for g in groups]
    scores, swept, decor = verdict_inputs(collected, selected, sweep_sets)
    from . import verdicts

    judged = verdicts.evaluate(verdicts.load_claims(), scores, swept, decor, interval=interval)
    verdicts.write(out, judged)
    majority = collected.majority_points()
    md = [f"# Report: suite `{suite_name}`", "",
          f"Generated {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC by `bench report`; nothing was trained.", "",
          "## Verdicts: does each of the paper's claims hold here?", "",
          verdicts.summary(judged), "", verdict_rules(interval), "", verdicts.markdown(judged, VERDICT_LINKS), "",
          "The same rows, with every statistic: [verdicts.csv](verdicts.csv), [verdicts.json](verdicts.json). "
          "Claims: `benchmarks/reference/kdfd_claims.toml`.", "",
          "## Every seed", "", *seed_figures(out, scores, majority, interval),
          "## Rules", "", rep.__doc__.split("Rules, printed in every report:")[1].strip(), "",
          f"Checkpoint used here: **{checkpoint}**.", "", *method_rules(selected, methods), ""]
    headers, every = rep.all_results(shown, reference)
    ours = ours_caption(selected)
    md += ["## Every task and method (the selected configuration of each)", "", ours, "",
           markdown(frame(every, headers)), ""]
    learned = above_majority(scores, majority)
    learned.to_csv(out / "above_majority.csv", index=False)
    md += ["## Did every student learn? (its margin over the majority class)", "", *above_majority_markdown(learned)]
    for name, rows in tables.items():
        title = reference.tables[name].title
        table = frame(rows, reference.headers)
        notes = "".join(f"\n- {n}" for n in not_run_notes(rows))
        (out / f"{name}.md").write_text(markdown(table) + "\n" + notes + ("\n" if notes else ""))
        (out / f"{name}.tex").write_text(latex(rows, reference.headers, title, caption(ours, reference)))
        long_rows(name, rows, reference).to_csv(out / f"{name}.csv", index=False)
        if {c.task for c in reference.columns} & {task for task, _ in selected}:
            md += [f"## {title}", "", caption(ours, reference), "", markdown(table), "",
                   *[f"- {n}" for n in not_run_notes(rows)], ""]
        else:  # a synthetic suite: nothing of ours to set beside the paper's numbers
            md += [f"## {title}", "", f"No task of this report is a column of this table "
                   f"({', '.join(reference.headers)}): [{name}.md]({name}.md) holds the paper's numbers alone.", ""]
    md += ["## KDFD against each baseline", "",
           "Mean paired difference of dev score over the seeds both have (KDFD minus baseline, points), with the "
           "verdicts' 95% interval; * where it excludes zero (per comparison: no multiplicity correction here).", ""]
    comp_columns = ["task", "baseline", "n", "diff", "low", "high", "p_value", "significant"]
    md += [markdown(pd.DataFrame({
        "task": [c["task"] for c in comps], "baseline": [c["baseline"] for c in comps],
        "diff": [f"{c['diff']:+.1f}{' *' if c['significant'] else ''}" if c["n"] else "no common seed"
                 for c in comps],
        "95% interval": [f"[{c['low']:+.1f}, {c['high']:+.1f}]" if c["low"] is not None
                         else f"needs {stats.MIN_INTERVAL_SEEDS}+ common seeds" for c in comps],
        "n (pairs)": [c["n"] for c in comps]}))]
    pd.DataFrame(comps, columns=comp_columns).to_csv(out / "comparisons.csv", index=False)
    chosen = sorted(selected.items())
    md += ["", "## Selected configurations", "", markdown(pd.DataFrame({
        "task": [task for (task, _), _ in chosen], "method": [method for (_, method), _ in chosen],
        "version": [g.version for _, g in chosen], "config": [f"{g.label} ({g.key})" for _, g in chosen],
        "seeds": [", ".join(str(r["seed"]) for r in g.runs) for _, g in chosen],
        "mean score": [f"{100 * sum(g.scores) / len(g.scores):.1f}" for _, g in chosen]}))]
    sweeps = sweeps or {}
    md += draw_figures(out, collected, selected, sweep_sets)
    for name, c in sweeps.items():
        md.append(f"Fig. 5 also reads suite `{name}`: {sum(len(g.runs) for g in c.groups)} done records, "
                  f"{len(c.failed)} failed and {len(c.missing)} not run, left out.")
    runs = [r["path"] for g in collected.groups + sweep_groups for r in g.runs]
    left = list({m["id"]: (m["task"], m["label"]) for m in collected.missing
                 + [m for c in sweeps.values() for m in c.missing]}.values())  # a sweep shares jobs with its base
    spent = cost.frame(runs)
    md += ["", "## What it cost", "", *cost.markdown(spent), *cost.to_finish(spent, left)]
    md += ["", "## Left out", ""]
    if not collected.failed and not collected.missing:
        md.append("Nothing: every job of the suite has a done record.")
    for f in collected.failed:
        md.append(f"- failed: {f['task']} {f['label']} seed {f['seed']}: {f['error']}")
    for m in collected.missing:
        md.append(f"- not run: {m['task']} {m['label']} seed {m['seed']}")
    (out / "report.md").write_text("\n".join(md) + "\n")
    return {"tables": tables, "comparisons": comps, "selected": selected, "verdicts": judged}
