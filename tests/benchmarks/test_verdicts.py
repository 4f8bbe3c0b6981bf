"""The family-wise verdicts on hand-made scores of known answer (no training, no torch)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmarks import paper_tables, stats, verdicts
from benchmarks.verdicts import Claim
from kdfd.errors import ConfigError

SEEDS = range(1, 6)


def planted(diff: float, noise: float = 1.0, offset: float = 2.0, rng=None, n: int = 5) -> tuple[dict, dict]:
    """(a, b) over n seeds with a - b = diff + noise; `offset` a per-seed shift both share (the seed's teacher and
    data order)."""
    rng = rng if rng is not None else np.random.default_rng(0)
    shared = 80 + offset * rng.standard_normal(n)
    b = shared + noise * rng.standard_normal(n)
    a = b + diff + noise * rng.standard_normal(n)
    return dict(zip(range(1, n + 1), a)), dict(zip(range(1, n + 1), b))


def frame(cells: dict[tuple[str, str], dict[int, float]]) -> pd.DataFrame:
    return pd.DataFrame([{"task": t, "method": m, "seed": s, "score": v}
                         for (t, m), d in cells.items() for s, v in d.items()])


def better(claim_id: str, a: str, b, tasks, paper: str | None = None) -> Claim:
    return Claim(claim_id, f"{a} beats {b}.", "Table X", "better", a=a, b=(b,) if isinstance(b, str) else tuple(b),
                 tasks=tuple(tasks), paper=paper)


def test_a_true_difference_is_found_family_wise_and_the_rest_are_not():
    cells = {}
    for i in range(10):
        a, b = planted(6.0 if i == 0 else 0.0, rng=np.random.default_rng(i))
        cells[(f"t{i}", "a")], cells[(f"t{i}", "b")] = a, b
    claims = [better("c", "a", "b", [f"t{i}" for i in range(10)])]
    df = verdicts.evaluate(claims, frame(cells), numbers={})
    fam = df[df.family].set_index("scope")
    assert fam.loc["t0", "verdict"] == "holds" and fam.loc["t0", "p_holm"] < 0.05
    assert fam.loc["t0", "p_holm"] >= fam.loc["t0", "p_value"]
    assert (fam.drop("t0")["verdict"] == "inconclusive").all()
    # the simultaneous interval is wider than the unadjusted one of the same differences
    d = np.array([cells[("t0", "a")][s] - cells[("t0", "b")][s] for s in SEEDS])
    low, high = verdicts.interval(d, 0.95)
    assert fam.loc["t0", "ci_low"] < low and fam.loc["t0", "ci_high"] > high
    flipped = verdicts.evaluate([better("c", "b", "a", ["t0"])], frame(cells), numbers={})
    assert flipped.iloc[0]["verdict"] == "contradicted"


def test_forty_null_claims_give_a_family_wise_false_verdict_about_five_percent_of_the_time():
    """Holm over the family: with no difference anywhere, some test of 40 holds or is contradicted in ~5% of
    simulated families (not 5% of rows, which would make nearly every family wrong). The families' p-values come
    from one vectorised t test (scipy), the decision from the verdicts' own `holm` and `verdict`."""
    from scipy import stats as sps

    rng = np.random.default_rng(7)
    sims, claims, n = 2000, 40, 5
    shared = 2.0 * rng.standard_normal((sims, claims, n))
    a = 80 + shared + rng.standard_normal((sims, claims, n))
    b = 80 + shared + rng.standard_normal((sims, claims, n))
    d = a - b
    p = sps.ttest_1samp(d, 0.0, axis=-1).pvalue
    # Holm written out (the reference formula), vectorised over the simulations, checked against verdicts.holm
    order = np.argsort(p, axis=1)
    ranked = np.take_along_axis(p, order, axis=1) * (claims - np.arange(claims))
    adjusted = np.empty_like(p)
    np.put_along_axis(adjusted, order, np.minimum(np.maximum.accumulate(ranked, axis=1), 1.0), axis=1)
    for i in range(10):
        assert verdicts.holm(p[i].tolist()) == pytest.approx(adjusted[i].tolist())
    decided = [[verdicts.verdict("better", q, float(d[i, j].mean()), 0.0, 0.0, None, None) for j, q in enumerate(row)]
               for i, row in enumerate(adjusted)]
    wrong = np.mean([any(v in ("holds", "contradicted") for v in row) for row in decided])
    assert 0.03 <= wrong <= 0.07
    assert (p < 0.05).mean() == pytest.approx(0.05, abs=0.005)  # per row, unadjusted: 5% each
    # and evaluate() runs the same rule: one null family of 40 through it decides nothing here
    cells = {}
    for j in range(claims):
        cells[(f"t{j}", "a")] = dict(zip(range(1, n + 1), a[0, j]))
        cells[(f"t{j}", "b")] = dict(zip(range(1, n + 1), b[0, j]))
    df = verdicts.evaluate([better(f"c{j}", "a", "b", [f"t{j}"]) for j in range(claims)], frame(cells), numbers={},
                           power=False)
    assert df.p_holm.tolist() == pytest.approx(verdicts.holm(p[0].tolist()))
    assert (df.verdict == "inconclusive").all() == (min(verdicts.holm(p[0].tolist())) >= 0.05)


