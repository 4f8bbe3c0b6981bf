"""TensorBoard events of one job (`train.tensorboard`): what the engine logs, as scalars against the step.

Tags, with steps counted from 1 (the first optimisation step):
- `loss/<role>/<term>` at every step: each term a method's losses return (`total` included), as the engine checks
  them before the update (the per-epoch means of the same values are the record's `curves`);
- `lr/<role>` (and `lr/<role>-modules` when `train.module_lr` gives a method's own modules their rate): the
  learning rate that step used;
- `dev/<role>/<split>/<metric>` at every evaluation: epoch ends and every `train.eval_every` steps.

A job resumed from a checkpoint at step T writes on in its folder with purge_step T + 1: TensorBoard hides what the
interrupted run wrote after its checkpoint, and the resumed run writes those steps again, so each step shows once
(the engine flushes the events with every checkpoint, so nothing up to T is lost to a kill). A job that starts
afresh deletes the events an earlier attempt of it left.
"""

from __future__ import annotations

from pathlib import Path

from .errors import ConfigError

EVENT_FILES = "events.out.tfevents.*"


def require():
    """torch's SummaryWriter, or a one-line error naming the missing package (before any job runs)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError("train.tensorboard = true needs the tensorboard package: "
                          "pip install 'kdfd-bench[tensorboard]'") from None
    return SummaryWriter


class Events:
    """One job's event folder, open for writing while the job trains."""

    def __init__(self, directory: Path, resumed_from: int | None = None):
        summary_writer = require()
        directory = Path(directory)
        if resumed_from is None:
            for old in directory.glob(EVENT_FILES):  # an earlier attempt that left no checkpoint to take up
                old.unlink()
        self.directory = directory
        self.writer = summary_writer(str(directory), purge_step=None if resumed_from is None else resumed_from + 1)

    def scalars(self, prefix: str, step: int, values: dict[str, float]) -> None:
        for name, value in values.items():
            self.writer.add_scalar(f"{prefix}/{name}", value, step)

    def dev(self, step: int, dev: dict[str, dict[str, dict[str, float]]]) -> None:
        """Dev metrics as the engine returns them: role -> split -> metric -> value."""
        for role, splits in dev.items():
            for split, metrics in splits.items():
                self.scalars(f"dev/{role}/{split}", step, metrics)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
