"""The `Distiller` interface and the method registry.

A method declares what it needs (`Needs`: the teacher's role, hidden states, attentions), owns its extra modules
(put in `self.student_modules` / `self.teacher_modules`, whose parameters the engine gives to that model's optimizer),
and returns named losses: a dict with `total` and every term, all logged. The engine (`kdfd.engine`) owns the loop,
optimizers, schedules, devices, autocast, evaluation, checkpoints and logging.

A new method is one small file:

    @register
    class MyKD(Distiller):
        name, description = "my-kd", "soft labels at a temperature"
        Params = MyParams                       # a dataclass; validated in __post_init__

        @classmethod
        def needs(cls, params): return Needs(teacher=FROZEN)

        def student_loss(self, batch, s, t):
            kd = losses.kd_kl(s.logits, t.logits, self.params.temperature)
            return {"total": kd, "kd": kd}
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from .errors import ConfigError, one_of
from .models import Forward, layer_map
from .tasks import Task

NONE, FROZEN, ONLINE = "none", "frozen", "online"
TEACHER_ROLES = (NONE, FROZEN, ONLINE)
TEACHER_INITS = ("finetuned", "pretrained")


@dataclass(frozen=True)
class Needs:
    """What a method asks of the engine.

    teacher: `none` (student alone), `frozen` (a fixed teacher, inference only), `online` (teacher and student
    trained together, a teacher phase then a student phase per step). teacher_init: whether the teacher starts from
    a task-fine-tuned checkpoint (the runner schedules one shared fine-tuning job) or from the pre-trained model.
    hidden_states / attentions / attention_scores: whether forward passes return every layer's states / attention
    probabilities (which need eager attention) / pre-softmax attention scores.
    """

    teacher: str = NONE
    teacher_init: str = "finetuned"
    hidden_states: bool = False
    attentions: bool = False
    attention_scores: bool = False

    def __post_init__(self):
        if self.teacher not in TEACHER_ROLES:
            raise ConfigError(one_of("teacher role", self.teacher, TEACHER_ROLES))
        if self.teacher_init not in TEACHER_INITS:
            raise ConfigError(one_of("teacher_init", self.teacher_init, TEACHER_INITS))

    @property
    def needs_finetuned_teacher(self) -> bool:
        return self.teacher != NONE and self.teacher_init == "finetuned"


@dataclass(frozen=True)
class ModelInfo:
    """What a method may know of a model when it builds its modules."""

    hidden_size: int
    num_layers: int
    num_heads: int | None = None

    @classmethod
    def of(cls, model) -> "ModelInfo | None":
        """What a built `Classifier` tells a method (None for no model)."""
        return None if model is None else cls(model.hidden_size, model.num_layers, model.num_heads)


@dataclass(frozen=True)
class Stage:
    """One phase of a staged method (PID, TinyBERT's two stages): its name, its share of the training steps, and
    which student parameter groups train during it (None: all of them), and a factor on the student's learning
    rates for its steps (a linear probe on a frozen body wants a larger rate than fine-tuning). Groups (see `Classifier.param_groups`):
    `embeddings`, `layer.1` .. `layer.L` (1-based, as in hidden_states), `head` (the classifier and the pooler).
    The method's own student modules always train. The engine freezes the other groups for the stage's steps."""

    name: str
    share: float = 1.0
    train: tuple[str, ...] | None = None
    lr_scale: float = 1.0  # the student's learning rates are multiplied by this during the stage


ALL = Stage("all")


def matched_layers(method: str, student: ModelInfo, teacher: ModelInfo, same_heads: bool = False) -> list[tuple[int, int]]:
    """The uniform (student, teacher) layer map, 1-based (12 -> 6: 2i); with same_heads, a clear error when the two
    models' attention maps cannot be compared head by head."""
    if same_heads and None not in (student.num_heads, teacher.num_heads) and student.num_heads != teacher.num_heads:
        raise ConfigError(f"{method} matches attention heads one to one: the student has {student.num_heads} heads, "
                          f"the teacher {teacher.num_heads} (they must be equal)")
    return layer_map(student.num_layers, teacher.num_layers, "skip")


@dataclass(frozen=True)
class NoParams:
    pass


class Distiller(nn.Module):
    name: ClassVar[str]
    description: ClassVar[str]
    version: ClassVar[str] = "1"  # bump when the method's math changes: records of two versions are never mixed
    # One line for the report's rules: how each loss term is normalised (sums or means, over what, which factors),
    # and whose choice that is (the authors' code, the paper as printed, ours).
    scale: ClassVar[str] = ""
    Params: ClassVar[type] = NoParams

    def __init__(self, params, task: Task, student: ModelInfo, teacher: ModelInfo | None):
        super().__init__()
        self.params, self.task = params, task
        self.student_modules = nn.ModuleDict()
        self.teacher_modules = nn.ModuleDict()
        self.stage = ALL  # set by the engine at each stage change

    def stages(self) -> list[Stage]:
        """The method's training phases, in order; one stage over all steps by default."""
        return [ALL]

    @classmethod
    def needs(cls, params) -> Needs:
        return Needs()

    def student_loss(self, batch: dict, s: Forward, t: Forward | None) -> dict[str, torch.Tensor]:
        """Losses of the student phase. s: the student's forward (with grad); t: the teacher's forward without
        grad (online methods: the teacher *after* this step's update), or None when the method has no teacher."""
        raise NotImplementedError

    def teacher_loss(self, batch: dict, t: Forward, s: Forward) -> dict[str, torch.Tensor]:
        """Losses of the teacher phase (online methods only). t: the teacher's forward (with grad); s: the student's
        forward at this step's parameters, detached."""
        raise NotImplementedError(f"method {self.name!r} declares no teacher phase")

    def init_models(self, student: nn.Module, teacher: nn.Module | None) -> None:
        """Called once the models are built and a fine-tuned teacher is loaded, before training (and before a resumed
        job restores its checkpoint): a method may re-initialise a part of a model as its authors did (ProKT zeroes
        the teacher's classifier). Does nothing by default."""

    def predict(self, role: str, out: Forward) -> torch.Tensor:
        """Logits [B, C] used for evaluation and as distillation targets; the model's own head by default."""
        return out.logits

    def representations(self, role: str, out: Forward) -> dict[str, torch.Tensor]:
        """Named sentence representations [B, D] saved on a fixed dev sample for the report's figures (covariance,
        t-SNE); the features the model's head classifies by default."""
        return {"features": out.features}


METHODS: dict[str, type[Distiller]] = {}


def register(cls: type[Distiller]) -> type[Distiller]:
    if not dataclasses.is_dataclass(cls.Params):
        raise TypeError(f"{cls.__name__}.Params must be a dataclass")
    if cls.name in METHODS and METHODS[cls.name] is not cls:
        raise ValueError(f"method name {cls.name!r} registered twice")
    METHODS[cls.name] = cls
    return cls


def get_method(name: str) -> type[Distiller]:
    try:
        return METHODS[name]
    except KeyError:
        raise ConfigError(one_of("method", name, METHODS)) from None


def param_fields(cls: type[Distiller]) -> list[tuple[str, type, object]]:
    """(name, type, default) of each parameter of a method."""
    hints = typing.get_type_hints(cls.Params)
    return [(f.name, hints[f.name], f.default) for f in dataclasses.fields(cls.Params)]


def parse_params(cls: type[Distiller], raw: dict | None, where: str = "") -> object:
    """A method's typed parameters from plain values; errors name the method, the key and what is allowed."""
    from .config import build

    prefix = f"{where}: " if where else ""
    return build(cls.Params, raw, f"{prefix}method {cls.name!r} parameters")


def check_choice(name: str, value, allowed) -> None:
    """For Params.__post_init__: a value outside a fixed set is an error naming the set."""
    if value not in allowed:
        raise ConfigError(f"{name} = {value!r} is not allowed (allowed: {', '.join(map(str, allowed))})")


def check_range(name: str, value, low=None, high=None, low_open=False) -> None:
    """For Params.__post_init__: a number outside [low, high] (or (low, high] with low_open) is an error."""
    bad = (low is not None and (value <= low if low_open else value < low)) or (high is not None and value > high)
    if bad:
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        interval = f"{'(' if low_open else '['}{lo}, {hi}]"
        raise ConfigError(f"{name} = {value} is not allowed (must be in {interval})")
