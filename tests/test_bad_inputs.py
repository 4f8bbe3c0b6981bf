"""The bad-input corpus: every case runs the real `bench` entry point and must end with exit code 2 and one line on
stderr that names the bad value (or file, or key) and what is allowed, with no traceback and no record written."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from benchmarks.cli import main

from .benchmarks.helpers import tiny_suite
from .conftest import glue_dir

BASE = tiny_suite()

RTE_SUITE = """
tasks = ["rte"]
seeds = [1]
methods = ["finetune"]
data_source = "tsv"
[student]
name = "tiny"
"""

RTE_HEADER = b"index\tsentence1\tsentence2\tlabel\n"


def _suite(tmp: Path, text: str, replace: tuple[str, str] | None = None) -> str:
    if replace:
        assert replace[0] in text
        text = text.replace(*replace)
    path = tmp / "case.toml"
    path.write_text(text)
    return str(path)


def _glue(tmp: Path, train: bytes | None) -> str:
    """A GLUE folder with RTE's real dev file and the given train file (None: no RTE folder at all)."""
    root = tmp / "glue"
    (root / "RTE").mkdir(parents=True) if train is not None else root.mkdir()
    if train is not None:
        (root / "RTE" / "train.tsv").write_bytes(train)
        real = glue_dir()
        dev = (real / "RTE" / "dev.tsv").read_bytes() if real else RTE_HEADER + b"0\ta\tb\tentailment\n"
        (root / "RTE" / "dev.tsv").write_bytes(dev)
    return str(root)


def _file(tmp: Path) -> Path:
    path = tmp / "results-file"
    path.write_text("a file where a folder should be")
    return path


def _run(tmp, *args):
    return ["run", "--results", str(tmp / "results"), *args]


