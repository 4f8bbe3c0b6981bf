"""LGTM, "Learning Good Teacher Matters" (Ren, Zhong, Shi, Zhu, Yuan and Li, ACL 2023, "Tailoring instructions to
student's learning levels boosts knowledge distillation"; the authors' code: twinkle0331/LGTM, utils_glue.py's
LGTMTeacher).

Online distillation in which the teacher weighs each training example by its distillation influence: how much
distilling on it moves the student's loss on held-out data. Per training batch x and quiz batch q:
  student:  L_S = alpha L_KD(p_T || p_S) + (1 - alpha) L_CE(y, S)                     (t detached)
  unrolled: theta_S' = the student's AdamW step on grad L_S (its moments, its current rate; theta_S untouched)
  v = grad_{theta_S'} L_CE(q; theta_S')                        (the student's gradient on the quiz batch)
  distillation influence of example i: I_i = grad_{theta_S} l_i(theta_S, theta_T) . v, in the paper's
     first-order finite-difference form  I_i ~ [l_i(theta_S + R v) - l_i(theta_S - R v)] / (2 R),  R = eps / ||v||
  teacher:  L_T = L_aux - eta (1/B) sum_i I_i,  L_aux = teacher_alpha L_KD(p_S || p_T) + (1 - teacher_alpha) L_CE(y, T)
The student's outputs at theta_S +- R v are constants, so grad_{theta_T} I_i is the finite difference of the
gradients of l_i with respect to the teacher (the code's _hessian_vector_product): the teacher's update is its
auxiliary ProKT-style loss plus each example's distillation gradient weighted by how well the student's step on
it aligns with the student's quiz gradient, computed online at every step. The teacher receives gradient from
these two terms only: L_aux (through its outputs on x) and the influence (through its outputs on x, against the
student perturbed along v); nothing reaches it from the quiz loss directly, and the student gets no gradient from
the teacher phase (functional copies of its parameters).

Choices (defaults from the authors' README command and code where the paper leaves them open):
- alpha = 1.0 (--alpha_kd: the student learns from the teacher alone), teacher_alpha = 0.4 (--t_alpha_kd),
  temperature 1; KL summed over classes and averaged over the batch, times T^2 as everywhere here (the code has no
  T^2: equal at T = 1); regression (STS-B, not in the paper): MSE between scores;
- l_i, the loss whose influence is measured (`influence_loss`): `teacher`, the code's choice, teacher_alpha
  KL(p_S || p_T) (the KD part of the teacher's own loss; its CE part cancels in the difference); `student`, the
  paper's definition, the student's alpha KL(p_T || p_S);
- eps = 0.01 (the code's r); eta is the student's current learning rate, the rate of the step the influence is
  derived for (the code multiplies by the teacher's current rate: equal in the README's run, 3e-5 both);
- the teacher starts from the pre-trained model (--teacher_model bert-base-uncased) and both classifiers start at
  zero (--init_classifier_to_zero, `zero_heads`);
- quiz_fraction = 0.1: the code draws the influence's validation batches from the dev set; here they come from
  10% of the training set held out by the data seed, so the dev set stays unseen; one quiz batch (of the training
  batch size) per step, cycling through the quiz set;
- dropout: the quiz forward of the unrolled student in train mode, the finite-difference forwards in eval mode (as
  the code); the teacher's forward is the engine's teacher-phase one (train mode; the code's finite differences
  recompute it in eval mode).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from kdfd import losses
from kdfd.distiller import ONLINE, Distiller, Needs, check_choice, check_range, register

INFLUENCE_LOSSES = ("teacher", "student")


def kd_rows(logits: torch.Tensor, target_logits: torch.Tensor, temperature: float, regression: bool) -> torch.Tensor:
    """Per-example distillation loss [B]: T^2 KL(softmax(target / T) || softmax(logits / T)) summed over classes,
    or for regression the squared difference of the scores. logits, target_logits [B, C]. Its batch mean is
    losses.distill."""
    if regression:
        return (logits.float() - target_logits.float()).pow(2).mean(-1)
    log_p = F.log_softmax(logits.float() / temperature, dim=-1)
    log_q = F.log_softmax(target_logits.float() / temperature, dim=-1)
    return (log_q.exp() * (log_q - log_p)).sum(-1) * temperature**2


@dataclass(frozen=True)
class LGTMParams:
    alpha: float = 1.0  # weight of the student's KD term; its CE gets 1 - alpha
    teacher_alpha: float = 0.4  # weight of the teacher's KD term toward the student; its CE gets 1 - teacher_alpha
    temperature: float = 1.0
    influence_loss: str = "teacher"  # teacher (the authors' code) | student (the paper's definition)
    epsilon: float = 0.01  # the finite difference's step, relative to the quiz gradient's norm
    quiz_fraction: float = 0.1
    teacher_init: str = "pretrained"
    zero_heads: bool = True  # both classifiers start at zero (the authors' --init_classifier_to_zero)

    def __post_init__(self):
        check_range("alpha", self.alpha, 0.0, 1.0)
        check_range("teacher_alpha", self.teacher_alpha, 0.0, 1.0)
        check_range("temperature", self.temperature, 0.0, None, low_open=True)
        check_choice("influence_loss", self.influence_loss, INFLUENCE_LOSSES)
        check_range("epsilon", self.epsilon, 0.0, None, low_open=True)
        check_range("quiz_fraction", self.quiz_fraction, 0.0, 0.5, low_open=True)
        check_choice("teacher_init", self.teacher_init, ("finetuned", "pretrained"))


@register
class LGTM(Distiller):
    name = "lgtm"
    description = "online KD whose teacher weighs examples by distillation influence on a quiz batch (Ren et al. 2023)"
    scale = ("student alpha T^2 KL(p_T || p_S) + (1 - alpha) CE, alpha = 1, T = 1; teacher 0.4 KL(p_S || p_T) + 0.6 CE "
             "minus eta times the mean finite-difference influence (twinkle0331/LGTM); KL summed over classes, "
             "averaged over the batch")
    Params = LGTMParams

    @classmethod
    def needs(cls, params) -> Needs:
        return Needs(teacher=ONLINE, teacher_init=params.teacher_init, quiz_fraction=params.quiz_fraction)

    def init_models(self, student, teacher) -> None:
        if self.params.zero_heads:
            with torch.no_grad():
                for model in (student, teacher):
                    model.head.weight.zero_()
                    model.head.bias.zero_()

    def _student_terms(self, labels, s_logits, t_logits) -> dict[str, torch.Tensor]:
        p, reg = self.params, self.task.is_regression
        ce = losses.task_loss(s_logits, labels, reg)
        kd = losses.distill(s_logits, t_logits, p.temperature, reg)
        return {"total": p.alpha * kd + (1 - p.alpha) * ce, "ce": ce, "kd": kd}

    def influence_rows(self, t_logits: torch.Tensor, s_logits: torch.Tensor) -> torch.Tensor:
        """l_i [B] of the influence, as a function of the teacher's logits t_logits [B, C] (s_logits constant)."""
        p, reg = self.params, self.task.is_regression
        if p.influence_loss == "teacher":
            return p.teacher_alpha * kd_rows(t_logits, s_logits, p.temperature, reg)
        return p.alpha * kd_rows(s_logits, t_logits, p.temperature, reg)

    def quiz_direction(self, batch, t_logits) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """(v by name, the quiz loss): the quiz gradient at the unrolled student theta_S'."""
        f = self.student_fn
        theta = {n: w.detach().requires_grad_() for n, w in f.params().items()}
        own = self._student_terms(batch["labels"], f(theta, batch).logits, t_logits.detach())["total"]
        grads = torch.autograd.grad(own, list(theta.values()), allow_unused=True)
        with torch.no_grad():
            unrolled = f.adamw_step({n: g for n, g in zip(theta, grads) if g is not None})
        leaf = {n: unrolled.get(n, w).detach().requires_grad_() for n, w in theta.items()}
        q = self.next_quiz()
        quiz = losses.task_loss(f(leaf, q).logits, q["labels"], self.task.is_regression)
        v = torch.autograd.grad(quiz, list(leaf.values()), allow_unused=True)
        return {n: torch.zeros_like(w) if g is None else g for (n, w), g in zip(leaf.items(), v)}, quiz.detach()

    def teacher_loss(self, batch, t, s):
        p, f, reg = self.params, self.student_fn, self.task.is_regression
        v, quiz = self.quiz_direction(batch, t.logits)
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in v.values()]))
        r = p.epsilon / norm.clamp_min(1e-12)
        live = f.params()
        with torch.no_grad():
            plus = f({n: live[n] + r * g for n, g in v.items()}, batch, dropout=False).logits
            minus = f({n: live[n] - r * g for n, g in v.items()}, batch, dropout=False).logits
        influence = ((self.influence_rows(t.logits, plus) - self.influence_rows(t.logits, minus)) / (2 * r)).mean()
        ce = losses.task_loss(t.logits, batch["labels"], reg)
        kd = losses.distill(t.logits, s.logits.detach(), p.temperature, reg)  # KL(p_S || p_T): toward the student
        aux = p.teacher_alpha * kd + (1 - p.teacher_alpha) * ce
        return {"total": aux - f.lr * influence, "aux": aux, "ce": ce, "kd": kd, "influence": influence.detach(),
                "quiz": quiz}

    def student_loss(self, batch, s, t):
        return self._student_terms(batch["labels"], s.logits, t.logits)
