"""BERT-of-Theseus (Xu, Zhou, Ge, Wei and Zhou 2020, "BERT-of-Theseus: compressing BERT by progressive module
replacing", EMNLP 2020; the authors' code: JetRunner/BERT-of-Theseus).

The task-fine-tuned teacher (the predecessor) is cut into n modules of r = L_t / n consecutive layers, n = L_s the
student's (the successor's) layers: successor module i (student layer i) stands for predecessor module i (teacher
layers (i-1) r + 1 .. i r). Two phases, both on the task loss alone (CE; MSE on regression, as
BertForSequenceClassification with one label), no distillation term:
  1. module replacing: at each step, every module i is replaced by its successor independently, r_i ~ Bernoulli(p),
     y_i = r_i scc_i(y_{i-1}) + (1 - r_i) prd_i(y_{i-1}); the hybrid is trained, the predecessor's modules frozen;
     p follows the linear curriculum p_t = min(1, k t + b) (t the step, b the base replacement rate; the paper's
     text was not at hand here, so its equation numbers are not cited: the rules follow its abstract, its figure's
     caption and the authors' code);
  2. successor fine-tuning: the successor alone (the engine's own forward of the student).
The student evaluated and recorded is the successor alone: in eval mode the authors' encoder runs only its successor
layers, and here evaluation always runs the student model itself. The hybrid is this method's `student_forward`.

What the authors' code fixes and is kept here: the successor's layers start as copies of the predecessor's *first*
L_s layers (run_glue.py: deepcopy(layer[ix]) for ix < scc_n_layer); its embeddings, pooler and classifier are the
predecessor's and are never trained (their optimizer holds the successor layers alone), so `init_models` copies
them into the student and both stages train the student's layers only; the predecessor's modules run in train mode
inside the hybrid (dropout on: their whole model is in train mode), frozen by taking no update; one Bernoulli draw per
module per step for the whole batch (from torch's CPU generator, which checkpoints save); the rate of step t (0-based)
is min(1, k t + b), b = 0.3 (their README's command). Loss: CE averaged over the batch.

Open points, documented defaults:
- the curriculum's slope. The authors' README runs MRPC for 15 epochs (1725 steps) at k = 6e-4 from b = 0.3: p
  reaches 1 at step 1167, 68% of the run, and the remaining steps are the successor's fine-tuning (their linear
  scheduler has no separate stage; the paper describes one). An absolute k does not carry over to other budgets
  (at 3 epochs of MRPC it would end at p = 0.5 with no successor fine-tuning at all), so by default (k unset) the
  first `replacing_share` = 0.68 of the steps are the replacing stage, k = (1 - b) / (its steps) so that p reaches 1
  where it ends, and the rest is a `successor` stage. Set k to a number for the authors' absolute per-step rate
  (p then stops at 1 if it gets there early; the successor stage still starts at replacing_share, as their constant
  scheduler's `steps_for_replacing` switches p to 1);
- the student model must have the teacher's architecture with fewer layers (its weights are replaced): the same
  hidden size, L_t a multiple of L_s (the authors assert it), the same layer shapes and pooling (a ConfigError says
  which differs); give theseus its own student in a suite ([method.theseus.student]) where the suite's differs;
- the engine still computes the frozen teacher's targets each step, which this loss does not read (with
  train.teacher_cache they come from the cache at little cost); under train.compile every new hybrid recompiles.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from kdfd import losses
from kdfd.distiller import FROZEN, Distiller, Needs, Stage, check_range, register
from kdfd.errors import ConfigError
from kdfd.models import copy_teacher_start

INPUT_KEYS = ("input_ids", "attention_mask", "token_type_ids")


@dataclass(frozen=True)
class TheseusParams:
    base_rate: float = 0.3  # b: the replacement rate at step 0 (the authors' README)
    k: float | None = None  # the rate's rise per step; unset: (1 - b) / (steps of the replacing stage)
    replacing_share: float = 0.68  # share of the steps before the successor's fine-tuning (1: no such stage)

    def __post_init__(self):
        check_range("base_rate", self.base_rate, 0.0, 1.0, low_open=True)  # the authors' rate is in (0, 1]
        if self.k is not None:
            check_range("k", self.k, 0.0)
        check_range("replacing_share", self.replacing_share, 0.0, 1.0, low_open=True)


@register
class Theseus(Distiller):
    name = "theseus"
    description = "BERT-of-Theseus (Xu et al. 2020): teacher modules replaced by student layers, a curriculum, CE"
    version = "1"
    Params = TheseusParams
    scale = ("CE (MSE on STS-B) averaged over the batch, of the hybrid then of the successor alone; no distillation "
             "term (the authors' run_glue.py)")

    def __init__(self, params, task, student, teacher):
        super().__init__(params, task, student, teacher)
        if student.hidden_size != teacher.hidden_size:
            raise ConfigError(f"theseus mixes teacher and student layers, which must have the same shapes: the "
                              f"student's hidden size {student.hidden_size} differs from the teacher's "
                              f"{teacher.hidden_size} (give theseus a student of the teacher's architecture with "
                              "fewer layers)")
        if teacher.num_layers % student.num_layers:
            raise ConfigError(f"theseus groups the teacher's {teacher.num_layers} layers into one module per student "
                              f"layer: {teacher.num_layers} is not a multiple of the student's {student.num_layers}")
        self.n_modules = student.num_layers
        self.ratio = teacher.num_layers // student.num_layers  # predecessor layers per module

    @classmethod
    def needs(cls, params) -> Needs:
        return Needs(teacher=FROZEN)

    def stages(self) -> list[Stage]:
        layers = tuple(f"layer.{i}" for i in range(1, self.n_modules + 1))  # embeddings and head stay the teacher's
        share = self.params.replacing_share
        replacing = Stage("replacing", share, train=layers)
        return [replacing] if share >= 1.0 else [replacing, Stage("successor", 1.0 - share, train=layers)]

    def init_models(self, student, teacher) -> None:
        """The successor as the authors build it: the predecessor's embeddings, pooler and classifier, and copies of
        its first L_s layers."""
        copy_teacher_start(student, teacher, self.n_modules, "theseus")

    def replacing_rate(self, step: int) -> float:
        """p at `step` (0-based) of the replacing stage: min(1, k (step - its start) + b)."""
        start, end = self.stage_span
        b, k = self.params.base_rate, self.params.k
        if k is None:
            k = (1.0 - b) / max(1, end - start)
        return min(1.0, k * (step - start) + b)

    def sample(self, p: float) -> list[bool]:
        """Which modules this step replaces: one Bernoulli(p) draw per module (torch's CPU generator)."""
        return torch.bernoulli(torch.full((self.n_modules,), p)).bool().tolist()

    def student_forward(self, batch, student, teacher, step):
        if self.stage.name != "replacing":
            return None  # the successor's fine-tuning: the student alone
        replaced = self.sample(self.replacing_rate(step))
        if all(replaced):
            return None  # every module replaced: the hybrid is the successor itself
        own, theirs = student.backbone.encoder.layer, teacher.backbone.encoder.layer
        hybrid, kept = [], []
        for i, scc in enumerate(replaced):
            if scc:
                hybrid.append(own[i])
            else:
                prd = list(theirs[i * self.ratio:(i + 1) * self.ratio])
                hybrid += prd
                kept += prd
        modes = [m.training for m in kept]
        encoder = student.backbone.encoder
        try:
            for m in kept:
                m.train()
            encoder.layer = nn.ModuleList(hybrid)  # for this forward only; the student's own list is put back
            return student(**{k: batch[k] for k in INPUT_KEYS if k in batch})
        finally:
            encoder.layer = own
            for m, mode in zip(kept, modes):
                m.train(mode)

    def student_loss(self, batch, s, t):
        ce = losses.task_loss(s.logits, batch["labels"], self.task.is_regression)
        return {"total": ce, "ce": ce}
