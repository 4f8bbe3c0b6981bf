"""ReptileDistil (Ma, Wang, Yu and Zhang, COLING 2022, "Knowledge distillation with reptile meta-learning for
pretrained language model compression"; the authors' code: maxinge8698/ReptileDistil, run_glue_with_reptile.py).

The teacher meta-learns the student's objective with Reptile's first-order update instead of MetaDistil's
second-order meta-gradient. Per training batch x:
  L(x; theta_S; theta_T) = (1 - alpha) L_CE(y, S(x)) + alpha T^2 KL(p_T || p_S)                     (the KD loss)
  1. a copy of the student takes one step on L:  theta_S' = AdamW_fresh(theta_S, grad L)  (the teacher fixed)
  2. Reptile:  theta_T <- AdamW step on the "gradient" theta_T - theta_S', over the parameters the layer map pairs
     (theta_T moves toward the adapted student; a teacher layer no student layer maps to is left as it is)
  3. the student takes its real step on L with the updated teacher.
Step 2 is the gradient of (1/2) ||theta_T - theta_S'||^2 summed over the pairs, with theta_S' constant: the
teacher receives gradient from this distance alone (no CE, no KD, nothing through its outputs), and the engine's
teacher phase applies it with the teacher's AdamW, schedule and clipping, as the script does.

The paper's abstract states the method (first-order derivatives only, the teacher meta-learns the student's
objective); the details below are the script's, which the paper's text (not public here) does not override:
- alpha = 0.5 weights the KD term, T = 5 (the README's runs); regression (STS-B): the MSE between scores;
- step 1 is a fresh AdamW (the script builds a new optimizer for each copy: zero moments, step 1), at the student's
  learning rate before its schedule (its new scheduler starts at step 0 with no warmup), the copy's gradient
  clipped at max_grad_norm, weight decay as the student's parameter groups have it; the teacher's outputs in step 1
  are the engine's teacher-phase forward, detached (train mode; the script's is in eval mode);
- the layer map (`layer_map`, the script's --strategy): skip (the README's runs: student layer i <-> teacher layer
  i L_T / L_S), last or first; embeddings, pooler and classifier pair by name. The script's fourth strategy, both
  (each student layer to two teacher layers), is not implemented. Student and teacher must have the same shapes
  (TinyBERT-6L-768D and BERT-base in the paper; the glue-cpu MiniLM and its first layers);
- teacher_lr = 5e-5 (the README's --teacher_learning_rate); the teacher starts from the shared fine-tuned checkpoint;
- no quiz set: Reptile's update needs none.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from kdfd import losses
from kdfd.distiller import ONLINE, Distiller, Needs, check_choice, check_range, register
from kdfd.errors import ConfigError
from kdfd.models import layer_map

from .metadistil import soft_loss

LAYER_MAPS = ("skip", "last", "first")
LAYER = re.compile(r"^backbone\.encoder\.layer\.(\d+)\.")


def teacher_name(student_name: str, layers: dict[int, int]) -> str:
    """The teacher parameter a student parameter pairs with: encoder layer k (0-based) -> layers[k]; any other
    parameter (embeddings, pooler, classifier) -> the same name."""
    m = LAYER.match(student_name)
    return student_name if m is None else f"backbone.encoder.layer.{layers[int(m.group(1))]}.{student_name[m.end():]}"


@dataclass(frozen=True)
class ReptileDistilParams:
    alpha: float = 0.5  # weight of the KD term; CE gets 1 - alpha
    temperature: float = 5.0
    layer_map: str = "skip"  # skip | last | first: which teacher layer each student layer's parameters pull
    inner_lr: float | None = None  # the copy's AdamW rate; unset: the student's learning rate (train.lr)
    teacher_lr: float | None = 5e-5  # unset: train.teacher_lr

    def __post_init__(self):
        check_range("alpha", self.alpha, 0.0, 1.0)
        check_range("temperature", self.temperature, 0.0, None, low_open=True)
        check_choice("layer_map", self.layer_map, LAYER_MAPS)
        if self.inner_lr is not None:
            check_range("inner_lr", self.inner_lr, 0.0, None, low_open=True)
        if self.teacher_lr is not None:
            check_range("teacher_lr", self.teacher_lr, 0.0, None, low_open=True)


@register
class ReptileDistil(Distiller):
    name = "reptile-distil"
    description = "Reptile-meta-learned teacher (Ma et al. 2022): the teacher steps toward a one-step-adapted student"
    scale = ("student (1 - alpha) CE + alpha T^2 KL(p_T || p_S), KL summed over classes and averaged over the batch, "
             "alpha = 0.5, T = 5 (maxinge8698/ReptileDistil); teacher: AdamW on theta_T - theta_S' per paired "
             "parameter")
    Params = ReptileDistilParams

    def __init__(self, params, task, student, teacher):
        super().__init__(params, task, student, teacher)
        if teacher is not None and student.hidden_size != teacher.hidden_size:
            raise ConfigError(f"reptile-distil moves the teacher's parameters toward the student's, so both need the "
                              f"same shapes: the student's hidden size is {student.hidden_size}, the teacher's "
                              f"{teacher.hidden_size}")
        self._pairs: list[tuple[str, torch.nn.Parameter]] = []  # (student name, teacher parameter); init_models

    @classmethod
    def needs(cls, params) -> Needs:
        return Needs(teacher=ONLINE, teacher_lr=params.teacher_lr)

    def init_models(self, student, teacher) -> None:
        """Pairs every student parameter with the teacher's it pulls (references: the engine updates them in place)."""
        scheme, n_s, n_t = self.params.layer_map, student.num_layers, teacher.num_layers
        pairs = [(i, i) for i in range(1, n_s + 1)] if scheme == "first" else layer_map(n_s, n_t, scheme)
        layers = {s - 1: t - 1 for s, t in pairs}  # 0-based, as in parameter names
        theirs = dict(teacher.named_parameters())
        self._pairs = []
        for name, p in student.named_parameters():
            other = theirs.get(teacher_name(name, layers))
            if other is None or other.shape != p.shape:
                raise ConfigError(f"reptile-distil pairs student parameter {name} {tuple(p.shape)} with teacher "
                                  f"parameter {teacher_name(name, layers)} "
                                  f"{'(none)' if other is None else tuple(other.shape)}: they must match")
            self._pairs.append((name, other))

    def _loss(self, labels, s_logits, t_logits) -> dict[str, torch.Tensor]:
        p, reg = self.params, self.task.is_regression
        ce = losses.task_loss(s_logits, labels, reg)
        kd = soft_loss(s_logits, t_logits, p.temperature, "kl", reg)
        return {"total": (1 - p.alpha) * ce + p.alpha * kd, "ce": ce, "kd": kd}

    def adapted_student(self, batch, t_logits) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Step 1: (theta_S' by name, the copy's losses), a fresh AdamW step of a copy of the student on L."""
        f, p = self.student_fn, self.params
        theta = {n: w.detach().requires_grad_() for n, w in f.params().items()}
        pilot = self._loss(batch["labels"], f(theta, batch).logits, t_logits.detach())
        grads = torch.autograd.grad(pilot["total"], list(theta.values()), allow_unused=True)
        grads = {n: g for n, g in zip(theta, grads) if g is not None}
        lr = p.inner_lr if p.inner_lr is not None else f.base_lr
        with torch.no_grad():
            fast = f.adamw_step(f.clip(grads), fresh=True, lr=lr)
        # a parameter without a gradient (frozen, or unused: a pooler under mean pooling) stays where it is
        live = dict(f.model.named_parameters())
        return {n: fast[n] if n in fast else live[n].detach() for n in live}, pilot

    def teacher_loss(self, batch, t, s):
        if not self._pairs:
            raise RuntimeError("reptile-distil: init_models must pair the models' parameters before training")
        fast, pilot = self.adapted_student(batch, t.logits)
        distance = sum(0.5 * (w_t - fast[n]).float().pow(2).sum() for n, w_t in self._pairs)
        return {"total": distance, "pilot": pilot["total"].detach(), "pilot_kd": pilot["kd"].detach()}

    def student_loss(self, batch, s, t):
        return self._loss(batch["labels"], s.logits, t.logits)
