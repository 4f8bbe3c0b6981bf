"""Typed run configuration, validated once at the edge.

`build(cls, raw, where)` turns plain values into a frozen dataclass, with a one-line error for an unknown or missing
key (naming the allowed ones), a wrong type, or an impossible value. It is the one validator of every TOML file the
project reads (suites, a paper's tables, claims and paper.toml) and of the command line's values.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import tomllib

from .errors import ConfigError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
BATCHINGS = ("shuffle", "grouped")

MINILM = "minilm"
TINY = "tiny"
LAYER_CHOICES = ("first", "skip")
POOLINGS = ("auto", "pooler", "cls", "mean")


def later(default):
    """A field added after records existed: left out of a job's id while it holds `default`, so that every earlier
    record keeps its id (and is not re-run) until a suite turns the new switch on."""
    return field(default=default, metadata={"later": True})


def observe(default):
    """A field that changes what a job shows while it runs (logging), never what it computes: left out of a job's
    id and its recorded config at every value, so turning it on or off neither re-runs a finished job nor splits a
    report's groups."""
    return field(default=default, metadata={"observe": True})


@dataclass(frozen=True)
class ModelSpec:
    """What model to build. `hidden`, `heads`, `intermediate` apply to `tiny` only."""

    name: str = TINY
    layers: int | None = None  # tiny: its depth (default 2); pre-trained: keep this many layers (default all)
    layer_choice: str = "first"  # which layers `layers` keeps: first | skip
    pooling: str = "auto"  # classifier input: auto (pooler when the model has one, else cls) | pooler | cls | mean
    hidden: int = 64
    heads: int = 2
    intermediate: int = 128
    dropout: float = 0.1
    # A teacher only: `name` is a sequence classifier already fine-tuned on the task (a local folder or a hub id of a
    # BertForSequenceClassification, e.g. a `bench export` folder): it is loaded with its head, and no teacher
    # fine-tuning job runs (kdfd.export.load_classifier).
    finetuned: bool = later(False)

    def __post_init__(self):
        if self.finetuned and (self.name == TINY or self.layers is not None):
            raise ConfigError(f"finetuned = true needs a fine-tuned checkpoint, used whole: name = {self.name!r} "
                              f"with layers = {self.layers} is not allowed (give a folder or hub id, no layers)")
        if self.layer_choice not in LAYER_CHOICES:
            raise ConfigError(f"layer_choice {self.layer_choice!r} is not allowed "
                              f"(allowed: {', '.join(LAYER_CHOICES)})")
        if self.pooling not in POOLINGS:
            raise ConfigError(f"pooling {self.pooling!r} is not allowed (allowed: {', '.join(POOLINGS)})")
        if self.layers is not None and self.layers < 1:
            raise ConfigError(f"layers = {self.layers} is not allowed (must be >= 1)")
        if self.name == TINY and (self.hidden < 1 or self.hidden % self.heads):
            raise ConfigError(f"tiny model: hidden = {self.hidden} must be a positive multiple of heads = {self.heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout = {self.dropout} is not allowed (must be in [0, 1))")

    @property
    def pretrained(self) -> bool:
        return self.name != TINY


