"""`bench report` on hand-written records with known values: cells, selection, paper differences, bootstrap,
failed records, method versions."""

import numpy as np
import pytest

from benchmarks import report, report_writer, runner
from benchmarks import suite as suites

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


def _write(results, job, status="done", metrics=None, version=None, curves=None):
    rec = {"id": job.id, "config_hash": job.id, "status": status, "task": job.config.task, "method": job.config.method,
           "method_version": version or job.config.method_version, "config": job.config.to_dict(),
           "metrics": metrics, "curves": curves or [], "error": None if status == "done" else {"message": "NaN loss"}}
    runner.write_json(runner.record_path(results, job), rec)


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
    selected = report.select(report.collect(suite, [root]).groups)
    rows = {r["method"]: r for r in report.table("table3", selected, report.paper_numbers())}
    f1 = dict(rows["kdfd"]["cells"])["MRPC F1"]
    assert (round(f1.mean, 6), round(f1.std, 6), f1.n) == (82.0, 2.0, 3)  # 80, 82, 84
    assert f1.paper == 89.7 and round(f1.diff, 6) == -7.7  # the paper's Table 3 KDFD MRPC F1
    assert dict(rows["kdfd"]["cells"])["RTE acc"].mean is None and rows["kdfd"]["average"] is None


def test_the_grid_point_with_the_best_mean_score_over_seeds_is_selected(fixture):
    suite, root = fixture
    selected = report.select(report.collect(suite, [root]).groups)
    vkd = selected[("mrpc", "vanilla-kd")]
    assert vkd.label == "vanilla-kd[temperature=2.0]"  # mean (f1+acc)/2: T=2 0.72 > T=1 0.67
    assert sorted(r["seed"] for r in vkd.runs) == [1, 2, 3]
    rows = {r["method"]: r for r in report.table("table3", selected, report.paper_numbers())}
    acc = dict(rows["vanilla-kd"]["cells"])["MRPC acc"]
    assert round(acc.mean, 6) == 67.0 and round(acc.std, 6) == 1.0


def test_failed_records_are_left_out_and_listed(fixture, tmp_path):
    suite, root = fixture
    job = next(j for j in suite.jobs if j.config.method == "kdfd" and j.config.seed == 3)
    _write(root, job, status="failed", metrics=None)
    collected = report.collect(suite, [root])
    kdfd = report.select(collected.groups)[("mrpc", "kdfd")]
    assert sorted(r["seed"] for r in kdfd.runs) == [1, 2]
    assert collected.failed == [{"task": "mrpc", "label": "kdfd", "seed": 3, "error": "NaN loss"}]
    report_writer.write(tmp_path / "out", suite.name, collected, "last")
    assert "- failed: mrpc kdfd seed 3: NaN loss" in (tmp_path / "out" / "report.md").read_text()


def test_two_method_versions_are_never_averaged_together(fixture):
    suite, root = fixture
    job = next(j for j in suite.jobs if j.config.method == "kdfd" and j.config.seed == 3)
    _write(root, job, metrics={"dev": {"f1": 0.99, "accuracy": 0.99}}, version="0")
    groups = [g for g in report.collect(suite, [root]).groups if g.method == "kdfd"]
    assert sorted((g.version, len(g.runs)) for g in groups) == [("0", 1), ("1", 2)]


def test_best_epoch_checkpoint_takes_each_runs_best_dev_epoch(fixture):
    suite, root = fixture
    job = next(j for j in suite.jobs if j.config.method == "kdfd" and j.config.seed == 1)
    curves = [{"dev": {"student": {"dev": {"f1": f, "accuracy": f}}}} for f in (0.5, 0.9, 0.6)]
    _write(root, job, metrics={"dev": {"f1": 0.6, "accuracy": 0.6}}, curves=curves)
    best = report.select(report.collect(suite, [root], "best").groups)[("mrpc", "kdfd")]
    last = report.select(report.collect(suite, [root], "last").groups)[("mrpc", "kdfd")]
    assert [r for r in best.runs if r["seed"] == 1][0]["metrics"]["dev"]["f1"] == 0.9
    assert [r for r in last.runs if r["seed"] == 1][0]["metrics"]["dev"]["f1"] == 0.6


def test_bootstrap_interval_matches_an_independent_resampling():
    a, b = [0.80, 0.82, 0.84], [0.70, 0.75]
    d, low, high = report.bootstrap_diff(a, b, draws=2000, seed=7)
    rng = np.random.default_rng(7)
    ia = rng.integers(0, 3, (2000, 3))
    ib = rng.integers(0, 2, (2000, 2))
    diffs = [100 * (np.mean([a[i] for i in ra]) - np.mean([b[i] for i in rb])) for ra, rb in zip(ia, ib)]
    assert d == pytest.approx(100 * (0.82 - 0.725))
    assert (low, high) == pytest.approx(tuple(np.percentile(diffs, [2.5, 97.5])))
    same = report.bootstrap_diff([0.5, 0.5], [0.4, 0.4])
    assert same == pytest.approx((10.0, 10.0, 10.0))
    assert report.bootstrap_diff([0.5], [0.4, 0.3])[1:] == (None, None)  # one seed: no interval


