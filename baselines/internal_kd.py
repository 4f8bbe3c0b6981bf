"""KD from internal representations (Aguilar, Ling, Zhang, Yao, Fan and Guo 2020, "Knowledge Distillation from
Internal Representations"; ../shared/papers/kd-from-internal-representations.txt).

Internal losses at matched layers (student layer i <-> teacher layer i * L_t / L_s, rounded: 12 -> 6 gives 2i):
  attention: KL(A_t || A_s) between the self-attention distributions, per head and per query token (averaged);
  [CLS]: 1 - cos(h_t, W h_s) between the layers' [CLS] activations (W a learned projection where sizes differ).
Schedules (the paper's two algorithms):
  pid (progressive internal distillation): one matched layer at a time, bottom-up; the layers below are frozen
      while the next one learns (stage 1 also trains the embeddings);
  sid (stacked internal distillation): stage i sums the internal losses of layers 1..i, every layer up to i trains;
then, in both, a last stage trains the classifier alone with soft-label KD ("after the L6 point, only the
classification layer is trained", the paper's Fig. 4).

Open points, documented defaults: every stage gets an equal share of the training steps (the paper trains each
layer to convergence, an unknown number of epochs); attention and [CLS] terms weigh 1 each; the classifier stage
uses alpha CE + (1 - alpha) tau^2 KL with alpha = 0 (soft labels alone) and tau = 1; final_stage = head (the
classifier alone) | all (the whole student). Teacher and student need the same number of attention heads.
Regression (STS-B): the soft-label term is the MSE between scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from kdfd import losses
from kdfd.distiller import FROZEN, Distiller, Needs, Stage, check_choice, check_range, matched_layers, register
from kdfd.models import Projection


@dataclass(frozen=True)
class InternalKDParams:
    schedule: str = "pid"  # pid | sid
    attention_weight: float = 1.0
    cls_weight: float = 1.0
    alpha: float = 0.0  # CE weight of the classifier stage; soft-label KD gets 1 - alpha
    temperature: float = 1.0
    final_stage: str = "head"  # head | all

    def __post_init__(self):
        check_choice("schedule", self.schedule, ("pid", "sid"))
        check_range("attention_weight", self.attention_weight, 0.0)
        check_range("cls_weight", self.cls_weight, 0.0)
        check_range("alpha", self.alpha, 0.0, 1.0)
        check_range("temperature", self.temperature, 0.0, None, low_open=True)
        check_choice("final_stage", self.final_stage, ("head", "all"))


@register
class InternalKD(Distiller):
    name = "internal-kd"
    description = "KD from internal representations (Aguilar et al. 2020): attention KL + [CLS] cosine, PID or SID"
    Params = InternalKDParams

    def __init__(self, params, task, student, teacher):
        super().__init__(params, task, student, teacher)
        self.pairs = matched_layers(self.name, student, teacher, same_heads=True)
        # the pairs whose internal losses each layer stage sums: its own (pid) or every one up to it (sid)
        self.stage_pairs = {f"layer.{i}": self.pairs[k - 1:k] if params.schedule == "pid" else self.pairs[:k]
                            for k, (i, _) in enumerate(self.pairs, 1)}
        self.student_modules["proj"] = Projection(student.hidden_size, teacher.hidden_size)

    @classmethod
    def needs(cls, params) -> Needs:
        return Needs(teacher=FROZEN, hidden_states=True, attentions=True)

    def stages(self) -> list[Stage]:
        layered = []
        for k, (i, _) in enumerate(self.pairs, 1):
            if self.params.schedule == "pid":
                train = (f"layer.{i}",) + (("embeddings",) if k == 1 else ())
            else:
                train = ("embeddings",) + tuple(f"layer.{j}" for j, _ in self.pairs[:k])
            layered.append(Stage(f"layer.{i}", 1.0, train))
        return layered + [Stage("classifier", 1.0, ("head",) if self.params.final_stage == "head" else None)]

    def internal(self, s, t, pairs) -> dict[str, torch.Tensor]:
        att, cls = [], []
        for i, j in pairs:
            a_s, a_t = s.attentions[i - 1], t.attentions[j - 1]
            att.append(losses.attention_kl(a_s, a_t, s.attention_mask))
            cls.append(losses.cosine_loss(self.student_modules["proj"](s.hidden_states[i][:, 0]), t.hidden_states[j][:, 0]))
        return {"attention": torch.stack(att).sum(), "cls": torch.stack(cls).sum()}

    def student_loss(self, batch, s, t):
        p = self.params
        if self.stage.name == "classifier":
            ce = losses.task_loss(s.logits, batch["labels"], self.task.is_regression)
            kd = losses.distill(s.logits, t.logits, p.temperature, self.task.is_regression)
            return {"total": p.alpha * ce + (1 - p.alpha) * kd, "ce": ce, "kd": kd}
        terms = self.internal(s, t, self.stage_pairs[self.stage.name])
        total = p.attention_weight * terms["attention"] + p.cls_weight * terms["cls"]
        return {"total": total, **terms}
