"""MetaDistil (Zhou, Xu and McAuley, ACL 2022, "BERT learns to teach: knowledge distillation with meta learning";
the authors' code: JetRunner/MetaDistil, nlp/run_glue_distillation_meta.py).

The teacher learns to teach from the student's result on held-out data, through one look-ahead step of the student
(the paper's Algorithm 1, one training batch x and one quiz batch q per step):
  L(x; theta_S; theta_T) = alpha L_KD(S(x), T(x)) + (1 - alpha) L_CE(y, S(x))                    (the KD loss)
  pilot update:   theta_S' = theta_S - lambda grad_{theta_S} L(x; theta_S; theta_T)              (a copy of S)
  meta update:    theta_T <- theta_T - mu grad_{theta_T} L_CE(q; theta_S'(theta_T))              (the quiz loss)
  student update: theta_S <- AdamW step on L(x; theta_S; theta_T) with the updated teacher.
theta_S' depends on theta_T through the KD term of the pilot gradient, so the meta-gradient is second order: the
pilot gradient is taken with create_graph over `Distiller.student_fn` (torch.func.functional_call on detached
copies of the student's parameters, so the real student gets no gradient from the teacher phase), and the
engine's teacher phase back-propagates the quiz loss through it into the teacher. The teacher receives gradient
from the quiz loss alone (no CE or KD term of its own), and only through the pilot step.

Choices (the paper leaves them open; defaults from the authors' script unless said):
- alpha = 0.5 weights the KD term (the script's --alpha; vanilla-kd's alpha weights CE), temperature T = 5;
- kd_loss = "mse": the script's soft loss, T^2 times the mean squared error between the softened probability
  vectors (F.mse_loss over the B x C entries); "kl" is Hinton's T^2 KL(p_T || p_S) summed over classes, averaged
  over the batch. Regression (STS-B): the MSE between the two scores, no temperature. The script's optional
  patient loss (BERT-PKD's, --beta) is not part of the method as the paper states it and is left out;
- inner_lr (lambda) unset: the student's learning rate before its schedule. The authors' scripts take the pilot
  step's size as its own argument (--assume_s_step_size, apart from --learning_rate; their image script's default
  is 0.05): tying it to the student's rate is our choice, one value fewer to tune; set inner_lr to separate them.
  The pilot step is plain SGD, unclipped, as in the script;
- teacher_lr (mu) = 1e-5 (the script's --teacher_learning_rate), the teacher's AdamW with the engine's schedule
  and clipping; the teacher starts from the task-fine-tuned checkpoint every method shares (which saw the quiz
  examples in its fine-tuning; the student never trains on them);
- quiz_fraction = 0.1: the quiz set is 10% of the training set, held out by the data seed (the script reads a
  separate held.tsv it does not ship); under a protocol's held-out split (train.holdout) the quiz is that split;
  quiz_batches = 1 quiz batch (of the training batch size) per step, the paper's Algorithm 1 (the script's default
  averages the quiz loss over the whole held set every step);
- dropout: the pilot forward runs in train mode, the quiz forward without dropout (the script's is_train=False);
  the teacher's forward is the engine's teacher-phase forward, in train mode (the script runs the teacher in eval
  mode during the pilot step);
- one training batch per meta round (the script's --num_meta_batches 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from kdfd import losses
from kdfd.distiller import ONLINE, Distiller, Needs, check_choice, check_range, register

KD_LOSSES = ("mse", "kl")


def soft_loss(s_logits: torch.Tensor, t_logits: torch.Tensor, temperature: float, kind: str,
              regression: bool) -> torch.Tensor:
    """The KD term of MetaDistil's and ReptileDistil's losses. s_logits, t_logits [B, C]. `mse`: T^2 F.mse_loss of
    the softened probabilities (mean over B x C); `kl`: T^2 KL(p_T || p_S), batch mean. Regression: MSE of scores."""
    if regression:
        return losses.kd_mse(s_logits, t_logits)
    if kind == "kl":
        return losses.kd_kl(s_logits, t_logits, temperature)
    p_t = F.softmax(t_logits.float() / temperature, dim=-1)
    p_s = F.softmax(s_logits.float() / temperature, dim=-1)
    return F.mse_loss(p_s, p_t) * temperature**2


@dataclass(frozen=True)
class MetaDistilParams:
    alpha: float = 0.5  # weight of the KD term; CE gets 1 - alpha
    temperature: float = 5.0
    kd_loss: str = "mse"  # mse (the authors' script) | kl (Hinton)
    inner_lr: float | None = None  # the pilot step's rate; unset: the student's learning rate (train.lr)
    teacher_lr: float | None = 1e-5  # the teacher's meta learning rate; unset: train.teacher_lr
    quiz_fraction: float = 0.1  # share of the training set held out as the quiz set
    quiz_batches: int = 1  # quiz batches whose mean CE is the quiz loss, per step

    def __post_init__(self):
        check_range("alpha", self.alpha, 0.0, 1.0)
        check_range("temperature", self.temperature, 0.0, None, low_open=True)
        check_choice("kd_loss", self.kd_loss, KD_LOSSES)
        if self.inner_lr is not None:
            check_range("inner_lr", self.inner_lr, 0.0, None, low_open=True)
        if self.teacher_lr is not None:
            check_range("teacher_lr", self.teacher_lr, 0.0, None, low_open=True)
        check_range("quiz_fraction", self.quiz_fraction, 0.0, 0.5, low_open=True)
        check_range("quiz_batches", self.quiz_batches, 1)


@register
class MetaDistil(Distiller):
    name = "metadistil"
    description = "meta-learned teacher (Zhou et al. 2022): a pilot student step, the teacher learns from its quiz loss"
    scale = ("student alpha T^2 MSE(softmax(S/T), softmax(T/T)) (mean over B x C) + (1 - alpha) CE, alpha = 0.5, "
             "T = 5 (JetRunner/MetaDistil); teacher: the quiz CE after one SGD pilot step, through the second-order "
             "meta-gradient")
    Params = MetaDistilParams

    @classmethod
    def needs(cls, params) -> Needs:
        return Needs(teacher=ONLINE, quiz_fraction=params.quiz_fraction, teacher_lr=params.teacher_lr)

    def _loss(self, labels, s_logits, t_logits) -> dict[str, torch.Tensor]:
        p, reg = self.params, self.task.is_regression
        ce = losses.task_loss(s_logits, labels, reg)
        kd = soft_loss(s_logits, t_logits, p.temperature, p.kd_loss, reg)
        return {"total": p.alpha * kd + (1 - p.alpha) * ce, "ce": ce, "kd": kd}

    def teacher_loss(self, batch, t, s):
        """The quiz loss of the pilot student, a function of the teacher's parameters through t.logits [B, C]."""
        f, p = self.student_fn, self.params
        theta = {n: w.detach().requires_grad_() for n, w in f.params().items()}
        pilot = self._loss(batch["labels"], f(theta, batch, second_order=True).logits, t.logits)
        grads = torch.autograd.grad(pilot["total"], list(theta.values()), create_graph=True, allow_unused=True)
        lr = p.inner_lr if p.inner_lr is not None else f.base_lr
        fast = {n: w - lr * g for (n, w), g in zip(theta.items(), grads) if g is not None}
        quiz = []
        for _ in range(p.quiz_batches):
            q = self.next_quiz()
            quiz.append(losses.task_loss(f(fast, q, dropout=False).logits, q["labels"], self.task.is_regression))
        quiz_loss = torch.stack(quiz).mean()
        return {"total": quiz_loss, "quiz": quiz_loss, "pilot": pilot["total"].detach(),
                "pilot_kd": pilot["kd"].detach()}

    def student_loss(self, batch, s, t):
        return self._loss(batch["labels"], s.logits, t.logits)
