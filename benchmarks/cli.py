"""The `bench` command line: `bench list`, `bench run`, `bench status`, `bench wait`, `bench cancel`, `bench report`,
`bench prefetch`, `bench speed` (benchmarks/speed.py).

Exit codes: 0 all jobs done (or skipped, or submitted); 1 some job failed (its record says why), `bench report`
found no record of the suite, or `bench status` / `wait` / `cancel` / `report` / `results` found damaged files (one
line each, then a count; the next `bench run` moves them aside and redoes their jobs); 2 a usage or configuration
error, printed as one line (a traceback only with --debug); 3 a SLURM command failed or is missing (sacct, sbatch,
scancel): the cluster, not the input; 130 interrupted (Ctrl-C), 143 terminated (SIGTERM), with one line saying how
to resume.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import signal
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from kdfd.errors import ExternalError, KdfdError

from .options import DEVICES

# a pipe (CI logs) gets a wide table rather than rich's 80-column default
console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)


class ProgressSafe(logging.Handler):
    """Log lines on standard error through tqdm, so that a progress bar showing on the terminal is redrawn below
    them rather than cut; warnings and errors say so (`bench: warning: ...`)."""

    def emit(self, record):
        from tqdm.auto import tqdm

        try:
            text = self.format(record)
            if record.levelno >= logging.WARNING:
                text = f"bench: {record.levelname.lower()}: {text}"
            tqdm.write(text, file=sys.stderr)
        except Exception:
            self.handleError(record)


def setup_logging(quiet: bool, verbose: bool) -> None:
    """The `benchmarks` and `kdfd` loggers at INFO (a line per finished job), WARNING with -q, DEBUG with -v."""
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    handler = ProgressSafe()
    handler.setFormatter(logging.Formatter("%(message)s"))
    for name in ("benchmarks", "kdfd"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.setLevel(level)
        logger.propagate = False


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("kdfd-bench")
    except PackageNotFoundError:  # run from a checkout without `pip install -e .`
        return "unknown (not installed)"


SHORT = {"accuracy": "acc", "pearson": "pear", "spearman": "spea"}


def plural(n: int, word: str) -> str:
    """`1 job`, `2 jobs`."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def require_roots(*roots) -> None:
    """A command that reads results roots names one that does not exist, rather than reading it as empty."""
    for root in roots:
        if not Path(root).is_dir():
            what = "is not a folder" if Path(root).exists() else "does not exist"
            raise KdfdError(f"results root {root} {what} (see --results, or KDFD_RESULTS)")


def name_damaged(found) -> int:
    """Each damaged file (benchmarks.store.damaged) as one line on stderr, then their count; returns the count."""
    for d in found:
        print(f"bench: damaged: {d.line()}", file=sys.stderr)
    if found:
        print(f"bench: {plural(len(found), 'damaged file')}; the next `bench run` moves each aside (.corrupt) and "
              "redoes the job that made it", file=sys.stderr)
    return len(found)


def _fmt_metrics(metrics: dict | None) -> str:
    if not metrics:
        return "-"
    return " ".join(f"{split + ':' if len(metrics) > 1 else ''}{SHORT.get(k, k)} {100 * v:.1f}"
                    for split, m in metrics.items() for k, v in m.items())


def cmd_list(args) -> int:
    from kdfd.distiller import needs_of, param_fields
    from kdfd.registry import load_methods
    from kdfd.tasks import TASKS

    t = Table(title="tasks")
    for col in ("task", "labels", "metrics", "dev splits", "description"):
        t.add_column(col)
    for task in TASKS.values():
        t.add_row(task.name, "regression" if task.labels is None else "/".join(task.labels), ", ".join(task.metrics),
                  ", ".join(task.dev_files), task.description)
    console.print(t)
    t = Table(title="methods")
    for col in ("method", "version", "teacher", "description", "parameters (defaults)", "module"):
        t.add_column(col, overflow="fold")
    for cls in load_methods().values():
        params = ", ".join(f"{n}={d!r}" for n, _, d in param_fields(cls)) or "-"
        needs = needs_of(cls, cls.Params())
        t.add_row(cls.name, cls.version, needs.teacher, cls.description, params, cls.__module__)
    console.print(t)
    console.print(suite_table(Path(args.results)))
    return 0


