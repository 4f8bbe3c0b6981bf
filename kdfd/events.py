"""What one job shows while it trains, to the trackers it reports to: TensorBoard (`train.tensorboard`, `bench run
--tensorboard`), MLflow and Weights & Biases (`bench run --report-to tensorboard,mlflow,wandb`; each an optional
extra, MLflow and W&B offline: a local store under the results root, nothing sent anywhere).

Scalars against the step, steps counted from 1 (the first optimisation step), each tag named by the model it is about
(the job's own role: a teacher fine-tuning job's model is the `teacher`, never the engine's `student`):
- `<role>/loss/<term>` at every step: each term a method's losses return (`total` included), as the engine checks
  them before the update (the per-epoch means of the same values are the record's `curves`);
- `<role>/lr` (and `<role>/lr-modules` when `train.module_lr` gives a method's own modules their rate): the learning
  rate that step used;
- `<role>/<split>/<metric>` at every evaluation: epoch ends and every `train.eval_every` steps.

A run is named `<task>/<label>/s<seed>-<id, 8 digits>` and carries the job's config (method parameters included) as
hyper-parameters (TensorBoard's hparams plugin, MLflow's params, W&B's config) and its task, method, label, seed,
role, suite and id as tags.

A job resumed from a checkpoint at step T writes on in its TensorBoard folder with purge_step T + 1: TensorBoard hides
what the interrupted run wrote after its checkpoint, and the resumed run writes those steps again, so each step shows
once (the engine flushes with every checkpoint, so nothing up to T is lost to a kill). A job that starts afresh
deletes the events an earlier attempt of it left. MLflow and W&B keep what they were sent: a resumed job is a new run
there, from step T + 1.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError

EVENT_FILES = "events.out.tfevents.*"
TRACKERS = ("tensorboard", "mlflow", "wandb")
EXTRAS = {"tensorboard": ("torch.utils.tensorboard", "the tensorboard package"),
          "mlflow": ("mlflow", "the mlflow package"), "wandb": ("wandb", "the wandb package")}


def require(kind: str = "tensorboard"):
    """The tracker's module, or a one-line error naming the missing package and its extra (before any job runs)."""
    if kind not in TRACKERS:
        raise ConfigError(f"--report-to {kind!r} is not allowed (allowed: {', '.join(TRACKERS)})")
    module, package = EXTRAS[kind]
    try:
        if kind == "tensorboard":
            from torch.utils.tensorboard import SummaryWriter

            return SummaryWriter
        return __import__(module)
    except ImportError:
        switch = "train.tensorboard = true" if kind == "tensorboard" else f"--report-to {kind}"
        raise ConfigError(f"{switch} needs {package}: pip install 'kdfd-bench[{kind}]'") from None


def parse_report_to(value: str | None) -> tuple[str, ...]:
    """`tensorboard,mlflow` -> ("tensorboard", "mlflow"), each checked (name and package)."""
    kinds = tuple(dict.fromkeys(k.strip() for k in (value or "").split(",") if k.strip()))
    for kind in kinds:
        require(kind)
    return kinds


@dataclass(frozen=True)
class Run:
    """Who a job is to its trackers. name: `task/label/s<seed>-<short id>`; group: the suite (MLflow experiment, W&B
    project); role: the model the job trains (`student`, or `teacher` for a teacher fine-tuning job); params: flat
    hyper-parameters; tags: what a run is filtered by; metrics: the dev metric tags (TensorBoard's hparams table)."""

    name: str
    group: str
    role: str = "student"
    params: dict = field(default_factory=dict)
    tags: dict = field(default_factory=dict)
    metrics: tuple[str, ...] = ()


