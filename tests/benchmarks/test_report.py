"""`bench report` on hand-written records with known values: cells, selection, paper differences, bootstrap,
failed records, method versions."""

from dataclasses import dataclass

import numpy as np
import pytest

from benchmarks import paper, report, report_analysis, report_writer, stats, store, verdicts
from benchmarks import suite as suites
from benchmarks.record_set import RecordSet
from benchmarks.store import Record
from kdfd import losses
from kdfd.distiller import Distiller, Needs
from kdfd.registry import METHODS, register
from kdfd.result import JobResult

from .helpers import records

SUITE = """
tasks = ["mrpc"]
seeds = [1, 2, 3]
methods = ["kdfd", "vanilla-kd"]
data_source = "tsv"
[teacher]
name = "tiny"
[student]
name = "tiny"
layers = 1
[method.vanilla-kd]
temperature = [1.0, 2.0]
"""

# hand-written dev metrics: (method, temperature or None, seed) -> (f1, accuracy)
VALUES = {
    ("kdfd", None, 1): (0.80, 0.70), ("kdfd", None, 2): (0.82, 0.72), ("kdfd", None, 3): (0.84, 0.74),
    ("vanilla-kd", 1.0, 1): (0.70, 0.60), ("vanilla-kd", 1.0, 2): (0.72, 0.62), ("vanilla-kd", 1.0, 3): (0.74, 0.64),
    ("vanilla-kd", 2.0, 1): (0.76, 0.66), ("vanilla-kd", 2.0, 2): (0.78, 0.68), ("vanilla-kd", 2.0, 3): (0.77, 0.67),
}

SWEPT = tuple(paper.load("kdfd").swept)


def md_rows(text: str) -> dict[str, list[str]]:
    """A Markdown table's body rows: first cell -> the other cells, stripped of tabulate's padding."""
    lines = [line for line in text.splitlines() if line.startswith("|")][2:]  # after the header and the rule
    cells = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines]
    return {c[0]: c[1:] for c in cells}


def cells(df) -> dict[str, dict[str, dict]]:
    """A table's frame (`report.table`) as method -> header -> its cell (mean, std, n, paper, diff; None where
    missing)."""
    return {r["method"]: dict(zip(df["header"].unique(), r["cells"]))
            for r in report_writer.rows_of(df, list(df["header"].unique()))}


def write_report(out, suite, root, checkpoint="last"):
    """`bench report`'s analysis and files for `suite`'s records under `root`."""
    records = RecordSet([root])
    analysis = report_analysis.analyse(suite.name, report.collect(suite, records, checkpoint), records, checkpoint)
    report_writer.write(out, analysis)


def _write(results, job, status="done", metrics=None, version=None, curves=None):
    # a method version lives in the job's config (as a real record's, whose id then differs with it)
    config = {**job.config.to_dict(), "method_version": version or job.config.method_version}
    done = status == "done"
    result = JobResult(metrics=metrics, curves=curves or []) if done else None
    store.write(store.record_path(results, job), Record(id=job.id, config=config, status=status, result=result,
                                                        error=None if done else {"message": "NaN loss"}))


@pytest.fixture
def fixture(tmp_path):
    path = tmp_path / "fixture.toml"
    path.write_text(SUITE)
    suite = suites.load(str(path))
    for job in suite.jobs:
        c = job.config
        if c.role == "teacher":
            _write(tmp_path, job, metrics={"dev": {"f1": 0.9, "accuracy": 0.85}})
            continue
        f1, acc = VALUES[(c.method, c.params.get("temperature") if c.method == "vanilla-kd" else None, c.seed)]
        _write(tmp_path, job, metrics={"dev": {"f1": f1, "accuracy": acc}})
    return suite, tmp_path


