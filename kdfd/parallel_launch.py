"""Starting the N processes of a data-parallel job (`bench run --nproc N`) and collecting process 0's result; what
each process does and why is in kdfd.parallel."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import pickle
import signal
import tempfile
import threading
import traceback
from multiprocessing.connection import wait
from typing import TYPE_CHECKING

from .errors import ConfigError
from .parallel import Processes, refusal

if TYPE_CHECKING:  # torch is imported where it is used: a process's watchdog (`_die_with`) needs none
    from .job import ResolvedJob

# the job's outputs: process 0 writes them, the others are given none
OUTPUTS = ("save_model_to", "artifacts_to", "predictions_to", "events_to", "export_to", "about")
TIMEOUT = dt.timedelta(minutes=60)  # a collective waits this long (process 0 evaluates alone meanwhile)

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
