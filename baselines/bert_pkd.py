"""BERT-PKD: Patient Knowledge Distillation (Sun, Cheng, Gan and Liu 2019, "Patient Knowledge Distillation for
BERT Model Compression").

Loss (eq. 7): L_PKD = (1 - alpha) L_CE + alpha L_DS + beta L_PT, where L_DS is soft-label KD at a temperature
(eq. 5, tau^2 KL here: the same minimiser as the paper's soft cross-entropy, with the usual gradient scaling) and
L_PT (eq. 6) is the squared distance between the L2-normalised [CLS] states of matched intermediate layers:
the student's first L_s - 1 layers (its last is covered by L_DS) against teacher layers
  PKD-Skip: 2, 4, .., (every L_t / L_s-th: 12 -> 6 gives 2, 4, 6, 8, 10),
  PKD-Last: the teacher's last layers before its top (12 -> 6 gives 7, 8, 9, 10, 11).
The frozen teacher is the task-fine-tuned one; the student starts from the pre-trained teacher's first k layers (the
suite's student model: the teacher's model with `layers = k`, `layer_choice = "first"`).

Defaults: the middle of the paper's grid (tau in {5, 10, 20}, alpha in {0.2, 0.5, 0.7}, beta in {10, 100, 500,
1000}): temperature 10, alpha 0.5, beta 100; scheme skip (the better of the two in the paper).
Normalisation (`normalisation`), default `authors`, as the authors' code (intersun/PKD-for-BERT-Model-Compression)
computes it: L_PT = F.mse_loss over batch x layer pairs x hidden of the normalised [CLS] states, and
L_DS = tau^2 nn.KLDivLoss() with its default `mean` reduction (over batch x classes, so 1/C of the batch-mean KL).
`paper`: eq. 6 as printed (squared distance summed over hidden dimensions and layer pairs, H x (L_s - 1) times
larger) and L_DS = tau^2 batch-mean KL; beta's grid was tuned for the authors' scale, not this one.
Where the student is narrower than the teacher (the paper's is not), a learned projection maps its [CLS] states to
the teacher's width before normalising. Regression (STS-B): L_DS is the MSE between scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from kdfd import losses
from kdfd.distiller import FROZEN, Distiller, Needs, check_choice, check_range, register
from kdfd.models import Projection, layer_map


@dataclass(frozen=True)
class BertPKDParams:
    alpha: float = 0.5  # weight of soft-label KD; CE gets 1 - alpha (the paper's notation)
    beta: float = 100.0  # weight of the patient loss
    temperature: float = 10.0
    scheme: str = "skip"  # skip | last
    normalisation: str = "authors"  # authors (their code's means) | paper (eq. 6's sums)

    def __post_init__(self):
        check_range("alpha", self.alpha, 0.0, 1.0)
        check_range("beta", self.beta, 0.0)
        check_range("temperature", self.temperature, 0.0, None, low_open=True)
        check_choice("scheme", self.scheme, ("skip", "last"))
        check_choice("normalisation", self.normalisation, ("authors", "paper"))


def pkd_pairs(student_layers: int, teacher_layers: int, scheme: str) -> list[tuple[int, int]]:
    """The (student, teacher) layers of L_PT, 1-based: every student layer but the last."""
    return layer_map(student_layers, teacher_layers, scheme)[:-1]


@register
class BertPKD(Distiller):
    name = "bert-pkd"
    description = "Patient KD (Sun et al. 2019): soft labels + MSE of normalised [CLS] states at skip/last layers"
    version = "2"  # 2: the authors' normalisation of L_PT and L_DS by default
    Params = BertPKDParams
    scale = ("normalisation = authors (default): L_PT = MSE averaged over batch x layer pairs x hidden, "
             "L_DS = tau^2 KLDivLoss averaged over batch x classes (intersun/PKD code); paper: eq. 6's sums")

    def __init__(self, params, task, student, teacher):
        super().__init__(params, task, student, teacher)
        self.pairs = pkd_pairs(student.num_layers, teacher.num_layers, params.scheme)
        self.student_modules["proj"] = Projection(student.hidden_size, teacher.hidden_size)

    @classmethod
    def needs(cls, params) -> Needs:
        return Needs(teacher=FROZEN, hidden_states=True)

    def student_loss(self, batch, s, t):
        p = self.params
        authors = p.normalisation == "authors"
        ce = losses.task_loss(s.logits, batch["labels"], self.task.is_regression)
        if self.task.is_regression:
            ds = losses.kd_mse(s.logits, t.logits)
        elif authors:
            ds = losses.kd_kl_elementwise(s.logits, t.logits, p.temperature)
        else:
            ds = losses.kd_kl(s.logits, t.logits, p.temperature)
        if self.pairs:
            proj = self.student_modules["proj"]
            s_cls = torch.stack([proj(s.hidden_states[i][:, 0]) for i, _ in self.pairs], 1)  # [B, L_s - 1, H_t]
            t_cls = torch.stack([t.hidden_states[j][:, 0] for _, j in self.pairs], 1)
            pt = losses.patient_loss(s_cls, t_cls, "mean" if authors else "sum")
        else:  # a one-layer student has no intermediate layer to match
            pt = s.logits.new_zeros(())
        return {"total": (1 - p.alpha) * ce + p.alpha * ds + p.beta * pt, "ce": ce, "kd": ds, "patient": pt}
