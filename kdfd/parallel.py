"""Data-parallel training of one job over N processes on one machine (`bench run --nproc N`): one GPU each on CUDA
(NCCL), or N CPU processes (gloo), for the large tasks (MNLI, QQP).

How a job runs in N processes (`run`):
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

import datetime as dt
import multiprocessing
import os
import pickle
import signal
import tempfile
import threading
import traceback
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import TYPE_CHECKING

from .errors import ConfigError

if TYPE_CHECKING:  # torch is imported where it is used: a process's watchdog (`_die_with`) needs none
    import torch

    from .job import ResolvedJob

# the job's outputs: process 0 writes them, the others are given none
OUTPUTS = ("save_model_to", "artifacts_to", "predictions_to", "events_to", "export_to", "about")
TIMEOUT = dt.timedelta(minutes=60)  # a collective waits this long (process 0 evaluates alone meanwhile)


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


def run(job: ResolvedJob, nproc: int, **kwargs) -> dict:
    """`kdfd.job.run(job, **kwargs)` trained over `nproc` processes on this machine; returns process 0's result.
    Raises what a process raised (its traceback chained), or a RuntimeError naming a process that died."""
    import torch

    from .engine import resolve_device

    why = refusal(job, nproc)
    if why:
        raise ConfigError(why)
    device = resolve_device(kwargs.get("device") or job.train.device)
    if device.type == "cuda" and torch.cuda.device_count() < nproc:
        raise ConfigError(f"--nproc {nproc} trains on {nproc} GPUs, one per process, and torch sees "
                          f"{torch.cuda.device_count()} (CUDA_VISIBLE_DEVICES="
                          f"{os.environ.get('CUDA_VISIBLE_DEVICES')!r})")
    threads = max(1, torch.get_num_threads() // nproc)
    others = {**{k: v for k, v in kwargs.items() if k not in OUTPUTS}, "progress": False}
    context = starter()
    procs, pipes = [], []
    alive, alive_send = context.Pipe(duplex=False)  # the processes' watchdogs read EOF when this process dies
    with tempfile.TemporaryDirectory(prefix="kdfd-ddp-") as tmp:
        try:
            for rank in range(nproc):
                receive, send = context.Pipe(duplex=False)
                args = (rank, nproc, f"file://{tmp}/store", threads, device.type, job,
                        kwargs if rank == 0 else others, send, dict(os.environ), alive)
                proc = context.Process(target=_process, args=args, daemon=True, name=f"kdfd-rank-{rank}")
                proc.start()
                send.close()
                procs.append(proc)
                pipes.append(receive)
            result = _collect(procs, pipes)
            for proc in procs:  # done: they end on their own
                proc.join(timeout=30)
            return result
        finally:
            for proc in procs:  # whatever happened: no process outlives the job
                if proc.is_alive():
                    proc.kill()
            for proc in procs:
                proc.join()
            alive.close()
            alive_send.close()


# what the fork server imports once: the training code, and what it imports only when a job runs (transformers'
# BERT, scikit-learn's splitters); a module that does not import is left to the processes
PRELOAD = ["kdfd.job", "transformers.models.bert.modeling_bert", "sklearn.model_selection"]


def starter():
    """How the processes start: forked from a fork server (`multiprocessing`'s forkserver, where there is one)
    that imported the training code once for the runner's whole run, not from the runner's process itself (whose
    torch thread pools a fork would copy mid-use); else spawned, each importing it anew."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return context


def _collect(procs: list, pipes: list) -> dict:
    """Every process's outcome; process 0's result, or the first failure raised."""
    results: dict[int, object] = {}
    while len(results) < len(procs):
        left = [r for r in range(len(procs)) if r not in results]
        ready = wait([pipes[r] for r in left] + [procs[r].sentinel for r in left])
        for r in left:
            if pipes[r] in ready or (procs[r].sentinel in ready and pipes[r].poll()):
                try:
                    message = pipes[r].recv()
                except EOFError:
                    message = None
                if message is None:
                    procs[r].join()
                    raise RuntimeError(_died(r, len(procs), procs[r].exitcode))
                if message[0] == "error":
                    raise _remote(r, len(procs), *message[1:])
                results[r] = message[1]
            elif procs[r].sentinel in ready:
                procs[r].join()
                raise RuntimeError(_died(r, len(procs), procs[r].exitcode))
    return results[0]


def _died(rank: int, world: int, code: int | None) -> str:
    how = f"was killed by {signal.Signals(-code).name}" if code is not None and code < 0 else f"exited ({code})"
    return (f"process {rank} of the job's {world} data-parallel processes {how} before it finished; the job keeps its "
            "last checkpoint, and a re-run resumes from it")


class RemoteTraceback(Exception):
    """A process's traceback, chained to the error it raised (as concurrent.futures does)."""

    def __str__(self):
        return self.args[0]


def _remote(rank: int, world: int, error: bytes | None, name: str, message: str, tb: str) -> BaseException:
    try:
        exc = pickle.loads(error) if error is not None else None
    except Exception:
        exc = None
    if exc is None:
        exc = RuntimeError(f"process {rank} of {world}: {name}: {message}")
    exc.__cause__ = RemoteTraceback(f"\n(process {rank} of {world})\n{tb}")
    return exc


def _process(rank: int, world: int, store: str, threads: int, device_type: str, job, kwargs: dict, conn,
             environ: dict, alive) -> None:
    """One data-parallel process: joins the group, trains its part of the job, sends back what came of it. Its
    environment is the runner's when it started the job (the fork server's dates from the run's first job)."""
    _die_with(alive)
    os.environ.clear()
    os.environ.update(environ)
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world))
    import torch
    import torch.distributed as dist

    torch.set_num_threads(threads)
    try:
        if device_type == "cuda":
            torch.cuda.set_device(rank)
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo", init_method=store, rank=rank,
                                world_size=world, timeout=TIMEOUT)
        from .job import run as run_job

        conn.send(("ok", run_job(job, processes=Processes(rank, world), **kwargs)))
    except BaseException as e:  # noqa: BLE001 (handed to the runner, which raises it)
        try:
            error = pickle.dumps(e)
        except Exception:
            error = None
        conn.send(("error", error, type(e).__name__, str(e), traceback.format_exc()))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
        conn.close()


def _die_with(alive) -> None:
    """End this process as soon as the runner's process ends, however it ends (kill -9 included): `alive` is the
    read end of a pipe whose only write end the runner holds, and a watchdog thread waits for its end of file. (Not
    the parent's death: a fork server's children keep it alive.)"""

    def watch():
        try:
            alive.recv_bytes()
        except (EOFError, OSError):
            pass
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, daemon=True, name="kdfd-watchdog").start()