def test_cells_are_mean_and_sample_std_over_seeds_beside_the_paper(fixture):
    suite, root = fixture
    selected = report.select(report.collect(suite, RecordSet([root])).groups)
    table = report.table("table3", selected, report.paper_numbers())
    f1 = cells(table)["kdfd"]["MRPC F1"]
    assert (round(f1["mean"], 6), round(f1["std"], 6), f1["n"]) == (82.0, 2.0, 3)  # 80, 82, 84
    assert f1["paper"] == 89.7 and round(f1["diff"], 6) == -7.7  # the paper's Table 3 KDFD MRPC F1
    assert cells(table)["kdfd"]["RTE acc"]["mean"] is None and table[table.method == "kdfd"]["average"].isna().all()


def test_the_grid_point_with_the_best_mean_score_over_seeds_is_selected(fixture):
    suite, root = fixture
    selected = report.select(report.collect(suite, RecordSet([root])).groups)
    vkd = selected[("mrpc", "vanilla-kd")]
    assert vkd.label == "vanilla-kd[temperature=2.0]"  # mean (f1+acc)/2: T=2 0.72 > T=1 0.67
    assert sorted(r["seed"] for r in vkd.runs) == [1, 2, 3]
    acc = cells(report.table("table3", selected, report.paper_numbers()))["vanilla-kd"]["MRPC acc"]
    assert round(acc["mean"], 6) == 67.0 and round(acc["std"], 6) == 1.0


def test_a_grid_whose_seeds_are_not_all_in_is_compared_on_the_seeds_it_shares(fixture):
    suite, root = fixture
    for job in suite.jobs:  # T = 2 has run seed 1 only, at 0.66; T = 1 has all three: 0.65 at seed 1, mean 0.67
        if job.config.method == "vanilla-kd" and job.config.params.get("temperature") == 2.0:
            if job.config.seed == 1:
                _write(root, job, metrics={"dev": {"f1": 0.71, "accuracy": 0.61}})
            else:
                store.record_path(root, job).unlink()
    vkd = report.select(report.collect(suite, RecordSet([root])).groups)[("mrpc", "vanilla-kd")]
    # seed for seed, T = 2 is ahead (0.66 > 0.65); against T = 1's three-seed mean it would have lost (0.66 < 0.67)
    assert vkd.label == "vanilla-kd[temperature=2.0]" and [r["seed"] for r in vkd.runs] == [1]


def test_failed_records_are_left_out_and_listed(fixture, tmp_path):
    suite, root = fixture
    job = next(j for j in suite.jobs if j.config.method == "kdfd" and j.config.seed == 3)
    _write(root, job, status="failed", metrics=None)
    collected = report.collect(suite, RecordSet([root]))
    kdfd = report.select(collected.groups)[("mrpc", "kdfd")]
    assert sorted(r["seed"] for r in kdfd.runs) == [1, 2]
    assert collected.failed == [{"task": "mrpc", "label": "kdfd", "seed": 3, "id": job.id,
                                "error": "NaN loss"}]
    write_report(tmp_path / "out", suite, root)
    assert "- failed: mrpc kdfd seed 3: NaN loss" in (tmp_path / "out" / "report.md").read_text()


def test_two_method_versions_are_never_averaged_together(fixture):
    suite, root = fixture
    job = next(j for j in suite.jobs if j.config.method == "kdfd" and j.config.seed == 3)
    _write(root, job, metrics={"dev": {"f1": 0.99, "accuracy": 0.99}}, version="0")
    groups = [g for g in report.collect(suite, RecordSet([root])).groups if g.method == "kdfd"]
    assert sorted((g.version, len(g.runs)) for g in groups) == [("0", 1), ("1", 2)]


def test_best_epoch_checkpoint_takes_each_runs_best_dev_epoch(fixture):
    suite, root = fixture
    job = next(j for j in suite.jobs if j.config.method == "kdfd" and j.config.seed == 1)
    curves = [{"dev": {"student": {"dev": {"f1": f, "accuracy": f}}}} for f in (0.5, 0.9, 0.6)]
    _write(root, job, metrics={"dev": {"f1": 0.6, "accuracy": 0.6}}, curves=curves)
    best = report.select(report.collect(suite, RecordSet([root]), "best").groups)[("mrpc", "kdfd")]
    last = report.select(report.collect(suite, RecordSet([root]), "last").groups)[("mrpc", "kdfd")]
    assert [r for r in best.runs if r["seed"] == 1][0]["metrics"]["dev"]["f1"] == 0.9
    assert [r for r in last.runs if r["seed"] == 1][0]["metrics"]["dev"]["f1"] == 0.6


