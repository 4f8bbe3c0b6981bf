"""The `Distiller` interface. The registry is kdfd.registry; its `register` is re-exported here because the method
modules import it from here, and a method's code fingerprint (kdfd.method_code) hashes its module's import lines:
moving theirs would mark every committed record as made by other code. This module does not import it otherwise.

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

import ast
import contextlib
import dataclasses
import functools
import inspect
import math
import textwrap
import typing
from dataclasses import dataclass
from typing import Callable, ClassVar

import torch
from torch import nn

from .errors import ConfigError, one_of
from .models import Forward, layer_map
from .registry import register  # noqa: F401 (re-exported: the module docstring says why)
from .tasks import Task

NONE, FROZEN, ONLINE = "none", "frozen", "online"
TEACHER_ROLES = (NONE, FROZEN, ONLINE)
TEACHER_INITS = ("finetuned", "pretrained")
TEACHER_TRAINS = ("all", "modules")


@dataclass(frozen=True)
class Needs:
    """What a method asks of the engine.

    teacher: `none` (student alone), `frozen` (a fixed teacher, inference only), `online` (teacher and student
    trained together, a teacher phase then a student phase per step). teacher_init: whether the teacher starts from
    a task-fine-tuned checkpoint (the runner schedules one shared fine-tuning job) or from the pre-trained model.
    teacher_trains: which parameters of an online teacher its optimizer trains: `all` (the teacher model's and the
    method's teacher modules), or `modules` (the method's `teacher_modules` alone: the engine freezes the teacher
    model's own weights, requires_grad off, before it builds the teacher's optimizer, which takes only parameters
    that train; PESF-KD's adapters). Gradient still flows through the frozen weights to the modules inside them.
    hidden_states / attentions / attention_scores: whether forward passes return every layer's states / attention
    probabilities (which need eager attention) / pre-softmax attention scores.
    quiz_fraction: the share of the training set held out as a quiz split (meta-learning methods: the teacher
    learns from the student's loss on it), fixed by the data seed and never part of the dev set; the student never
    trains on it; the method draws its batches with `Distiller.next_quiz`. 0: no quiz split.
    teacher_lr: the online teacher's learning rate when the method fixes its own (None: `train.teacher_lr`, which
    also fine-tunes the teacher, so a method's own rate leaves the shared fine-tuned teacher as it is).
    """

    teacher: str = NONE
    teacher_init: str = "finetuned"
    teacher_trains: str = "all"
    hidden_states: bool = False
    attentions: bool = False
    attention_scores: bool = False
    quiz_fraction: float = 0.0
    teacher_lr: float | None = None

    def __post_init__(self):
        if self.teacher not in TEACHER_ROLES:
            raise ConfigError(one_of("teacher role", self.teacher, TEACHER_ROLES))
        if self.teacher_init not in TEACHER_INITS:
            raise ConfigError(one_of("teacher_init", self.teacher_init, TEACHER_INITS))
        if self.teacher_trains not in TEACHER_TRAINS:
            raise ConfigError(one_of("teacher_trains", self.teacher_trains, TEACHER_TRAINS))
        if self.teacher_trains != "all" and self.teacher != ONLINE:
            raise ConfigError(f"teacher_trains = {self.teacher_trains!r} applies to an online teacher, not a "
                              f"{self.teacher!r} one")
        check_range("quiz_fraction", self.quiz_fraction, 0.0, 0.5)
        if self.teacher_lr is not None:
            check_range("teacher_lr", self.teacher_lr, 0.0, None, low_open=True)

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
    rates for its steps (a linear probe on a frozen body wants a larger rate than fine-tuning). Groups (see
    `Classifier.param_groups`): `embeddings`, `layer.1` .. `layer.L` (1-based, as in hidden_states), `head` (the
    classifier and the pooler).
    The method's own student modules always train. The engine freezes the other groups for the stage's steps."""

    name: str
    share: float = 1.0
    train: tuple[str, ...] | None = None
    lr_scale: float = 1.0  # the student's learning rates are multiplied by this during the stage
    # the student's optimizer starts afresh (AdamW moments and step count zeroed) when training enters this stage, as
    # when a method's authors run its stages as separate runs (TinyBERT's task_distill.py): otherwise the moments of
    # a stage with far larger gradients keep shrinking the next stage's steps for hundreds of steps (beta2 = 0.999)
    fresh_optimizer: bool = False
    # the student's learning rate runs its own warmup and linear decay over this stage's steps (the run's warmup
    # ratio), as in a separate run, instead of following the run's one schedule through it
    own_schedule: bool = False


ALL = Stage("all")


def matched_layers(method: str, student: ModelInfo, teacher: ModelInfo,
                   same_heads: bool = False) -> list[tuple[int, int]]:
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
    # Set by the engine before training, for methods that learn from the student's feedback: the student as a
    # function of its parameters (a StudentFunction), and a callable returning the next batch of the quiz split on
    # the device (methods whose Needs ask for quiz_fraction > 0; it raises where no quiz split was given).
    student_fn: "StudentFunction | None" = None
    next_quiz: "Callable[[], dict] | None" = None

    def __init__(self, params, task: Task, student: ModelInfo, teacher: ModelInfo | None):
        super().__init__()
        self.params, self.task = params, task
        self.student_modules = nn.ModuleDict()
        self.teacher_modules = nn.ModuleDict()
        self.stage = ALL  # set by the engine at each stage change
        self.stage_span = (0, 0)  # (first step, end step) of `stage`, 0-based, end excluded; set with it

    def stages(self) -> list[Stage]:
        """The method's training phases, in order; one stage over all steps by default."""
        return [ALL]

    @classmethod
    def needs(cls, params) -> Needs:
        return Needs()

    @classmethod
    def data_parallel(cls, params) -> str | None:
        """Why the method cannot train data-parallel (`bench run --nproc N`: each of N processes takes a share of
        every batch, and their gradients are averaged into the whole batch's), or None when it can. A method
        overrides it to say so. By default: a method that looks one step ahead of the student cannot (MetaDistil,
        ReptileDistil, LGTM): its code reads `student_fn` or `next_quiz`, or its Needs ask for a quiz split. Its
        teacher learns from a step of the student taken from the gradient of the step's whole batch inside the
        teacher's loss, where the engine cannot average it over the processes."""
        if looks_ahead(cls) or needs_of(cls, params).quiz_fraction > 0:
            return ("its teacher learns from a look-ahead step of the student on the whole batch (a pilot, copied "
                    "or unrolled step through Distiller.student_fn; MetaDistil's meta-gradient is second order "
                    "through it): each process would step on its share of the batch, and the teacher's update would "
                    "not be the method's")
        return None

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

    def student_forward(self, batch: dict, student: nn.Module, teacher: nn.Module | None, step: int) -> Forward | None:
        """The student phase's training forward, for a method that trains the student inside a model of its own
        making (BERT-of-Theseus: student layers mixed with frozen teacher layers). batch: on the device, input_ids /
        attention_mask / token_type_ids [B, T] and labels [B]; step: the engine's step, 0-based (`stage_span` says
        where the current stage starts and ends). Called under the engine's autocast, the student in train mode and
        the teacher in the mode the engine left it (eval for a frozen teacher). The Forward returned (with grad,
        carrying what `needs` asks for) is the `s` of student_loss (and, detached, of teacher_loss); if it reaches
        no parameter that trains, the step makes no update (the schedules still advance). None, the default: the
        engine's own forward of the student. Evaluation, representations and teacher targets always run the models
        themselves: the model evaluated and recorded is the student alone."""
        return None

    def predict(self, role: str, out: Forward) -> torch.Tensor:
        """Logits [B, C] used for evaluation and as distillation targets; the model's own head by default."""
        return out.logits

    def representations(self, role: str, out: Forward) -> dict[str, torch.Tensor]:
        """Named sentence representations [B, D] saved on a fixed dev sample for the report's figures (covariance,
        t-SNE); the features the model's head classifies by default."""
        return {"features": out.features}


LOOK_AHEAD = ("student_fn", "next_quiz")  # what a method that looks one step ahead of the student reads


@functools.lru_cache(maxsize=None)
def looks_ahead(cls: type[Distiller]) -> bool:
    """Whether the code of a method's classes (below Distiller) reads `student_fn` or `next_quiz`, from their syntax
    trees (False where a class has no source: a data-parallel process then refuses the first use itself)."""
    for c in cls.__mro__:
        if c is Distiller or not issubclass(c, Distiller):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(c)))
        except (OSError, TypeError, SyntaxError):
            continue
        if any(isinstance(node, ast.Attribute) and node.attr in LOOK_AHEAD for node in ast.walk(tree)):
            return True
    return False