def suite_table(results: Path) -> Table:
    """The suites from their files, none expanded (nor torch imported): a suite's job count is its cached expansion's
    under `results` (`bench run` keeps one), where there is a fresh one."""
    from . import suite_cache, suite_file

    t = Table(title=f"suites (jobs: as last expanded under {results}; `bench run --suite S --dry-run` counts any)")
    for col in ("suite", "jobs", "description"):
        t.add_column(col, overflow="fold")
    for name in suite_file.available():
        n = suite_cache.job_count(results, name)
        description = suite_file.read_raw(suite_file.suite_path(name)).get("description", "")
        t.add_row(name, "-" if n is None else str(n), description)
    return t


def job_table(suite, results: Path, title: str) -> Table:
    from .runner import code_changes
    from .store import is_done

    stale = {i for change in code_changes(suite, results) for i in change.ids}
    t = Table(title=title)
    for col in ("#", "id", "task", "job", "seed", "teacher job", "state"):
        t.add_column(col, overflow="fold")
    for i, job in enumerate(suite.jobs, 1):
        c = job.config
        t.add_row(str(i), job.id, c.task, job.label, str(c.seed), c.teacher_job or "-",
                  "stale" if job.id in stale else "done" if is_done(results, job) else "to run")
    return t


def load_suite(args, name: str | None = None, cached_in: list[Path] = ()):
    """The suite of `--suite` (or `name`) with the command line's task, method and seed overrides. `cached_in`:
    results roots whose fresh cached expansion (benchmarks.suite_cache) is taken instead, so that reading results
    imports no method (nor torch)."""
    from . import suite_cache

    for root in cached_in:
        cached = suite_cache.load(root, name or args.suite, **overrides(args, name))
        if cached is not None:
            return cached
    try:
        import torch  # noqa: F401 (the methods need it to expand the suite)
    except ImportError:
        where = ", ".join(str(r) for r in cached_in) or "no results root"
        raise ExternalError(f"suite {name or args.suite!r} has no current expansion kept under {where} (`bench run` "
                            f"keeps one), and expanding it needs torch, which does not import here") from None
    from kdfd.registry import load_methods

    from . import suite as suites

    load_methods()
    return suites.load(name or args.suite, **overrides(args, name))


def overrides(args, name: str | None = None) -> dict:
    """The command line's task, method and seed lists, as `benchmarks.suite.load` takes them."""
    seeds = [int(s) for s in args.seeds] if args.seeds else None
    return {"tasks": args.tasks, "methods": None if name else args.methods, "seeds": seeds}


def cmd_run(args) -> int:
    from kdfd.result import JobResult

    from . import runner
    from .store import Record

    if args.workers < 1 or (args.workers != 1 and args.executor != "local"):
        raise KdfdError(f"--workers {args.workers} is not allowed (a local run's processes: >= 1; SLURM runs each "
                        "job in its own task)")
    if args.workers != 1 and args.nproc != 1:
        raise KdfdError(f"--workers {args.workers} with --nproc {args.nproc} is not allowed: --workers runs several "
                        "jobs at once, --nproc one job over several processes (GPUs); give one of them")
    suite = load_suite(args)
    results = Path(args.results)
    n_teacher = sum(j.config.role == "teacher" for j in suite.jobs)
    count = f"{plural(len(suite.jobs), 'job')} ({n_teacher} teacher fine-tuning, {len(suite.jobs) - n_teacher} method)"
    ctx = run_context(args, suite)  # the dry run checks the flags as the run does
    if args.dry_run:
        from . import plan

        if args.list_jobs:
            console.print(job_table(suite, results, f"suite {suite.name}: {suite.description}"))
        else:
            console.print(f"suite {suite.name}: {suite.description} (every job, its id and state: --list-jobs)",
                          soft_wrap=True, markup=False)
        for line in plan.summary(suite, ctx, args.workers):  # the plan, ending with its cost
            console.print(line, soft_wrap=True, markup=False)
        return 0
    for change in runner.check_code(suite, results, accept=args.accept_code_changes):
        console.print(f"accepted the code change of {change.describe()}: those records stand as done (kept in "
                      f"{results / runner.CODE_ACCEPTED})")
    from . import suite_cache

    def keep_expansion():  # for `bench status` and `bench report` without torch
        suite_cache.save(results, suite, suite_cache.key(args.suite, **overrides(args)))

    if ctx.executor == "slurm":
        return submit(args, suite, ctx, count, keep_expansion)
    if not args.quiet:
        console.print(f"suite {suite.name}: {count}; results in {results}")
    if args.workers != 1:
        outcomes = runner.run_workers(suite, ctx, args.workers, checked=keep_expansion)
    else:
        outcomes = runner.run_suite(suite, ctx, checked=keep_expansion)
    t = Table(title=f"suite {suite.name}")
    for col in ("task", "job", "seed", "status", "student dev", "teacher dev", "seconds"):
        t.add_column(col, overflow="fold")  # a job's grid point is the end of its label: never cut off
    for o in outcomes:
        r = o.record or Record(id=None)
        result = r.result or JobResult()
        status = (o.status if o.status != "failed" else f"[red]failed[/red]: {(r.error or {}).get('message', '')[:80]}")
        t.add_row(o.job.config.task, o.job.label, str(o.job.config.seed), status, _fmt_metrics(result.metrics),
                  _fmt_metrics(result.teacher_metrics), f"{r.wall_seconds or 0:.0f}")
    console.print(t)
    failed = [o for o in outcomes if o.status in ("failed", "not run")]
    if failed:
        console.print(f"{len(failed)} of {plural(len(outcomes), 'job')} failed; their records hold the errors")
        return 1
    return 0


