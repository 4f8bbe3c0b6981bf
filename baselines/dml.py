"""DML: Deep Mutual Learning (Zhang, Xiang, Hospedales and Lu 2018; the KDFD paper's ref. 19).

Two models learn together, each from the labels and from the other:
  L_1 = CE(y, p_1) + KL(p_2 || p_1),   L_2 = CE(y, p_2) + KL(p_1 || p_2)   (eqs. 1-2 of DML)
Here model 1 is the student and model 2 the suite's teacher model (the larger peer). DML's Algorithm 1 updates one
network, recomputes its predictions, then updates the other: the engine's online order (teacher phase, then the
student against the updated peer) is that algorithm with the peers' order swapped.

Defaults: both peers start from their pre-trained weights (teacher_init = pretrained: DML has no fine-tuned
teacher); temperature 1 (DML uses plain softmax); the KL weight 1. Regression: MSE between scores.
"""

from __future__ import annotations

from dataclasses import dataclass

from kdfd import losses
from kdfd.distiller import ONLINE, Distiller, Needs, check_choice, check_range, register


@dataclass(frozen=True)
class DMLParams:
    kl_weight: float = 1.0
    temperature: float = 1.0
    teacher_init: str = "pretrained"

    def __post_init__(self):
        check_range("kl_weight", self.kl_weight, 0.0)
        check_range("temperature", self.temperature, 0.0, None, low_open=True)
        check_choice("teacher_init", self.teacher_init, ("finetuned", "pretrained"))


@register
class DML(Distiller):
    name = "dml"
    description = "deep mutual learning (Zhang et al. 2018): two peers, each CE + KL toward the other"
    Params = DMLParams
    scale = "each peer CE + KL(other || self), KL summed over classes and averaged over the batch (DML eqs. 1-2)"

    @classmethod
    def needs(cls, params) -> Needs:
        return Needs(teacher=ONLINE, teacher_init=params.teacher_init)

    def _loss(self, batch, own, other):
        p, reg = self.params, self.task.is_regression
        ce = losses.task_loss(own.logits, batch["labels"], reg)
        kl = losses.distill(own.logits, other.logits, p.temperature, reg)
        return {"total": ce + p.kl_weight * kl, "ce": ce, "kl": kl}

    def teacher_loss(self, batch, t, s):
        return self._loss(batch, t, s)

    def student_loss(self, batch, s, t):
        return self._loss(batch, s, t)
