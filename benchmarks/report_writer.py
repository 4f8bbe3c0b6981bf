"""Writes a report folder: report.md (every table, the rules, the excluded jobs), each table as .md, .tex and .csv,
and the KDFD-against-baselines comparison."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

from kdfd.tasks import get_task

from . import cost
from . import report as rep
from . import runner

CAPTION = ("Ours: GLUE dev sets, mean ± sample std over seeds (n seeds). Paper: the KDFD paper's numbers, from the "
           "GLUE test server, so the differences mix model and split.")
TITLES = {"table1": "Table 1: KDFD and the baselines", "table2": "Table 2: AE against VAE bottleneck",
          "table3": "Table 3: vanilla KD against KDFD"}


VERDICT_RULES = (
    "Each claim is tested on the selected runs, paired by seed (same seed: same teacher and data order): the mean "
    "difference of the task's score (points), its 95% percentile bootstrap interval over seeds, and an exact "
    "sign-flip permutation p-value; over tasks, the mean of the per-task differences with a stratified bootstrap "
    "(seeds resampled within each task). **holds**: the interval lies above zero; **contradicted**: below zero; "
    "**inconclusive**: it covers zero (with the seeds that would resolve the observed difference at 80% power). "
    "Several claims are tested at once: the p-values are Holm-corrected across every row. The paper's number is "
    "its own difference on the same tasks (GLUE test server, BERT-base teacher), for orientation only.")


# where each kind of claim's evidence sits in report.md (Markdown heading anchors) or beside it
VERDICT_LINKS = {"paired": "table1.md", "sweep_peak": "#figures", "decorrelation": "#figures",
                 "vae-vs-ae": "table2.md", "kdfd-vs-vanilla-kd": "table3.md", "kdfd-vs-vanilla-kd-small": "table3.md"}


def _headers() -> list[str]:
    return [h for *_, h in rep.TABLE1_COLUMNS]


def markdown_table(rows: list[dict], headers: list[str] | None = None) -> str:
    head = ["method", "paper row", *(headers or _headers()), "avg"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        avg = f"{r['average']:.1f}" if r["average"] is not None else "-"
        lines.append("| " + " | ".join([r["method"], r["paper_row"], *[c.text() for _, c in r["cells"]], avg]) + " |")
    return "\n".join(lines)


def latex_table(name: str, rows: list[dict]) -> str:
    def fmt(c: rep.Cell) -> str:
        if c.mean is None:
            return "-"
        s = f"{c.mean:.1f}" + (f"$\\pm${c.std:.1f}" if c.std is not None else "")
        return s + (f" ({c.paper:.1f})" if c.paper is not None else "")

    head = " & ".join(["Method", *[h.replace("_", "\\_") for h in _headers()], "Avg"])
    body = "\n".join(" & ".join([r["method"], *[fmt(c) for _, c in r["cells"]],
                                 f"{r['average']:.1f}" if r["average"] is not None else "-"]) + " \\\\"
                     for r in rows)
    return ("\\begin{table*}\n\\centering\\small\n\\begin{tabular}{l" + "c" * (len(_headers()) + 1) + "}\n\\toprule\n"
            f"{head} \\\\\n\\midrule\n{body}\n\\bottomrule\n\\end{{tabular}}\n"
            f"\\caption{{{TITLES[name]}. {CAPTION} The paper's number is in parentheses.}}\n\\end{{table*}}\n")


def csv_rows(name: str, rows: list[dict]) -> list[dict]:
    out = []
    for r in rows:
        for (task, split, metric, header), (_, c) in zip(rep.TABLE1_COLUMNS, r["cells"]):
            out.append({"table": name, "method": r["method"], "paper_row": r["paper_row"], "task": task,
                        "split": split, "metric": metric, "mean": c.mean, "std": c.std, "n": c.n, "paper": c.paper,
                        "diff": c.diff})
    return out


def write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["empty"])
        w.writeheader()
        w.writerows(rows)


REPRESENTED = ("kdfd", "kdfd-ae")  # methods with a bottleneck: Figs. 3-4 compare their z_mu with the raw feature


def draw_figures(out: Path, collected: rep.Collected, selected: dict, sweeps: list[rep.Group] = ()) -> list[str]:
    """Every figure the records allow; returns the report.md lines that embed them. Fig. 5 also draws on
    `sweeps`, the groups of sweep suites (a group both hold, by config, counts once)."""
    import numpy as np

    from . import figures

    fig_dir = out / "figures"
    md = ["", "## Figures", ""]
    for (task, method), g in sorted(selected.items()):
        run = min(g.runs, key=lambda r: r["seed"])
        record = runner.read_record(run["path"])
        label = f"{task}, {g.label}, seed {run['seed']}"
        if method != "teacher" and record.get("curves"):
            stem = f"curves-{task}-{method}"
            figures.learning_curves(record, fig_dir, stem)
            md += [f"![learning curves, {label}](figures/{stem}.png)", ""]
        npz = Path(run["path"]).with_suffix(".npz")
        if method in REPRESENTED and npz.is_file():
            with np.load(npz) as z:
                reps = {k: z[k] for k in z.files}
            stem = f"fig3-covariance-{task}-{method}"
            figures.covariance(reps, label, fig_dir, stem)
            md += [f"![Fig. 3, covariance, {label}](figures/{stem}.png)", ""]
            stem = f"fig4-tsne-{task}-{method}"
            figures.tsne(reps, label, fig_dir, stem, get_task(task).is_regression)
            md += [f"![Fig. 4, t-SNE, {label}](figures/{stem}.png)", ""]
    by_method: dict[tuple, list] = {}
    for g in collected.groups:
        if g.method not in rep.NOT_METHODS:
            by_method.setdefault((g.task, g.method), []).append(g)
    for (task, method), gs in sorted(by_method.items()):
        if len(gs) < 2:
            continue
        records = [runner.read_record(min(g.runs, key=lambda r: r["seed"])["path"]) for g in gs]
        records = [r for r in records if r and r.get("step_curves")]
        if len(records) > 1:
            stem = f"grid-curves-{task}-{method}"
            figures.grid_curves(records, task, method, fig_dir, stem)
            md += [f"![every configuration of {method} on {task}, against steps](figures/{stem}.png)", ""]
    groups = {(g.task, g.method, g.key): g for g in [*collected.groups, *sweeps]}
    for task, method, param, points in rep.sweeps(list(groups.values())):
        stem = f"fig5-{param}-{task}-{method}"
        figures.sweep(points, param, f"Fig. 5: {method} on {task} against {param}", fig_dir, stem)
        md += [f"![Fig. 5, {param}, {task} {method}](figures/{stem}.png)", ""]
    return md


def verdict_inputs(collected: rep.Collected, selected: dict, sweep_groups: list) -> tuple:
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
        for run, value in zip(g.runs, g.scores):
            scores.append({"task": task, "method": method, "seed": run["seed"], "score": 100 * value})
            npz = Path(run["path"]).with_suffix(".npz")
            if method in REPRESENTED and npz.is_file():
                with np.load(npz) as z:
                    if "z_mu" in z.files:
                        decor.append({"task": task, "method": method, "seed": run["seed"],
                                      "corr_h": offdiag_abs_corr(z["features"]), "corr_z": offdiag_abs_corr(z["z_mu"])})
    swept = []
    groups = list({(g.task, g.method, g.key): g for g in [*collected.groups, *sweep_groups]}.values())
    for task, method, param, best in rep.sweep_groups(groups):
        for v, g in best.items():
            swept += [{"task": task, "method": method, "param": param, "value": v, "seed": r["seed"],
                       "score": 100 * score} for r, score in zip(g.runs, g.scores)]
    columns = {"scores": ["task", "method", "seed", "score"],
               "sweeps": ["task", "method", "param", "value", "seed", "score"],
               "decor": ["task", "method", "seed", "corr_h", "corr_z"]}
    return (pd.DataFrame(scores, columns=columns["scores"]), pd.DataFrame(swept, columns=columns["sweeps"]),
            pd.DataFrame(decor, columns=columns["decor"]))


def seed_figures(out: Path, scores, majority: dict) -> list[str]:
    """One figure per task: each method's seeds as dots with the mean and its interval, in Table 1's order."""
    from . import figures

    md = []
    order = [m for m in rep.TABLE_METHODS["table1"] if m not in rep.NOT_METHODS]
    order += sorted(set(scores["method"]) - set(order))
    for task in sorted(set(scores["task"])):
        stem = f"seeds-{task}"
        figures.seed_dots(scores[scores.task == task], task, order, out / "figures", stem, majority.get(task))
        md += [f"![{task}: every seed of every method](figures/{stem}.png)", ""]
    return md


def method_rules(selected: dict) -> list[str]:
    """The report's rules per method: its version and how its losses are normalised (the method's own `scale`)."""
    from kdfd.distiller import METHODS

    lines = ["Each method as run here (version; the normalisation of its losses, and whose choice it is):", ""]
    for method in sorted({m for _, m in selected if m in METHODS}):
        cls = METHODS[method]
        lines.append(f"- `{method}` v{cls.version}: {cls.scale or 'see its module docstring'}.")
    return lines


def write(out: Path, suite_name: str, collected: rep.Collected, checkpoint: str, paper_csv: Path = rep.PAPER_CSV,
          sweeps: dict[str, rep.Collected] | None = None) -> dict:
    """Write everything under `out`; returns the tables and comparisons (for the terminal summary). `sweeps`
    (suite name -> its records) feed Fig. 5 only: the tables select among the suite's own configurations."""
    out.mkdir(parents=True, exist_ok=True)
    selected = rep.select(collected.groups)
    paper = rep.paper_numbers(paper_csv)
    shown = collected.with_references(selected)
    tables = {name: rep.table(name, shown, paper) for name in rep.TABLE_METHODS}
    comps = rep.comparisons(selected)
    sweep_groups = [g for c in (sweeps or {}).values() for g in c.groups]
    scores, swept, decor = verdict_inputs(collected, selected, sweep_groups)
    from . import verdicts

    judged = verdicts.evaluate(verdicts.load_claims(), scores, swept, decor)
    verdicts.write(out, judged)
    majority = {task: 100 * g.scores[0] for (task, _), g in collected.majority.items()}
    md = [f"# Report: suite `{suite_name}`", "",
          f"Generated {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC by `bench report`; nothing was trained.", "",
          "## Verdicts: does each of the paper's claims hold here?", "",
          VERDICT_RULES, "", verdicts.markdown(judged, VERDICT_LINKS), "",
          "The same rows, with every statistic: [verdicts.csv](verdicts.csv), [verdicts.json](verdicts.json). "
          "Claims: `benchmarks/reference/kdfd_claims.toml`.", "",
          "## Every seed", "", *seed_figures(out, scores, majority),
          "## Rules", "", rep.__doc__.split("Rules, printed in every report:")[1].strip(), "",
          f"Checkpoint used here: **{checkpoint}**.", "", *method_rules(selected), ""]
    headers, every = rep.all_results(shown)
    md += ["## Every task and method (the selected configuration of each)", "", CAPTION.split(" Paper:")[0], "",
           markdown_table(every, headers), ""]
    for name, rows in tables.items():
        (out / f"{name}.md").write_text(markdown_table(rows) + "\n")
        (out / f"{name}.tex").write_text(latex_table(name, rows))
        write_csv(out / f"{name}.csv", csv_rows(name, rows))
        md += [f"## {TITLES[name]}", "", CAPTION, "", markdown_table(rows), ""]
    md += ["## KDFD against each baseline", "",
           "Difference of mean dev score (KDFD minus baseline, points), 95% bootstrap interval over seeds; "
           "* where it excludes zero.", "", "| task | baseline | diff | 95% interval | n (kdfd, baseline) |",
           "|---|---|---|---|---|"]
    for c in comps:
        ci = f"[{c['low']:+.1f}, {c['high']:+.1f}]" if c["low"] is not None else "needs 2+ seeds each"
        md.append(f"| {c['task']} | {c['baseline']} | {c['diff']:+.1f}{' *' if c['significant'] else ''} | {ci} | "
                  f"{c['n'][0]}, {c['n'][1]} |")
    write_csv(out / "comparisons.csv", comps)
    md += ["", "## Selected configurations", "", "| task | method | version | config | seeds | mean score |",
           "|---|---|---|---|---|---|"]
    for (task, method), g in sorted(selected.items()):
        md.append(f"| {task} | {method} | {g.version} | {g.label} ({g.key}) | "
                  f"{', '.join(str(r['seed']) for r in g.runs)} | {100 * sum(g.scores) / len(g.scores):.1f} |")
    sweeps = sweeps or {}
    md += draw_figures(out, collected, selected, sweep_groups)
    for name, c in sweeps.items():
        md.append(f"Fig. 5 also reads suite `{name}`: {sum(len(g.runs) for g in c.groups)} done records, "
                  f"{len(c.failed)} failed and {len(c.missing)} not run, left out.")
    runs = [r["path"] for g in collected.groups + sweep_groups for r in g.runs]
    md += ["", "## What it cost", "", *cost.markdown(cost.frame(runs))]
    md += ["", "## Left out", ""]
    if not collected.failed and not collected.missing:
        md.append("Nothing: every job of the suite has a done record.")
    for f in collected.failed:
        md.append(f"- failed: {f['task']} {f['label']} seed {f['seed']}: {f['error']}")
    for m in collected.missing:
        md.append(f"- not run: {m['task']} {m['label']} seed {m['seed']}")
    (out / "report.md").write_text("\n".join(md) + "\n")
    return {"tables": tables, "comparisons": comps, "selected": selected}