def run_context(args, suite):
    """`bench run`'s flags as the one object the runner and the SLURM executor take (benchmarks.options). The suite's
    `[slurm]` table with the flags on top gives the SLURM resources and, under either executor, the GPUs a job asks
    for (a GPU suite run locally must find one: runner.check_gpus)."""
    from kdfd.events import parse_report_to

    from . import slurm
    from .options import SLURM_FIELDS, RunContext

    opts = slurm.options(suite, {f: getattr(args, f) for f in SLURM_FIELDS if hasattr(args, f)})
    # bars only on a terminal: in a log file their redraws pile up; the runner logs a line per job either way
    bars = not args.no_progress and not getattr(args, "quiet", False) and sys.stderr.isatty()
    return RunContext(results=Path(args.results), glue_dir=args.glue_dir, checkpoint_every=args.checkpoint_every,
                      deterministic=args.deterministic, progress=bars, tensorboard=args.tensorboard,
                      report_to=parse_report_to(args.report_to),
                      executor=args.executor, slurm=opts, jobs_per_task=args.jobs_per_task, gpus=opts.gpus,
                      device=args.device, nproc=args.nproc)


def submit(args, suite, ctx, count: str, checked=None) -> int:
    from . import slurm

    new = slurm.submit(suite, ctx, checked)
    tasks = len(set(new.values()))
    console.print(f"suite {suite.name}: {count}; submitted {len(new)} jobs as {tasks} SLURM tasks "
                  f"({len(suite.jobs) - len(new)} done or already queued); results in {ctx.results}")
    # the lists the suite was run with: status and wait expand the same jobs; quoted for a shell
    flags = ["--suite", args.suite, *[x for name in ("tasks", "methods", "seeds") if getattr(args, name)
                                      for x in (f"--{name}", *getattr(args, name))]]
    if args.results != os.environ.get("KDFD_RESULTS", "results"):
        flags += ["--results", str(args.results)]
    console.print(f"follow them with `bench status {shlex.join(flags)}` or `bench wait {shlex.join(flags)}`")
    return 0


def status_table(items, title: str) -> Table:
    t = Table(title=title)
    for col in ("task", "job", "seed", "state", "slurm id", "student dev", "error"):
        t.add_column(col, overflow="fold")
    colour = {"done": "green", "failed": "red", "running": "yellow", "stale": "magenta"}
    for s in items:
        c = s.job.config
        state = f"[{colour[s.state]}]{s.state}[/]" if s.state in colour else s.state
        t.add_row(c.task, s.job.label, str(c.seed), state, s.slurm_id or "-",
                  _fmt_metrics(s.record.result.metrics) if s.state in ("done", "stale") else "-",
                  (s.error or "")[:100])
    return t


