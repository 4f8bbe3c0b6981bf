"""Writing files so that nothing already written is lost: a reader (or a resumed job) sees the previous complete
file or the new complete one, never a partial one; a file that does not parse is moved aside, never overwritten."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from .faults import crash_point


def atomic_write(path: Path, write: Callable[[Path], None], crash_at: str | None = None) -> None:
    """`write(tmp)` fills a temporary file beside `path` (`.NAME.PID.tmpSUFFIX`, so suffix-minded writers such as
    NumPy keep it), which is then renamed over `path`. `crash_at`: the fault-injection point between the two."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{path.suffix}")
    write(tmp)
    if crash_at:
        crash_point(crash_at)
    os.replace(tmp, path)


def move_aside(path: Path) -> Path:
    """Keep an unreadable file as `<name>.corrupt` (a disk fault: writes are atomic) and return where it went."""
    aside = Path(path).with_name(Path(path).name + ".corrupt")
    os.replace(path, aside)
    return aside
