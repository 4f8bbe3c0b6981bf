"""The results store: the one module that knows how a results root is laid out and what a record holds.

Layout, under a results root:

    <task>/<kind>/s<seed>-<id>.json     a job's record (`Record`); kind: the method, or `teacher` for the teacher
                                        fine-tuning job whose weights other jobs start from
      beside it, same stem:  .pt        a teacher's fine-tuned weights, shared by every suite on the root
                             .npz       the student's representations on a fixed dev sample (the report's figures)
                             .test.npz  GLUE test-set predictions (`train.predict_test`)
                             .ckpt      the job's last checkpoint while it is unfinished
                             .lock      held while the job runs (benchmarks.lock)
                             .tb/<label>/  TensorBoard events (`train.tensorboard`, `bench run --tensorboard`)
                             .model/    the trained model as a transformers folder (`train.save_model`)
                             .ckpt.sha256  the checkpoint's checksum (kdfd.files.sidecar)
                             .tsne.npz  the report's t-SNE of the representations (benchmarks.figures): a cache
                             .<suffix>.corrupt  a file found damaged, moved aside (`set_aside`)
    <task>/teacher-cache/               a frozen teacher's cached outputs (kdfd.teacher_cache), each with its .sha256
    <task>/tokens/                      its texts' token ids, shared by its jobs (kdfd.token_cache), with .sha256s
    .slurm/<suite>/submitted.json       what the SLURM executor submitted (job id -> SLURM id; sealed: SEAL); beside
                                        it, submitit's pickles and logs, a folder per SLURM job
    .suites/<suite>-<key>.cache         a suite's expansion (JSON, sealed) as `bench run` made it
                                        (benchmarks.suite_cache), so that `bench status` and `bench report` need not
                                        import the methods (nor torch)
    .tensorboard/<task>/<label>/s<seed>-<id8>/  a job's TensorBoard events (`train.tensorboard`, `--report-to`)
    .mlflow/, .wandb/                   MLflow's and W&B's offline stores (`bench run --report-to mlflow,wandb`)
    .accepted-code-changes.json         the code changes accepted with --accept-code-changes (kdfd.method_code)

Every write is atomic (`kdfd.files.atomic_write`): a reader sees the previous file or the complete new one. A record
that exists but does not parse (a disk fault) is moved aside, never overwritten unseen.

Integrity: a done record keeps the SHA-256 of each file it describes (`checksums`: .pt, .npz, .test.npz); a job is
done only while they match (`is_done`), so a damaged file is `damaged` (named by `bench status`, `report`,
`results`) and, on the next `bench run`, moved aside (`set_aside`) and remade by its job. A teacher so found is
retrained; its students' records stand. Records written before checksums existed are checked by the files' zip
CRCs (kdfd.files.damage). A record carries its own checksum (SEAL), and so do a suite's kept expansion and its SLURM
submission list (`read_expansion`, `read_submitted`): damaged, they are named as well, never used, and moved aside
by the suite's next `bench run` (`set_aside_kept`). The store imports neither
torch nor the rest of `benchmarks`: `bench status` and `bench report` read through it alone.

A job is anything with `.id`, `.label` and `.config` (task, method, seed, role): a `benchmarks.expansion.Job`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from kdfd import files
from kdfd.errors import StorageError
from kdfd.files import atomic_write, move_aside
from kdfd.result import FIELDS as JOB_RESULT_FIELDS
from kdfd.result import JobResult

SCHEMA = 2  # the shape records are written in (`Record`); older ones are read as well
RECORD_GLOB = "*/*/s*-*.json"


# ------------------------------------------------------------------------------------------------------ layout


TEACHER = "teacher"  # a teacher fine-tuning job's role, and its kind: its records' folder, its row in a report


def kind(role: str | None, method: str | None) -> str | None:
    """A job's kind: `teacher` for a teacher fine-tuning job, else its method."""
    return TEACHER if role == TEACHER else method


def record_path(results: Path, job) -> Path:
    c = job.config
    return Path(results) / c.task / kind(c.role, c.method) / f"s{c.seed}-{job.id}.json"


def weights_path(results: Path, job) -> Path:
    """A teacher job's fine-tuned weights (.pt): what its students start from."""
    return record_path(results, job).with_suffix(".pt")


