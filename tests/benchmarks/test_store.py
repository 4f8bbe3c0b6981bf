"""The results store: where a job's files go, what counts as done, and the record: the job's typed result embedded,
written as one nested JSON object, and read back typed, from this schema or the one before it."""

import json
import subprocess
import sys
import zipfile

import pytest

from benchmarks import store
from benchmarks import suite as suites
from benchmarks.store import Record
from kdfd.result import JobResult

from ..conftest import ROOT


def _smoke(role: str):
    return next(j for j in suites.load("smoke").jobs if j.config.method == "finetune" and j.config.role == role)


def test_records_are_written_atomically_and_read_back(tmp_path):
    path = tmp_path / "a" / "b.json"
    store.write_json(path, {"status": "done", "x": 1})
    assert json.loads(path.read_text()) == {"status": "done", "x": 1}
    assert [p.name for p in path.parent.iterdir()] == ["b.json"]  # no temporary file left behind


def test_only_a_complete_done_record_with_the_same_id_counts_as_done(tmp_path):
    job = _smoke("student")
    path = store.record_path(tmp_path, job)
    assert not store.is_done(tmp_path, job)
    store.write_json(path, {"status": "failed", "config_hash": job.id})
    assert not store.is_done(tmp_path, job)  # failed jobs are retried
    store.write_json(path, {"status": "done", "config_hash": "something-else"})
    assert not store.is_done(tmp_path, job) and store.find(tmp_path, job) is None
    store.write_json(path, {"status": "done", "config_hash": job.id})
    assert store.is_done(tmp_path, job)
    path.write_text(path.read_text()[:10])  # a truncated record is redone, never trusted
    assert not store.is_done(tmp_path, job) and store.read(path) is None
    aside = store.keep_unreadable(path)
    assert aside == path.with_name(path.name + ".corrupt") and aside.is_file() and not path.exists()


