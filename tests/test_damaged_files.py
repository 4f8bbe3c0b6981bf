"""Fault injection on what a run leaves behind: each kind of file a results root holds, damaged four ways
(truncated, one byte changed, emptied, another JSON in its place). Then `bench status`, `bench results` and `bench
report` (and `bench wait` and `cancel` for what SLURM was given) each name the file in one line, with the count
after it, and exit 1, with no traceback; `bench run` moves it aside (`.corrupt`) with one line, remakes it, and ends
with the records of an undamaged run; a damaged teacher is retrained and its students' records stand as they were.

Every file the store, the runner, the SLURM executor, the teacher cache and the checkpointer write, and where each
is covered (`KINDS`: the matrix below):

- record `<task>/<kind>/s<seed>-<id>.json`, sealed (`record_sha256`): KINDS "record"
- its companions, checked by the record's `checksums`: a teacher's `.pt` ("teacher weights"), the representations
  `.npz` ("representations"), the GLUE test-set predictions `.test.npz` ("test predictions", on WNLI's real test
  file: skipped without a GLUE folder)
- checkpoint `.ckpt`, teacher cache `teacher-cache/*.pt` and token ids `tokens/*.npz`, each with its `.sha256`
  sidecar: "checkpoint", "teacher cache", "teacher cache checksum" (the sidecar itself; a checkpoint's and the token
  ids' are read by the same kdfd.files.damage), "token cache"
- a suite's expansion `.suites/<suite>-<key>.cache`, sealed: "suite expansion" (remade byte for byte)
- what SLURM was given, `.slurm/<suite>/submitted.json`, sealed: "SLURM submission list", written by the
  submitter's own writer (slurm._keep) rather than by a cluster; moved aside by `bench run --executor slurm`; a job
  with no record shows as unknown meanwhile (`test_a_job_without_a_record_is_unknown_...`)
- the t-SNE cache `.tsne.npz` the report keeps beside the representations: a cache, checked by its zip CRCs and
  recomputed when it does not read (`test_a_damaged_tsne_cache_is_recomputed`), never named
- `.accepted-code-changes.json`: one that does not read stops the commands that read it with one line naming it
  (tests/kdfd/test_fingerprint.py); a changed byte that still parses can only withdraw an acceptance (fingerprints
  match exactly), and the run then stops on the code change
- submitit's own files beside the list (`.slurm/<suite>/<slurm id>/` pickles and logs, `.submission_file_*.sh`):
  read by submitit in the SLURM task alone; a damaged one fails its task, which `bench status` shows as failed
  ("ended FAILED without a record"), and the next `bench run --executor slurm` submits the job again with new ones
  (not damaged here: that needs a cluster's task to read them)
- not read back, so never trusted: `.lock` (an flock on it; its text, pid and host, is for a person), the
  temporaries `.NAME.PID.tmp` of a killed write (removed under the job's lock), the write probe of `bench run`
  (removed at once), `.corrupt` files, the tracker stores (`.tensorboard/`, `.tb/`, `.mlflow/`, `.wandb/`) and the
  exported `.model/` folder (outputs for other tools; `train.save_model` asks only that its config.json exists)
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from benchmarks import figures, slurm
from benchmarks import suite as suites
from benchmarks.cli import main

from .benchmarks.helpers import bench, records, same_training, tiny_suite, tiny_train
from .conftest import glue_dir

# A teacher, KDFD (representations; the job the checkpoint belongs to) and vanilla KD from the teacher cache: every
# kind of file a job writes on synthetic data. 10 steps per job.
SUITE = tiny_suite(methods=("kdfd", "vanilla-kd"), train=tiny_train(epochs=1, teacher_cache=True))
# Test-set predictions need a GLUE test file: WNLI's is the smallest (146 examples); one student, one step
GLUE_SUITE = ('tasks = ["wnli"]\nseeds = [1]\nmethods = ["finetune"]\ndata_source = "tsv"\n[student]\nname = "tiny"\n'
              "[train]\nepochs = 1\nbatch_size = 32\nmax_train_examples = 32\nmax_eval_examples = 32\n"
              "predict_test = true\n")
RUN = ("--no-progress", "--checkpoint-every", "3")


@dataclass(frozen=True)
class Kind:
    glob: str  # the file damaged, under the results root
    run: str = "done"  # the run it is taken from (`runs`, `glue_run`)
    flags: tuple = ()  # what `bench run` needs beyond RUN to remake it
    readers: tuple = ()  # the commands that read it beyond status and results
    # `bench report` too (once per kind: it draws figures); those it never reads it names by the same
    # store.damaged as `bench status`
    report: bool = True


KINDS = {
    "record": Kind("*/vanilla-kd/s*.json"),
    "representations": Kind("*/kdfd/s1-" + "?" * 16 + ".npz"),  # not the report's .tsne.npz beside it
    "test predictions": Kind("*/finetune/s*.test.npz", run="glue"),
    "teacher weights": Kind("*/teacher/s*.pt"),
    "teacher cache": Kind("*/teacher-cache/*.pt"),
    "teacher cache checksum": Kind("*/teacher-cache/*.pt.sha256", report=False),
    "token cache": Kind("*/tokens/*.npz", report=False),  # the first of a task's (train, dev, sample: one code)
    # in a run killed in the KDFD job's 5th step (its 1st checkpoint at step 3)
    "checkpoint": Kind("*/kdfd/s*.ckpt", run="killed"),
    "suite expansion": Kind(".suites/*.cache"),
    "SLURM submission list": Kind(".slurm/*/submitted.json", run="submitted", flags=("--executor", "slurm"),
                                  readers=(("wait", "--no-progress"), ("cancel",)), report=False),
}


def _changed(data: bytes) -> bytes:
    """One byte in the middle, one bit changed: inside a tensor, or a digit of a record that still parses."""
    out = bytearray(data)
    out[len(out) // 2] ^= 0x01
    return bytes(out)


DAMAGES = {
    "truncated": lambda data: data[: len(data) // 2],
    "one byte changed": _changed,
    "empty": lambda data: b"",
    "another JSON": lambda data: b"[1, 2, 3]" if data.lstrip().startswith(b"{") else b'{"status": "done"}',
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Results roots, by name, each with its suite file: the undamaged run (`done`, reported once: the t-SNE cache
    the report keeps spares each later report its slowest part), one killed mid-way through the KDFD job (`killed`,
    with a checkpoint), the undamaged run with a submission list (`submitted`)."""
    root = tmp_path_factory.mktemp("damage")
    suite = root / "suite.toml"
    suite.write_text(SUITE)
    done = bench("run", "--suite", str(suite), "--results", str(root / "done"), *RUN)
    assert done.returncode == 0, done.stderr
    report = bench("report", "--suite", str(suite), "--results", str(root / "done"), "--out", str(root / "reports"))
    assert report.returncode == 0, report.stderr
    killed = bench("run", "--suite", str(suite), "--results", str(root / "killed"), *RUN,
                   env={**os.environ, "KDFD_CRASH_AT": "train-step:15"})
    assert killed.returncode == -9, killed.stderr[-500:]
    # what the SLURM executor keeps once sbatch accepted the jobs, by its own writer: no cluster needed to damage it
    shutil.copytree(root / "done", root / "submitted")
    expanded = suites.load(str(suite))
    slurm._keep(root / "submitted", expanded, {}, {j.id: f"41_{i}" for i, j in enumerate(expanded.jobs)})
    return {name: (suite, root / name) for name in ("done", "killed", "submitted")}


