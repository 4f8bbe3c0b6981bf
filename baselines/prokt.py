"""ProKT: progressive knowledge transfer through local targets (Shi, Wang, Wu and Li 2020, "Learning from deep model
via exploring local targets").

Online: at each step the teacher takes a step on its task loss plus a pull toward the student's current prediction,
so its outputs stay a reachable ("local") target for the student:
  teacher: L_T = CE(y, T) + lam * tau^2 KL(p_S || p_T)       (the student detached; the projection of eq. 6)
  student: L_S = alpha CE(y, S) + (1 - alpha) tau^2 KL(p_T' || p_S), T' the teacher after its step.
The engine's online order gives exactly this sequence (teacher phase, then the student against the updated teacher).

Defaults: lam = 1.0 (the paper's trade-off between the task and the proximity to the student); alpha = 0 (the
student learns from the local targets alone, as in the paper's algorithm); temperature 1. Open points: the teacher
starts from the task-fine-tuned model (teacher_init = finetuned; `pretrained` for a teacher that starts from the
pre-trained weights). Regression (STS-B): both KL terms become MSE between scores.
"""

from __future__ import annotations

from dataclasses import dataclass

from kdfd import losses
from kdfd.distiller import ONLINE, Distiller, Needs, check_choice, check_range, register


@dataclass(frozen=True)
class ProKTParams:
    lam: float = 1.0  # weight of the teacher's pull toward the student's prediction
    alpha: float = 0.0  # weight of the student's CE; its KD term gets 1 - alpha
    temperature: float = 1.0
    teacher_init: str = "finetuned"

    def __post_init__(self):
        check_range("lam", self.lam, 0.0)
        check_range("alpha", self.alpha, 0.0, 1.0)
        check_range("temperature", self.temperature, 0.0, None, low_open=True)
        check_choice("teacher_init", self.teacher_init, ("finetuned", "pretrained"))


@register
class ProKT(Distiller):
    name = "prokt"
    description = "online KD toward local targets (Shi et al. 2020): the teacher also steps toward the student"
    Params = ProKTParams

    @classmethod
    def needs(cls, params) -> Needs:
        return Needs(teacher=ONLINE, teacher_init=params.teacher_init)

    def teacher_loss(self, batch, t, s):
        p, reg = self.params, self.task.is_regression
        ce = losses.task_loss(t.logits, batch["labels"], reg)
        local = losses.distill(t.logits, s.logits, p.temperature, reg)  # KL(p_S || p_T): the student is the target
        return {"total": ce + p.lam * local, "ce": ce, "local": local}

    def student_loss(self, batch, s, t):
        p, reg = self.params, self.task.is_regression
        ce = losses.task_loss(s.logits, batch["labels"], reg)
        kd = losses.distill(s.logits, t.logits, p.temperature, reg)
        return {"total": p.alpha * ce + (1 - p.alpha) * kd, "ce": ce, "kd": kd}