def cmd_status(args) -> int:
    from rich.markdown import Markdown

    from . import cost, status, store

    require_roots(args.results)
    suite = load_suite(args, cached_in=[Path(args.results)])
    pending = []
    if suite.select is not None:  # the jobs the held-out choices made so far keep
        import dataclasses

        from . import selection

        jobs, pending = selection.narrow(suite.jobs, suite.select, [Path(args.results)])
        suite = dataclasses.replace(suite, jobs=jobs)
    sacct_error = None
    try:
        items = status.states(suite, Path(args.results))
    except ExternalError as e:  # the records and locks still say what they know; the table shows the rest as unknown
        sacct_error = e
        items = status.states(suite, Path(args.results), sacct=False)
    console.print(status_table(items, f"suite {suite.name}"))
    console.print(", ".join(f"{n} {k}" for k, n in status.counts(items).items()))
    if pending:
        console.print(f"{len(pending)} grid choices wait for their tuning jobs (the held-out selection): the other "
                      "seeds and arms of " + ", ".join(f"{c.row} on {c.task}" for c in pending)
                      + " join once made, and are not counted here")
    left = [(s.job.config.task, s.job.label) for s in items if s.state not in status.FINAL]
    if left:  # what is not done yet, at what the done jobs cost (a running job counted whole)
        # a done record whose files are absent or damaged measured its job all the same
        spent = cost.records_frame(s.record for s in items if s.record is not None and s.record.done)
        console.print(Markdown(" ".join(cost.to_finish(spent, left))))
    running = {s.job.id for s in items if s.state == "running"}
    damaged = name_damaged(store.damaged(Path(args.results), suite.jobs, running, [suite.name]))
    if sacct_error is not None:
        print(f"bench: warning: {sacct_error}: SLURM tasks without a record are shown as unknown", file=sys.stderr)
        return 3
    return 1 if damaged or any(s.state == "failed" for s in items) else 0


def cmd_wait(args) -> int:
    import time

    from tqdm.auto import tqdm

    from . import status, store

    require_roots(args.results)
    suite = load_suite(args)
    results = Path(args.results)
    # without a terminal (CI, SLURM logs, nohup) a bar's frames pile up in the log: a line when the counts change
    lines = not args.no_progress and not sys.stderr.isatty()
    bar = tqdm(total=len(suite.jobs), desc=f"suite {suite.name}", unit="job", disable=args.no_progress or lines)
    last = None
    while True:
        items = status.states(suite, results)
        n = status.counts(items)
        bar.n = n.get("done", 0) + n.get("stale", 0) + n.get("failed", 0)
        bar.set_postfix(n, refresh=True)
        if lines and n != last:
            print(f"suite {suite.name}: " + ", ".join(f"{v} {k}" for k, v in n.items()), file=sys.stderr, flush=True)
            last = n
        if not any(s.state in ("running", "pending") for s in items):
            break
        time.sleep(args.poll)
    bar.close()
    console.print(status_table(items, f"suite {suite.name}"))
    damaged = name_damaged(store.damaged(results, suite.jobs, suites=[suite.name]))
    return 1 if damaged or n.get("failed") else 0


def cmd_cancel(args) -> int:
    from . import slurm, store

    require_roots(args.results)
    suite = load_suite(args)
    ids = slurm.cancel(Path(args.results), suite)
    console.print(f"cancelled {len(ids)} SLURM tasks" + (f": {' '.join(ids)}" if ids else ""))
    # a damaged submission list names no task to cancel: said, so that `squeue` is looked at
    return 1 if name_damaged(store.damaged(args.results, [], suites=[suite.name])) else 0


def cmd_report(args) -> int:
    from . import paper as papers
    from . import report, report_analysis, report_terminal, report_writer, selection, suite_file
    from .record_set import RecordSet

    roots = [Path(args.results), *[Path(r) for r in args.also or []]]
    require_roots(*roots)
    records = RecordSet(roots)  # every record and representations file of this report, each read once
    suite = load_suite(args, cached_in=roots)
    if not args.methods:  # every method run on the suite, those added after it was written too
        suite = report.widen(suite, records, args.tasks, [int(s) for s in args.seeds] if args.seeds else None)
    collected = report.collect(suite, records, args.checkpoint)
    if not collected.groups and not collected.failed:  # an empty report would only overwrite a real one
        print(f"bench: warning: no record of suite {suite.name}'s {len(suite.jobs)} jobs under "
              f"{', '.join(str(r) for r in roots)} (looked for <root>/<task>/<method>/s<seed>-<id>.json; see "
              f"--results, --also); no report written", file=sys.stderr)
        return 1
    sweeps = {}
    for name in args.sweeps or []:
        swept = load_suite(args, name, cached_in=roots)
        sweeps[swept.name] = report.collect(swept, records, args.checkpoint)
    out = Path(args.out) / suite.name
    raw = suite_file.read_raw(suite.path)
    paper = papers.load(args.paper) if args.paper else papers.load(raw.get("paper"), suite.path.parent)
    select = suite.select
    choices = selection.choices(suite.jobs, select, records) if select is not None else None
    analysis = report_analysis.analyse(suite.name, collected, records, args.checkpoint, paper, sweeps=sweeps,
                                       methods=suite.methods, interval=args.interval,
                                       family=suite.claims, choices=choices, select=select,
                                       note=raw.get("note"))
    with report_writer.staged(out) as staging:  # the old report stays whole until the new one is complete
        report_writer.write(staging, analysis)
        if args.glue_submission:
            from . import submission

            files, without = submission.write(staging, analysis.selected, records)
            files = [out / f.relative_to(staging) for f in files]
    report_terminal.show(console, analysis)
    console.print(f"wrote {out}/report.md and the tables as .md, .tex and .csv")
    if args.glue_submission:
        folders = sorted({str(f.parent) for f in files})
        console.print(f"GLUE submission: {len(files)} files in {len(folders)} folders"
                      + "".join(f"\n  {d}: {' '.join(sorted(p.name for p in files if str(p.parent) == d))}"
                                for d in folders))
        if without:
            console.print(f"{len(without)} selected runs saved no test predictions (run them with [train] "
                          f"predict_test = true): {', '.join(without)}")
    jobs = [*suite.jobs, *(j for c in sweeps.values() for j in getattr(c, "jobs", []))]
    return 1 if name_damaged(records.damaged(jobs, [suite.name, *sweeps])) else 0


