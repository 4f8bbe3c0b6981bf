"""KD from internal representations (Aguilar, Ling, Zhang, Yao, Fan and Guo 2020, "Knowledge Distillation from
Internal Representations", AAAI 2020, arXiv:1910.03723).

Internal losses at matched layers (student layer i <-> teacher layer i * L_t / L_s, rounded: 12 -> 6 gives 2i):
  attention: KL(A_t || A_s) between the self-attention distributions, per head and per query token (averaged);
  [CLS]: 1 - cos(h_t, W h_s) between the layers' [CLS] activations (W a learned projection where sizes differ).
Schedules (the paper's two algorithms):
  pid (progressive internal distillation): one matched layer at a time, bottom-up; the layers below are frozen
      while the next one learns (stage 1 also trains the embeddings);
  sid (stacked internal distillation): stage i sums the internal losses of layers 1..i, every layer up to i trains;
then, in both, a last stage trains the classifier alone with soft-label KD ("after the L6 point, only the
classification layer is trained", the paper's Fig. 4).

Attention maps: the probabilities before dropout, a softmax of each layer's pre-softmax scores over the real keys
(`losses.attention_probs`). Hugging Face's eager attention returns them after dropout in train mode, where rows do
not sum to 1: not the distributions to match.

Schedule: the paper optimises each layer "completely" before the next (its Fig. 4, by epochs) and then trains only
the classification layer; it fixes no step counts. `classifier_share` (default 0.5) of the steps goes to the
classifier stage, the rest is split equally among the layer stages: the fresh classifier on a frozen student needs
as long as all the layers together to fit (with 1/(L_s + 1) of the steps the student scores below the majority
class on MRPC), at `classifier_lr_scale` (10) times the student's rate: a fresh linear head on a frozen body
at the fine-tuning rate (1e-4) barely moved in 115 steps (glue-cpu MRPC, seed 1: F1 81.2-81.4, the majority class,
KD term 0.58-0.63 throughout the stage); a linear probe wants a larger rate. Other open points, documented
defaults: attention and [CLS] terms weigh 1 each; the classifier stage uses alpha CE + (1 - alpha) tau^2 KL with
alpha = 0 (soft labels alone) and tau = 1; final_stage = head (the classifier alone) | all (the whole student).
Teacher and student need the same number of attention heads.
Regression (STS-B): the soft-label term is the MSE between scores. `activation = cls` (default, the paper's) matches
the [CLS] states; `mean` matches the token means, the sentence vector of models pre-trained with mean pooling.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from kdfd import losses
from kdfd.distiller import FROZEN, Distiller, Needs, Stage, check_choice, check_range, matched_layers, register
from kdfd.models import Projection, pool


@dataclass(frozen=True)
class InternalKDParams:
    schedule: str = "pid"  # pid | sid
    attention_weight: float = 1.0
    cls_weight: float = 1.0
    alpha: float = 0.0  # CE weight of the classifier stage; soft-label KD gets 1 - alpha
    temperature: float = 1.0
    final_stage: str = "head"  # head | all
    classifier_share: float = 0.5  # share of the steps of the last (classifier) stage
    classifier_lr_scale: float = 10.0  # the classifier stage's learning rate, as a multiple of the student's
    activation: str = "cls"  # the sentence activation matched by cosine: cls (the paper's) | mean (over tokens)

    def __post_init__(self):
        check_choice("schedule", self.schedule, ("pid", "sid"))
        check_range("attention_weight", self.attention_weight, 0.0)
        check_range("cls_weight", self.cls_weight, 0.0)
        check_range("alpha", self.alpha, 0.0, 1.0)
        check_range("temperature", self.temperature, 0.0, None, low_open=True)
        check_choice("final_stage", self.final_stage, ("head", "all"))
        check_range("classifier_share", self.classifier_share, 0.0, 1.0, low_open=True)
        check_range("classifier_lr_scale", self.classifier_lr_scale, 0.0, None, low_open=True)
        check_choice("activation", self.activation, ("cls", "mean"))


@register
class InternalKD(Distiller):
    name = "internal-kd"
    description = "KD from internal representations (Aguilar et al. 2020): attention KL + [CLS] cosine, PID or SID"
    version = "2"  # 2: pre-dropout attention maps; the classifier stage's share of the steps and learning rate
    Params = InternalKDParams
    scale = ("attention KL (pre-dropout maps) averaged over heads and real query tokens, 1 - cos on [CLS], both "
             "summed over the stage's layers; classifier stage (half the steps, 10x the rate) tau^2 KL averaged over "
             "the batch")

    def __init__(self, params, task, student, teacher):
        super().__init__(params, task, student, teacher)
        self.pairs = matched_layers(self.name, student, teacher, same_heads=True)
        # the pairs whose internal losses each layer stage sums: its own (pid) or every one up to it (sid)
        self.stage_pairs = {f"layer.{i}": self.pairs[k - 1:k] if params.schedule == "pid" else self.pairs[:k]
                            for k, (i, _) in enumerate(self.pairs, 1)}
        self.student_modules["proj"] = Projection(student.hidden_size, teacher.hidden_size)

    @classmethod
    def needs(cls, params) -> Needs:
        return Needs(teacher=FROZEN, hidden_states=True, attention_scores=True)

    def stages(self) -> list[Stage]:
        share = self.params.classifier_share
        head = ("head",) if self.params.final_stage == "head" else None
        classifier = Stage("classifier", share, head, self.params.classifier_lr_scale if head else 1.0)
        if share >= 1.0:
            return [classifier]
        layered = []
        for k, (i, _) in enumerate(self.pairs, 1):
            if self.params.schedule == "pid":
                train = (f"layer.{i}",) + (("embeddings",) if k == 1 else ())
            else:
                train = ("embeddings",) + tuple(f"layer.{j}" for j, _ in self.pairs[:k])
            layered.append(Stage(f"layer.{i}", (1.0 - share) / len(self.pairs), train))
        return layered + [classifier]

    def internal(self, s, t, pairs) -> dict[str, torch.Tensor]:
        att, cls = [], []
        for i, j in pairs:
            a_s = losses.attention_probs(s.attention_scores[i - 1], s.attention_mask)
            a_t = losses.attention_probs(t.attention_scores[j - 1], t.attention_mask)
            att.append(losses.attention_kl(a_s, a_t, s.attention_mask))
            s_act = pool(self.params.activation, s.hidden_states[i], s.attention_mask, None)
            t_act = pool(self.params.activation, t.hidden_states[j], t.attention_mask, None)
            cls.append(losses.cosine_loss(self.student_modules["proj"](s_act), t_act))
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
