import json

from benchmarks import runner
from benchmarks import suite as suites


def test_records_are_written_atomically_and_read_back(tmp_path):
    path = tmp_path / "a" / "b.json"
    runner.write_json(path, {"status": "done", "x": 1})
    assert json.loads(path.read_text()) == {"status": "done", "x": 1}
    assert [p.name for p in path.parent.iterdir()] == ["b.json"]  # no temporary file left behind


def test_only_a_complete_done_record_with_the_same_hash_counts_as_done(tmp_path):
    job = next(j for j in suites.load("smoke").jobs if j.config.method == "finetune" and j.config.role != "teacher")
    path = runner.record_path(tmp_path, job)
    assert not runner.is_done(tmp_path, job)
    runner.write_json(path, {"status": "failed", "config_hash": job.id})
    assert not runner.is_done(tmp_path, job)  # failed jobs are retried
    runner.write_json(path, {"status": "done", "config_hash": "something-else"})
    assert not runner.is_done(tmp_path, job)
    runner.write_json(path, {"status": "done", "config_hash": job.id})
    assert runner.is_done(tmp_path, job)
    path.write_text(path.read_text()[:10])  # a truncated record is redone, never trusted
    assert not runner.is_done(tmp_path, job)


def test_a_teacher_counts_as_done_only_with_its_checkpoint(tmp_path):
    teacher = next(j for j in suites.load("smoke").jobs if j.config.role == "teacher")
    runner.write_json(runner.record_path(tmp_path, teacher), {"status": "done", "config_hash": teacher.id})
    assert not runner.is_done(tmp_path, teacher)
    runner.weights_path(tmp_path, teacher).write_bytes(b"weights")
    assert runner.is_done(tmp_path, teacher)