def cmd_results(args) -> int:
    from . import results, store

    if args.format == "parquet" and not args.out:
        raise KdfdError("--format parquet needs --out FILE (parquet is binary, not for standard output; csv and "
                        "jsonl are)")
    require_roots(args.results)
    suite = args.suite if args.suite else None
    df = results.load(args.results, suite)
    if df.empty:
        print(f"bench results: no records under {args.results}" + (f" of suite {suite}" if suite else ""),
              file=sys.stderr)
    results.write(df, args.out, args.format)
    if args.out:
        console.print(f"wrote {plural(len(df), 'record')} to {args.out}")
    # every damaged file under the root, --suite or not: a record that does not parse says no suite's job it is
    return 1 if name_damaged(store.damaged(args.results)) else 0


def cmd_prefetch(args) -> int:
    from . import prefetch

    suite = load_suite(args)
    env = prefetch.fetch(suite, Path(args.into) if args.into else None, args.glue_dir, say=console.print)
    console.print(f"suite {suite.name}: fetched. Where the jobs run (the SLURM tasks inherit it), "
                  f"export {' '.join(env)}", soft_wrap=True, markup=False)
    return 0


def cmd_collect(args) -> int:
    from . import store

    require_roots(args.results)
    suite = load_suite(args, cached_in=[Path(args.results)])
    found = [(job, store.find(Path(args.results), job)) for job in suite.jobs]
    done = [job for job, record in found if record is not None and record.done]
    new = sum(store.collect(job, Path(args.results), Path(args.into)) for job in done)
    console.print(f"{len(done)} done records of suite {suite.name} under {args.results}: {new} copied into "
                  f"{args.into}, the others there already (records and representations; weights, checkpoints and "
                  "locks stay behind)")
    return 0


def cmd_export(args) -> int:
    """A finished job's model as a transformers folder: the folder `train.save_model` wrote, or, for a teacher job,
    its fine-tuned weights converted (kdfd.export)."""
    import shutil

    from . import store

    args.tasks, args.methods, args.seeds = [args.task], None if args.method == "teacher" else [args.method], [args.seed]
    suite = load_suite(args)
    role = "teacher" if args.method == "teacher" else "student"
    jobs = [j for j in suite.jobs if j.config.role == role and (role == "teacher" or j.config.method == args.method)
            and j.config.seed == args.seed]
    if args.label:
        jobs = [j for j in jobs if j.label == args.label]
    if len(jobs) != 1:
        labels = ", ".join(j.label for j in jobs) or "none"
        raise KdfdError(f"suite {suite.name} has {len(jobs)} {args.method} jobs on {args.task} seed {args.seed} "
                        f"(labels: {labels}): " + ("name one with --label" if jobs else "see `bench run --dry-run`"))
    job, results, out = jobs[0], Path(args.results), Path(args.out)
    record = store.find(results, job)
    if record is None or not record.done:
        raise KdfdError(f"job {job.label} on {args.task} seed {args.seed} ({job.id}) is not done under {results}")
    folder = store.model_path(results, job)
    if out.exists() and any(out.iterdir()):
        raise KdfdError(f"--out {out} exists and is not empty (give a new folder)")
    if (folder / "config.json").is_file():
        shutil.copytree(folder, out, dirs_exist_ok=True)
    elif role == "teacher":
        export_teacher(job, store.weights_path(results, job), out)
    else:
        raise KdfdError(f"job {job.label} on {args.task} seed {args.seed} kept no model: run its suite with [train] "
                        "save_model = true (the job runs again under the same id to write it)")
    console.print(f"wrote {out}: load it with transformers.AutoModelForSequenceClassification.from_pretrained")
    return 0


