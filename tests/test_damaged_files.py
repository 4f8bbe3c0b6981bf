"""Fault injection on what a run leaves behind: every artifact kind the store writes for a job (its record, its
representations, a teacher's weights, the teacher cache, a checkpoint) damaged four ways (truncated, one byte
changed, emptied, another JSON in its place). Then `bench status`, `bench results` and `bench report` each name the
file in one line, with the count after it, and exit 1, with no traceback; `bench run` moves it aside (`.corrupt`)
with one line, redoes what made it, and ends with the records of an undamaged run; a damaged teacher is retrained
and its students' records stand as they were."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from benchmarks.cli import main

from .benchmarks.helpers import bench, records, same_training, tiny_suite, tiny_train

# A teacher, KDFD (representations; the job the checkpoint belongs to) and vanilla KD from the teacher cache: every
# kind of file a job writes on synthetic data (a test-set .npz needs GLUE's test files). 10 steps per job.
SUITE = tiny_suite(methods=("kdfd", "vanilla-kd"), train=tiny_train(epochs=1, teacher_cache=True))
RUN = ("--no-progress", "--checkpoint-every", "3")

# where each kind lies; the checkpoint in a run killed in the KDFD job's 5th step (its 1st checkpoint at step 3)
KINDS = {
    "record": "*/vanilla-kd/s*.json",
    "representations": "*/kdfd/s*.npz",
    "teacher weights": "*/teacher/s*.pt",
    "teacher cache": "*/teacher-cache/*.pt",
    "checkpoint": "*/kdfd/s*.ckpt",
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
    """The undamaged run, and one killed mid-way through the KDFD job (with a checkpoint), each a results root."""
    root = tmp_path_factory.mktemp("damage")
    suite = root / "suite.toml"
    suite.write_text(SUITE)
    done = bench("run", "--suite", str(suite), "--results", str(root / "done"), *RUN)
    assert done.returncode == 0, done.stderr
    killed = bench("run", "--suite", str(suite), "--results", str(root / "killed"), *RUN,
                   env={**os.environ, "KDFD_CRASH_AT": "train-step:15"})
    assert killed.returncode == -9, killed.stderr[-500:]
    return suite, root / "done", root / "killed"


def _one_line_each(err: str, damaged: Path) -> None:
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 2, err
    assert lines[0].startswith(f"bench: damaged: {damaged}: "), lines[0]
    assert lines[1].startswith("bench: 1 damaged file; the next `bench run` moves each aside"), lines[1]


@pytest.mark.parametrize("damage", list(DAMAGES))
@pytest.mark.parametrize("kind", list(KINDS))
def test_a_damaged_file_is_named_by_every_reader_then_moved_aside_and_remade(runs, tmp_path, capsys, kind, damage):
    suite, done, killed = runs
    results = tmp_path / "results"
    shutil.copytree(killed if kind == "checkpoint" else done, results)
    (path,) = results.glob(KINDS[kind])
    good = path.read_bytes()
    path.write_bytes(DAMAGES[damage](good))
    students = {p: p.read_bytes() for p in results.glob("*/[!t]*/s*.json") if kind == "teacher weights"}
    capsys.readouterr()

    common = ["--suite", str(suite), "--results", str(results)]
    readers = [["status", *common], ["results", "--results", str(results)]]
    if damage == "truncated":  # the report draws figures: once per kind is enough to show it reads past the damage
        readers.append(["report", *common, "--out", str(tmp_path / "reports")])
    for argv in readers:
        code = main(argv)
        _one_line_each(capsys.readouterr().err, path)
        assert code == 1, argv

    assert main(["run", *common, *RUN]) == 0
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    aside = path.with_name(path.name + ".corrupt")
    assert aside.read_bytes() == DAMAGES[damage](good)  # kept for a look, never overwritten
    said = (out.out + out.err).splitlines()  # the runner logs the damaged file (standard error)
    assert sum(f" {path} " in line or f" {path}:" in line for line in said) == 1, out.out + out.err
    want = {(r["role"], r["method"]): r for r in records(done)}
    got = {(r["role"], r["method"]): r for r in records(results)}
    assert got.keys() == want.keys() and all(same_training(got[k], want[k]) for k in want)
    assert all(p.read_bytes() == data for p, data in students.items())  # a retrained teacher fails no student
    assert main(["status", *common]) == 0 and capsys.readouterr().err == ""
