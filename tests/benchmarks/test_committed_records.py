"""The committed records still belong to the suites that made them: a change that moved their jobs' ids (a config
field added into the id, a default changed) would silently orphan them, and `bench run` would redo them. And they
still read, written in an older schema, into today's types with their values."""

import json
from pathlib import Path

import pytest

from benchmarks import store
from benchmarks import suite as suites
from benchmarks.suite_file import SUITES_DIR
from kdfd.result import FIELDS

ROOT = Path(__file__).resolve().parents[2]
REPORTS = ROOT / "reports"
SUITES = ["glue-cpu", "glue-cpu-v2", "sweep-dim-cpu", "sweep-lambda-cpu",
          *sorted(p.stem for p in SUITES_DIR.glob("protocol-*.toml"))]


def committed_records() -> list[Path]:
    return sorted(p for p in REPORTS.glob("*/results/*/*/s*-*.json"))


def every_committed_record() -> list[Path]:
    """The records of the reports and the superseded ones kept beside them."""
    return sorted(p for p in REPORTS.glob("**/s*-*.json") if not p.name.endswith(".test.json"))


@pytest.mark.skipif(not committed_records(), reason="no committed records in this checkout")
def test_every_committed_record_is_a_job_of_a_committed_suite():
    ids = set()
    for name in SUITES:
        ids |= {j.id for j in suites.load(name).jobs}
    orphans = []
    for path in committed_records():
        record = store.read(path)
        if record.id not in ids or path.stem.split("-", 1)[1] != record.id:
            orphans.append(f"{path.relative_to(ROOT)} ({record.suite})")
    assert not orphans, f"records no suite expands to any more: {orphans}"


@pytest.mark.skipif(not every_committed_record(), reason="no committed records in this checkout")
def test_every_committed_record_reads_into_todays_types_with_its_values_and_stays_as_it_was(tmp_path):
    """Written in schema 1: the result's fields at the top level, parameter counts as `params`, the id twice (`id`,
    `config_hash`). Read, each value is where today's types name it; the file is not touched; written again, the
    record is in today's schema and reads back equal."""
    paths = every_committed_record()
    assert len(paths) >= len(committed_records()) > 200
    for path in paths:
        text = path.read_text()
        old = json.loads(text)
        record = store.read(path)
        assert record is not None and path.read_text() == text, path
        assert old["schema"] == 1 and record.id == old["id"] == old["config_hash"] == path.stem.split("-", 1)[1], path
        assert record.config == old["config"] and record.extra == {}, path
        assert (record.task, record.method, record.seed, record.role) == (
            old["task"], old["method"], old["seed"], old["role"]), path
        assert {k: getattr(record, k) for k in store.RECORD_FIELDS} == {k: old.get(k) for k in store.RECORD_FIELDS}
        result = record.result
        assert result.param_counts == old["params"] and result.metrics == old["metrics"], path
        assert {k: v for k, v in result.to_dict().items() if k != "param_counts"} == {
            k: old.get(k) for k in FIELDS if k != "param_counts"}, path
        copy = tmp_path / "copy.json"
        store.write(copy, record)
        again = json.loads(copy.read_text())
        assert store.read(copy) == record and again["schema"] == store.SCHEMA, path
        assert again["result"]["param_counts"] == old["params"] and "config_hash" not in again, path


# A few committed records' ids, written out: an id is a hash of the whole resolved config (the method's full
# parameters, its version, the teacher it needs or not, the teacher job's id), so a change anywhere in resolution
# shows here by name, even where a suite changed alongside it. (suite, task, label, seed) -> id
PINNED = {
    ("glue-cpu", "mrpc", "teacher", 1): "455721f0703e8dba",
    ("glue-cpu", "mrpc", "kdfd[vae_grad=flow]", 1): "daf00bb1e9b63265",
    ("glue-cpu", "cola", "kdfd[vae_grad=stop]", 1): "d04b5fdc0e6b27a4",
    ("protocol-kdfd-vae-grad", "mrpc", "kdfd[vae_grad=flow]", 1): "daf00bb1e9b63265",  # the same job
    ("protocol-kdfd-vae-grad", "cola", "kdfd[vae_grad=stop]", 1): "d04b5fdc0e6b27a4",
    ("glue-cpu", "rte", "vanilla-kd", 1): "f6a838d8ebb547ae",
    ("glue-cpu", "stsb", "finetune", 1): "7698e75a0f14baf3",
    ("protocol-internal-kd-mrpc", "mrpc", "internal-kd[schedule=sid,final_stage=head,activation=cls]", 1):
        "687a9500350cf7cd",
}


def test_the_ids_of_pinned_committed_jobs_are_unchanged():
    found = {}
    for suite, task, label, seed in PINNED:
        jobs = suites.load(suite, tasks=[task], seeds=[seed]).jobs
        found[(suite, task, label, seed)] = next((j.id for j in jobs if j.label == label), None)
    assert found == PINNED
    kdfd = next(j for j in suites.load("glue-cpu", tasks=["mrpc"], seeds=[1]).jobs if j.label == "kdfd[vae_grad=flow]")
    assert kdfd.config.teacher_job == kdfd.teacher.id == "455721f0703e8dba"
    if committed_records():
        for (_, task, label, seed), job_id in PINNED.items():
            kind = "teacher" if label == "teacher" else label.split("[")[0]
            assert list(REPORTS.glob(f"*/results/{task}/{kind}/s{seed}-{job_id}.json")), (label, job_id)