def test_comparisons_pair_kdfd_and_each_baseline_by_seed():
    """Seeds move both methods alike (a shared offset): the comparison uses the seeds both have, paired, and its
    interval is the paired t interval of the per-seed differences (points)."""
    def group(method, scores):
        g = report.Group("synth-single", method, "1", method, method)
        g.runs = [{"seed": s, "metrics": {"dev": {"accuracy": v}}} for s, v in scores.items()]
        return g

    offset = {1: 0.0, 2: 0.2, 3: -0.1, 4: 0.05}
    kdfd = group("kdfd", {s: 0.70 + o + 0.01 * s for s, o in offset.items()})
    base = group("vanilla-kd", {s: 0.68 + offset[s] for s in (1, 2, 3)})  # no seed 4: nothing to pair it with
    (c,) = report.comparisons({("synth-single", "kdfd"): kdfd, ("synth-single", "vanilla-kd"): base},
                              "kdfd").to_dict("records")
    d = np.array([2.0 + s for s in (1, 2, 3)])  # points: 2 + seed
    assert c["n"] == 3 and c["diff"] == pytest.approx(d.mean())
    assert (c["low"], c["high"]) == pytest.approx(stats.t_interval(d))
    assert c["significant"] and c["low"] > 0
    with pytest.raises(ValueError, match="'bootstrap' is not one of: t, percentile"):
        report.comparisons({("synth-single", "kdfd"): kdfd, ("synth-single", "vanilla-kd"): base}, "kdfd",
                           interval="bootstrap")


def test_bench_reports_interval_choices_are_the_statistics_own():
    """The CLI spells the choices out (it imports no scipy to parse arguments); they must stay stats.INTERVALS."""
    import argparse

    from benchmarks import cli

    sub = next(a for a in cli.parser()._actions if isinstance(a, argparse._SubParsersAction)).choices["report"]
    assert tuple(next(a.choices for a in sub._actions if a.dest == "interval")) == stats.INTERVALS


def test_the_embedded_paper_numbers_equal_the_shared_reference():
    from ..conftest import ROOT

    shared = ROOT.parent / "shared" / "reference" / "kdfd_paper_tables.csv"
    if not shared.is_file():
        pytest.skip(f"no shared reference at {shared}")
    assert paper.load("kdfd").numbers.read_bytes() == shared.read_bytes()


def test_sweeps_show_each_values_best_group_over_seeds():
    groups = []
    for dim, scores in [(64, [0.6, 0.7]), (128, [0.8, 0.9]), (128, [0.1, 0.2])]:
        g = report.Group("synth-single", "kdfd", "1", f"k{dim}-{scores[0]}", "kdfd", {"latent_dim": dim})
        g.runs = [{"seed": i, "metrics": {"dev": {"accuracy": s}}} for i, s in enumerate(scores)]
        groups.append(g)
    (task, method, param, points), = report.sweeps([groups], SWEPT)
    assert (task, method, param) == ("synth-single", "kdfd", "latent_dim")
    assert points == {64.0: [0.6, 0.7], 128.0: [0.8, 0.9]}


