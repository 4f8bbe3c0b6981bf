"""The paper's tables as data: their columns, their rows and which of our methods fills which of the paper's rows
(its folder's `tables.toml`, `benchmarks.paper`), and the paper's numbers (`paper_tables.csv`). No torch.

A method fills a table's row only where the tables file names it; a method the file does not name still appears in
the report's every-task table (`report.all_results`).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import tomllib

from kdfd.errors import ConfigError, one_of
from kdfd.tasks import get_task

from . import paper as papers

MAJORITY = "majority"  # the constant predictor's row: the floor of every table (never a run)

TOP_KEYS = ("paper", "column", "table")
COLUMN_KEYS = (("task", "split", "metric", "header"), ("paper_metric",))  # (required, optional)
TABLE_KEYS = (("name", "title", "rows"), ("not_run",))
ROW_KEYS = (("method",), ("paper",))
NOT_RUN_KEYS = (("paper", "why"), ())


@dataclass(frozen=True)
class Column:
    """One column of every table: our dev `split` and `metric` of `task`; `paper_metric`, the metric's name in the
    paper's numbers."""

    task: str
    split: str
    metric: str
    header: str
    paper_metric: str


@dataclass(frozen=True)
class TableSpec:
    name: str
    title: str
    rows: tuple[tuple[str, str | None], ...]  # (our method, the paper's row it fills or None), in the order shown
    not_run: tuple[tuple[str, str], ...] = ()  # (the paper's row, why no method here runs it)

    def paper_row(self, method: str) -> str | None:
        return dict(self.rows).get(method)


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


def _keys(raw, allowed: tuple[tuple[str, ...], tuple[str, ...]], where: str) -> None:
    """A table has its required keys and no other than the optional ones (a typo would be ignored silently)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must be a table, not {raw!r}")
    required, optional = allowed
    for key in required:
        if key not in raw:
            raise ConfigError(f"{where}: missing key {key!r} (needs: {', '.join(required)})")
    extra = sorted(set(raw) - set(required + optional))
    if extra:
        raise ConfigError(f"{where}: {one_of('key', extra[0], required + optional)}")
    for key, value in raw.items():
        if key not in ("rows", "not_run") and (not isinstance(value, str) or not value):
            raise ConfigError(f"{where}: {key} must be a non-empty string, not {value!r}")


def _column(raw, i: int, where: str) -> Column:
    at = f"{where} column #{i + 1}"
    _keys(raw, COLUMN_KEYS, at)
    task = get_task(raw["task"])
    if raw["split"] not in task.dev_files:
        raise ConfigError(f"{at}: {one_of(f'dev split of {task.name}', raw['split'], task.dev_files)}")
    if raw["metric"] not in task.metrics:
        raise ConfigError(f"{at}: {one_of(f'metric of {task.name}', raw['metric'], task.metrics)}")
    return Column(raw["task"], raw["split"], raw["metric"], raw["header"], raw.get("paper_metric", raw["metric"]))


def _table(raw, i: int, where: str, paper_rows: set[tuple[str, str]]) -> TableSpec:
    at = f"{where} table {raw.get('name')!r}" if isinstance(raw, dict) and "name" in raw else f"{where} table #{i + 1}"
    _keys(raw, TABLE_KEYS, at)
    if not isinstance(raw["rows"], list) or not raw["rows"]:
        raise ConfigError(f"{at}: rows must be a non-empty list of {{method = ..., paper = ...}}, not {raw['rows']!r}")
    rows = []
    for row in raw["rows"]:
        _keys(row, ROW_KEYS, f"{at} row {row.get('method') if isinstance(row, dict) else row!r}")
        rows.append((row["method"], row.get("paper")))
    not_run = []
    for row in raw.get("not_run", []):
        _keys(row, NOT_RUN_KEYS, f"{at} not_run")
        not_run.append((row["paper"], row["why"]))
    methods = [m for m, _ in rows]
    dup = next((m for m in methods if methods.count(m) > 1), None)
    if dup is not None:
        raise ConfigError(f"{at}: method {dup!r} has two rows (one row per method)")
    known = sorted({r for t, r in paper_rows if t == raw["name"]})
    for paper in [p for _, p in rows if p] + [p for p, _ in not_run]:
        if (raw["name"], paper) not in paper_rows:  # a misspelt row would show no paper number, silently
            raise ConfigError(f"{at}: {one_of('paper row', paper, known or ['(none in the paper numbers)'])}")
    return TableSpec(raw["name"], raw["title"], tuple(rows), tuple(not_run))


def load(path: str | Path | None = None, paper_csv: str | Path | None = None) -> Reference:
    """The tables file, checked against the paper's numbers (every paper row it names must have numbers there):
    ConfigError with a one-line message otherwise. None: the default paper's (`benchmarks.paper`)."""
    path = Path(path or papers.load().tables)
    where = f"tables file {path}"
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{where}: {e}") from None
    extra = sorted(set(raw) - set(TOP_KEYS))
    if extra:
        raise ConfigError(f"{where}: {one_of('key', extra[0], TOP_KEYS)}")
    for key in TOP_KEYS:
        if key not in raw:
            raise ConfigError(f"{where}: missing key {key!r} (needs: {', '.join(TOP_KEYS)})")
    if not isinstance(raw["paper"], str) or not raw["paper"]:
        raise ConfigError(f"{where}: paper must be a non-empty string, not {raw['paper']!r}")
    numbers = paper_numbers(paper_csv)
    paper_rows = {(t, r) for t, r, *_ in numbers}
    columns = tuple(_column(c, i, where) for i, c in enumerate(raw["column"]))
    tables = [_table(t, i, where, paper_rows) for i, t in enumerate(raw["table"])]
    names = [t.name for t in tables]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup is not None:
        raise ConfigError(f"{where}: table name {dup!r} appears twice (names must be unique: they name the files)")
    return Reference(raw["paper"], columns, {t.name: t for t in tables})


def paper_numbers(path: str | Path | None = None) -> dict[tuple[str, str, str, str], float]:
    """(table, paper row, task, metric) -> value (None: the default paper's). MNLI's metrics are accuracy_matched /
    accuracy_mismatched."""
    with open(path or papers.load().numbers, newline="") as f:
        return {(r["table"], r["method"], r["task"], r["metric"]): float(r["value"]) for r in csv.DictReader(f)}
