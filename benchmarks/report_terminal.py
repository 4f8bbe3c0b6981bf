"""`bench report`'s terminal output: the paper's tables, the every-method table (the one a new method appears in),
the verdicts of the pre-registered claims and what was read; it prints what `report_analysis.Analysis` holds."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from . import verdicts
from .report_analysis import Analysis
from .report_writer import frame as text_frame
from .report_writer import markdown, rows_of


def show(console: Console, a: Analysis) -> None:
    for name, df in a.tables.items():
        rows = rows_of(df, a.reference.headers)
        t = Table(title=f"{a.reference.tables[name].title} (dev, mean over seeds; paper in brackets)")
        t.add_column("method")
        shown = [i for i in range(len(a.reference.columns)) if any(r["cells"][i]["mean"] is not None for r in rows)]
        for i in shown:
            t.add_column(a.reference.columns[i].header)
        for r in rows:
            cells = [r["cells"][i] for i in shown]
            t.add_row(r["method"], *[(f"{c['mean']:.1f}" if c["mean"] is not None else "-")
                                     + (f" [{c['paper']:.1f}]" if c["paper"] is not None else "") for c in cells])
        if shown:
            console.print(t)
    # every method with records, those no reference table has a row for too (a method added in one file)
    console.print("Every task and method (the selected configuration of each; mean ± std (n) over seeds)",
                  markup=False)
    console.print(markdown(text_frame(a.every)), soft_wrap=True, markup=False)
    t = Table(title="Verdicts of the pre-registered claims, family-wise (ours: mean paired difference "
                    "[simultaneous interval]; report.md has the exploratory rows)")
    for column in ("claim", "scope", "ours", "n", "verdict"):
        t.add_column(column)
    for row in verdicts.terminal_rows(a.verdicts):
        t.add_row(*row)
    console.print(t)
    console.print(verdicts.summary(a.verdicts).replace("**", ""))
    collected = a.collected
    console.print(f"{sum(len(g.runs) for g in collected.groups)} done records; {len(collected.failed)} failed and "
                  f"{len(collected.missing)} not run, left out (listed in the report); checkpoint: {a.checkpoint}")
