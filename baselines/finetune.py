"""Fine-tuning with cross-entropy alone (MSE for regression): the no-distillation reference row, and how a teacher
is fine-tuned before offline distillation."""

from __future__ import annotations

from kdfd import losses
from kdfd.distiller import Distiller, Needs, register


@register
class Finetune(Distiller):
    name = "finetune"
    description = "a model trained on the labels alone (CE; MSE for regression), no teacher"
    scale = "CE averaged over the batch (MSE on STS-B)"

    @classmethod
    def needs(cls, params) -> Needs:
        return Needs()

    def student_loss(self, batch, s, t):
        ce = losses.task_loss(s.logits, batch["labels"], self.task.is_regression)
        return {"total": ce, "ce": ce}
