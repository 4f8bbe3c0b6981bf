"""ProKT: progressive knowledge transfer through local targets (Shi, Song, Zhou, Li and Li 2021, "Learning from deep
model via exploring local targets").

Online: at each step the teacher takes a step on its task loss plus a pull toward the student's current prediction,
so its outputs stay a reachable ("local") target for the student:
  teacher: L_T = (1 - lam) CE(y, T) + lam tau^2 KL(p_S || p_T)   (the student detached; the projection of eq. 6)
  student: L_S = alpha CE(y, S) + (1 - alpha) tau^2 KL(p_T' || p_S), T' the teacher after its step, in eval mode.
The engine's online order gives exactly this sequence (teacher phase, then the student against the updated teacher,
whose targets are computed in eval mode).

Defaults follow the authors' code (wxsh1213/prokt_text): lam = 0.4 with the convex weighting above; the teacher
starts from the pre-trained model (teacher_init = pretrained), not a task-fine-tuned one, with its classifier
initialised to zero (teacher_head = zero), so teacher and student improve together from the first step;
alpha = 0 (the student learns from the local targets alone, the paper's algorithm); temperature 1.
Version 1's behaviour, one switch set away: teacher_ce_weight = 1.0, lam = 1.0, teacher_init = finetuned,
teacher_head = keep (CE + 1.0 KL from the fine-tuned teacher). Regression (STS-B): both KL terms become MSE
between scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from kdfd import losses
from kdfd.distiller import ONLINE, Distiller, Needs, check_choice, check_range, register


@dataclass(frozen=True)
class ProKTParams:
    lam: float = 0.4  # weight of the teacher's pull toward the student's prediction
    alpha: float = 0.0  # weight of the student's CE; its KD term gets 1 - alpha
    temperature: float = 1.0
    teacher_init: str = "pretrained"
    teacher_head: str = "zero"  # zero (the authors' code) | keep (the built or fine-tuned head)
    teacher_ce_weight: float | None = None  # unset: 1 - lam (the authors' convex weighting)

    def __post_init__(self):
        check_range("lam", self.lam, 0.0, 1.0 if self.teacher_ce_weight is None else None)
        check_range("alpha", self.alpha, 0.0, 1.0)
        check_range("temperature", self.temperature, 0.0, None, low_open=True)
        check_choice("teacher_init", self.teacher_init, ("finetuned", "pretrained"))
        check_choice("teacher_head", self.teacher_head, ("zero", "keep"))
        if self.teacher_ce_weight is not None:
            check_range("teacher_ce_weight", self.teacher_ce_weight, 0.0)


@register
class ProKT(Distiller):
    name = "prokt"
    description = "online KD toward local targets (Shi et al. 2021): the teacher also steps toward the student"
    version = "2"  # 2: the authors' (1 - lam) CE + lam KL teacher loss, from the pre-trained model with a zero head
    Params = ProKTParams
    scale = ("teacher (1 - lam) CE + lam tau^2 KL(p_S || p_T), lam = 0.4, from the pre-trained model with a zero "
             "head (wxsh1213/prokt_text); student tau^2 KL; KL summed over classes, averaged over the batch")

    @classmethod
    def needs(cls, params) -> Needs:
        return Needs(teacher=ONLINE, teacher_init=params.teacher_init)

    def init_models(self, student, teacher) -> None:
        if self.params.teacher_head == "zero":
            with torch.no_grad():
                teacher.head.weight.zero_()
                teacher.head.bias.zero_()

    def teacher_loss(self, batch, t, s):
        p, reg = self.params, self.task.is_regression
        ce = losses.task_loss(t.logits, batch["labels"], reg)
        local = losses.distill(t.logits, s.logits, p.temperature, reg)  # KL(p_S || p_T): the student is the target
        ce_weight = 1.0 - p.lam if p.teacher_ce_weight is None else p.teacher_ce_weight
        return {"total": ce_weight * ce + p.lam * local, "ce": ce, "local": local}

    def student_loss(self, batch, s, t):
        p, reg = self.params, self.task.is_regression
        ce = losses.task_loss(s.logits, batch["labels"], reg)
        kd = losses.distill(s.logits, t.logits, p.temperature, reg)
        return {"total": p.alpha * ce + (1 - p.alpha) * kd, "ce": ce, "kd": kd}
