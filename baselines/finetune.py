"""Fine-tuning with cross-entropy alone (MSE for regression): the no-distillation reference row, and how a teacher
is fine-tuned before offline distillation.

start = pretrained (default: the student's pre-trained weights) | teacher (the fine-tuned teacher's embeddings,
classifier and first L_s layers, as BERT-of-Theseus's successor starts: the control that separates Theseus's start
from its curriculum). The teacher is read for that start alone; it never gives targets.
"""

from __future__ import annotations

from dataclasses import dataclass

from kdfd import losses
from kdfd.config import later
from kdfd.distiller import FROZEN, Distiller, Needs, check_choice, register
from kdfd.models import copy_teacher_start


@dataclass(frozen=True)
class FinetuneParams:
    start: str = later("pretrained")

    def __post_init__(self):
        check_choice("start", self.start, ("pretrained", "teacher"))


@register
class Finetune(Distiller):
    name = "finetune"
    description = "a model trained on the labels alone (CE; MSE for regression), no teacher"
    scale = "CE averaged over the batch (MSE on STS-B)"
    Params = FinetuneParams

    @classmethod
    def needs(cls, params) -> Needs:
        return Needs(teacher=FROZEN) if params.start == "teacher" else Needs()

    def init_models(self, student, teacher) -> None:
        if self.params.start == "teacher":
            copy_teacher_start(student, teacher, student.num_layers, "finetune")

    def student_loss(self, batch, s, t):
        ce = losses.task_loss(s.logits, batch["labels"], self.task.is_regression)
        return {"total": ce, "ce": ce}