def test_a_sweeps_points_come_from_its_own_suite():
    """The lambda sweep runs latent_dim 64 at lambda 0.001: its better score must not stand for 64 in the dimension
    sweep, whose 64 is its own run (lambda 0.005)."""
    def group(key, params, scores):
        g = report.Group("synth-single", "kdfd", "1", key, "kdfd", params)
        g.runs = [{"seed": i, "metrics": {"dev": {"accuracy": s}}} for i, s in enumerate(scores)]
        return g

    dim = [group("d32", {"latent_dim": 32, "vae_lambda": 0.005}, [0.70]),
           group("d64", {"latent_dim": 64, "vae_lambda": 0.005}, [0.72])]
    lam = [group("d64", {"latent_dim": 64, "vae_lambda": 0.005}, [0.72]),
           group("l001", {"latent_dim": 64, "vae_lambda": 0.001}, [0.80])]
    got = {p: points for _, _, p, points in report.sweeps([[], dim, lam], SWEPT)}
    assert got["latent_dim"] == {32.0: [0.70], 64.0: [0.72]}
    assert got["vae_lambda"] == {0.005: [0.72], 0.001: [0.80]}
    # pooled into one set, as before, the lambda sweep's 0.80 stood for latent_dim 64
    assert report.sweeps([dim + lam[1:]], SWEPT)[0][3][64.0] == [0.80]


def test_report_after_a_real_run_writes_tables_and_figures(tmp_path):
    from .helpers import RESUMABLE_SUITE, bench

    suite = tmp_path / "tiny.toml"
    suite.write_text(RESUMABLE_SUITE)
    assert bench("run", "--suite", str(suite), "--results", str(tmp_path / "r"), "--no-progress").returncode == 0
    out = bench("report", "--suite", str(suite), "--results", str(tmp_path / "r"), "--out", str(tmp_path / "reports"))
    assert out.returncode == 0, out.stderr
    folder = tmp_path / "reports" / "tiny"  # the suite file's name
    for name in ["report.md", "table1.tex", "table1.csv", "table3.md", "comparisons.csv"]:
        assert (folder / name).is_file(), name
    figures = {p.name for p in (folder / "figures").iterdir()}
    for stem in ["curves-synth-single-kdfd", "fig3-covariance-synth-single-kdfd", "fig4-tsne-synth-single-kdfd"]:
        assert {f"{stem}.png", f"{stem}.pdf"} <= figures
    md = (folder / "report.md").read_text()
    assert "figures/fig4-tsne-synth-single-kdfd.png" in md and "## Left out" in md


def test_sweep_suites_add_fig5_and_leave_the_tables_to_the_suites_own_jobs(fixture, tmp_path):
    from benchmarks import cli

    suite, results = fixture
    sweep_file = tmp_path / "sweep.toml"
    sweep_file.write_text(SUITE.replace('methods = ["kdfd", "vanilla-kd"]', 'methods = ["kdfd"]')
                          + "[method.kdfd]\nlatent_dim = [16, 64]\n")
    sweep = suites.load(str(sweep_file))
    main_kdfd = {j.id for j in suite.jobs if j.config.method == "kdfd"}
    for job in sweep.jobs:
        if job.config.role != "teacher" and job.config.params["latent_dim"] == 16:  # better than every kdfd run
            _write(results, job, metrics={"dev": {"f1": 0.95, "accuracy": 0.9}})
    assert {j.id for j in sweep.jobs if j.config.params.get("latent_dim") == 64} == main_kdfd  # one config, shared
    assert cli.main(["report", "--suite", str(tmp_path / "fixture.toml"), "--results", str(results),
                     "--out", str(tmp_path / "reports"), "--sweeps", str(sweep_file)]) == 0
    md = (tmp_path / "reports" / "fixture" / "report.md").read_text()
    assert "figures/fig5-latent_dim-mrpc-kdfd.png" in md
    assert [line for line in md.splitlines() if "also reads" in line] == [
        "Fig. 5 also reads suite `sweep`: 9 done records, 0 failed and 0 not run, left out."]
    assert (tmp_path / "reports" / "fixture" / "figures" / "fig5-latent_dim-mrpc-kdfd.png").is_file()
    kdfd_row = md_rows((tmp_path / "reports" / "fixture" / "table1.md").read_text())["kdfd"]
    # MRPC F1: the suite's own kdfd (mean F1 82.0), not the sweep's best
    assert kdfd_row[3].startswith("82.0 ± 2.0 (n=3)")
    assert not any("95.0" in c for c in kdfd_row)


