"""The paper's tables as data: their columns, their rows and which of our methods fills which of the paper's rows
(its folder's `tables.toml`, `benchmarks.paper`), and the paper's numbers (`paper_tables.csv`). No torch.

A method fills a table's row only where the tables file names it; a method the file does not name still appears in
the report's every-task table (`report.all_results`).
"""

from __future__ import annotations

import csv
import dataclasses
from dataclasses import dataclass
from pathlib import Path

from kdfd.config import build, nonempty, read_toml
from kdfd.errors import ConfigError, one_of
from kdfd.tasks import get_task

from . import paper as papers

MAJORITY = "majority"  # the constant predictor's row: the floor of every table (never a run)


@dataclass(frozen=True)
class Column:
    """One column of every table: our dev `split` and `metric` of `task`; `paper_metric`, the metric's name in the
    paper's numbers (unset: `metric`)."""

    task: str = nonempty()
    split: str = nonempty()
    metric: str = nonempty()
    header: str = nonempty()
    paper_metric: str | None = nonempty(None)

    def __post_init__(self):
        task = get_task(self.task)
        if self.split not in task.dev_files:
            raise ConfigError(one_of(f"dev split of {task.name}", self.split, task.dev_files))
        if self.metric not in task.metrics:
            raise ConfigError(one_of(f"metric of {task.name}", self.metric, task.metrics))
        if self.paper_metric is None:
            object.__setattr__(self, "paper_metric", self.metric)


class Unpacks:
    """A dataclass that unpacks as its fields, in order: the report reads a table's rows as pairs."""

    def __iter__(self):
        return iter([getattr(self, f.name) for f in dataclasses.fields(self)])


@dataclass(frozen=True)
class Row(Unpacks):
    """A row of a table: our method, and the paper's row it fills (None: a row of ours alone)."""

    method: str = nonempty()
    paper: str | None = nonempty(None)


@dataclass(frozen=True)
class NotRun(Unpacks):
    """A row of the paper no method here runs, and why."""

    paper: str = nonempty()
    why: str = nonempty()


@dataclass(frozen=True)
class TableSpec:
    name: str = nonempty()
    title: str = nonempty()
    rows: tuple[Row, ...]  # in the order shown
    not_run: tuple[NotRun, ...] = ()

    def __post_init__(self):
        if not self.rows:
            raise ConfigError("rows must be a non-empty list of {method = ..., paper = ...}")
        methods = [r.method for r in self.rows]
        dup = next((m for m in methods if methods.count(m) > 1), None)
        if dup is not None:
            raise ConfigError(f"method {dup!r} has two rows (one row per method)")

    def paper_row(self, method: str) -> str | None:
        return dict(self.rows).get(method)


@dataclass(frozen=True)
class TablesFile:
    """A paper's `tables.toml`: where its numbers come from, the columns every table has, and the tables."""

    paper: str = nonempty()
    column: tuple[Column, ...]
    table: tuple[TableSpec, ...]

    def __post_init__(self):
        names = [t.name for t in self.table]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup is not None:
            raise ConfigError(f"table name {dup!r} appears twice (names must be unique: they name the files)")


@dataclass(frozen=True)
class Reference:
    paper: str  # where the paper's numbers come from, for the captions
    columns: tuple[Column, ...]
    tables: dict[str, TableSpec]

    @property
    def headers(self) -> list[str]:
        return [c.header for c in self.columns]

    def paper_row(self, method: str) -> str | None:
        """The paper's row a method fills, in the first table that maps it (the every-task table's label)."""
        return next((t.paper_row(method) for t in self.tables.values() if t.paper_row(method)), None)

    def method_order(self) -> list[str]:
        """Every method the tables name, in their order (first table first), the majority row left out."""
        order = [m for t in self.tables.values() for m, _ in t.rows if m != MAJORITY]
        return list(dict.fromkeys(order))


def load(path: str | Path | None = None, paper_csv: str | Path | None = None) -> Reference:
    """The tables file, checked against the paper's numbers (every paper row it names must have numbers there):
    ConfigError with a one-line message otherwise. None: the default paper's (`benchmarks.paper`)."""
    path = Path(path or papers.load().tables)
    where = f"tables file {path}"
    file = build(TablesFile, read_toml(path, where), where)
    paper_rows = {(t, r) for t, r, *_ in paper_numbers(paper_csv)}
    for table in file.table:
        known = sorted({r for t, r in paper_rows if t == table.name})
        for paper in [p for _, p in table.rows if p] + [p for p, _ in table.not_run]:
            if (table.name, paper) not in paper_rows:  # a misspelt row would show no paper number, silently
                raise ConfigError(f"{where}: table {table.name!r}: "
                                  f"{one_of('paper row', paper, known or ['(none in the paper numbers)'])}")
    return Reference(file.paper, file.column, {t.name: t for t in file.table})


def paper_numbers(path: str | Path | None = None) -> dict[tuple[str, str, str, str], float]:
    """(table, paper row, task, metric) -> value (None: the default paper's). MNLI's metrics are accuracy_matched /
    accuracy_mismatched."""
    with open(path or papers.load().numbers, newline="") as f:
        return {(r["table"], r["method"], r["task"], r["metric"]): float(r["value"]) for r in csv.DictReader(f)}