def test_a_paper_difference_above_the_interval_is_smaller_than_the_papers():
    a, b = planted(0.5, rng=np.random.default_rng(3))
    numbers = {("table3", "KDFD", "cola", "mcc"): 51.4, ("table3", "Vanilla KD", "cola", "mcc"): 43.7}
    claim = better("k", "kdfd", "vanilla-kd", ["cola"], paper="table3")
    df = verdicts.evaluate([claim], frame({("cola", "kdfd"): a, ("cola", "vanilla-kd"): b}), numbers=numbers)
    row = df.iloc[0]
    assert row.paper_diff == pytest.approx(7.7) and row.ci_high < 7.7
    assert row.verdict == "smaller than the paper's" and row.paper_vs_ours == "above"
    assert row.seeds_for_paper >= 2 and row.mde > 0


def test_the_over_tasks_paper_difference_is_the_mean_of_its_per_task_values_from_the_csv():
    numbers = paper_tables.paper_numbers()
    reference = paper_tables.load()
    cells = {}
    for task in ("cola", "mrpc"):
        cells[(task, "kdfd")], cells[(task, "vanilla-kd")] = planted(0.0, rng=np.random.default_rng(len(task)))
    claim = better("k", "kdfd", "vanilla-kd", ["cola", "mrpc"], paper="table3")
    df = verdicts.evaluate([claim], frame(cells), numbers=numbers, reference=reference)
    per_task = {}
    for task in ("cola", "mrpc"):
        metrics = {"cola": ["mcc"], "mrpc": ["f1", "accuracy"]}[task]
        per_task[task] = (np.mean([numbers[("table3", "KDFD", task, m)] for m in metrics])
                          - np.mean([numbers[("table3", "Vanilla KD", task, m)] for m in metrics]))
    rows = df.set_index("scope")
    assert rows.loc["cola", "paper_diff"] == pytest.approx(per_task["cola"]) == pytest.approx(7.7)
    mean = rows.loc[f"{verdicts.MEAN_SCOPE} (cola, mrpc)"]
    assert not mean.family and mean.paper_diff == pytest.approx(np.mean(list(per_task.values())))