def test_report_opens_with_the_verdicts_and_writes_them_as_data(fixture, tmp_path):
    """KDFD's fixture runs beat vanilla KD's best temperature by 4 points on every seed, seed for seed: the
    Table 3 claim's row on MRPC says so, first in report.md and in verdicts.csv / .json."""
    import json

    import pandas as pd

    suite, root = fixture
    write_report(tmp_path / "out", suite, root)
    md = (tmp_path / "out" / "report.md").read_text()
    assert md.index("## Verdicts") < md.index("**In short:**") < md.index("| claim") < md.index("## Rules")
    assert md.index("## Rules") < md.index("## Every task and method")
    df = pd.read_csv(tmp_path / "out" / "verdicts.csv")
    row = df[(df.claim == "kdfd-vs-vanilla-kd") & (df.scope == "mrpc")].iloc[0]
    # kdfd - vanilla-kd[temperature=2.0], per seed: (75 - 71), (77 - 73), (79 - 72) points
    assert row["n"] == 3 and abs(row["mean_diff"] - 5.0) < 1e-9
    # family-wise: the row's p is adjusted with every family test that has data (Holm), its verdict follows
    fam = df[df.family & df.p_value.notna()]
    assert row["p_holm"] == pytest.approx(verdicts.holm(fam.p_value.tolist())[list(fam.index).index(row.name)])
    assert row["verdict"] == ("holds" if row["p_holm"] < 0.05 else "inconclusive") and row["paper_diff"] > 0
    assert len(json.loads((tmp_path / "out" / "verdicts.json").read_text())) == len(df)
    assert (tmp_path / "out" / "figures" / "seeds-mrpc.png").is_file()
    not_run = df[df.claim == "vae-equals-ae"].iloc[0]
    assert not_run["verdict"] == "not run" and not_run["n"] == 0


def test_theseus_and_pesf_kd_records_fill_their_table1_rows(tmp_path):
    path = tmp_path / "t1.toml"
    path.write_text(SUITE.replace('methods = ["kdfd", "vanilla-kd"]', 'methods = ["theseus", "pesf-kd"]')
                    .replace("layers = 1\n", "layers = 1\n[method.theseus.student]\nname = \"tiny\"\nlayers = 1\n"))
    suite = suites.load(str(path))
    f1 = {"theseus": 0.86, "pesf-kd": 0.84}
    for job in suite.jobs:
        if job.config.role != "teacher":
            _write(tmp_path, job, metrics={"dev": {"f1": f1[job.config.method] + 0.01 * job.config.seed,
                                                   "accuracy": 0.8}})
    table = report.table("table1", report.select(report.collect(suite, RecordSet([tmp_path])).groups),
                         report.paper_numbers())
    for method, paper_row, paper_f1 in (("theseus", "BERT-of-Theseus", 87.6), ("pesf-kd", "PESF-KD", 86.0)):
        cell = cells(table)[method]["MRPC F1"]
        assert set(table[table.method == method]["paper_row"]) == {paper_row}
        assert cell["n"] == 3 and cell["paper"] == paper_f1
        assert round(cell["mean"], 6) == round(100 * f1[method] + 2, 6)  # seeds 1-3 add 1, 2, 3 points