@dataclass(frozen=True)
class TrainConfig:
    """Training budget and optimisation. The paper fixes max_length 128 and batch 32; it leaves epochs, warmup,
    schedule and weight decay open: the defaults below are the usual BERT fine-tuning recipe (AdamW, linear warmup
    over 10% of steps then linear decay, weight decay 0.01 except biases and LayerNorm, gradient clipping at 1)."""

    epochs: int = 3
    batch_size: int = 32
    eval_batch_size: int = 128
    max_length: int = 128
    lr: float = 3e-5  # the student's (or the single model's) learning rate
    teacher_lr: float = 3e-5  # the teacher's: its fine-tuning and its online updates
    teacher_epochs: int = 3  # epochs of the teacher's task fine-tuning
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    max_train_examples: int | None = None  # a fixed random subset (data seed 0, the same for every run seed)
    # The teacher's fine-tuning subset; unset: the same as max_train_examples. CPU suites give the teacher more data
    # than the students so that it is a teacher worth distilling from.
    teacher_max_train_examples: int | None = None
    max_eval_examples: int | None = None
    # auto: bf16 autocast on a CUDA device that supports it, else fp16 autocast with a gradient scaler; fp32 on CPU.
    # bf16, fp16: that autocast wherever the job runs (fp16 always with a scaler); fp32: no autocast
    precision: str = "auto"
    device: str = "auto"  # auto: cuda when available
    # Predict the GLUE test files after training and save the predictions beside the record, for
    # `bench report --glue-submission`. Needs the TSV source (test labels are hidden, so no metric changes).
    predict_test: bool = later(False)
    # Training batch order. shuffle: a seeded permutation per epoch. grouped: the same permutation cut into
    # mega-batches of `group_size` batches, each sorted by length, so a batch pads to similar lengths (fewer padded
    # tokens; the order still depends only on seed and epoch). Both pad each batch to its own longest example.
    batching: str = later("shuffle")
    group_size: int = later(50)  # batches per mega-batch under grouped batching (Hugging Face's default: 50)
    # Offline methods (a frozen teacher): compute the teacher's outputs once, keep them in float16 on disk under the
    # results root keyed by the teacher's weights and each tokenized example, and reuse them across epochs, seeds'
    # methods and re-runs. Off by default: cached targets differ from live ones by float16 rounding.
    teacher_cache: bool = later(False)
    compile: bool = later(False)  # torch.compile the models (CUDA clusters; a first-step compile cost)
    # Evaluate the student (and an online teacher) on dev every this many steps, with the mean of every loss term
    # since the last such point: learning curves against steps within an epoch (the CPU protocol's evidence).
    # 0: at epoch ends only. Evaluation does not touch the RNG or the data order, so it never changes the result.
    eval_every: int = later(0)
    # The seed of the teacher fine-tuning job. Unset: each run seed fine-tunes its own teacher. Set: one teacher per
    # task (trained with this seed) is shared by every run seed; pairs of methods at one seed still share teacher
    # and data order.
    teacher_seed: int | None = later(None)
    # Learning rate of a method's own new modules (KDFD's bottleneck and head, projections); unset: the rate of the
    # model they belong to. Fresh linear maps on a pre-trained backbone often want a larger rate than the backbone.
    module_lr: float | None = later(None)
    # Write every loss term, the learning rates and the dev metrics as TensorBoard events beside the job's record
    # (kdfd.events; `bench run --tensorboard` turns it on for every job). Needs kdfd-bench[tensorboard].
    tensorboard: bool = observe(False)
    # Write the trained model (a student; a teacher job's fine-tuned teacher) as a transformers folder beside the
    # job's record, which AutoModelForSequenceClassification.from_pretrained loads (kdfd.export). Out of the job's id:
    # a done job without that folder runs again, with the same id and results, to write it.
    save_model: bool = observe(False)
    # A fixed, stratified share of the training set held out (kdfd.data.holdout_split: data seed 0, one per task):
    # the student never trains on it, every epoch end scores it (the record's `heldout` metrics: what a suite's
    # [select] table selects configurations by, never the dev set it reports), and methods that need a quiz split
    # draw it from there. 0: train on the whole training set.
    holdout: float = later(0.0)
    # The teacher fine-tuning job's held-out share; unset: the students' `holdout`. Lets a student arm train on the
    # whole set while distilling from the teachers of a held-out protocol.
    teacher_holdout: float | None = later(None)

    def __post_init__(self):
        for name in ("epochs", "batch_size", "eval_batch_size", "max_length", "teacher_epochs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} = {getattr(self, name)} is not allowed (must be >= 1)")
        for name in ("lr", "teacher_lr"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} = {getattr(self, name)} is not allowed (must be > 0)")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"warmup_ratio = {self.warmup_ratio} is not allowed (must be in [0, 1))")
        if self.weight_decay < 0 or self.max_grad_norm <= 0:
            raise ConfigError("weight_decay must be >= 0 and max_grad_norm > 0")
        for name in ("max_train_examples", "teacher_max_train_examples", "max_eval_examples"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"{name} = {getattr(self, name)} is not allowed (must be >= 1 or unset)")
        if self.batching not in BATCHINGS:
            raise ConfigError(f"batching {self.batching!r} is not allowed (allowed: {', '.join(BATCHINGS)})")
        if self.eval_every < 0:
            raise ConfigError(f"eval_every = {self.eval_every} is not allowed (must be >= 0; 0: at epoch ends only)")
        if self.module_lr is not None and not self.module_lr > 0:
            raise ConfigError(f"module_lr = {self.module_lr} is not allowed (must be > 0 or unset)")
        if self.group_size < 1:
            raise ConfigError(f"group_size = {self.group_size} is not allowed (must be >= 1)")
        for name in ("holdout", "teacher_holdout"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 0.5:
                raise ConfigError(f"{name} = {value} is not allowed (must be in [0, 0.5]; 0: no held-out split)")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision {self.precision!r} is not allowed (allowed: {', '.join(PRECISIONS)})")


@dataclass(frozen=True)
class RunConfig:
    """One job: a method trained on a task with a seed. `role = teacher` marks a teacher fine-tuning job (method
    finetune on the teacher model), whose checkpoint other jobs start from."""

    task: str
    method: str
    seed: int
    student: ModelSpec
    teacher: ModelSpec | None = None
    params: dict = field(default_factory=dict)  # the method's parameters, every default filled in
    train: TrainConfig = field(default_factory=TrainConfig)
    data_source: str = "auto"
    tokenizer: str = "auto"  # auto: the teacher's, else the student's, else the synthetic word-level one
    role: str = "student"
    method_version: str = "1"
    teacher_job: str | None = None  # id of the teacher fine-tuning job this job starts from

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for f in dataclasses.fields(TrainConfig):
            if f.metadata.get("observe") or (f.metadata.get("later") and d["train"][f.name] == f.default):
                del d["train"][f.name]
        for role in ("student", "teacher"):
            for f in dataclasses.fields(ModelSpec):
                if d[role] is not None and f.metadata.get("later") and d[role][f.name] == f.default:
                    del d[role][f.name]
        return d

    def hash(self) -> str:
        """A stable id of everything that changes the result (sorted-key canonical JSON)."""
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def resolved_tokenizer(self) -> str:
        if self.tokenizer != "auto":
            return self.tokenizer
        for spec in (self.teacher, self.student):
            if spec is not None and spec.pretrained:
                return spec.name
        return "synthetic"


def build(cls, raw: dict | None, where: str):
    """A frozen dataclass from a plain table (a TOML file's, the command line's): its keys are the fields of `cls`
    (`derived` ones aside), each field without a default is given, each value has its field's type (a table for a
    dataclass, a list of tables for a tuple of them: built alike), and `nonempty` strings are not empty. Every error
    is one line naming `where` (file and section), the key, and what is allowed."""
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(f"{where}: must be a table, not {raw!r}")
    raw = dict(raw or {})
    allowed, required = _keys(cls)
    check_keys(raw, allowed, required, where)
    hints = _hints(cls)
    values = {k: coerce(v, hints[k], f"{where}: {k}") for k, v in raw.items()}
    for f in dataclasses.fields(cls):
        if f.metadata.get("nonempty") and values.get(f.name) == "":
            raise ConfigError(f"{where}: {f.name} must be a non-empty string, not ''")
    try:
        return cls(**values)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None


def read_toml(path, where: str) -> dict:
    """A TOML file's top-level table; a file that does not parse is a one-line error naming `where`."""
    try:
        return tomllib.loads(Path(path).read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{where}: not valid TOML ({e})") from None


def check_keys(raw: dict, allowed, required, where: str) -> None:
    """A table has no key outside `allowed` (a typo would otherwise be ignored silently) and every `required` one."""
    for key in raw:
        if key not in allowed:
            raise ConfigError(f"{where}: unknown key {key!r} (allowed: {', '.join(allowed)})")
    for key in required:
        if key not in raw:
            raise ConfigError(f"{where}: missing key {key!r} (needs: {', '.join(required)})")


def nonempty(default=dataclasses.MISSING):
    """A string field that a file may not leave empty (a name, a caption: empty, it would print as nothing)."""
    return field(default=default, metadata={"nonempty": True})


def derived(default):
    """A field its reader fills in (where the file was read from), never a key of the file: `build` refuses it."""
    return field(default=default, metadata={"derived": True})


@functools.cache
def _keys(cls) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(the keys a table of `cls` may have, those it must have), in the fields' order."""
    fields = [f for f in dataclasses.fields(cls) if not f.metadata.get("derived")]
    required = tuple(f.name for f in fields
                     if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
    return tuple(f.name for f in fields), required


@functools.cache
def _hints(cls) -> dict:
    return typing.get_type_hints(cls)


def coerce(value, tp, what: str):
    """Check a plain value against a simple annotation (int, float, str, bool, X | None, tuple[X, ...] from a list,
    dict[str, X] from a table, a dataclass from a table: `build`)."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        tp = next(a for a in args if a is not type(None))
        args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{what} = {value!r} has type {type(value).__name__}, expected a table")
        return build(tp, value, what)
    origin = typing.get_origin(tp)
    if origin is tuple and isinstance(value, (list, tuple)):
        if dataclasses.is_dataclass(args[0]):  # a list of tables, counted from 1 as a reader counts them
            return tuple(coerce(v, args[0], f"{what} #{i + 1}") for i, v in enumerate(value))
        return tuple(coerce(v, args[0], f"{what}[{i}]") for i, v in enumerate(value))
    if origin is dict and isinstance(value, dict):
        return {k: coerce(v, args[1], f"{what}.{k}") for k, v in value.items()}
    tp = origin or tp  # a list where a table belongs (or the reverse) is named by the container's type
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    ok = isinstance(value, tp) and not (tp in (int, float) and isinstance(value, bool))
    if not ok:
        raise ConfigError(f"{what} = {value!r} has type {type(value).__name__}, expected {tp.__name__}")
    return value