def _archive(path, payload: bytes = b"weights" * 100):
    """A small zip archive: the format of torch.save and np.savez, whose CRCs an older record's files are checked by."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data/0", payload)


def test_a_teacher_counts_as_done_only_with_its_weights(tmp_path):
    teacher = _smoke("teacher")
    store.write_json(store.record_path(tmp_path, teacher), {"status": "done", "config_hash": teacher.id})
    assert not store.is_done(tmp_path, teacher)
    weights = store.weights_path(tmp_path, teacher)
    weights.write_bytes(b"weights")  # no archive: damaged
    assert not store.is_done(tmp_path, teacher)
    assert [d.path for d in store.damaged(tmp_path, [teacher])] == [weights]
    _archive(weights)
    assert store.is_done(tmp_path, teacher) and store.damaged(tmp_path, [teacher]) == []


def test_a_done_record_holds_its_files_checksums_and_counts_as_done_only_while_they_match(tmp_path):
    teacher = _smoke("teacher")
    path, weights = store.record_path(tmp_path, teacher), store.weights_path(tmp_path, teacher)
    weights.parent.mkdir(parents=True)
    _archive(weights)
    store.write(path, Record(id=teacher.id, config=teacher.config.to_dict(), status="done",
                             checksums=store.checksums(tmp_path, teacher)))
    assert set(store.read(path).checksums) == {".pt"} and store.is_done(tmp_path, teacher)
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # the archive's end record: its CRCs would still hold, the checksum does not
    weights.write_bytes(bytes(data))
    assert not store.is_done(tmp_path, teacher)
    (found,) = store.damaged(tmp_path, [teacher])
    assert found.path == weights and "checksum mismatch" in found.why
    ((file, aside, why),) = store.set_aside(tmp_path, teacher)
    assert file == weights and aside.name == weights.name + ".corrupt" and not weights.exists()
    assert store.damaged(tmp_path, [teacher]) == [] and store.read(path).done  # the record stays until the rerun


@pytest.mark.parametrize("text", ['{"status": "do', "[1, 2]", '"done"', '{"status": 1}', '{"config": "x"}',
                                  '{"status": "done", "checksums": {".pt": 5}}', '{"schema": 2, "result": [1]}',
                                  '{"schema": 2, "status": "done", "result": {"metrics": 5}}'])
def test_a_record_that_is_no_record_is_unreadable_and_named(tmp_path, text):
    job = _smoke("student")
    path = store.record_path(tmp_path, job)
    path.parent.mkdir(parents=True)
    path.write_text(text)
    assert store.read(path) is None and not store.is_done(tmp_path, job)
    assert [d.path for d in store.damaged(tmp_path)] == [path] == [d.path for d in store.damaged(tmp_path, [job])]


def test_a_jobs_files_sit_beside_its_record(tmp_path):
    job, teacher = _smoke("student"), _smoke("teacher")
    c = job.config
    record = tmp_path / c.task / "finetune" / f"s{c.seed}-{job.id}.json"
    assert store.record_path(tmp_path, job) == record
    assert store.record_path(tmp_path, teacher).parent == tmp_path / c.task / "teacher"
    assert {store.weights_path(tmp_path, job).name, store.artifacts_path(tmp_path, job).name,
            store.predictions_path(tmp_path, job).name, store.checkpoint_path(tmp_path, job).name,
            store.lock_path(tmp_path, job).name} == {f"s{c.seed}-{job.id}{s}" for s in (".pt", ".npz", ".test.npz",
                                                                                     ".ckpt", ".lock")}
    assert store.events_path(tmp_path, job) == (
        tmp_path / ".tensorboard" / c.task / "finetune" / f"s{c.seed}-{job.id[:8]}")
    assert store.model_path(tmp_path, job) == record.with_suffix(".model")
    assert store.tracker_store(tmp_path, "mlflow") == tmp_path / ".mlflow"
    assert store.teacher_cache_path(tmp_path, c.task) == tmp_path / c.task / "teacher-cache"
    assert store.slurm_state_path(tmp_path, "smoke") == tmp_path / ".slurm" / "smoke" / "submitted.json"
    (record.parent / f".{record.name}.123.tmp").parent.mkdir(parents=True)
    (record.parent / f".{record.name}.123.tmp").write_text("half")
    assert [p.name for p in store.temporaries(tmp_path, job)] == [f".{record.name}.123.tmp"]


def test_a_record_embeds_the_jobs_typed_result_and_is_written_as_one_nested_json_object(tmp_path):
    job = _smoke("student")
    c = job.config
    fresh = Record(id=job.id, suite="smoke", label=job.label, config=c.to_dict(), started="t0")
    result = JobResult(metrics={"dev": {"accuracy": 0.5}}, timing={"steps": 3}, param_counts={"student": 7})
    done = fresh.finish("done", result, finished="t1", wall_seconds=2.0)
    assert (done.task, done.method, done.seed, done.role) == (c.task, "finetune", c.seed, "student")
    assert done.result is result and fresh.result is None
    assert done.finish("done", finished="t2").result is result  # a later change keeps the result
    failed = fresh.finish("failed", error={"type": "RuntimeError", "message": "x", "traceback": ""})
    path = store.record_path(tmp_path, job)
    store.write(path, done)
    back = store.read(path)
    assert back == done and back.to_dict() == done.to_dict() and store.find(tmp_path, job) == done
    assert [(p, r.id) for p, r in store.records(tmp_path)] == [(path, job.id)]
    text = path.read_text()
    data = json.loads(text)  # what jq and pandas read
    assert data[store.SEAL] and store.damaged(tmp_path) == []
    assert data["schema"] == store.SCHEMA and data["id"] == job.id and "config_hash" not in data
    assert data["task"] == data["config"]["task"] == c.task  # beside the config, for readers of the JSON
    assert data["result"]["metrics"] == {"dev": {"accuracy": 0.5}} and data["result"]["param_counts"] == {"student": 7}
    assert set(data["result"]) == set(JobResult.__dataclass_fields__)  # every field, null where it has none
    assert data["config"]["params"] == c.to_dict()["params"] and "params" not in data  # the method's, by name
    assert store.read(_written(tmp_path / "failed.json", failed)).result is None
    assert json.loads((tmp_path / "failed.json").read_text())["result"] is None
    path.write_text(text.replace('"accuracy": 0.5', '"accuracy": 0.6'))  # still a record, not the one written
    assert store.read(path) is None and not store.is_done(tmp_path, job)
    (found,) = store.damaged(tmp_path)
    assert found.path == path and found.why.startswith("checksum mismatch")


def _written(path, record):
    store.write(path, record)
    return path


def test_keys_of_a_newer_writer_are_kept_and_written_back(tmp_path):
    job = _smoke("student")
    record = Record(id=job.id, config=job.config.to_dict(), status="done", result=JobResult(metrics={}))
    data = {**record.to_dict(), "schema": store.SCHEMA + 1, "new_key": [1]}
    data["result"]["new_field"] = 2  # a result field this version does not know: left out
    back = Record.from_dict(data)
    assert back.extra == {"new_key": [1]} and back.result == record.result
    assert back.to_dict() == {**record.to_dict(), "new_key": [1]}


def test_a_schema_1_record_reads_into_the_same_types_and_its_seal_still_holds(tmp_path):
    """Schema 1 kept the result's fields at the top level, parameter counts as `params` and the id twice
    (`config_hash`); its seal is over its own text, checked as any record's."""
    job = _smoke("student")
    config = job.config.to_dict()
    old = {"schema": 1, "id": job.id, "config_hash": job.id, "status": "done", "config": config,
           "task": config["task"], "metrics": {"dev": {"accuracy": 0.5}}, "params": {"student": 7},
           "curves": [], "checksums": {}, "wall_seconds": 2.0}
    path = store.record_path(tmp_path, job)
    store.write_sealed(path, old)
    text = path.read_text()
    record = store.read(path)
    assert path.read_text() == text  # a read never rewrites it
    assert record.id == job.id and record.wall_seconds == 2.0 and record.checksums == {} and record.extra == {}
    assert record.result == JobResult(metrics={"dev": {"accuracy": 0.5}}, param_counts={"student": 7}, curves=[])
    path.write_text(text.replace('"accuracy": 0.5', '"accuracy": 0.6'))
    assert store.read(path) is None and store.record_damage(path).startswith("checksum mismatch")
    failed = Record.from_dict({"config_hash": job.id, "status": "failed", "error": {"message": "x"}})
    assert failed.id == job.id and failed.result is None and failed.extra == {}


def test_the_store_reads_records_without_torch():
    """What `bench status` and `bench report` read through: no torch, no other module of benchmarks."""
    code = ("import sys; sys.modules['torch'] = None\n"
            "from benchmarks import store\n"
            "print(sum(1 for _ in store.records(sys.argv[1])))\n"
            "assert not [m for m in sys.modules if m.startswith('benchmarks.') and m != 'benchmarks.store']")
    root = ROOT / "reports" / "glue-cpu" / "results"
    out = subprocess.run([sys.executable, "-c", code, str(root)], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert int(out.stdout) == len(list(root.glob(store.RECORD_GLOB)))
