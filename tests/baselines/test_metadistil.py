"""MetaDistil's meta-gradient against one derived by hand on linear models, and where the teacher's gradient comes
from."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from baselines.metadistil import MetaDistil, MetaDistilParams
from kdfd.distiller import ModelInfo, StudentFunction
from kdfd.errors import ConfigError
from kdfd.tasks import get_task

from .linear_models import Linear, data, jacobian, softmax

TASK = get_task("mnli")  # three classes: the softmax Jacobians are not trivial
B, BQ, D, C = 5, 4, 6, 3


def models(seed=0):
    g = torch.Generator().manual_seed(seed)
    return Linear(0.7 * torch.randn(D, C, generator=g)), Linear(0.7 * torch.randn(D, C, generator=g))


def method(student, quiz, **params) -> MetaDistil:
    m = MetaDistil(MetaDistilParams(**params), TASK, ModelInfo(D, 1), ModelInfo(D, 1))
    m.student_fn = StudentFunction(student)
    m.next_quiz = lambda: quiz
    return m


def hand_meta_gradient(ws, wt, x, y, xq, yq, alpha, tau, lr, kind):
    """dL_CE(q; W_s') / dW_t for W_s' = W_s - lr dL/dW_s, L = alpha KD + (1 - alpha) CE, logits x W, no autograd:
    dL/ds_b (row) = alpha g_b + (1 - alpha)(softmax(s_b) - y_b) / B, with
      kl:  g_b = tau (p_s - p_t) / B,                     d g_b / d t_b = -J_t / B
      mse: g_b = 2 tau J_s (p_s - p_t) / (B C),           d g_b / d t_b = -2 J_s J_t / (B C)
    (p = softmax(logits / tau), J = diag(p) - p p^T). W_s' = W_s - lr x^T (dL/ds), G = x_q^T (softmax(x_q W_s') - y_q)
    / B_q is the quiz gradient at W_s', and dQ/dt_b = -lr (x_b G) H_b with H_b = alpha d g_b / d t_b; dQ/dW_t =
    sum_b x_b^T dQ/dt_b."""
    b, c = x.shape[0], wt.shape[1]
    s, t = x @ ws, x @ wt
    p_s, p_t = softmax(s / tau), softmax(t / tau)
    j_s, j_t = jacobian(p_s), jacobian(p_t)
    onehot = F.one_hot(y, c).float()
    if kind == "kl":
        g = tau * (p_s - p_t) / b
        h = -j_t / b
    else:
        g = 2 * tau * torch.einsum("bij,bj->bi", j_s, p_s - p_t) / (b * c)
        h = -2 * j_s @ j_t / (b * c)
    d_s = alpha * g + (1 - alpha) * (softmax(s) - onehot) / b
    fast = ws - lr * x.T @ d_s
    quiz_grad = xq.T @ (softmax(xq @ fast) - F.one_hot(yq, c).float()) / xq.shape[0]
    d_t = -lr * torch.einsum("bc,bcd->bd", x @ quiz_grad, alpha * h)
    return x.T @ d_t


@pytest.mark.parametrize("kind", ["mse", "kl"])
def test_the_teachers_gradient_is_the_hand_derived_meta_gradient(kind):
    student, teacher = models()
    batch, quiz = data(B, D, C, 1), data(BQ, D, C, 2)
    m = method(student, quiz, alpha=0.3, temperature=2.0, kd_loss=kind, inner_lr=0.8)
    t = teacher(batch["input_ids"])
    out = m.teacher_loss(batch, t, None)
    out["total"].backward()
    expected = hand_meta_gradient(student.w.detach(), teacher.w.detach(), batch["input_ids"], batch["labels"],
                                  quiz["input_ids"], quiz["labels"], 0.3, 2.0, 0.8, kind)
    assert expected.abs().max() > 1e-3  # a gradient worth comparing
    assert torch.allclose(teacher.w.grad, expected, atol=1e-6, rtol=1e-4)
    assert student.w.grad is None  # the pilot works on copies: the real student gets nothing from this phase


def test_the_teacher_learns_only_through_the_pilot_steps_kd_term():
    """With alpha = 0 the pilot step ignores the teacher, so the quiz loss cannot reach it: MetaDistil gives the
    teacher no loss of its own (no CE, no KD toward the student), only the quiz loss through the pilot step."""
    student, teacher = models()
    batch, quiz = data(B, D, C, 1), data(BQ, D, C, 2)
    m = method(student, quiz, alpha=0.0, inner_lr=0.8)
    t = teacher(batch["input_ids"])
    total = m.teacher_loss(batch, t, None)["total"]
    (grad,) = torch.autograd.grad(total, teacher.w, allow_unused=True)
    assert grad is None or torch.count_nonzero(grad) == 0  # 0 x KD keeps the graph, with a zero gradient


def test_the_student_loss_mixes_kd_and_ce_as_the_authors_script():
    """run_glue_distillation_meta.py: alpha * soft_loss + (1 - alpha) * train_loss, soft_loss =
    F.mse_loss(softmax(t / T), softmax(s / T)) * T * T."""
    student, teacher = models()
    batch = data(B, D, C, 1)
    s, t = student(batch["input_ids"]), teacher(batch["input_ids"])
    m = method(student, None)
    assert (m.params.alpha, m.params.temperature, m.params.kd_loss) == (0.5, 5.0, "mse")
    soft = ((softmax(t.logits / 5.0) - softmax(s.logits / 5.0)) ** 2).mean() * 25.0
    expected = 0.5 * soft + 0.5 * F.cross_entropy(s.logits, batch["labels"])
    assert torch.allclose(m.student_loss(batch, s, t)["total"], expected, atol=1e-6)


def test_the_pilot_step_defaults_to_the_students_learning_rate():
    student, teacher = models()
    opt = torch.optim.AdamW(student.parameters(), lr=0.8)
    batch, quiz = data(B, D, C, 1), data(BQ, D, C, 2)
    m = method(student, quiz, alpha=0.3, temperature=2.0, kd_loss="kl")
    m.student_fn = StudentFunction(student, optimizer=opt)
    m.teacher_loss(batch, teacher(batch["input_ids"]), None)["total"].backward()
    expected = hand_meta_gradient(student.w.detach(), teacher.w.detach(), batch["input_ids"], batch["labels"],
                                  quiz["input_ids"], quiz["labels"], 0.3, 2.0, 0.8, "kl")
    assert torch.allclose(teacher.w.grad, expected, atol=1e-6, rtol=1e-4)


def test_params_are_checked():
    with pytest.raises(ConfigError, match="kd_loss = 'l1' is not allowed"):
        MetaDistilParams(kd_loss="l1")
    with pytest.raises(ConfigError, match="quiz_fraction = 0.0"):
        MetaDistilParams(quiz_fraction=0.0)
    needs = MetaDistil.needs(MetaDistilParams())
    assert (needs.teacher, needs.teacher_init, needs.quiz_fraction, needs.teacher_lr) == \
        ("online", "finetuned", 0.1, 1e-5)