def test_the_embedded_paper_numbers_equal_the_shared_reference():
    from ..conftest import ROOT

    shared = ROOT.parent / "shared" / "reference" / "kdfd_paper_tables.csv"
    if not shared.is_file():
        pytest.skip(f"no shared reference at {shared}")
    assert report.PAPER_CSV.read_bytes() == shared.read_bytes()


def test_sweeps_show_each_values_best_group_over_seeds():
    groups = []
    for dim, scores in [(64, [0.6, 0.7]), (128, [0.8, 0.9]), (128, [0.1, 0.2])]:
        g = report.Group("synth-single", "kdfd", "1", f"k{dim}-{scores[0]}", "kdfd", {"latent_dim": dim})
        g.runs = [{"seed": i, "metrics": {"dev": {"accuracy": s}}} for i, s in enumerate(scores)]
        groups.append(g)
    (task, method, param, points), = report.sweeps(groups)
    assert (task, method, param) == ("synth-single", "kdfd", "latent_dim")
    assert points == {64.0: [0.6, 0.7], 128.0: [0.8, 0.9]}


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
    kdfd_row = next(line for line in (tmp_path / "reports" / "fixture" / "table1.md").read_text().splitlines()
                    if line.startswith("| kdfd |"))
    assert "82.0" in kdfd_row and "95.0" not in kdfd_row  # the suite's own kdfd (mean F1 82.0), not the sweep's best


def test_report_opens_with_the_verdicts_and_writes_them_as_data(fixture, tmp_path):
    """KDFD's fixture runs beat vanilla KD's best temperature by 4 points on every seed, seed for seed: the
    Table 3 claim's row on MRPC says so, first in report.md and in verdicts.csv / .json."""
    import json

    import pandas as pd

    suite, root = fixture
    collected = report.collect(suite, [root])
    report_writer.write(tmp_path / "out", suite.name, collected, "last")
    md = (tmp_path / "out" / "report.md").read_text()
    assert md.index("## Verdicts") < md.index("## Rules") < md.index("## Every task and method")
    df = pd.read_csv(tmp_path / "out" / "verdicts.csv")
    row = df[(df.claim == "kdfd-vs-vanilla-kd") & (df.scope == "mrpc")].iloc[0]
    # kdfd - vanilla-kd[temperature=2.0], per seed: (75 - 71), (77 - 73), (79 - 72) points
    assert row["n"] == 3 and abs(row["mean_diff"] - 5.0) < 1e-9
    assert row["verdict"] == "holds" and row["ci_low"] > 0
    assert len(json.loads((tmp_path / "out" / "verdicts.json").read_text())) == len(df)
    assert (tmp_path / "out" / "figures" / "seeds-mrpc.png").is_file()
    not_run = df[df.claim == "vae-vs-ae"].iloc[0]
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
    rows = {r["method"]: r for r in report.table("table1", report.select(report.collect(suite, [tmp_path]).groups),
                                                 report.paper_numbers())}
    for method, paper_row, paper_f1 in (("theseus", "BERT-of-Theseus", 87.6), ("pesf-kd", "PESF-KD", 86.0)):
        cell = dict(rows[method]["cells"])["MRPC F1"]
        assert rows[method]["paper_row"] == paper_row and cell.n == 3 and cell.paper == paper_f1
        assert round(cell.mean, 6) == round(100 * f1[method] + 2, 6)  # seeds 1-3 add 1, 2, 3 points


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
    rows = report.table("table1", report.select(report.collect(suite, [tmp_path]).groups), report.paper_numbers())
    by_method = {r["method"]: r for r in rows}
    for method, paper_row, paper_f1 in (("metadistil", "MetaDistil", 88.7), ("reptile-distil", "ReptileDistil", 89.2),
                                        ("lgtm", "LGTM", 88.1)):
        cell = dict(by_method[method]["cells"])["MRPC F1"]
        assert by_method[method]["paper_row"] == paper_row and cell.n == 3 and cell.paper == paper_f1
        assert round(cell.mean, 6) == round(100 * f1[method] + 2, 6)  # seeds 1-3 add 1, 2, 3 points
    (icr,) = [r for r in rows if r["paper_row"] == "ICR-KD"]
    assert icr["method"].startswith("not run: ") and "\n" not in icr["method"]
    cell = dict(icr["cells"])["MRPC F1"]
    assert cell.mean is None and cell.paper == 89.4
    line = next(x for x in report_writer.markdown_table(rows).splitlines() if "| ICR-KD |" in x)
    assert line.startswith(f"| {icr['method']} | ICR-KD |") and "paper 89.4" in line