def model_path(results: Path, job) -> Path:
    """The trained model as a transformers folder (`train.save_model`, kdfd.export)."""
    return record_path(results, job).with_suffix(".model")


def artifacts_path(results: Path, job) -> Path:
    return artifacts_file(record_path(results, job))


def artifacts_file(record: Path) -> Path:
    """The representations saved beside a record (its path given)."""
    return Path(record).with_suffix(".npz")


def predictions_path(results: Path, job) -> Path:
    """The GLUE test-set predictions of a job run with `train.predict_test`."""
    return predictions_file(record_path(results, job))


def predictions_file(record: Path) -> Path:
    return Path(record).with_suffix(".test.npz")


def checkpoint_path(results: Path, job) -> Path:
    """The job's last checkpoint while it is unfinished (kdfd.checkpoint), removed once it is done."""
    return record_path(results, job).with_suffix(".ckpt")


def lock_path(results: Path, job) -> Path:
    return record_path(results, job).with_suffix(".lock")


def run_name(job) -> str:
    """A job's name in every tracker: `<task>/<label>/s<seed>-<first 8 digits of its id>` (rte/kdfd/s1-a397b2c4)."""
    c = job.config
    return f"{c.task}/{job.label.replace('/', '_')}/s{c.seed}-{job.id[:8]}"


def events_path(results: Path, job) -> Path:
    """A job's TensorBoard events: `.tensorboard/<run name>/`, so that `tensorboard --logdir RESULTS/.tensorboard`
    names each run as the other trackers do, by task, label and seed."""
    return Path(results) / ".tensorboard" / run_name(job)


def tracker_store(results: Path, kind: str) -> Path:
    """Where MLflow (`.mlflow/`, a file store) or W&B (`.wandb/`, offline runs) keep a results root's runs."""
    return Path(results) / f".{kind}"


def teacher_cache_path(results: Path, task: str) -> Path:
    """Cached frozen-teacher outputs of one task (kdfd.teacher_cache), shared by its seeds and methods."""
    return Path(results) / task / "teacher-cache"


def token_cache_path(results: Path, task: str) -> Path:
    """The token ids of one task's texts (kdfd.token_cache), shared by its jobs."""
    return Path(results) / task / "tokens"


def slurm_folder(results: Path, suite_name: str) -> Path:
    """The SLURM executor's folder for a suite: submitit's pickles and logs, one folder per SLURM job."""
    return Path(results) / ".slurm" / suite_name


def slurm_state_path(results: Path, suite_name: str) -> Path:
    """What the SLURM executor submitted for a suite: job id -> {"slurm_id", "submitted"}."""
    return slurm_folder(results, suite_name) / "submitted.json"


def suite_cache_path(results: Path, suite_name: str, key: str) -> Path:
    """A suite's expansion (benchmarks.suite_cache), `key` naming its inputs. Not `.json`: the JSON files under a
    root are its records (and what SLURM submitted), and those who count them should not count this."""
    return Path(results) / ".suites" / f"{suite_name}-{key}.cache"


CODE_ACCEPTED = ".accepted-code-changes.json"  # in the results root: kdfd.method_code.accept


def temporaries(results: Path, job) -> list[Path]:
    """Temporary files a killed writer left beside the job's files (`.NAME.PID.tmp`, kdfd.files.atomic_write): never
    read, since every write renames only a complete file."""
    path = record_path(results, job)
    return sorted(path.parent.glob(f".{path.stem}.*tmp*"))


def check_writable(results: Path) -> None:
    """Before any job: the results root takes a file (not read-only, not full, a folder)."""
    results = Path(results)
    probe = results / f".write-probe.{os.getpid()}"
    try:
        results.mkdir(parents=True, exist_ok=True)
        try:
            probe.write_bytes(b"x" * 4096)
        finally:
            probe.unlink(missing_ok=True)  # a probe that did not fit is not left behind
    except OSError as e:
        raise StorageError(f"results root {results} is not writable ({e.strerror or e})") from None


# ------------------------------------------------------------------------------------------------------ record

# The job's own facts, kept once in `config` and written out beside it too for readers of the plain JSON (jq, pandas)
FROM_CONFIG = ("task", "method", "method_version", "seed", "role", "teacher_job")
RECORD_FIELDS = ("id", "suite", "label", "status", "error", "method_code", "started", "finished", "wall_seconds",
                 "provenance", "executor", "checksums")  # the record's own fields, beside config and result


