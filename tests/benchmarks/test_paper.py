"""A paper is data: a toy paper folder whose focal method is vanilla-kd drives the whole report over a tiny suite's
records (smoke's three methods on one synthetic task), and the report then names nothing of KDFD's."""

import csv
from pathlib import Path

import pytest

from benchmarks import paper
from kdfd.errors import ConfigError

from .helpers import bench, tiny_suite, tiny_train

TOY = {
    "paper.toml": 'method = "vanilla-kd"\nname = "Vanilla KD"\n',
    "tables.toml": ('paper = "the toy paper\'s numbers"\n'
                    '[[column]]\ntask = "synth-single"\nsplit = "dev"\nmetric = "accuracy"\nheader = "Single acc"\n'
                    '[[column]]\ntask = "synth-pair"\nsplit = "dev"\nmetric = "accuracy"\nheader = "Pair acc"\n'
                    '[[table]]\nname = "toy"\ntitle = "Toy table: vanilla KD and fine-tuning"\n'
                    'rows = [{method = "vanilla-kd", paper = "KD"}, {method = "finetune", paper = "FT"}]\n'),
    "paper_tables.csv": ("table,method,task,metric,value\ntoy,KD,synth-single,accuracy,91.5\n"
                         "toy,FT,synth-single,accuracy,90.25\ntoy,KD,synth-pair,accuracy,70.0\n"),
    "claims.toml": ('[[claim]]\nid = "kd-beats-finetune"\ntext = "Vanilla KD beats fine-tuning."\n'
                    'source = "the toy paper, Table 1"\nkind = "better"\na = "vanilla-kd"\nb = "finetune"\n'
                    'tasks = "all"\npaper = "toy"\n'),
}
# what only the KDFD paper's folder says: none of it may reach a report about another paper
KDFD_WORDS = ("KDFD", "kdfd_claims", "reference/kdfd", "Ablations: what each part", "Table 2's VAE row")


def toy_paper(folder: Path, **changes: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in {**TOY, **changes}.items():
        (folder / name).write_text(text)
    return folder


# smoke's methods on one synthetic task with tiny models, a few steps each
SUITE = tiny_suite(methods=("kdfd", "vanilla-kd", "finetune"),
                   train=tiny_train(epochs=1, max_train_examples=64, max_eval_examples=32))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The tiny suite's file and its records."""
    root = tmp_path_factory.mktemp("paper")
    suite = root / "runs.toml"
    suite.write_text(SUITE)
    done = bench("run", "--suite", str(suite), "--results", str(root / "results"), "--no-progress")
    assert done.returncode == 0, done.stderr[-2000:]
    return suite, root / "results"


def test_the_report_follows_a_toy_paper_whose_focal_method_is_vanilla_kd(runs, tmp_path):
    suite, results = runs
    folder = toy_paper(tmp_path / "toy")
    done = bench("report", "--suite", str(suite), "--results", str(results), "--out", str(tmp_path / "out"),
                 "--paper", str(folder))
    assert done.returncode == 0, done.stderr[-2000:]
    out = tmp_path / "out" / "runs"
    text = (out / "report.md").read_text()
    assert "## Vanilla KD against each method (exploratory)" in text
    assert "(Vanilla KD minus the other, points)" in text
    assert "Vanilla KD against a baseline" in text  # the rules name the focal method too
    assert f"Claims: `{folder.resolve() / 'claims.toml'}`" in text
    assert "`kd-beats-finetune`: Vanilla KD beats fine-tuning." in text
    assert "## Toy table: vanilla KD and fine-tuning" in text
    assert [w for w in KDFD_WORDS if w in text] == []
    with open(out / "comparisons.csv", newline="") as f:
        baselines = {(r["task"], r["baseline"]) for r in csv.DictReader(f)}
    assert baselines == {("synth-single", m) for m in ("kdfd", "finetune")}  # vanilla-kd minus each other method
    with open(out / "toy.csv", newline="") as f:
        paper_cells = {(r["method"], r["task"]): r["paper"] for r in csv.DictReader(f) if r["paper"]}
    assert paper_cells == {("vanilla-kd", "synth-single"): "91.5", ("finetune", "synth-single"): "90.25",
                           ("vanilla-kd", "synth-pair"): "70.0"}  # the paper's numbers, also where we have no run
    figures = {p.name for p in (out / "figures").glob("*.png")}
    assert not [f for f in figures if f.startswith(("fig3-", "fig4-", "fig5-"))]  # no bottleneck, no sweep named
    assert not (out / "table1.md").exists()  # the KDFD paper's tables are not this paper's


def test_a_suite_names_its_paper_by_folder(runs, tmp_path):
    """`paper = "DIR"` in a suite file, relative to it: the same report as `--paper`."""
    _, results = runs
    toy_paper(tmp_path / "papers" / "toy")
    suite = tmp_path / "runs-toy.toml"
    suite.write_text('paper = "papers/toy"\n' + SUITE)
    done = bench("report", "--suite", str(suite), "--results", str(results), "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr[-2000:]
    text = (tmp_path / "out" / "runs-toy" / "report.md").read_text()
    assert "## Vanilla KD against each method (exploratory)" in text and "KDFD" not in text


def test_the_kdfd_paper_is_the_default():
    p = paper.load()
    assert (p.method, p.name, tuple(p.swept), p.represented, p.latent) == (
        "kdfd", "KDFD", ("latent_dim", "vae_lambda"), ("kdfd", "kdfd-ae"), 64)
    assert p.shown(p.claims) == "benchmarks/reference/kdfd/claims.toml"


@pytest.mark.parametrize("text, words", [
    ('method = "kdfd"\nname = "KDFD"\nswep = {latent_dim = "d"}\n', "unknown key 'swep' (allowed: method, name, swept"),
    ('method = "kdfd"\nname = "KDFD"\nfolder = "x"\n', "unknown key 'folder' (allowed: method, name, swept"),
    ('name = "KDFD"\n', "missing key 'method' (needs: method, name)"),
    ('method = "kdfd"\nname = "KDFD"\nrepresented = "kdfd"\n', "represented = 'kdfd' has type str, expected tuple"),
    ('method = "kdfd"\nname = "KDFD"\nswept = {latent_dim = 64}\n', "swept.latent_dim = 64 has type int, expected str"),
])
def test_a_wrong_paper_file_is_a_one_line_error_naming_the_key(tmp_path, text, words):
    folder = toy_paper(tmp_path / "bad", **{"paper.toml": text})
    with pytest.raises(ConfigError, match="paper file .*bad/paper.toml: ") as e:
        paper.load(str(folder))
    assert words in str(e.value) and "\n" not in str(e.value)


def test_an_unknown_paper_names_the_ones_there():
    with pytest.raises(ConfigError, match=r"unknown paper 'kdfdd' \(allowed: kdfd\)"):
        paper.load("kdfdd")
