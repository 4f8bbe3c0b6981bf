"""Resumable training state: a job stopped anywhere (kill -9, a SLURM time limit, preemption) continues from its last
checkpoint and ends with the metrics an uninterrupted run would have had (bit for bit on CPU).

A checkpoint holds the engine's state (weights, optimizers, schedulers, step, stage), the RNG states (Python, NumPy,
torch CPU and CUDA) and the loop's position: the epoch, the batch within it (the data order is a function of seed and
epoch, see `data.EpochSampler`), the running loss sums of the epoch and the curves of the epochs before.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import files
from .files import atomic_write, move_aside


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass
class Checkpointer:
    """Where and how often `Engine.fit` saves: every `every` optimisation steps and at each epoch's end."""

    path: Path
    every: int = 500

    def __post_init__(self):
        self.path = Path(self.path)
        if self.every < 1:
            raise ValueError(f"checkpoint interval {self.every} is not allowed (must be >= 1 step)")

    def save(self, state: dict) -> None:
        """Atomic: a reader (or a resumed job) sees the previous checkpoint or the complete new one."""
        atomic_write(self.path, lambda f: torch.save(state, f), crash_at="checkpoint-write", checksum=True)

    def load(self) -> dict | None:
        """The last checkpoint, or None when there is none. One that does not match its checksum or does not load
        (a disk fault: writes are atomic) is moved aside to `<name>.corrupt`, said in one line, and the job starts
        again from step 0."""
        if not self.path.is_file():
            return None
        why = files.damage(self.path)
        if why is None:
            try:
                # weights_only=False: the state holds NumPy's RNG tuple and Python's; the file is this job's own.
                return torch.load(self.path, map_location="cpu", weights_only=False)
            except Exception as e:
                why = f"unreadable ({type(e).__name__})"
        aside = move_aside(self.path)
        print(f"checkpoint {self.path} is damaged: {why}; kept as {aside.name}, the job starts again from step 0",
              flush=True)
        return None

    def remove(self) -> None:
        files.remove(self.path)