@dataclass(frozen=True)
class Record:
    """One job's record: the only definition of what a record holds.

    On disk (schema 2), one JSON object, keys sorted (`write_json`):

        schema                  SCHEMA
        id, suite, label, status, error, method_code, started, finished, wall_seconds, provenance, executor,
        checksums               the record's own fields, as below
        config                  the job's `RunConfig` as its id hashes it (the method's parameters: config.params)
        task, method, method_version, seed, role, teacher_job
                                copied out of config, for `jq 'select(.method == "kdfd")'` and flat table columns
        result                  what the job yielded (`kdfd.result.JobResult`, every field by its name: parameter
                                counts are result.param_counts), or null where it failed
        record_sha256           its seal (SEAL)

    So `jq .result.metrics.dev`, and `pandas.json_normalize(records)` gives a row per record with columns such as
    `result.metrics.dev.accuracy` and `config.params.temperature` (`benchmarks.results` flattens them by its own
    names). Keys this version does not know (a newer writer's) are kept in `extra` and written back as they were.

    A record of schema 1 (the result's fields at the top level, parameter counts under `params`, the id twice, as
    `config_hash` too) reads into the same types (`from_dict`). Reading never writes; a record is written only when
    its job runs, and a done job never runs again (a damaged or missing file of it reruns it: a new record), so
    committed records stay as they were written, and `bench collect` copies them byte for byte."""

    id: str | None
    suite: str | None = None  # the suite whose run wrote it (a job shared by suites is found by id, not by this)
    label: str | None = None
    config: dict = field(default_factory=dict)
    status: str = "failed"  # done | failed
    error: dict | None = None  # {"type", "message", "traceback"}; step, term, role for a non-finite loss
    method_code: dict | None = None  # the method's code fingerprint (kdfd.method_code); None before fingerprints
    started: str | None = None
    finished: str | None = None
    wall_seconds: float | None = None
    provenance: dict | None = None
    executor: dict | None = None  # where it ran: kind (local, slurm), host, pid, SLURM ids
    checksums: dict | None = None  # the SHA-256 of each file beside the record it describes, by suffix (COMPANIONS)
    result: JobResult | None = None  # what the job yielded (kdfd.job.run); None unless done
    extra: dict = field(default_factory=dict)

    @property
    def task(self) -> str | None:
        return self.config.get("task")

    @property
    def method(self) -> str | None:
        return self.config.get("method")

    @property
    def method_version(self) -> str | None:
        return self.config.get("method_version")

    @property
    def seed(self) -> int | None:
        return self.config.get("seed")

    @property
    def role(self) -> str | None:
        return self.config.get("role")

    @property
    def teacher_job(self) -> str | None:
        return self.config.get("teacher_job")

    @property
    def done(self) -> bool:
        return self.status == "done"

    def finish(self, status: str, result: JobResult | None = None, **changes) -> Record:
        """This record with a status, the job's result (None: the one it has) and `changes`."""
        return dataclasses.replace(self, status=status, result=result or self.result, **changes)

    def to_dict(self) -> dict:
        """The record's JSON object, without its seal."""
        return {"schema": SCHEMA, **{k: getattr(self, k) for k in RECORD_FIELDS},
                **{k: self.config.get(k) for k in FROM_CONFIG}, "config": self.config,
                "result": None if self.result is None else self.result.to_dict(), **self.extra}

    @classmethod
    def from_dict(cls, data: dict) -> Record:
        """A record's JSON object (without its seal), of this schema or of schema 1. ValueError: not a record's."""
        if not (isinstance(data.get("schema"), int) and data["schema"] >= 2):
            data = _schema_1(data)
        config, result = data.get("config") or {}, data.get("result")
        if not isinstance(config, dict):
            raise ValueError("its config is no mapping")
        if result is not None and not isinstance(result, dict):
            raise ValueError("its result is no mapping")
        config = dict(config)
        for key in FROM_CONFIG:  # a record written by hand (tests) may carry these beside an empty config only
            if key in data and key not in config:
                config[key] = data[key]
        known = {"schema", "config", "result", *RECORD_FIELDS, *FROM_CONFIG}
        return cls(**{k: data.get(k) for k in RECORD_FIELDS}, config=config,
                   result=None if result is None else JobResult.from_dict(result),
                   extra={k: v for k, v in data.items() if k not in known})


