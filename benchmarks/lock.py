"""One lock per job, so that two `bench run` processes (or a local run beside SLURM tasks) on one results root never
run the same job twice.

An advisory `flock` on `<record>.lock`: the kernel drops it when its process dies (kill -9 included), so a crashed
run never leaves a job locked. Over NFS, Linux maps flock onto POSIX byte-range locks, which NFSv4 supports.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class JobLock:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.fd: int | None = None

    def acquire(self, block: bool, mark: bool = True) -> bool:
        """Take the lock; without `block`, return False at once when another process holds it. `mark` writes this
        process's pid and host into the file (a probe from `bench status` leaves it as it is)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if block else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return False
        if mark:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()} {os.uname().nodename}\n".encode())  # who holds it, for a person looking
        self.fd = fd
        return True

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()
