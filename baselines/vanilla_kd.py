"""Vanilla knowledge distillation (Hinton, Vinyals and Dean 2015, "Distilling the knowledge in a neural network").

A frozen, task-fine-tuned teacher; the student minimises alpha CE(y, S) + (1 - alpha) KD(T, S), KD being
tau^2 KL(softmax(T / tau) || softmax(S / tau)) (MSE between scores for regression). It is eq. 1 of the KDFD paper
with an offline teacher, and the row KDFD is compared against in the paper's Table 3.

Defaults: alpha = 0.4 and temperature = 1.0, the KDFD student's alpha_s and the low end of the paper's temperature
grid, so that Table 3 compares methods that differ only in what KDFD adds.
"""

from __future__ import annotations

from dataclasses import dataclass

from kdfd import losses
from kdfd.distiller import FROZEN, Distiller, Needs, check_range, register


@dataclass(frozen=True)
class VanillaKDParams:
    alpha: float = 0.4  # weight of the CE term; the KD term gets 1 - alpha
    temperature: float = 1.0

    def __post_init__(self):
        check_range("alpha", self.alpha, 0.0, 1.0)
        check_range("temperature", self.temperature, 0.0, None, low_open=True)


@register
class VanillaKD(Distiller):
    name = "vanilla-kd"
    description = "Hinton KD from a frozen fine-tuned teacher: soft labels at a temperature plus CE"
    scale = "alpha CE + (1 - alpha) tau^2 KL, KL summed over classes and averaged over the batch (Hinton's tau^2)"
    Params = VanillaKDParams

    @classmethod
    def needs(cls, params) -> Needs:
        return Needs(teacher=FROZEN)

    def student_loss(self, batch, s, t):
        p = self.params
        ce = losses.task_loss(s.logits, batch["labels"], self.task.is_regression)
        kd = losses.distill(s.logits, t.logits, p.temperature, self.task.is_regression)
        return {"total": p.alpha * ce + (1 - p.alpha) * kd, "ce": ce, "kd": kd}