# A result field schema 1 named otherwise: its name there -> its name in JobResult
SCHEMA_1_NAMES = {"params": "param_counts"}


def _schema_1(data: dict) -> dict:
    """A record of schema 1 (or older: before `schema`) in this schema's shape: its result's fields, at its top level
    there, moved under `result` (a failed record had none), parameter counts from `params` to `param_counts`, and
    the id, written twice there (`id`, `config_hash`; a record written by hand may have only the latter), once."""
    named = {k: SCHEMA_1_NAMES.get(k, k) for k in data}
    out = {k: v for k, v in data.items() if named[k] not in JOB_RESULT_FIELDS and k != "config_hash"}
    out["id"] = data.get("id", data.get("config_hash"))
    done = data.get("status") == "done"
    out["result"] = {named[k]: v for k, v in data.items() if named[k] in JOB_RESULT_FIELDS} if done else None
    return out


# A JSON file's own checksum, beside its other keys: the SHA-256 of its text without it, as `write_json` writes it,
# so that a changed byte that still parses (a digit of a metric, of a SLURM id) is caught as well. Records carry it,
# and so do the other JSON files a run reads back: a suite's expansion and what SLURM was given (`write_sealed`).
SEAL = "record_sha256"


def _sealed(data: dict) -> str:
    return hashlib.sha256(_text(data).encode()).hexdigest()


_seals_checked: set[tuple] = set()  # (path, inode, size, mtime, seal) of files whose seal held


