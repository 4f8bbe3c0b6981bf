"""Writing files so that nothing already written is lost: a reader (or a resumed job) sees the previous complete
file or the new complete one, never a partial one; a file that does not parse is moved aside, never overwritten."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import BinaryIO, Callable

from .faults import crash_point


def atomic_write(path: Path, write: Callable[[BinaryIO], None], crash_at: str | None = None) -> None:
    """`write(f)` fills `f`, a binary file open on a temporary beside `path`, which is flushed to disk and renamed
    over `path`. The temporary is `.NAME.PID.tmp`: hidden, and never ending in the target's suffix, so a scan for
    `*.json` or `*.ckpt` never sees a half-written file. `crash_at`: the fault-injection point before the rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
    except BaseException as e:
        full = _nearly_full(path.parent)  # measured before the temporary's space is given back
        tmp.unlink(missing_ok=True)  # a failed write leaves the previous file and no temporary
        if full and not (isinstance(e, OSError) and e.errno == errno.ENOSPC):
            # torch.save reports a short write as "RuntimeError: ... unexpected pos"; say what it was
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from e
        raise
    if crash_at:
        crash_point(crash_at)
    os.replace(tmp, path)


def _nearly_full(folder: Path, margin: int = 1 << 20) -> bool:
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < margin


def move_aside(path: Path) -> Path:
    """Keep an unreadable file as `<name>.corrupt` (a disk fault: writes are atomic) and return where it went."""
    aside = Path(path).with_name(Path(path).name + ".corrupt")
    os.replace(path, aside)
    return aside
