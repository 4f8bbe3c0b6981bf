"""Data-parallel training of one job over N processes on one machine (`bench run --nproc N`): one GPU each on CUDA
(NCCL), or N CPU processes (gloo), for the large tasks (MNLI, QQP).

What a process of a job needs to know (this module: its place, the refusals, its seed, the sum over processes);
`kdfd.parallel_launch.run` starts the processes. How a job runs in N processes:
- The runner's process (which holds the job's lock) starts N processes (`multiprocessing`: forked from a fork
  server that imported the training code once per run, or spawned; with the runner's environment and torchrun's
  RANK / WORLD_SIZE / LOCAL_RANK), joined in one `torch.distributed` group through a file store in a temporary
  folder; process r trains on `cuda:r`, or on CPU with an equal share of the threads. Each runs
  `kdfd.job.run` with its rank; process 0's result comes back and the runner records it as any job's. A process
  that fails ends the others; one killed (kill -9, the OOM killer) fails the job in its record, and a re-run resumes
  from the last checkpoint. The processes end with the runner's process, even on kill -9 (a watchdog on a pipe).
- Same math as one process: every process sees the whole training order (the same seeded permutation of each
  epoch) and takes its part of each batch (`kdfd.data.ShardedSampler`: batch_size / N examples of each batch,
  which must divide it); after each backward pass, the gradients are averaged over the processes weighted by each
  one's examples (`Engine._sync_grads`), so every optimizer steps on the gradient of the loss averaged over the
  whole batch (a short last batch too), then clips and steps alike in every process. Logged loss terms are the
  whole batch's, averaged the same way. Parameters start equal (broadcast from process 0).
- Process 0 alone evaluates, writes checkpoints (with every process's RNG state), events, representations,
  predictions and models; the others wait for it at the next step's collective.
- What differs from one process: the order of float additions (each process reduces its part, then the parts are
  summed): the losses and metrics agree to float rounding, which training amplifies slowly (the test: tiny models,
  two processes, a few dozen steps, losses within 1e-4 relative); and random draws: each process draws its own
  dropout masks and samples (KDFD's VAE noise, BERT-of-Theseus's replaced modules) from its own stream (process r
  > 0 reseeded from the job's seed and r), so with dropout on the results agree in distribution, not in value.
  Losses that average over the tokens of the whole batch (TinyBERT's, Internal KD's attention terms) are averaged
  per process, then weighted by examples: not the same weighting as one process's.
- Refused, one line each, before anything runs: a method that cannot train so (`Distiller.data_parallel`: the
  methods whose teacher learns from a look-ahead step of the student), a batch size that N does not divide, more
  processes than GPUs on CUDA.

The number of processes is not part of a job's id (a record of 1 and of N processes are the same job; the record's
`executor.processes` says how it ran); a checkpoint written by N processes resumes in any number of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where it is used
    import torch

    from .job import ResolvedJob


@dataclass(frozen=True)
class Processes:
    """Where a process stands among the job's data-parallel processes."""

    rank: int
    world: int

    @property
    def lead(self) -> bool:
        """Process 0: evaluates and writes."""
        return self.rank == 0


def refusal(job: ResolvedJob, nproc: int) -> str | None:
    """Why `job` cannot train over `nproc` processes (one line), or None when it can (always at 1)."""
    if nproc < 1:
        return f"--nproc {nproc} is not allowed (must be >= 1)"
    if nproc == 1:
        return None
    why = job.method.data_parallel(job.params)
    if why:
        return f"method {job.method.name!r} cannot train data-parallel (--nproc {nproc}): {why}; run it with --nproc 1"
    batch = job.train.batch_size
    if batch % nproc:
        return (f"batch_size = {batch} does not split over --nproc {nproc} processes (each takes batch_size / nproc "
                "examples of every batch): give a batch size that the number of processes divides")
    return None


def rank_seed(seed: int, rank: int) -> int:
    """The seed of process `rank` > 0's own random stream (dropout, sampling), apart from every job seed's."""
    return (seed * 1_000_003 + rank * 7_919) % 2**63


def all_reduce(tensor: "torch.Tensor", device: "torch.device") -> "torch.Tensor":
    """The sum over the processes of `tensor`, on the collective's device (NCCL: the GPU; gloo: the CPU), returned
    where `tensor` was."""
    import torch.distributed as dist

    moved = tensor.to(device)
    dist.all_reduce(moved)
    return moved.to(tensor.device)