def test_the_feedback_methods_records_fill_their_table1_rows_and_icr_kd_says_why_it_is_not_run(tmp_path):
    path = tmp_path / "t1.toml"
    path.write_text(SUITE.replace('methods = ["kdfd", "vanilla-kd"]',
                                  'methods = ["metadistil", "reptile-distil", "lgtm"]'))
    suite = suites.load(str(path))
    f1 = {"metadistil": 0.85, "reptile-distil": 0.87, "lgtm": 0.83}
    for job in suite.jobs:
        if job.config.role != "teacher":
            _write(tmp_path, job, metrics={"dev": {"f1": f1[job.config.method] + 0.01 * job.config.seed,
                                                   "accuracy": 0.8}})
    table = report.table("table1", report.select(report.collect(suite, RecordSet([tmp_path])).groups),
                         report.paper_numbers())
    for method, paper_row, paper_f1 in (("metadistil", "MetaDistil", 88.7), ("reptile-distil", "ReptileDistil", 89.2),
                                        ("lgtm", "LGTM", 88.1)):
        cell = cells(table)[method]["MRPC F1"]
        assert set(table[table.method == method]["paper_row"]) == {paper_row}
        assert cell["n"] == 3 and cell["paper"] == paper_f1
        assert round(cell["mean"], 6) == round(100 * f1[method] + 2, 6)  # seeds 1-3 add 1, 2, 3 points
    icr = table[table.paper_row == "ICR-KD"]
    (method,), (why,) = set(icr["method"]), set(icr["why"])
    # named by the paper's method; the reason beside it, never as a method name (a 110-character column)
    assert method == "ICR-KD (not run)" and why.startswith("not run: ") and "\n" not in why
    cell = cells(table)[method]["MRPC F1"]
    assert cell["mean"] is None and cell["paper"] == 89.4
    headers = report.paper_tables.load().headers
    row = md_rows(report_writer.markdown(report_writer.frame(table, headers)))[method]
    assert row[0] == "ICR-KD" and row[1 + headers.index("MRPC F1")] == "- · paper 89.4"


def test_the_tables_come_from_the_reference_file(fixture, tmp_path):
    """A tables file of one table and one column: the rows it names, in its order, filled by those methods, beside
    the paper row it maps (a method it does not name stays out of the table)."""
    from benchmarks import paper_tables

    suite, root = fixture
    path = tmp_path / "tables.toml"
    path.write_text('paper = "the paper"\n[[column]]\ntask = "mrpc"\nsplit = "dev"\nmetric = "f1"\nheader = "F1"\n'
                    '[[table]]\nname = "mine"\ntitle = "Mine"\n'
                    'rows = [{method = "kdfd", paper = "AE"}, {method = "teacher"}]\n')
    paper_csv = tmp_path / "paper.csv"
    paper_csv.write_text("table,method,task,metric,value\nmine,AE,mrpc,f1,88.3\n")
    reference = paper_tables.load(path, paper_csv)
    selected = report.select(report.collect(suite, RecordSet([root])).groups)
    table = report.table("mine", selected, paper_tables.paper_numbers(paper_csv), reference)
    assert list(zip(table["method"], table["paper_row"])) == [("kdfd", "AE"), ("teacher", "-")]  # no vanilla-kd row
    assert list(table["header"]) == ["F1", "F1"]
    kdfd = cells(table)["kdfd"]["F1"]
    assert (kdfd["mean"], kdfd["paper"], kdfd["n"]) == (pytest.approx(82.0), 88.3, 3)
    assert cells(table)["teacher"]["F1"]["mean"] == pytest.approx(90.0)


@dataclass(frozen=True)
class HalfCEParams:
    weight: float = 0.5


class HalfCE(Distiller):
    """A method no suite, reference table or report code has heard of: CE scaled by a weight."""

    name = "throwaway-half-ce"
    description = "CE times a weight (a test's throwaway method)"
    Params = HalfCEParams

    @classmethod
    def needs(cls, params) -> Needs:
        return Needs()

    def student_loss(self, batch, s, t):
        ce = losses.task_loss(s.logits, batch["labels"], self.task.is_regression)
        return {"total": self.params.weight * ce, "ce": ce}


@pytest.fixture
def half_ce():
    register(HalfCE)
    try:
        yield HalfCE
    finally:
        METHODS.pop(HalfCE.name, None)


