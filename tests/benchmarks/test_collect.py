"""`bench collect`: what a repository keeps of a run, copied out of its results root."""

from benchmarks import store
from benchmarks import suite as suites

from .helpers import bench, tiny_suite


def test_collect_copies_done_records_and_representations_never_weights_and_never_over_a_done_record(tmp_path):
    path = tmp_path / "kd.toml"
    path.write_text(tiny_suite(methods=("vanilla-kd",), seeds=(1, 2), methods_tables=""))
    jobs = suites.load(str(path)).jobs
    teacher = next(j for j in jobs if j.config.role == "teacher")
    done, failed = [j for j in jobs if j.config.role != "teacher"]
    run, into = tmp_path / "run", tmp_path / "committed"
    for job, status in ((teacher, "done"), (done, "done"), (failed, "failed")):
        store.write_json(store.record_path(run, job), {"status": status, "config_hash": job.id, "id": job.id})
    store.weights_path(run, teacher).write_bytes(b"weights")
    store.artifacts_path(run, done).write_bytes(b"npz")

    out = bench("collect", "--suite", str(path), "--results", str(run), "--into", str(into))
    assert out.returncode == 0, out.stderr
    assert "2 done records" in out.stdout and "2 copied" in out.stdout
    copied = sorted(p.relative_to(into) for p in into.rglob("*") if p.is_file())
    assert copied == sorted(p.relative_to(run) for p in (store.record_path(run, teacher), store.record_path(run, done),
                                                         store.artifacts_path(run, done)))
    # a teacher retrained elsewhere writes its record again (other timings): the committed one stays
    store.write_json(store.record_path(run, teacher), {"status": "done", "config_hash": teacher.id, "id": teacher.id,
                                                       "wall_seconds": 1.0})
    again = bench("collect", "--suite", str(path), "--results", str(run), "--into", str(into))
    assert "0 copied" in again.stdout
    assert "wall_seconds" not in store.record_path(into, teacher).read_text()