def _seal_holds(path: Path, seal: str, data: dict) -> bool:
    """Whether a file's text without its seal hashes to the seal; remembered per file version, since the runner
    asks whether jobs are done many times over (benchmarks.selection's loop)."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    key = (str(path), st.st_ino, st.st_size, st.st_mtime_ns, seal)
    if key not in _seals_checked and seal == _sealed(data):
        _seals_checked.add(key)
    return key in _seals_checked


def read(path: Path) -> Record | None:
    """A record, or None when it is missing or cannot be trusted (`record_damage`: redone, never trusted)."""
    return _load(path)[0]


def load(path: Path) -> tuple[Record | None, str | None]:
    """`read` and, where it gives None, why (`missing`, or `record_damage`'s answer), from one read of the file."""
    return _load(path)


def record_damage(path: Path) -> str | None:
    """Why an existing record cannot be trusted (None: it can): not JSON (a truncated file), JSON of other types
    than a record's, or text that no longer matches its checksum."""
    return _load(path)[1] if Path(path).is_file() else None


def _unseal(path: Path, what: str) -> tuple[dict | None, str | None, bool]:
    """A sealed JSON object's keys without its seal, or None and why it cannot be trusted (`missing` where there is
    no file; `what` names what it should be), and whether it was sealed."""
    data = read_json(path)
    if data is None:
        return None, "not JSON" if Path(path).is_file() else "missing", False
    if not isinstance(data, dict):
        return None, f"not {what} (JSON {type(data).__name__})", False
    seal = data.pop(SEAL, None)
    if seal is not None and not (isinstance(seal, str) and _seal_holds(path, seal, data)):
        return None, "checksum mismatch (its text changed since it was written)", True
    return data, None, seal is not None


def _load(path: Path) -> tuple[Record | None, str | None]:
    data, why, _ = _unseal(path, "a record")
    if data is None:
        return None, why
    try:
        record = Record.from_dict(data)
    except ValueError as e:
        return None, f"not a record ({e})"
    result = record.result or JobResult()
    typed = {"status": (record.status, str), "id": (record.id, str), "checksums": (record.checksums, dict),
             "error": (record.error, dict), "metrics": (result.metrics, dict), "artifacts": (result.artifacts, dict)}
    wrong = [k for k, (v, t) in typed.items() if v is not None and not isinstance(v, t)]
    wrong += ["checksums"] * (not all(isinstance(v, str) for v in (record.checksums or {}).values()))
    if wrong:
        return None, f"not a record ({wrong[0]} of another type)"
    return record, None


def write(path: Path, record: Record) -> None:
    """Atomically (a reader sees the previous record or the complete new one), in this schema, sealed with its
    checksum (SEAL)."""
    data = record.to_dict()
    write_json(path, {**data, SEAL: _sealed(data)}, crash_at="record-write")


def find(results: Path, job) -> Record | None:
    """The job's record under `results`, if there is one of this very job (same id)."""
    record = read(record_path(results, job))
    return record if record is not None and record.id == job.id else None


def is_done(results: Path, job) -> bool:
    """A complete `done` record of this job whose files all match their checksums; for a teacher job, its weights
    beside it too; for a job whose suite says `train.save_model`, its model folder too (a job done without it runs
    again to write it)."""
    record = find(results, job)
    ok = (record is not None and record.done
          and not companion_damage(record_path(results, job), record, job.config.role == "teacher"))
    if ok and getattr(job.config.train, "save_model", False):
        ok = (model_path(results, job) / "config.json").is_file()
    return ok


# The files a done record describes, beside it: a teacher's weights, the representations, the test predictions
COMPANIONS = (".pt", ".npz", ".test.npz")


def companion(record: Path, suffix: str) -> Path:
    return Path(record).with_suffix(suffix)


def checksums(results: Path, job) -> dict[str, str]:
    """The SHA-256 of each file the job wrote beside its record, for the record (`Record.checksums`)."""
    path = record_path(results, job)
    return {s: files.digest(companion(path, s)) for s in COMPANIONS if companion(path, s).is_file()}


def companion_damage(path: Path, record: Record, teacher: bool | None = None, damage=files.damage
                     ) -> dict[Path, str]:
    """The files a done record describes that cannot be trusted: path -> why (`missing` too: a teacher's weights
    are never committed, a fresh clone retrains them). A record without checksums (older) names its teacher's
    weights and its representations, and they are checked by their zip CRCs. `teacher`: whether it is a teacher's
    (default: as its config says); `damage`: how a file is judged (`files.damage`'s arguments and answers)."""
    if not record.done:
        return {}
    if record.checksums is not None:
        expected = dict(record.checksums)
    else:
        teacher = record.role == "teacher" if teacher is None else teacher
        expected = {".pt": None} if teacher else {}
        if ((record.result and record.result.artifacts) or {}).get("representations"):
            expected[".npz"] = None
    out = {}
    for suffix, sha in expected.items():
        file = companion(path, suffix)
        if suffix != ".pt" and sha is None and not file.is_file():
            continue  # an older record's representations, never collected: nothing to check, nothing to redo
        why = damage(file, sha)
        if why is not None:
            out[file] = why
    return out


@dataclass(frozen=True)
class Damaged:
    """A file under a results root that cannot be trusted, and why."""

    path: Path
    why: str

    def line(self) -> str:
        return f"{self.path}: {self.why}"


def damaged(results: Path, jobs=None, running: set[str] = frozenset(), suites=None, reader=None) -> list[Damaged]:
    """Every damaged file under a results root (of `jobs`, or of every record there): records that do not parse,
    files of done records that fail their checksum (a missing one is not damage: its job remakes it), checkpoints
    that fail theirs (but those of the `running` job ids, which may be between a checkpoint and its sidecar), the
    shared caches of the tasks (`task_caches`), and the kept expansions and SLURM submission lists of the suites
    named `suites` (None: of every suite; empty: of none). Read only: `set_aside` and `set_aside_kept` move them,
    under the job's lock and before a run. `reader`: what has read the records and their files already, with
    `load` and `damage` as this module's (benchmarks.record_set); None: they are read here."""
    load_record, damage = (reader.load, reader.damage) if reader is not None else (_load, files.damage)
    results = Path(results)
    if jobs is None:  # every record, and every checkpoint of a job that has none yet
        found = [*results.glob(RECORD_GLOB), *(p.with_suffix(".json") for p in results.glob("*/*/s*-*.ckpt"))]
        paths = {p: None for p in sorted(set(found))}  # the record says whether it is a teacher's
        tasks = sorted({p.relative_to(results).parts[0] for p in paths})
    else:
        paths = {record_path(results, job): job.config.role == "teacher" for job in jobs}
        tasks = sorted({job.config.task for job in jobs})
    out = []
    for path, teacher in paths.items():
        record, why = load_record(path)
        if record is None and why != "missing":
            out.append(Damaged(path, why))
        elif record is not None:
            out += [Damaged(f, why) for f, why in companion_damage(path, record, teacher, damage).items()
                    if why != "missing"]
        ckpt = path.with_suffix(".ckpt")
        if ckpt.is_file() and path.stem.split("-", 1)[-1] not in running and (why := files.damage(ckpt)) is not None:
            out.append(Damaged(ckpt, why))
    for task in tasks:
        for cache in task_caches(results, task):
            if (why := files.damage(cache)) is not None:
                out.append(Damaged(cache, why))
    return out + [Damaged(path, why) for path, why in _kept_damage(results, suites)]


def task_caches(results: Path, task: str) -> list[Path]:
    """The files a task's jobs share: teacher caches (kdfd.teacher_cache) and token ids (kdfd.token_cache)."""
    return [*sorted(teacher_cache_path(results, task).glob("*.pt")),
            *sorted(token_cache_path(results, task).glob("*.npz"))]


def _kept_damage(results: Path, suites=None) -> list[tuple[Path, str]]:
    """The suites' expansions and submission lists (None: every suite's) that cannot be trusted: (path, why)."""
    if suites is not None and not suites:
        return []
    results = Path(results)
    expansions = sorted(results.glob(suite_cache_path(results, "*", "*").relative_to(results).as_posix()))
    lists = sorted(results.glob(slurm_state_path(results, "*").relative_to(results).as_posix()))
    out = [(p, read_expansion(p)[1]) for p in expansions if suites is None or _expansion_of(p) in suites]
    out += [(p, read_submitted(p)[1]) for p in lists if suites is None or p.parent.name in suites]
    return [(p, why) for p, why in out if why is not None]


def _expansion_of(path: Path) -> str:
    """The suite a kept expansion is of: its name less `-<key>.cache` (a suite's name may hold dashes)."""
    return path.stem.rsplit("-", 1)[0]


def set_aside_kept(results: Path, suite_name: str) -> list[tuple[Path, Path, str]]:
    """Before a run of a suite: its kept expansions and its submission list that cannot be trusted, moved aside
    (`.corrupt`), to be made again by this run: (file, where it went, why)."""
    return [(path, move_aside(path), why) for path, why in _kept_damage(results, [suite_name])]


def set_aside(results: Path, job) -> list[tuple[Path, Path, str]]:
    """Under the job's lock, before it runs again: its record when it does not parse, and the files of its done
    record that fail their checksums, moved aside (`.corrupt`), never overwritten unseen. Returns (file, where it
    went) for each, for the log."""
    path = record_path(results, job)
    moved = []
    why = record_damage(path)
    aside = keep_unreadable(path)
    if aside is not None:
        moved.append((path, aside, why))
    record = read(path)
    if record is not None and record.id == job.id:
        for file, why in companion_damage(path, record).items():
            if why != "missing":
                moved.append((file, move_aside(file), why))
    return moved


def set_aside_caches(results: Path, tasks) -> list[tuple[Path, Path, str]]:
    """The shared files of `tasks` (`task_caches`) that fail their checksums, moved aside (`.corrupt`): (file,
    where, why)."""
    out = []
    for task in tasks:
        for cache in task_caches(results, task):
            if (why := files.damage(cache)) is not None:
                out.append((cache, move_aside(cache), why))
    return out


def representations(path: Path, record: Record | None = None) -> dict | None:
    """The arrays of a record's representations (.npz), or None when there are none or they are damaged (the
    report leaves their figures out; `bench report` names the file)."""
    return _arrays(path, ".npz", record)


def predictions(path: Path, record: Record | None = None) -> dict | None:
    """The arrays of a record's test-set predictions (.test.npz), or None when there are none or they are damaged
    (`bench report --glue-submission` leaves that run out; `bench report` names the file)."""
    return _arrays(path, ".test.npz", record)


def _arrays(path: Path, suffix: str, record: Record | None) -> dict | None:
    file = companion(path, suffix)
    record = record if record is not None else read(path)
    if not file.is_file():
        return None
    data = file.read_bytes()
    return arrays_of(data) if files.damage(file, expected_checksum(record, suffix), data) is None else None


def expected_checksum(record: Record | None, suffix: str) -> str | None:
    """The SHA-256 a record keeps of its file with `suffix` (None: it keeps none, an older record's)."""
    return ((record.checksums if record is not None else None) or {}).get(suffix)


def arrays_of(data: bytes) -> dict | None:
    """The arrays of an .npz file's bytes, or None when they are no array file."""
    import io

    import numpy as np

    try:
        with np.load(io.BytesIO(data)) as z:
            return {k: z[k] for k in z.files}
    except Exception:  # a zip whose CRCs hold and whose content is no array file: damaged all the same
        return None


def records(results: Path, read=read) -> Iterator[tuple[Path, Record]]:
    """Every readable record under a results root, in path order (unreadable ones are skipped here and moved aside
    when their job runs again). `read`: how a record is read (this module's, or a reader's that keeps them)."""
    for path in sorted(Path(results).glob(RECORD_GLOB)):
        record = read(path)
        if record is not None and record.task is not None:
            yield path, record


def keep_unreadable(path: Path) -> Path | None:
    """A record that exists but does not parse (a disk fault: writes are atomic) is moved aside to `.corrupt`, never
    overwritten unseen; returns where it went (None when it reads, or is missing)."""
    path = Path(path)
    if path.is_file() and read(path) is None:
        return move_aside(path)
    return None


def collect(job, source: Path, into: Path) -> bool:
    """Copy a job's done record and its representations (.npz) from the results root `source` into `into`, at the
    same place in the layout; never a teacher's weights, a checkpoint, a lock or a cache (what a repository keeps of
    a run). A done record already in `into` stays as it is: a teacher retrained on a fresh machine (its weights are
    never kept) writes a record of the same job again, and the first one is the one committed. Atomic per file; True
    when a record was copied."""
    record, there = find(source, job), find(into, job)
    if record is None or not record.done or (there is not None and there.done):
        return False
    for src in (f for f in (artifacts_path(source, job), record_path(source, job)) if f.is_file()):
        data = src.read_bytes()  # the record last: a copy cut short leaves no record without its representations
        atomic_write(Path(into) / src.relative_to(source), lambda f, data=data: f.write(data))
    return True


# ---------------------------------------------------------------------------------------- other files, as JSON


def read_json(path: Path):
    """A JSON file's value, or None when it is missing or does not parse."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def _text(data) -> str:
    return json.dumps(data, indent=1, sort_keys=True, default=str)


def write_json(path: Path, data, crash_at: str | None = None) -> None:
    """Atomic (`kdfd.files.atomic_write`); keys sorted, one space of indent, as every record is written."""
    text = _text(data)
    atomic_write(path, lambda f: f.write(text.encode()), crash_at=crash_at)


def write_sealed(path: Path, data: dict) -> None:
    """A JSON object, atomically, sealed with its checksum (SEAL) as a record is."""
    write_json(path, {**data, SEAL: _sealed(data)})


# The first format of benchmarks.suite_cache whose expansions are sealed: an older one is not damaged, only never
# fresh (its format is not the current one)
SEALED_EXPANSIONS = 4


def read_expansion(path: Path) -> tuple[dict | None, str | None]:
    """A suite's kept expansion (benchmarks.suite_cache), or None and why it cannot be trusted (None, None: there
    is none, or one of a format before seals, never used)."""
    data, why, sealed = _unseal(path, "a suite expansion")
    if why == "missing":
        return None, None
    if data is not None and not sealed:
        older = isinstance(data.get("format"), int) and data["format"] < SEALED_EXPANSIONS
        return None, None if older else "no checksum (every expansion of this format has one)"
    return data, why


def read_submitted(path: Path) -> tuple[dict, str | None]:
    """What the SLURM executor submitted for a suite (job id -> {"slurm_id", "submitted"}; {} for nothing) and
    None, or {} and why the file cannot be trusted. One written before seals is read as it is, if it has that shape."""
    data, why, _ = _unseal(path, "a submission list")
    if why == "missing":
        return {}, None
    if data is not None and not all(isinstance(v, dict) and isinstance(v.get("slurm_id"), str) for v in data.values()):
        why = "not a submission list (an entry without its SLURM id)"
    return (data, None) if why is None else ({}, why)