def flatten(d: dict, prefix: str = "") -> dict:
    """Nested config -> {"train.lr": 3e-05, "params.latent_dim": 64, ...}; None and lists as strings (what every
    tracker's hyper-parameters take)."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, f"{key}."))
        else:
            out[key] = v if isinstance(v, (bool, int, float, str)) else str(v)
    return out


def tag(prefix: str, name: str, roles: dict[str, str]) -> str:
    """The engine's (prefix, name) -> the tag by role: ("loss", "student/kd") -> "student/loss/kd"; ("lr",
    "teacher-modules") -> "teacher/lr-modules"; ("dev/student", "dev/accuracy") -> "student/dev/accuracy"."""
    if prefix == "loss":
        role, term = name.split("/", 1)
        return f"{roles.get(role, role)}/loss/{term}"
    if prefix == "lr":
        role, dash, rest = name.partition("-")
        return f"{roles.get(role, role)}/lr{dash}{rest}"
    _, role = prefix.split("/", 1)
    return f"{roles.get(role, role)}/{name}"


class Events:
    """One job's trackers, open while the job trains. `directory`: its TensorBoard folder; `report_to`: which
    trackers; `run`: who the job is (None: a bare TensorBoard folder, as for a method's own tests); `stores`: where
    MLflow and W&B keep their offline files ({"mlflow": folder, "wandb": folder})."""

    def __init__(self, directory: Path | None, resumed_from: int | None = None, report_to=("tensorboard",),
                 run: Run | None = None, stores: dict | None = None):
        self.run = run or Run(name=Path(directory).name if directory else "run", group="kdfd")
        # a teacher fine-tuning job trains its model as the engine's student: its tags say teacher
        self.roles = {"student": self.run.role}
        self.backends = []
        try:
            for kind in report_to:
                if kind == "tensorboard":
                    self.backends.append(TensorBoard(Path(directory), resumed_from, self.run))
                elif kind == "mlflow":
                    self.backends.append(MLflow(Path(stores["mlflow"]), self.run))
                elif kind == "wandb":
                    self.backends.append(WandB(Path(stores["wandb"]), self.run))
                else:
                    require(kind)
        except BaseException:
            self.close()
            raise

    @property
    def writer(self):
        """The TensorBoard writer, where there is one."""
        return next((b.writer for b in self.backends if isinstance(b, TensorBoard)), None)

    def scalars(self, prefix: str, step: int, values: dict[str, float]) -> None:
        named = {tag(prefix, name, self.roles): float(value) for name, value in values.items()}
        for backend in self.backends:
            backend.log(step, named)

    def dev(self, step: int, dev: dict[str, dict[str, dict[str, float]]]) -> None:
        """Dev metrics as the engine returns them: role -> split -> metric -> value."""
        for role, splits in dev.items():
            for split, metrics in splits.items():
                self.scalars(f"dev/{role}", step, {f"{split}/{k}": v for k, v in metrics.items()})

    def flush(self) -> None:
        for backend in self.backends:
            backend.flush()

    def close(self) -> None:
        """Called however training ends: inside an exception's handling the run is marked failed where the tracker
        keeps a status (MLflow, W&B)."""
        failed = sys.exc_info()[0] is not None
        for backend in self.backends:
            backend.close(failed)
        self.backends = []


class TensorBoard:
    def __init__(self, directory: Path, resumed_from: int | None, run: Run):
        summary_writer = require("tensorboard")
        if resumed_from is None:
            for old in directory.glob(EVENT_FILES):  # an earlier attempt that left no checkpoint to take up
                old.unlink()
        self.writer = summary_writer(str(directory), purge_step=None if resumed_from is None else resumed_from + 1)
        if run.params and resumed_from is None:  # the hparams plugin's table: one row per run, its dev metrics
            from torch.utils.tensorboard.summary import hparams

            for summary in hparams(run.params, dict.fromkeys(run.metrics, 0.0)):
                self.writer.file_writer.add_summary(summary)

    def log(self, step: int, values: dict[str, float]) -> None:
        for name, value in values.items():
            self.writer.add_scalar(name, value, step)

    def flush(self) -> None:
        self.writer.flush()

    def close(self, failed: bool) -> None:
        self.writer.close()


class MLflow:
    """MLflow's own client on a local SQLite store (`<folder>/mlflow.db`, MLflow's recommended local backend; its file
    store is frozen): offline, readable by `mlflow ui --backend-store-uri sqlite:///<folder>/mlflow.db`. Metrics are
    sent in batches at each flush (a checkpoint) and at the end."""

    BATCH = 1000  # MLflow's limit of metrics per log_batch call

    def __init__(self, store: Path, run: Run):
        require("mlflow")
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        store.mkdir(parents=True, exist_ok=True)
        self.client = MlflowClient(tracking_uri=store_uri(store))
        experiment = self.client.get_experiment_by_name(run.group)
        if experiment is None:
            try:
                experiment_id = self.client.create_experiment(run.group)
            except Exception:  # another job created it meanwhile
                experiment_id = self.client.get_experiment_by_name(run.group).experiment_id
        else:
            experiment_id = experiment.experiment_id
        self.run_id = self.client.create_run(experiment_id, run_name=run.name,
                                             tags={k: str(v) for k, v in run.tags.items()}).info.run_id
        params = [Param(k, str(v)[:6000]) for k, v in run.params.items()]
        for i in range(0, len(params), 100):  # MLflow's limit of params per call
            self.client.log_batch(self.run_id, params=params[i:i + 100])
        self.pending = []

    def log(self, step: int, values: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.pending += [Metric(k, v, now, step) for k, v in values.items()]
        if len(self.pending) >= self.BATCH:
            self.flush()

    def flush(self) -> None:
        while self.pending:
            batch, self.pending = self.pending[:self.BATCH], self.pending[self.BATCH:]
            self.client.log_batch(self.run_id, metrics=batch)

    def close(self, failed: bool) -> None:
        self.flush()
        self.client.set_terminated(self.run_id, "FAILED" if failed else "FINISHED")


def store_uri(folder: Path) -> str:
    """The MLflow tracking URI of a results root's store folder."""
    return f"sqlite:///{(Path(folder) / 'mlflow.db').resolve()}"


class WandB:
    """W&B in offline mode: the run is kept under the store folder (`wandb sync <folder>/wandb/offline-run-*` sends
    it later, where there is a network)."""

    def __init__(self, store: Path, run: Run):
        wandb = require("wandb")
        store.mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(mode="offline", dir=str(store), project=run.group, name=run.name, config=run.params,
                              tags=[f"{k}:{v}"[:64] for k, v in run.tags.items()], job_type=run.role,
                              reinit="create_new", settings=wandb.Settings(silent=True, console="off"))

    def log(self, step: int, values: dict[str, float]) -> None:
        self.run.log(values, step=step)

    def flush(self) -> None:
        pass  # offline runs write as they go

    def close(self, failed: bool) -> None:
        self.run.finish(exit_code=1 if failed else 0)