def test_a_method_added_after_the_suite_was_written_appears_in_its_report(half_ce, tmp_path, capsys):
    """Run on smoke by name only (`--methods`), reported without it: its records are the suite's jobs had the suite
    named it, so it reaches the every-task table, in report.md and in the terminal; no reference row maps it, so
    Tables 1-3 leave it out; and the synthetic suite's captions name its own tasks and tiny models, not GLUE or
    BERT-base."""
    from benchmarks import cli

    results, out = tmp_path / "results", tmp_path / "reports"
    assert cli.main(["run", "--suite", "smoke", "--tasks", "synth-single", "--methods", half_ce.name,
                     "--results", str(results), "--no-progress"]) == 0
    capsys.readouterr()
    assert cli.main(["report", "--suite", "smoke", "--tasks", "synth-single", "--results", str(results),
                     "--out", str(out)]) == 0
    terminal = capsys.readouterr().out
    (record,) = [r for r in records(results) if r.method == half_ce.name]
    md = (out / "smoke" / "report.md").read_text()
    every = md.split("## Every task and method", 1)[1].split("\n## ", 1)[0]
    # paper row, synth-single accuracy, avg
    cells = ["-", f"{100 * record.result.metrics['dev']['accuracy']:.1f} (n=1)", "-"]
    assert md_rows(every)[half_ce.name] == cells
    assert md_rows(terminal.split("Every task and method", 1)[1])[half_ce.name] == cells  # as report.md has it
    assert "- not run: synth-single kdfd seed 1" in md  # the suite's own methods, never run here, are listed
    assert half_ce.name not in (out / "smoke" / "table1.md").read_text()
    ours = next(line for line in every.splitlines() if line.startswith("Ours:"))
    assert "synthetic tasks synth-single" in ours and "tiny random BERT (2 layers, hidden 32)" in ours
    assert "GLUE" not in ours and "BERT-base" not in ours
    assert "No task of this report is a column of this table" in md.split("## Table 1", 1)[1].split("\n## ", 1)[0]


def test_widen_adds_recorded_methods_run_with_the_suites_settings_only(fixture, tmp_path):
    """finetune, run as `--methods finetune` on the fixture suite, joins its report; prokt, run on another student,
    does not: same task and root, other settings."""
    suite, root = fixture
    for job in suites.load(str(tmp_path / "fixture.toml"), methods=["finetune"], seeds=[1]).jobs:
        _write(root, job, metrics={"dev": {"f1": 0.7, "accuracy": 0.6}})
    other = tmp_path / "other.toml"
    other.write_text(SUITE.replace("layers = 1", "layers = 2"))
    for job in suites.load(str(other), methods=["prokt"], seeds=[1]).jobs:
        _write(root, job, metrics={"dev": {"f1": 0.7, "accuracy": 0.6}})
    wide = report.widen(suite, RecordSet([root]))
    methods = {j.config.method for j in wide.jobs if j.config.role != "teacher"}
    assert methods == {"kdfd", "vanilla-kd", "finetune"}
    collected = report.collect(wide, RecordSet([root]))
    assert [len(g.runs) for g in collected.groups if g.method == "finetune"] == [1]
    assert {(m["label"], m["seed"]) for m in collected.missing} == {("finetune", 2), ("finetune", 3)}


def test_the_rules_name_the_parameters_a_run_set_unlike_the_methods_defaults():
    facts = {"kdfd": {"version": "1", "scale": "CE", "defaults": {"vae_grad": "flow", "latent_dim": 64,
                                                                  "schedule": ["pid"]}}}
    group = report.Group("cola", "kdfd", "1", "k", "kdfd", params={"vae_grad": "stop", "latent_dim": 64,
                                                                       "schedule": ["pid"]})
    (line,) = report_writer.method_rules(report_analysis.method_settings({("cola", "kdfd"): group}, facts))[2:]
    assert line == "- `kdfd` v1: CE. Set here: vae_grad = 'stop'."
    group.params["vae_grad"] = "flow"
    settings = report_analysis.method_settings({("cola", "kdfd"): group}, facts)
    assert report_writer.method_rules(settings)[2:] == ["- `kdfd` v1: CE."]