@pytest.fixture(scope="module")
def glue_run(tmp_path_factory):
    """A run that saved test-set predictions, on GLUE's real WNLI files."""
    glue = glue_dir()
    if glue is None:
        pytest.skip("no GLUE folder: set GLUE_DIR or place it at ../shared/data/glue")
    root = tmp_path_factory.mktemp("damage-glue")
    suite = root / "wnli.toml"
    suite.write_text(GLUE_SUITE)
    done = bench("run", "--suite", str(suite), "--results", str(root / "glue"), "--glue-dir", str(glue), *RUN)
    assert done.returncode == 0, done.stderr
    return suite, root / "glue", glue


def _one(paths) -> Path:
    (path,) = paths
    return path


def _one_line_each(err: str, damaged: Path) -> None:
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 2, err
    assert lines[0].startswith(f"bench: damaged: {damaged}: "), lines[0]
    assert lines[1].startswith("bench: 1 damaged file; the next `bench run` moves each aside"), lines[1]


@pytest.mark.parametrize("damage", list(DAMAGES))
@pytest.mark.parametrize("kind", list(KINDS))
def test_a_damaged_file_is_named_by_every_reader_then_moved_aside_and_remade(request, tmp_path, capsys, kind, damage):
    spec = KINDS[kind]
    glue_flags = ()
    if spec.run == "glue":
        suite, source, glue = request.getfixturevalue("glue_run")
        glue_flags = ("--glue-dir", str(glue))
    else:
        suite, source = request.getfixturevalue("runs")[spec.run]
    results = tmp_path / "results"
    shutil.copytree(source, results)
    path = min(results.glob(spec.glob), key=str) if kind == "token cache" else _one(results.glob(spec.glob))
    named = path.with_suffix("") if path.suffix == ".sha256" else path  # a sidecar: the file it vouches for
    good = path.read_bytes()
    path.write_bytes(DAMAGES[damage](good))
    students = {p: p.read_bytes() for p in results.glob("*/[!t]*/s*.json") if kind == "teacher weights"}
    capsys.readouterr()

    common = ["--suite", str(suite), "--results", str(results)]
    readers = [["status", *common], ["results", "--results", str(results)],
               *([*r[:1], *common, *r[1:]] for r in spec.readers)]
    if damage == "truncated" and spec.report:  # once per kind is enough to show it reads past the damage
        readers.append(["report", *common, "--out", str(tmp_path / "reports"),
                        *(["--glue-submission"] if spec.run == "glue" else [])])
    for argv in readers:
        code = main(argv)
        _one_line_each(capsys.readouterr().err, named)
        assert code == 1, argv

    assert main(["run", *common, *RUN, *spec.flags, *glue_flags]) == 0
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    aside = path.with_name(path.name + ".corrupt")
    assert aside.read_bytes() == DAMAGES[damage](good)  # kept for a look, never overwritten
    said = (out.out + out.err).splitlines()  # the runner logs the damaged file (standard error)
    assert sum(f" {named} " in line or f" {named}:" in line for line in said) == 1, out.out + out.err
    undamaged = request.getfixturevalue("runs")["done"][1] if spec.run == "killed" else source
    want = {(r.role, r.method): r for r in records(undamaged)}
    got = {(r.role, r.method): r for r in records(results)}
    assert got.keys() == want.keys() and all(same_training(got[k], want[k]) for k in want)
    assert all(p.read_bytes() == data for p, data in students.items())  # a retrained teacher fails no student
    if kind == "suite expansion":
        assert path.read_bytes() == good  # kept anew, as it was
    if kind == "test predictions":  # predicted again, the same
        (source_file,) = source.glob(spec.glob)
        with np.load(path) as again, np.load(source_file) as first:
            assert again.files == first.files and all(np.array_equal(again[k], first[k]) for k in first.files)
    assert main(["status", *common]) == 0 and capsys.readouterr().err == ""


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_tsne_cache_is_recomputed(runs, tmp_path, damage):
    """The t-SNE cache a real report kept beside a run's representations, damaged: `figures.embeddings` (what the
    report draws from) never reads it, computes the embedding again, and replaces the cache whole."""
    (source,) = runs["done"][1].glob(KINDS["representations"].glob)
    npz = Path(shutil.copy(source, tmp_path / source.name))
    cache = npz.with_suffix(figures.TSNE_CACHE)
    good = source.with_suffix(figures.TSNE_CACHE).read_bytes()
    cache.write_bytes(DAMAGES[damage](good))
    with np.load(npz) as z:
        reps = {k: z[k] for k in z.files}
    with np.load(source.with_suffix(figures.TSNE_CACHE)) as z:
        name = next(n for n in z.files if n != "key")
        first = z[name]
    assert np.array_equal(figures.embeddings(reps, [name], npz)[name], first)  # computed again: the same
    with np.load(cache) as z:
        assert np.array_equal(z[name], first)


def test_a_job_without_a_record_is_unknown_while_the_submission_list_is_damaged(runs, tmp_path, capsys):
    """Not `to run`: it may be queued, and the list that would say so cannot be read."""
    suite, source = runs["submitted"]
    results = tmp_path / "results"
    shutil.copytree(source, results)
    (record,) = results.glob(KINDS["record"].glob)
    record.unlink()
    (listed,) = results.glob(KINDS["SLURM submission list"].glob)
    listed.write_bytes(DAMAGES["truncated"](listed.read_bytes()))
    capsys.readouterr()
    assert main(["status", "--suite", str(suite), "--results", str(results)]) == 1
    out = capsys.readouterr()
    _one_line_each(out.err, listed)
    assert "2 done, 1 unknown" in out.out.splitlines() and "whether it was submitted is unknown" in out.out