def needs_of(cls: type[Distiller], params) -> Needs:
    """What a method with these parameters asks of the engine: the one place outside the methods that asks them
    (`kdfd.job.resolve` keeps the answer with the job; preflight, the job and the engine read it from there)."""
    needs = cls.needs(params)
    if not isinstance(needs, Needs):
        raise TypeError(f"method {cls.name!r}: needs() returned a {type(needs).__name__}, not a Needs")
    return needs


def param_fields(cls: type[Distiller]) -> list[tuple[str, type, object]]:
    """(name, type, default) of each parameter of a method."""
    hints = typing.get_type_hints(cls.Params)
    return [(f.name, hints[f.name], f.default) for f in dataclasses.fields(cls.Params)]


def parse_params(cls: type[Distiller], raw: dict | None, where: str = "") -> object:
    """A method's typed parameters from plain values; errors name the method, the key and what is allowed."""
    from .config import build

    prefix = f"{where}: " if where else ""
    return build(cls.Params, raw, f"{prefix}method {cls.name!r} parameters")


def params_dict(params) -> dict:
    """A method's parameters in plain form, as a job's config (and id) holds them: every field, except one added after
    records existed (`kdfd.config.later`) while it holds its default, so those records keep their ids."""
    out = dataclasses.asdict(params)
    for f in dataclasses.fields(params):
        if f.metadata.get("later") and out[f.name] == f.default:
            del out[f.name]
    return out


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


