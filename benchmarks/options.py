"""What a run is given besides its suite: the run context (results root, data, checkpoints, determinism, progress,
TensorBoard, executor) and one SLURM task's resources.

The lowest layer of `benchmarks` (it imports nothing of the package), so that the suite, the runner and the SLURM
executor can all take these without importing one another. Both are frozen: a `RunContext` travels whole, pickled by
submitit, into every SLURM task, which runs its jobs exactly as a local run would.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from kdfd.errors import ConfigError, one_of

EXECUTORS = ("local", "slurm")
DEVICES = ("auto", "cpu", "cuda")  # `bench run --device`: every job's device, in place of its [train] device


@dataclass(frozen=True)
class SlurmOptions:
    """Resources of one SLURM task (the suite's `[slurm]` table; `bench run` flags override it)."""

    partition: str | None = None
    time: int = 60  # minutes per task; on the limit the task is requeued and resumes from its checkpoint
    gpus: int = 0  # per task
    cpus: int = 4
    mem_gb: float | None = None  # unset: the cluster's default per CPU
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    array_parallelism: int = 64  # at most this many tasks of one array run at once
    signal_delay_s: int = 90  # how long before the time limit submitit is told to checkpoint and requeue
    max_requeues: int = 3  # time-outs a task may requeue after

    def __post_init__(self):
        for name in ("time", "cpus", "array_parallelism", "signal_delay_s"):
            if getattr(self, name) < 1:
                raise ConfigError(f"slurm {name} = {getattr(self, name)} is not allowed (must be >= 1)")
        if self.gpus < 0 or self.max_requeues < 0 or (self.mem_gb is not None and self.mem_gb <= 0):
            raise ConfigError("slurm gpus and max_requeues must be >= 0, mem_gb > 0")
        if self.signal_delay_s >= self.time * 60:
            raise ConfigError(f"slurm signal_delay_s = {self.signal_delay_s} must be shorter than the time limit "
                              f"({self.time} min)")

    def executor_parameters(self, processes: int = 1) -> dict:
        """submitit's parameters of one task; `processes`: each job's data-parallel processes (`--nproc`), one GPU
        each: the task asks for `gpus` x `processes` GPUs of one node."""
        p = {"timeout_min": self.time, "cpus_per_task": self.cpus, "slurm_array_parallelism": self.array_parallelism,
             "slurm_signal_delay_s": self.signal_delay_s, "slurm_additional_parameters": {}}
        if self.gpus:
            p["gpus_per_node"] = self.gpus * processes
        if self.mem_gb is not None:
            p["mem_gb"] = self.mem_gb
        for name in ("partition", "account", "qos", "constraint"):
            if getattr(self, name) is not None:
                p[f"slurm_{name}"] = getattr(self, name)
        return p


SLURM_FIELDS = [f.name for f in dataclasses.fields(SlurmOptions)]


@dataclass(frozen=True)
class RunContext:
    """Everything about a run that is not a job: the same for every job of it, never part of a job's id.

    results: the results root (records, checkpoints, teacher weights); glue_dir: GLUE in the TSV layout (None:
    $GLUE_DIR); checkpoint_every: steps between a job's checkpoints (and at every epoch end); deterministic: PyTorch's
    deterministic algorithms (`bench run --deterministic`; GPU only, CPU runs are bit-reproducible without it);
    progress: progress bars (a terminal only; the runner logs a line per finished job either way); tensorboard:
    every job writes TensorBoard events, as if its suite said `[train] tensorboard = true`; report_to: the trackers
    every job reports to (kdfd.events.TRACKERS); executor: where the jobs run (`local`: in this process, in order;
    `slurm`: submitted as job arrays, each task running its jobs with this same context, progress off);
    slurm, jobs_per_task: the SLURM executor's resources per task and how many jobs one task runs;
    gpus: the GPUs each job asked for (the suite's [slurm] gpus or `--gpus`, under either executor): a job that asked
    for one and sees none fails rather than train on CPU; device: `--device`, every job's device in place of its
    [train] device (None: the job's own), so that `--device cpu` trains a GPU suite on CPU without changing any job's
    id (the record's `device` says where it ran); nproc: `--nproc`, the processes each job trains in, data-parallel
    (kdfd.parallel: one GPU each on CUDA, each with its share of the threads on CPU), not part of any job's id.
    """

    results: Path
    glue_dir: str | None = None
    checkpoint_every: int = 500
    deterministic: bool = False
    progress: bool = True
    tensorboard: bool = False
    report_to: tuple[str, ...] = ()
    executor: str = "local"
    slurm: SlurmOptions = SlurmOptions()
    jobs_per_task: int = 1
    gpus: int = 0
    device: str | None = None
    nproc: int = 1

    def __post_init__(self):
        object.__setattr__(self, "results", Path(self.results))
        if self.checkpoint_every < 1:
            raise ConfigError(f"--checkpoint-every {self.checkpoint_every} is not allowed (must be >= 1 step)")
        if self.executor not in EXECUTORS:
            raise ConfigError(one_of("executor", self.executor, EXECUTORS))
        if self.jobs_per_task < 1:
            raise ConfigError(f"--jobs-per-task {self.jobs_per_task} is not allowed (must be >= 1)")
        if self.nproc < 1:
            raise ConfigError(f"--nproc {self.nproc} is not allowed (must be >= 1)")
        if self.device is not None and self.device not in DEVICES:
            raise ConfigError(f"--device {self.device!r} is not allowed (allowed: {', '.join(DEVICES)})")

    def device_of(self, job_device: str) -> str:
        """The device a job with `[train] device = job_device` runs on under this run: `--device` if given."""
        return self.device or job_device

    def wants_gpu(self, job_device: str) -> bool:
        """Whether a job must find a GPU: it asked for one (gpus), and neither it nor `--device` says cpu."""
        return self.gpus > 0 and self.device_of(job_device) != "cpu"

    def replace(self, **changes) -> "RunContext":
        return dataclasses.replace(self, **changes)
