"""The `bench` command line: `bench list`, `bench run`.

Exit codes: 0 all jobs done (or skipped); 1 some job failed (its record says why); 2 a usage or configuration
error, printed as one line (a traceback only with --debug).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from kdfd.errors import KdfdError

# a pipe (CI logs) gets a wide table rather than rich's 80-column default
console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)


SHORT = {"accuracy": "acc", "pearson": "pear", "spearman": "spea"}


def _fmt_metrics(metrics: dict | None) -> str:
    if not metrics:
        return "-"
    return " ".join(f"{split + ':' if len(metrics) > 1 else ''}{SHORT.get(k, k)} {100 * v:.1f}"
                    for split, m in metrics.items() for k, v in m.items())


def cmd_list(args) -> int:
    from kdfd.distiller import METHODS, param_fields
    from kdfd.tasks import TASKS

    from . import runner  # noqa: F401  (registers every method)
    from . import suite as suites

    t = Table(title="tasks")
    for col in ("task", "labels", "metrics", "dev splits", "description"):
        t.add_column(col)
    for task in TASKS.values():
        t.add_row(task.name, "regression" if task.labels is None else "/".join(task.labels), ", ".join(task.metrics),
                  ", ".join(task.dev_files), task.description)
    console.print(t)
    t = Table(title="methods")
    for col in ("method", "version", "teacher", "description", "parameters (defaults)"):
        t.add_column(col, overflow="fold")
    for cls in METHODS.values():
        params = ", ".join(f"{n}={d!r}" for n, _, d in param_fields(cls)) or "-"
        needs = cls.needs(cls.Params())
        t.add_row(cls.name, cls.version, needs.teacher, cls.description, params)
    console.print(t)
    t = Table(title="suites")
    for col in ("suite", "jobs", "description"):
        t.add_column(col, overflow="fold")
    for name in suites.available():
        s = suites.load(name)
        t.add_row(name, str(len(s.jobs)), s.description)
    console.print(t)
    return 0


def job_table(suite, results: Path, title: str) -> Table:
    from .runner import is_done

    t = Table(title=title)
    for col in ("#", "id", "task", "job", "seed", "teacher job", "state"):
        t.add_column(col)
    for i, job in enumerate(suite.jobs, 1):
        c = job.config
        t.add_row(str(i), job.id, c.task, job.label, str(c.seed), c.teacher_job or "-",
                  "done" if is_done(results, job) else "to run")
    return t


def cmd_run(args) -> int:
    from . import runner
    from . import suite as suites

    seeds = [int(s) for s in args.seeds] if args.seeds else None
    suite = suites.load(args.suite, tasks=args.tasks, methods=args.methods, seeds=seeds)
    results = Path(args.results)
    n_teacher = sum(j.config.role == "teacher" for j in suite.jobs)
    count = f"{len(suite.jobs)} jobs ({n_teacher} teacher fine-tuning, {len(suite.jobs) - n_teacher} method)"
    if args.dry_run:
        console.print(job_table(suite, results, f"suite {suite.name}: {suite.description}"))
        console.print(count)
        return 0
    console.print(f"suite {suite.name}: {count}; results in {results}")
    outcomes = runner.run_suite(suite, results, glue_dir=args.glue_dir, progress=not args.no_progress)
    t = Table(title=f"suite {suite.name}")
    for col in ("task", "job", "seed", "status", "student dev", "teacher dev", "seconds"):
        t.add_column(col)
    for o in outcomes:
        r = o.record or {}
        status = o.status if o.status != "failed" else f"[red]failed[/red]: {r.get('error', {}).get('message', '')[:80]}"
        t.add_row(o.job.config.task, o.job.label, str(o.job.config.seed), status, _fmt_metrics(r.get("metrics")),
                  _fmt_metrics(r.get("teacher_metrics")), f"{r.get('wall_seconds', 0):.0f}")
    console.print(t)
    failed = [o for o in outcomes if o.status == "failed"]
    if failed:
        console.print(f"{len(failed)} of {len(outcomes)} jobs failed; their records hold the errors")
        return 1
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench", description="kdfd-bench: knowledge distillation benchmarks")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="tasks, methods and suites")
    r = sub.add_parser("run", help="run a suite's jobs, skipping the finished ones")
    r.add_argument("--suite", required=True, help="a suite name (see `bench list`) or a .toml file")
    r.add_argument("--tasks", nargs="+", help="replace the suite's tasks")
    r.add_argument("--methods", nargs="+", help="replace the suite's methods (`all`: every registered method)")
    r.add_argument("--seeds", nargs="+", help="replace the suite's seeds")
    r.add_argument("--glue-dir", default=None, help="GLUE data in the original TSV layout (default: $GLUE_DIR)")
    r.add_argument("--results", default=os.environ.get("KDFD_RESULTS", "results"), help="results root")
    r.add_argument("--dry-run", action="store_true", help="print the job table and count, run nothing")
    r.add_argument("--no-progress", action="store_true", help="no progress bars")
    r.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "list":
            return cmd_list(args)
        if args.seeds:
            bad = [s for s in args.seeds if not s.lstrip("-").isdigit()]
            if bad:
                raise KdfdError(f"seed {bad[0]!r} is not an integer")
        return cmd_run(args)
    except KdfdError as e:
        if args.debug:
            raise
        print(f"bench: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
