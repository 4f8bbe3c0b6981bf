"""`bench collect`: what a repository keeps of a run, copied out of its results root."""

from benchmarks import store
from benchmarks import suite as suites

from .helpers import bench, tiny_suite


def test_collect_copies_done_records_and_representations_never_weights_and_only_once(tmp_path):
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
    assert "2 done records" in out.stdout and "2 new or changed" in out.stdout
    copied = sorted(p.relative_to(into) for p in into.rglob("*") if p.is_file())
    assert copied == sorted(p.relative_to(run) for p in (store.record_path(run, teacher), store.record_path(run, done),
                                                         store.artifacts_path(run, done)))
    again = bench("collect", "--suite", str(path), "--results", str(run), "--into", str(into))
    assert "0 new or changed" in again.stdout