class StudentFunction:
    """The student as a function of its parameters, for methods that look one step ahead of it (a pilot update, an
    unrolled step) and learn the teacher from where that step lands: MetaDistil, ReptileDistil, LGTM. The engine sets
    one as `Distiller.student_fn`; it holds references only (the live model and optimizer), so it costs nothing.

    `fn(params, batch)` is the student's Forward at `params` (name -> tensor, `named_parameters` names; a name left
    out takes the model's own parameter) through `torch.func.functional_call`, with the engine's autocast and the
    method's Needs; gradients flow to whatever `params` were computed from, so a pilot step built with
    `create_graph=True` carries a meta-gradient. `dropout=False` runs that one forward in eval mode;
    `second_order=True` marks a forward whose gradient will itself be differentiated (the pilot step of a
    meta-gradient): its attention runs on PyTorch's math kernel, the scaled-dot-product kernel with a double backward
    (the fused flash / memory-efficient ones have none).
    `adamw_step(grads)` is where the student's AdamW would take `params` from these gradients (its moments and step
    count, or fresh ones), without touching the optimizer."""

    def __init__(self, model: nn.Module, call: Callable[[dict, dict], "Forward"] | None = None,
                 optimizer: torch.optim.Optimizer | None = None, max_grad_norm: float | None = None):
        self.model, self.optimizer, self.max_grad_norm = model, optimizer, max_grad_norm
        inputs = ("input_ids", "attention_mask", "token_type_ids")
        self._call = call or (lambda params, batch: torch.func.functional_call(
            model, params, (), {k: v for k, v in batch.items() if k in inputs}))

    def params(self) -> dict[str, nn.Parameter]:
        """The parameters the student trains now (a staged method's frozen groups left out), by name."""
        return {n: p for n, p in self.model.named_parameters() if p.requires_grad}

    def __call__(self, params: dict[str, torch.Tensor], batch: dict, dropout: bool = True,
                 second_order: bool = False) -> "Forward":
        from torch.nn.attention import SDPBackend, sdpa_kernel

        kernel = sdpa_kernel(SDPBackend.MATH) if second_order else contextlib.nullcontext()
        mode = contextlib.nullcontext() if dropout or not self.model.training else _eval_mode(self.model)
        with kernel, mode:
            return self._call(params, batch)

    def _group(self, p: nn.Parameter) -> dict:
        if self.optimizer is None:
            raise ValueError("this StudentFunction was built without the student's optimizer")
        for group in self.optimizer.param_groups:
            if any(q is p for q in group["params"]):
                return group
        raise ValueError("a parameter the student's optimizer does not train")

    @property
    def lr(self) -> float:
        """The student's learning rate at this step (its model's first parameter group, after the schedule)."""
        return self._group(next(iter(self.params().values())))["lr"]

    @property
    def base_lr(self) -> float:
        """The student's learning rate before the schedule (train.lr)."""
        group = self._group(next(iter(self.params().values())))
        return group.get("initial_lr", group["lr"])

    def clip(self, grads: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Gradients scaled to a total norm of at most the engine's max_grad_norm, as its real steps are."""
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads.values()]))
        scale = (self.max_grad_norm / (norm + 1e-6)).clamp(max=1.0)  # torch.nn.utils.clip_grad_norm_'s rule
        return {n: g * scale for n, g in grads.items()}

    def adamw_step(self, grads: dict[str, torch.Tensor], fresh: bool = False, lr: float | None = None,
                   params: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """torch.optim.AdamW's next step (decoupled weight decay, bias-corrected moments), computed out of place:
        name -> the parameter after it. `fresh`: from zero moments at step 0 (a new optimizer, as a copied student
        with its own optimizer takes); else from the optimizer's own state. `lr`: the rate (default each parameter
        group's current one). `params`: where to step from (default the live parameters). Names without a
        gradient are left out. Differentiable in `grads` and `params` (no in-place update)."""
        live = self.params()
        out = {}
        for name, g in grads.items():
            p = live[name]
            x = p if params is None else params[name]
            group = self._group(p)
            beta1, beta2 = group["betas"]
            rate = group["lr"] if lr is None else lr
            state = {} if fresh else self.optimizer.state.get(p, {})
            step = float(state["step"]) + 1 if "step" in state else 1.0
            m = state["exp_avg"] * beta1 + (1 - beta1) * g if "exp_avg" in state else (1 - beta1) * g
            v = state["exp_avg_sq"] * beta2 + (1 - beta2) * g * g if "exp_avg_sq" in state else (1 - beta2) * g * g
            denom = (v.sqrt() / math.sqrt(1 - beta2**step)) + group["eps"]
            out[name] = x * (1 - rate * group["weight_decay"]) - (rate / (1 - beta1**step)) * m / denom
        return out


@contextlib.contextmanager
def _eval_mode(model: nn.Module):
    model.eval()
    try:
        yield
    finally:
        model.train()