# (case id, argv builder, what the one line must say)
CASES = [
    ("unknown task", lambda t: _run(t, "--suite", "smoke", "--tasks", "sst-3"), "unknown task 'sst-3' (allowed: "),
    ("unknown method", lambda t: _run(t, "--suite", "smoke", "--methods", "kdf"), "unknown method 'kdf' (allowed: "),
    ("unknown suite", lambda t: _run(t, "--suite", "smok"), "unknown suite 'smok' (allowed: "),
    ("unknown executor", lambda t: _run(t, "--suite", "smoke", "--executor", "pbs"),
     "invalid choice: 'pbs' (choose from 'local', 'slurm')"),
    ("misspelt suite key", lambda t: _run(t, "--suite", _suite(t, BASE + "[train]\nepocs = 1\n")),
     "case.toml [train]: unknown key 'epocs' (allowed: epochs"),
    ("misspelt top key", lambda t: _run(t, "--suite", _suite(t, "seed = [1]\n" + BASE)), "unknown key 'seed'"),
    ("wrong type", lambda t: _run(t, "--suite", _suite(t, BASE + "[train]\nepochs = \"two\"\n")),
     "epochs = 'two' has type str, expected int"),
    ("learning rate <= 0", lambda t: _run(t, "--suite", _suite(t, BASE + "[train]\nlr = 0.0\n")),
     "lr = 0.0 is not allowed (must be > 0)"),
    ("lambda < 0", lambda t: _run(t, "--suite", _suite(t, BASE + "vae_lambda = -0.1\n")), "vae_lambda = -0.1"),
    ("latent dim above hidden", lambda t: _run(t, "--suite", _suite(t, BASE, ("latent_dim = 8", "latent_dim = 64"))),
     "latent_dim = 64 is larger than the teacher's hidden size 32 (allowed: 1 .. 32)"),
    ("temperature <= 0", lambda t: _run(t, "--suite", _suite(t, BASE + "temperature = 0.0\n")), "temperature = 0.0"),
    ("alpha outside [0, 1]", lambda t: _run(t, "--suite", _suite(t, BASE + "alpha_s = 1.5\n")), "alpha_s = 1.5"),
    ("student deeper than teacher", lambda t: _run(t, "--suite", _suite(t, BASE, ("layers = 1", "layers = 3"))),
     "the student has 3 layers, more than its teacher's 2"),
    ("empty grid axis", lambda t: _run(t, "--suite", _suite(t, BASE + "temperature = []\n")),
     "grid axis 'temperature' is empty"),
    ("unknown data source", lambda t: _run(t, "--suite", _suite(t, BASE, ('"synthetic"', '"ftp"'))),
     "data_source 'ftp' is not allowed (allowed: "),
    ("bad slurm key", lambda t: _run(t, "--suite", _suite(t, BASE + "[slurm]\npartion = \"gpu\"\n")),
     "unknown key 'partion' (allowed: partition"),
    ("seed not an integer", lambda t: _run(t, "--suite", "smoke", "--seeds", "one"), "seed 'one' is not an integer"),
    ("checkpoint interval < 1", lambda t: _run(t, "--suite", "smoke", "--checkpoint-every", "0"),
     "--checkpoint-every 0 is not allowed (must be >= 1 step)"),
    ("checkpoint interval < 1, dry run", lambda t: _run(t, "--suite", "smoke", "--checkpoint-every", "0", "--dry-run"),
     "--checkpoint-every 0 is not allowed (must be >= 1 step)"),
    ("negative seed", lambda t: _run(t, "--suite", "smoke", "--seeds", "-1"),
     "--seeds: seed -1 is not allowed (allowed: integers >= 0)"),
    ("negative seed, dry run", lambda t: _run(t, "--suite", "smoke", "--seeds", "-1", "--dry-run"),
     "--seeds: seed -1 is not allowed (allowed: integers >= 0)"),
    ("negative seed in a suite", lambda t: _run(t, "--suite", _suite(t, BASE, ("seeds = [1]", "seeds = [-2]"))),
     "seed -2 is not allowed (allowed: integers >= 0)"),
    ("parquet to standard output", lambda t: ["results", "--results", str(t), "--format", "parquet"],
     "--format parquet needs --out FILE"),
    ("results root missing", lambda t: ["status", "--suite", "smoke", "--results", str(t / "results")],
     "results root " + "{tmp}/results does not exist"),
    ("workers < 1", lambda t: _run(t, "--suite", "smoke", "--workers", "0"), "--workers 0 is not allowed"),
    ("workers under SLURM", lambda t: _run(t, "--suite", "smoke", "--workers", "2", "--executor", "slurm"),
     "--workers 2 is not allowed (a local run's processes: >= 1; SLURM runs each job in its own task)"),
    ("unknown precision", lambda t: _run(t, "--suite", _suite(t, BASE.replace("[method.kdfd]", "[train]\nprecision = "
                                                                              "\"fp8\"\n[method.kdfd]"))),
     "precision 'fp8' is not allowed (allowed: auto, fp32, bf16, fp16)"),
    ("model path missing", lambda t: _run(t, "--suite", _suite(t, BASE, ('name = "tiny"\nlayers = 1',
                                                                         'name = "/no/such/model"\nlayers = 1'))),
     "model path '/no/such/model' does not exist"),
    ("missing GLUE dir", lambda t: _run(t, "--suite", _suite(t, RTE_SUITE), "--glue-dir", str(t / "nowhere")),
     "does not exist"),
    ("missing task folder", lambda t: _run(t, "--suite", _suite(t, RTE_SUITE), "--glue-dir", _glue(t, None)),
     "no folder RTE/ for task 'rte'"),
    ("TSV missing a column", lambda t: _run(t, "--suite", _suite(t, RTE_SUITE), "--glue-dir",
                                            _glue(t, b"index\tsentence1\tsentence2\n0\ta\tb\n")),
     "missing column 'label'"),
    ("TSV row with wrong field count", lambda t: _run(t, "--suite", _suite(t, RTE_SUITE), "--glue-dir",
                                                      _glue(t, RTE_HEADER + b"0\ta\tb\n")),
     "train.tsv:2: expected 4 tab-separated fields, found 3"),
    ("empty TSV", lambda t: _run(t, "--suite", _suite(t, RTE_SUITE), "--glue-dir", _glue(t, b"")), "empty file"),
    ("TSV not UTF-8", lambda t: _run(t, "--suite", _suite(t, RTE_SUITE), "--glue-dir",
                                     _glue(t, RTE_HEADER + b"0\ta\xff\tb\tentailment\n")), "are not UTF-8"),
    ("results root is a file", lambda t: ["run", "--suite", "smoke", "--results", str(_file(t))],
     "results-file is not writable (File exists)"),
    ("label outside the label set", lambda t: _run(t, "--suite", _suite(t, RTE_SUITE), "--glue-dir",
                                                   _glue(t, RTE_HEADER + b"0\ta\tb\tmaybe\n")),
     "label 'maybe' is not in the task's label set (entailment, not_entailment)"),
    ("kdfd-ae with a VAE", lambda t: _run(t, "--suite", _suite(t, tiny_suite(
        methods=("kdfd-ae",), methods_tables='[method.kdfd-ae]\nlatent_dim = 8\nbottleneck = "vae"\n'))),
     "kdfd-ae: bottleneck = 'vae' is not allowed (allowed: ae"),
    ("test predictions of a synthetic task", lambda t: _run(t, "--suite", _suite(t, BASE, (
        "[method.kdfd]", "[train]\npredict_test = true\n[method.kdfd]"))), "task 'synth-single' has no test set"),
    ("test predictions with no test file",
     lambda t: _run(t, "--suite", _suite(t, RTE_SUITE + "[train]\npredict_test = true\n"),
                    "--glue-dir", _glue(t, RTE_HEADER + b"0\ta\tb\tentailment\n")),
     "missing data file"),
]

