"""The records a command reads, each file read at most once: records, and the representations saved beside them.

A `bench report` asks about one record many times over: to collect its suite's groups, to widen the suite by the
methods run on it since, to caption and draw its figures, to add up its cost, and to name the damaged files at the
end. A `RecordSet` built once per command answers all of these from its first read of each file: a record as
`store.load` judged it, a companion file (.npz, .test.npz) as its bytes gave its checksum verdict, its arrays and
its SHA-256. It only reads; a file changed while the command runs is seen as it was first read.

    records = RecordSet([Path("reports/glue-cpu/results")])
    root, record = records.find(job)      # the job's record: the first done one over the roots, else the first
    arrays = records.representations(path)

This module is the report's one reader of record files; what a record holds is `store.Record`'s to say.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from kdfd import files

from . import store
from .store import Record


@dataclass(frozen=True)
class Companion:
    """What one read of a file beside a record gave: why it cannot be trusted (None: it can), its arrays (None:
    damaged, absent, or no array file) and its SHA-256 (None: not read)."""

    why: str | None
    arrays: dict | None = None
    digest: str | None = None


class RecordSet:
    """Every record and companion file under `roots` that a command asks for, read on first asking and kept."""

    def __init__(self, roots):
        self.roots = [Path(r) for r in roots]
        self._records: dict[Path, tuple[Record | None, str | None]] = {}
        self._companions: dict[tuple[Path, str | None], Companion] = {}

    # ------------------------------------------------------------------------------------------------ records

    def load(self, path: Path) -> tuple[Record | None, str | None]:
        """The record at `path` and, where it is None, why (`store.load`)."""
        path = Path(path)
        if path not in self._records:
            self._records[path] = store.load(path)
        return self._records[path]

    def read(self, path: Path | None) -> Record | None:
        """The record at `path`, or None (missing, damaged, or no path)."""
        return None if path is None else self.load(path)[0]

    def find(self, job) -> tuple[Path | None, Record | None]:
        """(root, record) of the job's record under the first root holding a done one, else under the first root
        holding any (a failed one), else (None, None). Only a record of this very job (same id) is its record."""
        found = [(root, r) for root in self.roots
                 if (r := self.read(store.record_path(root, job))) is not None and r.id == job.id]
        return next((f for f in found if f[1].done), found[0] if found else (None, None))

    def under(self, root: Path) -> list[tuple[Path, Record]]:
        """Every readable record under `root`, in path order (`store.records`)."""
        return list(store.records(root, read=self.read))

    # -------------------------------------------------------------------------------------------- companions

    def companion(self, path: Path, suffix: str) -> Companion:
        """The file with `suffix` beside the record at `path`, judged against the checksum its record keeps."""
        file = store.companion(path, suffix)
        return self._companion(file, store.expected_checksum(self.read(path), suffix))

    def _companion(self, file: Path, expected: str | None) -> Companion:
        key = (file, expected)
        if key not in self._companions:
            if not file.is_file() or file.suffix != ".npz":  # missing, or a teacher's weights: never kept in memory
                self._companions[key] = Companion(files.damage(file, expected))
            else:
                data = file.read_bytes()
                why = files.damage(file, expected, data)
                self._companions[key] = Companion(why, store.arrays_of(data) if why is None else None,
                                                  hashlib.sha256(data).hexdigest())
        return self._companions[key]

    def damage(self, file: Path, expected: str | None = None) -> str | None:
        """`files.damage` of a file, from the set's one read of it (`store.damaged`'s `reader`)."""
        return self._companion(Path(file), expected).why

    def representations(self, path: Path) -> dict | None:
        """The arrays of the representations saved beside the record at `path` (`store.representations`)."""
        return self.companion(path, ".npz").arrays

    def predictions(self, path: Path) -> dict | None:
        """The arrays of the test-set predictions saved beside the record at `path` (`store.predictions`)."""
        return self.companion(path, ".test.npz").arrays

    def digest(self, path: Path, suffix: str = ".npz") -> str | None:
        """The SHA-256 of the file with `suffix` beside the record at `path` (None: there is none)."""
        return self.companion(path, suffix).digest

    # ------------------------------------------------------------------------------------------------ damage

    def damaged(self, jobs, suites) -> list[store.Damaged]:
        """`store.damaged` over every root, for `jobs` and the suites named `suites`, from the set's reads."""
        return [d for root in self.roots for d in store.damaged(root, jobs, suites=suites, reader=self)]
