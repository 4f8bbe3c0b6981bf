"""Writing files so that nothing already written is lost: a reader (or a resumed job) sees the previous complete
file or the new complete one, never a partial one; a file that does not parse is moved aside, never overwritten.

Integrity: a file's SHA-256 (`digest`) is kept where its reader looks before trusting it: in the record for the
files a record describes (benchmarks.store), or in a sidecar `<name>.sha256` for the files written before any
record exists (checkpoints, teacher caches: `atomic_write(..., checksum=True)`). `damage` says whether a file still
matches; a damaged file is moved aside (`move_aside`), its sidecar with it, and remade by whoever made it.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import re
import zipfile
import zlib
from pathlib import Path
from typing import BinaryIO, Callable, TypeVar

from .faults import crash_point

T = TypeVar("T")


def atomic_write(path: Path, write: Callable[[BinaryIO], None], crash_at: str | None = None,
                 checksum: bool = False) -> None:
    """`write(f)` fills `f`, a binary file open on a temporary beside `path`, which is flushed to disk and renamed
    over `path`. The temporary is `.NAME.PID.tmp`: hidden, and never ending in the target's suffix, so a scan for
    `*.json` or `*.ckpt` never sees a half-written file. `crash_at`: the fault-injection point before the rename.
    `checksum`: the file's SHA-256 goes to its sidecar (`sidecar`): the old sidecar is removed before the rename and
    the new one written after it, so that a process stopped between the two leaves a file with no sidecar, which its
    reader checks by the zip CRCs (`damage`), never one with another file's checksum."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if crash_at:
            crash_point(crash_at)
        digest_of_tmp = _hash_file(tmp) if checksum else None
        if checksum:
            sidecar(path).unlink(missing_ok=True)
        # in the try: Ctrl-C or SIGTERM arrive between two bytecodes, this one too, and no temporary may outlive them
        os.replace(tmp, path)
    except BaseException as e:
        full = _nearly_full(path.parent)  # measured before the temporary's space is given back
        tmp.unlink(missing_ok=True)  # a failed write leaves the previous file and no temporary
        if full and not (isinstance(e, OSError) and e.errno == errno.ENOSPC):
            # torch.save reports a short write as "RuntimeError: ... unexpected pos"; say what it was
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from e
        raise
    if checksum:
        atomic_write(sidecar(path), lambda f: f.write(f"{digest_of_tmp}  {path.name}\n".encode()))


def _nearly_full(folder: Path, margin: int = 1 << 20) -> bool:
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < margin


def move_aside(path: Path) -> Path:
    """Keep an unreadable file as `<name>.corrupt` (a disk fault: writes are atomic) and return where it went; its
    sidecar goes along (`<name>.sha256.corrupt`), so that the file written in its place gets a sidecar of its own."""
    aside = Path(path).with_name(Path(path).name + ".corrupt")
    os.replace(path, aside)
    side = sidecar(path)
    if side.is_file():
        os.replace(side, side.with_name(side.name + ".corrupt"))
    return aside


def load_trusted(path: Path, load: Callable[[Path], T], what: str, then: str) -> T | None:
    """`load(path)` where the file is there and can be trusted (`damage`), else None. A file that is damaged, or that
    `load` rejects (any exception; its message says why), is moved aside, kept for a look and never trusted; the
    line printed names it as `what`, and says what the caller does instead (`then`)."""
    path = Path(path)
    if not path.is_file():
        return None
    why = damage(path)  # the checksum first: flipped bytes in a tensor would load without complaint
    if why is None:
        try:
            return load(path)
        except Exception as e:
            why = str(e) if isinstance(e, ValueError) and str(e) else f"unreadable ({type(e).__name__})"
    moved = move_aside(path)
    print(f"{what} {path} is damaged: {why}; kept as {moved.name}, {then}", flush=True)
    return None


def remove(path: Path) -> None:
    """A file and its sidecar."""
    Path(path).unlink(missing_ok=True)
    sidecar(path).unlink(missing_ok=True)


# ------------------------------------------------------------------------------------------------------ integrity

SIDECAR = ".sha256"


def sidecar(path: Path) -> Path:
    """Where a file's own checksum is kept when no record holds it: `<name>.sha256` (`sha256sum -c` reads it)."""
    return Path(path).with_name(Path(path).name + SIDECAR)


_HEX64 = re.compile("[0-9a-f]{64}")


def _hash_file(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


_digests: dict[tuple, str] = {}  # (path, inode, size, mtime) -> SHA-256: a file is read once per change


def digest(path: Path) -> str:
    """The SHA-256 of a file (hex). Remembered per (path, inode, size, mtime), since callers ask about a teacher's
    weights once per student, and a rewritten or replaced file changes at least one of them."""
    st = os.stat(path)
    key = (str(path), st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _digests:
        _digests[key] = _hash_file(path)
    return _digests[key]


def damage(path: Path, expected: str | None = None, data: bytes | None = None) -> str | None:
    """Why a file cannot be trusted (None: it can): missing, empty, or not matching `expected` (a SHA-256), or, when
    `expected` is None, its sidecar's (a sidecar with no digest in it is damage too). A file with neither (written
    before checksums existed) is checked by its zip archive's own CRC-32s: every file this applies to is one
    (torch.save, np.savez), and torch.load would read a tensor with flipped bytes without a word. `data`: the file's
    bytes, where the caller has read them already (then judged, not read again)."""
    path = Path(path)
    try:
        size = path.stat().st_size if data is None else len(data)
    except FileNotFoundError:
        return "missing"
    except OSError as e:
        return f"unreadable ({e.strerror})"
    if not size:
        return "empty"
    if expected is None:
        try:
            expected = sidecar(path).read_text()[:64]
        except FileNotFoundError:
            return _zip_damage(path) if data is None else _archive_damage(io.BytesIO(data))
        except (OSError, ValueError):  # ValueError: not UTF-8
            expected = ""
        # written whole or not at all (atomic_write): a sidecar without a digest is damaged, and so is its file's trust
        if not _HEX64.fullmatch(expected):
            return f"its checksum file {sidecar(path).name} is damaged"
    try:
        got = digest(path) if data is None else hashlib.sha256(data).hexdigest()
    except OSError as e:
        return f"unreadable ({e.strerror})"
    return None if got == expected else f"checksum mismatch (sha256 {got[:12]}..., recorded {expected[:12]}...)"


_zip_checked: dict[tuple, str | None] = {}


def _zip_damage(path: Path) -> str | None:
    st = os.stat(path)
    key = (str(path), st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _zip_checked:
        _zip_checked[key] = _archive_damage(path)
    return _zip_checked[key]


def _archive_damage(archive: Path | BinaryIO) -> str | None:
    """Why a zip archive (a path, or its bytes as a file object) fails its members' CRC-32s (None: they hold)."""
    try:
        with zipfile.ZipFile(archive) as z:
            bad = z.testzip()
        return None if bad is None else f"CRC mismatch in its member {bad}"
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError) as e:
        return f"not a complete archive ({type(e).__name__})"