def export_teacher(job, weights: Path, out: Path) -> None:
    """A teacher job's fine-tuned weights (.pt) as a transformers folder."""
    from kdfd import job as kdfd_job
    from kdfd.export import export
    from kdfd.models import load_tokenizer

    tokenizer = load_tokenizer(job.config.resolved_tokenizer())
    student, _, distiller = kdfd_job.build_models(job.resolved, len(tokenizer))
    student.load_state_dict(kdfd_job._load_state(weights))
    c = job.config
    export(student, distiller, "student", job.resolved.task, tokenizer, out,
           {"job": job.id, "task": c.task, "method": c.method, "label": job.label, "seed": c.seed})


def verbosity(q, default=argparse.SUPPRESS) -> None:
    """-q / -v, on `bench` and on each command (SUPPRESS there: unset, a command leaves `bench -q CMD`'s value)."""
    q.add_argument("-q", "--quiet", action="store_true", default=default,
                   help="warnings and errors only (no line per job, no progress bars)")
    q.add_argument("-v", "--verbose", action="store_true", default=default, help="debug lines too")


class OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line, like every other error (argparse prints the whole usage block by default)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="bench", description="kdfd-bench: knowledge distillation benchmarks")
    p.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    verbosity(p, default=False)
    sub = p.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    ls = sub.add_parser("list", help="tasks, methods and suites")
    verbosity(ls)
    ls.add_argument("--results", default=os.environ.get("KDFD_RESULTS", "results"),
                    help="results root whose cached suite expansions give the suites' job counts")

    def suite_args(q):
        verbosity(q)
        q.add_argument("--suite", required=True, help="a suite name (see `bench list`) or a .toml file")
        q.add_argument("--tasks", nargs="+", help="replace the suite's tasks")
        q.add_argument("--methods", nargs="+", help="replace the suite's methods (`all`: every registered method)")
        q.add_argument("--seeds", nargs="+", help="replace the suite's seeds")
        q.add_argument("--results", default=os.environ.get("KDFD_RESULTS", "results"), help="results root")
        # SUPPRESS: unset here leaves `bench --debug CMD`'s value (a default False would overwrite it)
        q.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")

    r = sub.add_parser("run", help="run a suite's jobs (or submit them to SLURM), skipping the finished ones")
    suite_args(r)
    r.add_argument("--glue-dir", default=None, help="GLUE data in the original TSV layout (default: $GLUE_DIR)")
    r.add_argument("--dry-run", action="store_true",
                   help="run nothing: print the plan (jobs by kind, where they run: arrays, resources, dependencies) "
                        "and an estimated cost in device-hours")
    r.add_argument("--list-jobs", action="store_true", help="with --dry-run: every job, its id and state, too")
    r.add_argument("--no-progress", action="store_true",
                   help="no progress bars, also on a terminal (without one there are none; a line per job either way)")
    r.add_argument("--checkpoint-every", type=int, default=500, help="steps between checkpoints (and every epoch end)")
    r.add_argument("--deterministic", action="store_true",
                   help="GPU determinism switches (deterministic algorithms, no cuDNN autotuning); CPU needs none")
    r.add_argument("--tensorboard", action="store_true",
                   help="write each job's loss terms, learning rates and dev metrics as TensorBoard events beside its "
                        "record (as [train] tensorboard = true; needs kdfd-bench[tensorboard])")
    r.add_argument("--report-to", metavar="TRACKERS",
                   help="comma-separated trackers every job reports its losses, learning rates, dev metrics and "
                        "config to: tensorboard (RESULTS/.tensorboard), mlflow (offline store RESULTS/.mlflow), wandb "
                        "(offline runs in RESULTS/.wandb); each needs its extra, e.g. kdfd-bench[mlflow]")
    r.add_argument("--accept-code-changes", action="store_true",
                   help="keep the done records of methods whose code changed without a version bump (a change that "
                        "keeps the results); without it such a run stops, naming them (bump the version to rerun)")
    r.add_argument("--executor", choices=("local", "slurm"), default="local",
                   help="local: run here, in order; slurm: submit job arrays through submitit and return")
    r.add_argument("--workers", type=int, default=1,
                   help="local: run this many jobs at once, each in its own process with an equal share of the "
                        "threads (a teacher before its students; the jobs' locks share the work)")
    r.add_argument("--nproc", type=int, default=1,
                   help="train each job data-parallel over this many processes of one machine: one GPU each (a SLURM "
                        "task asks for --gpus x N), or CPU processes with a share of the threads each; the same "
                        "results within float rounding, job ids unchanged (docs/running.md)")
    r.add_argument("--device", choices=DEVICES, default=None,
                   help="every job's device, in place of its [train] device (job ids unchanged; the record says where "
                        "it ran). A GPU suite ([slurm] gpus > 0) trains on CPU only with --gpus 0 --device cpu")
    g = r.add_argument_group("slurm (override the suite's [slurm] table)")
    g.add_argument("--jobs-per-task", type=int, default=1, help="pack this many jobs into one SLURM task")
    g.add_argument("--partition", help="the SLURM partition (sbatch --partition)")
    g.add_argument("--time", type=int, help="minutes per SLURM task")
    g.add_argument("--gpus", type=int, help="GPUs per job, per process with --nproc (the suite's [slurm] gpus; also "
                                            "checked by a local run)")
    g.add_argument("--cpus", type=int, help="CPUs per SLURM task")
    g.add_argument("--mem-gb", dest="mem_gb", type=float, help="memory per SLURM task in GB (default: the cluster's)")
    g.add_argument("--account", help="the SLURM account to charge (sbatch --account)")
    g.add_argument("--qos", help="the SLURM quality of service (sbatch --qos)")
    g.add_argument("--constraint", help="SLURM node features the tasks need (sbatch --constraint)")
    g.add_argument("--array-parallelism", dest="array_parallelism", type=int,
                   help="at most this many tasks of one array at once")
    sub_status = sub.add_parser("status", help="a table of the suite's jobs: done, failed, running, pending")
    suite_args(sub_status)
    w = sub.add_parser("wait", help="block until no job of the suite is pending or running")
    suite_args(w)
    w.add_argument("--poll", type=float, default=5.0, help="seconds between looks")
    w.add_argument("--no-progress", action="store_true", help="no progress bar")
    c = sub.add_parser("cancel", help="cancel the suite's queued and running SLURM tasks")
    suite_args(c)
    rp = sub.add_parser("report", help="the paper's tables from a suite's records, beside the paper's numbers")
    suite_args(rp)
    rp.add_argument("--also", nargs="+", help="more results roots to read")
    rp.add_argument("--out", default="reports", help="reports root (the report goes to OUT/<suite>/)")
    rp.add_argument("--checkpoint", choices=("last", "best"), default="last",
                    help="last: each run's final epoch; best: its best dev epoch (optimistic)")
    rp.add_argument("--interval", choices=("t", "percentile"), default="t",
                    help="the verdicts' 95%% intervals: t (Student-t, paired t test; default) or percentile "
                         "(bootstrap: too narrow at 3-5 seeds, see the report's rules)")
    rp.add_argument("--paper", metavar="NAME|DIR",
                    help="the paper to report against: a folder of benchmarks/reference/ or a folder's path holding "
                         "paper.toml (default: the suite's `paper`, else the one paper there; docs/reports.md)")
    rp.add_argument("--sweeps", nargs="+", metavar="SUITE",
                    help="sweep suites whose records add Fig. 5 to this report (the tables keep this suite's jobs)")
    rp.add_argument("--glue-submission", action="store_true",
                    help="also write the GLUE leaderboard's prediction files (OUT/<suite>/glue-submission/<method>/"
                         "seed<k>/) for runs that saved test predictions")
    rs = sub.add_parser("results", help="every record as one table row (csv, parquet or jsonl), for pandas")
    rs.add_argument("--suite", help="keep the records of this suite's jobs (default: every record under the root)")
    rs.add_argument("--results", default=os.environ.get("KDFD_RESULTS", "results"), help="results root")
    rs.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    verbosity(rs)
    rs.add_argument("--format", choices=("csv", "parquet", "jsonl"), default="csv",
                    help="csv (default), parquet (needs pyarrow: kdfd-bench[parquet]) or jsonl")
    rs.add_argument("--out", help="file to write (default: standard output; parquet needs a file)")
    co = sub.add_parser("collect", help="copy a suite's done records (JSON + .npz, never weights) from a results "
                                        "root into a folder to commit, e.g. reports/<suite>/results")
    suite_args(co)
    co.add_argument("--into", required=True, help="the folder to copy into (same layout as the results root)")
    pf = sub.add_parser("prefetch", help="download a suite's hub models and data once, for compute nodes without "
                                         "internet (then run with the variables it prints: HF_HUB_OFFLINE=1, ...)")
    suite_args(pf)
    pf.add_argument("--into", help="folder for the models' cache (INTO/hub) and the data (INTO/glue); default: the "
                                   "Hugging Face cache and ./glue")
    pf.add_argument("--glue-dir", default=None, help="GLUE TSV folder the suite reads (then no data is fetched)")
    ex = sub.add_parser("export", help="a finished job's model as a folder that transformers' "
                                       "AutoModelForSequenceClassification.from_pretrained loads")
    ex.add_argument("--suite", required=True, help="a suite name (see `bench list`) or a .toml file")
    ex.add_argument("--task", required=True, help="the job's task")
    ex.add_argument("--method", required=True, help="the job's method (`teacher`: its teacher fine-tuning job)")
    ex.add_argument("--seed", required=True, type=int, help="the job's seed")
    ex.add_argument("--label", help="the job's label, where a grid gives the method several (see `bench run "
                                    "--dry-run`)")
    ex.add_argument("--out", required=True, help="the folder to write (new or empty)")
    ex.add_argument("--results", default=os.environ.get("KDFD_RESULTS", "results"), help="results root")
    ex.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    verbosity(ex)
    sub.add_parser("speed", add_help=False,
                   help="step-time ratios of the methods and of the batchings (`bench speed --help`)")
    return p


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process is, as Ctrl-C is: every lock is let go and every temporary removed on the
    way out (`except Exception` blocks let it pass, as they let KeyboardInterrupt pass)."""


def _terminate(signum, frame):
    raise Terminated()


def interrupted(args, argv: list[str], e: KeyboardInterrupt) -> int:
    """The one line an interrupt ends with, and its exit code: 130 (Ctrl-C) or 143 (SIGTERM), as a shell's."""
    how, code = ("terminated (SIGTERM)", 143) if isinstance(e, Terminated) else ("interrupted (Ctrl-C)", 130)
    again = "bench " + shlex.join(argv)
    if args.command == "run":
        what = (f"unfinished jobs keep their last checkpoint, and `{again}` resumes them (finished jobs are "
                "skipped)")
    elif args.command == "report":
        what = f"the previous report, if any, stands as it was; `{again}` writes it again"
    else:
        what = f"nothing was changed; `{again}` starts it again"
    print(f"bench: {how} during `bench {args.command}`; {what}", file=sys.stderr)
    return code


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["speed"]:  # its own options: benchmarks/speed.py
        from . import speed

        try:
            speed.main(argv[1:])
        except KdfdError as e:
            print(f"bench speed: error: {e}", file=sys.stderr)
            return 2
        return 0
    args = parser().parse_args(argv)
    setup_logging(args.quiet, args.verbose)
    import threading

    # SIGTERM as an interrupt (not where someone else handles it, or off the main thread, where no handler can go)
    own_term = threading.current_thread() is threading.main_thread() and \
        signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    if own_term:
        signal.signal(signal.SIGTERM, _terminate)
    try:
        if args.command == "list":
            return cmd_list(args)
        if getattr(args, "seeds", None):
            bad = [s for s in args.seeds if not s.lstrip("-").isdigit()]
            if bad:
                raise KdfdError(f"seed {bad[0]!r} is not an integer")
        return {"run": cmd_run, "status": cmd_status, "wait": cmd_wait, "cancel": cmd_cancel,
                "report": cmd_report, "results": cmd_results, "collect": cmd_collect,
                "prefetch": cmd_prefetch, "export": cmd_export}[args.command](args)
    except KeyboardInterrupt as e:
        if args.debug:
            raise
        return interrupted(args, argv, e)
    except KdfdError as e:
        if args.debug:
            raise
        print(f"bench: error: {e}", file=sys.stderr)
        return 2
    except ExternalError as e:
        if args.debug:
            raise
        print(f"bench: error: {e}", file=sys.stderr)
        return 3
    except OSError as e:  # a results root that is read-only, full, or not a folder: say which file, lose nothing
        if args.debug:
            raise
        where = f": {e.filename}" if e.filename else ""
        print(f"bench: error: cannot write {where.lstrip(': ') or 'results'} ({e.strerror or e}); records already "
              "written are untouched", file=sys.stderr)
        return 2
    finally:
        if own_term:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)

if __name__ == "__main__":
    sys.exit(main())
