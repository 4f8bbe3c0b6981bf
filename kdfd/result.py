"""What one trained job yields (`kdfd.job.run`), typed once; a run's record (benchmarks.store) embeds it as it is.

Plain JSON data throughout (dicts, lists, numbers, strings), so that the record holds it unchanged. A block of
metrics is {split: {metric: value}}, values as fractions (accuracy 0.71, not 71), correlations in [-1, 1].
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class JobResult:
    """One job's results. A field is None where the job had nothing of it (no teacher, no held-out split), and, in a
    record an older writer made, where that writer did not yet keep it."""

    # the trained model's dev metrics at the last epoch: the student's, a teacher job's own model's
    metrics: dict | None = None
    # {"heldout": {metric: value}}: its score on the part of train that `train.holdout` kept apart
    heldout_metrics: dict | None = None
    # the teacher's dev metrics at the last epoch (a frozen teacher: as at the start)
    teacher_metrics: dict | None = None
    teacher_metrics_start: dict | None = None  # the teacher's dev metrics before training
    majority_metrics: dict | None = None  # the best constant predictor's, on each dev split's labels
    # one point per epoch: {"epoch", "steps", "stage", "train_seconds", "eval_seconds", "loss": {"<role>/<term>":
    # value}, "dev": {role: metrics}, and with a held-out split "heldout": {role: {"heldout": {metric: value}}}}
    curves: list | None = None
    # with `train.eval_every`: a point every that many steps, {"step", "epoch", "stage", "loss", "dev"(, "heldout")}
    step_curves: list | None = None
    # what it trained and was scored on: {"source", "fingerprint" (of the examples), "train_examples", "dev_examples":
    # {split: n}, and where there were such, "quiz_examples", "heldout_examples"}
    data: dict | None = None
    model_fingerprints: dict | None = None  # {"student", "teacher"}: the hash of each model's local files, or None
    # numbers of parameters, {"student", "teacher", "method_student_modules", "method_teacher_modules"}: the
    # models' and the method's own modules' (the method's parameters are the job's config["params"])
    param_counts: dict | None = None
    device: str | None = None  # where it trained: "cpu", "cuda:0"
    precision: str | None = None  # what it trained in: fp32, bf16 or fp16 (train.precision resolved on the device)
    deterministic: bool | None = None  # whether PyTorch's deterministic algorithms were on
    resumed_from_step: int | None = None  # the step of the checkpoint it went on from; None: it ran from the start
    # the student's representations saved beside the record: {"representations" (the .npz's name), "split",
    # "examples", "names" (its arrays but the labels)}
    artifacts: dict | None = None
    test_predictions: dict | None = None  # {test split: number of predictions saved} (train.predict_test)
    teacher_cache: dict | None = None  # the frozen teacher's cached outputs: {"file", "found", "computed", "seconds"}
    # seconds, {"setup_seconds", "train_seconds", "eval_seconds", "wall_seconds", "carried_seconds" (a resumed job:
    # what the processes before it spent up to its checkpoint)}, and "steps" trained
    timing: dict | None = None

    def to_dict(self) -> dict:
        """Every field by its name, the values as they are (not copied)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict) -> JobResult:
        """The fields `data` has; those it lacks (an older writer's) are None, keys no field has (a newer writer's)
        are left out."""
        return cls(**{k: data[k] for k in FIELDS if k in data})


FIELDS = tuple(f.name for f in dataclasses.fields(JobResult))