def test_method_facts_defaults_read_like_a_records_params():
    from kdfd.registry import load_methods, method_facts

    load_methods()
    facts = method_facts()
    assert facts["kdfd"]["defaults"]["vae_grad"] == "flow"
    assert all(not isinstance(v, tuple) for f in facts.values() for v in f["defaults"].values())


def test_a_figure_of_a_cell_no_record_gives_any_more_is_removed_and_pdfs_carry_no_date(fixture, tmp_path):
    """A task left out of a suite must not leave its figures beside the new report; a regenerated PDF is the same
    bytes (no creation date), so a report regenerated from the same records changes nothing in git."""
    suite, root = fixture
    figures = tmp_path / "out" / "figures"
    figures.mkdir(parents=True)
    for suffix in (".png", ".pdf"):
        (figures / f"seeds-rte{suffix}").write_bytes(b"a task no longer in the suite")
    write_report(tmp_path / "out", suite, root)
    assert not list(figures.glob("seeds-rte.*")) and (figures / "seeds-mrpc.png").is_file()
    first = (figures / "seeds-mrpc.pdf").read_bytes()
    write_report(tmp_path / "out", suite, root)
    assert (figures / "seeds-mrpc.pdf").read_bytes() == first


def test_above_majority_says_which_students_learned_by_more_than_their_seed_spread():
    import pandas as pd

    scores = pd.DataFrame([("a", "mrpc", 1, 78.0), ("a", "mrpc", 2, 80.0), ("a", "mrpc", 3, 79.0),   # +4 +- 1
                           ("b", "mrpc", 1, 74.0), ("b", "mrpc", 2, 78.0), ("b", "mrpc", 3, 76.0),   # +1 +- 2
                           ("c", "mrpc", 1, 75.0), ("c", "cola", 1, 0.0), ("d", "rte", 1, 60.0)],
                          columns=["method", "task", "seed", "score"])
    df = report_analysis.above_majority(scores, {"mrpc": 75.0, "cola": 0.0})
    got = {(r.method, r.task): (round(r.margin, 9), r.learned) for r in df.itertuples()}
    assert got == {("a", "mrpc"): (4.0, "yes"), ("b", "mrpc"): (1.0, "within spread"), ("c", "mrpc"): (0.0, "no"),
                   ("c", "cola"): (0.0, "no")}  # no majority score for rte: left out
    lines = report_writer.above_majority_markdown(df)
    assert "3 of 4 cells are at the majority class or within their seed spread of it." in lines


def test_a_report_replaces_the_old_one_only_once_it_is_complete(tmp_path):
    staged = report_writer.staged
    out = tmp_path / "reports" / "smoke"
    (out / "figures").mkdir(parents=True)
    (out / "figures" / "old.png").write_bytes(b"old figure")
    (out / "report.md").write_text("old report")
    (out / "results").mkdir()  # what the report does not write (committed records) stays
    (out / "results" / "r.json").write_text("{}")

    with pytest.raises(RuntimeError, match="a figure failed"), staged(out) as staging:
        (staging / "report.md").write_text("half a report")
        raise RuntimeError("a figure failed")
    assert (out / "report.md").read_text() == "old report" and (out / "figures" / "old.png").is_file()
    assert sorted(p.name for p in out.parent.iterdir()) == ["smoke"]  # no staging folder left

    with staged(out) as staging:
        (staging / "figures").mkdir()
        (staging / "figures" / "new.png").write_bytes(b"new figure")
        (staging / "report.md").write_text("new report")
        assert (out / "report.md").read_text() == "old report"  # untouched until the new one is complete
    assert (out / "report.md").read_text() == "new report"
    assert [p.name for p in (out / "figures").iterdir()] == ["new.png"]  # no stale figure outlives its cell
    assert (out / "results" / "r.json").is_file() and sorted(p.name for p in out.parent.iterdir()) == ["smoke"]

    with staged(out) as staging:  # a report with no figure to show: the old figures go too
        (staging / "report.md").write_text("a report without figures")
    assert not (out / "figures").exists() and (out / "results" / "r.json").is_file()
