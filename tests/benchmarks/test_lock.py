import subprocess
import sys
import time

from benchmarks.lock import JobLock


def test_a_held_lock_refuses_a_second_holder_until_released(tmp_path):
    path = tmp_path / "job.lock"
    first, second = JobLock(path), JobLock(path)
    assert first.acquire(block=False)
    assert not second.acquire(block=False)
    first.release()
    assert second.acquire(block=False)
    second.release()


def test_a_killed_holder_leaves_the_lock_free(tmp_path):
    path = tmp_path / "job.lock"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from benchmarks.lock import JobLock; "
        f"assert JobLock({str(path)!r}).acquire(block=False); print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert not JobLock(path).acquire(block=False)
        holder.kill()  # SIGKILL: no cleanup runs
        holder.wait(timeout=10)
        deadline = time.time() + 5
        lock = JobLock(path)
        while not lock.acquire(block=False):
            assert time.time() < deadline, "the kernel did not drop a dead process's lock"
            time.sleep(0.05)
        lock.release()
    finally:
        holder.kill()