if not torch.cuda.is_available():  # with a GPU the suite would train
    CASES.append(("a GPU asked for, none here, CPU not said",
                  lambda t: _run(t, "--suite", _suite(t, BASE + "[slurm]\ngpus = 1\n")),
                  "asks for 1 GPU per job ([slurm] gpus = 1) and this machine has none"))


@pytest.mark.parametrize("case,argv,message", CASES, ids=[c[0] for c in CASES])
def test_bad_input_ends_with_one_line_and_exit_code_2(tmp_path, capsys, case, argv, message):
    with pytest.raises(SystemExit) if case == "unknown executor" else _nothing() as raised:
        code = main(argv(tmp_path))
    if raised is not None:
        code = raised.value.code
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert message.format(tmp=tmp_path) in lines[0], lines[0]
    assert not (tmp_path / "results").exists() or not list((tmp_path / "results").rglob("*.json"))


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def test_the_corpus_has_at_least_twenty_cases():
    assert len(CASES) >= 20 and len({c[0] for c in CASES}) == len(CASES)


def test_an_unreadable_record_or_checkpoint_is_kept_aside_and_the_job_redone(tmp_path, capsys):
    suite = _suite(tmp_path, BASE.replace('methods = ["kdfd"]', 'methods = ["finetune"]'))
    results = tmp_path / "results"
    assert main(["run", "--suite", suite, "--results", str(results), "--no-progress"]) == 0
    (record,) = results.rglob("s1-*.json")
    good = record.read_text()
    record.write_text(good[: len(good) // 2])  # truncated
    ckpt = record.with_suffix(".ckpt")
    ckpt.write_bytes(b"not a checkpoint")
    assert main(["run", "--suite", suite, "--results", str(results), "--no-progress"]) == 0
    said = capsys.readouterr()
    out = said.out + said.err  # the runner's warning is logged (standard error), the checkpoint's printed
    assert "is unreadable (not JSON); kept as" in said.err and "starts again from step 0" in out
    assert record.with_name(record.name + ".corrupt").read_text() == good[: len(good) // 2]  # nothing lost
    assert ckpt.with_name(ckpt.name + ".corrupt").is_file()
    assert '"status": "done"' in record.read_text()
    shutil.rmtree(results)