def test_equivalence_best_and_exploratory_rows():
    rng = np.random.default_rng(11)
    a, b = planted(0.0, noise=0.1, offset=0.0, rng=rng, n=10)
    far_a, far_b = planted(5.0, noise=0.1, rng=rng)
    claims = [Claim("eq", "alike", "Table 2", "equivalent", a="a", b=("b",), tasks=("t", "u"), margin=1.0),
              Claim("best", "a is best", "s", "best", a="a", tasks=("u",)),
              better("x", "a", "c", ["t"])]
    cells = {("t", "a"): a, ("t", "b"): b, ("u", "a"): far_a, ("u", "b"): far_b,
             ("u", "c"): {s: v - 6 for s, v in far_b.items()}, ("t", "c"): b}
    df = verdicts.evaluate(claims, frame(cells), family=["eq", "best"], numbers={})
    rows = df.set_index(["claim", "scope"])
    assert rows.loc[("eq", "t"), "verdict"] == "holds"  # within 1 point, precisely
    assert rows.loc[("eq", "u"), "verdict"] == "contradicted"  # 5 points apart
    assert rows.loc[("best", "u"), "verdict"] == "holds" and "closest: b" in rows.loc[("best", "u"), "b"]
    assert not rows.loc[("x", "t"), "family"] and rows.loc[("x", "t"), "verdict"] in verdicts.READINGS
    with pytest.raises(ConfigError, match="unknown claim 'nope'"):
        verdicts.evaluate(claims, frame(cells), family=["nope"], numbers={})


def test_seed_block_model_and_paired_t_agree_on_balanced_homoscedastic_data():
    rng = np.random.default_rng(5)
    cells = {}
    for method, shift in (("a", 1.0), ("b", 0.0), ("c", 0.5)):
        shared = dict(zip(range(1, 11), 2 * np.sin(np.arange(10))))
        cells[("t", method)] = {s: 80 + shift + shared[s] + 0.3 * rng.standard_normal() for s in range(1, 11)}
    model, spread = stats.seed_block_contrasts(frame(cells), [("t", "a", "b")])
    d = np.array([cells[("t", "a")][s] - cells[("t", "b")][s] for s in range(1, 11)])
    assert model.iloc[0]["diff"] == pytest.approx(d.mean())
    assert model.iloc[0]["df"] == 18 and spread["t"] > 0.05


def test_claims_file_loads_as_the_paper_states_its_claims():
    claims = {c.id: c for c in verdicts.load_claims()}
    assert set(claims["kdfd-vs-table1-small-tasks"].tasks) == {"cola", "mrpc", "rte", "stsb"}
    assert claims["vae-equals-ae"].kind == "equivalent" and claims["vae-equals-ae"].margin == 1.0
    assert "finetune" not in claims["kdfd-vs-table1-small-tasks"].b and "dml" not in claims["kdfd-best-on-cola"].b
    assert all(c.source for c in claims.values())
    assert {c.kind for c in claims.values()} == set(verdicts.KINDS)


def test_the_papers_inconsistencies_are_found_in_its_tables():
    lines = verdicts.paper_inconsistencies(paper_tables.paper_numbers())
    assert any("cola mcc" in line and "51.4" in line and "43.2" in line for line in lines)
    assert any("qqp f1" in line and "71.2" in line and "71.4" in line for line in lines)


@pytest.mark.parametrize("body, words", [
    ('id = "x"\ntext = "t"\nsource = "s"\nkind = "ranking"\n', ["'x'", "ranking", "better", "equivalent"]),
    ('id = "x"\ntext = "t"\nsource = "s"\nkind = "better"\na = "kdfd"\ntasks = "all"\n', ["'x'", "'b'"]),
    ('id = "x"\ntext = "t"\nsource = "s"\nkind = "better"\na = "k"\nb = "v"\ntasks = "all"\npaper = "t9"\n',
     ["'x'", "t9", "table1"]),
    ('id = "x"\ntext = "t"\nsource = "s"\nkind = "equivalent"\na = "k"\nb = "v"\ntasks = "all"\nmargin = -1\n',
     ["'x'", "margin"]),
])
def test_bad_claims_name_the_claim_and_what_is_allowed(tmp_path, body, words):
    path = tmp_path / "claims.toml"
    path.write_text("[[claim]]\n" + body)
    with pytest.raises(ConfigError) as e:
        verdicts.load_claims(path)
    assert "\n" not in str(e.value) and all(w in str(e.value) for w in words)
