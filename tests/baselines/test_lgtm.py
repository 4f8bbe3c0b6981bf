"""LGTM's teacher gradient against the authors' procedure (twinkle0331/LGTM, utils_glue.py's LGTMTeacher) redone on
linear models with real modules, and its influence against the exact alignment it approximates."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from baselines.lgtm import LGTM, LGTMParams
from kdfd.distiller import ModelInfo, StudentFunction
from kdfd.tasks import get_task

from .linear_models import Linear, data

TASK = get_task("mnli")
B, BQ, D, C = 6, 4, 5, 3
LR = 0.3


def cal_loss(s_logits, t_logits, temperature):
    """The authors' KD loss: KL(softmax(t / T) || softmax(s / T)) summed over classes, averaged over the batch."""
    soft = F.log_softmax(t_logits / temperature, dim=-1)
    log_prob = F.log_softmax(s_logits / temperature, dim=-1)
    return (-soft.exp() * log_prob + soft.exp() * soft).sum(-1).mean()


def setup(seed=0):
    g = torch.Generator().manual_seed(seed)
    student, teacher = Linear(0.7 * torch.randn(D, C, generator=g)), Linear(0.7 * torch.randn(D, C, generator=g))
    opt = torch.optim.AdamW(student.parameters(), lr=LR, weight_decay=0.01)
    warm = data(B, D, C, 7)  # two real steps first, so the optimizer's moments are not zero
    for _ in range(2):
        opt.zero_grad()
        F.cross_entropy(student(warm["input_ids"]).logits, warm["labels"]).backward()
        opt.step()
    opt.zero_grad(set_to_none=True)
    return student, teacher, opt


def method(student, opt, quiz, **params) -> LGTM:
    m = LGTM(LGTMParams(**params), TASK, ModelInfo(D, 1), ModelInfo(D, 1))
    m.student_fn = StudentFunction(student, optimizer=opt)
    m.next_quiz = lambda: quiz
    return m


def authors_teacher_gradient(student, teacher, opt, batch, quiz, alpha, t_alpha, tau, r, eta):
    """LGTMTeacher.step: dalpha = grad of the teacher's loss; the unrolled model is the student after a copy of its
    AdamW takes a step on the student's loss; vector = the unrolled model's gradient on the validation batch;
    implicit = (grad_T L_t(theta + R v) - grad_T L_t(theta - R v)) / 2R with R = r / ||v||; gradient = dalpha -
    eta implicit. L_t = t_alpha cal_loss(t, s) + (1 - t_alpha) CE(t) (cal_stu_tea_loss)."""
    x, y = batch["input_ids"], batch["labels"]

    def teacher_loss(s_logits):
        t_logits = teacher(x).logits
        return t_alpha * cal_loss(t_logits, s_logits.detach(), tau) + (1 - t_alpha) * F.cross_entropy(t_logits, y)

    s_logits = student(x).logits
    student_loss = (alpha * cal_loss(s_logits, teacher(x).logits.detach(), tau)
                    + (1 - alpha) * F.cross_entropy(s_logits, y))
    (dtheta,) = torch.autograd.grad(student_loss, student.w)
    (dalpha,) = torch.autograd.grad(teacher_loss(s_logits), teacher.w)
    unrolled = copy.deepcopy(student)
    unrolled_opt = torch.optim.AdamW(unrolled.parameters(), lr=LR, weight_decay=0.01)
    unrolled_opt.load_state_dict(copy.deepcopy(opt.state_dict()))
    unrolled.w.grad = dtheta.clone()
    unrolled_opt.step()
    (vector,) = torch.autograd.grad(F.cross_entropy(unrolled(quiz["input_ids"]).logits, quiz["labels"]), unrolled.w)
    big_r = r / vector.norm()
    with torch.no_grad():
        plus, minus = x @ (student.w + big_r * vector), x @ (student.w - big_r * vector)
    (grads_p,) = torch.autograd.grad(teacher_loss(plus), teacher.w)
    (grads_n,) = torch.autograd.grad(teacher_loss(minus), teacher.w)
    return dalpha - eta * (grads_p - grads_n) / (2 * big_r)


def test_the_teachers_gradient_is_the_authors_finite_difference_update():
    student, teacher, opt = setup()
    batch, quiz = data(B, D, C, 1), data(BQ, D, C, 2)
    m = method(student, opt, quiz, alpha=0.8, teacher_alpha=0.4, temperature=1.0)
    expected = authors_teacher_gradient(student, teacher, opt, batch, quiz, 0.8, 0.4, 1.0, 0.01, LR)
    s = student(batch["input_ids"])
    out = m.teacher_loss(batch, teacher(batch["input_ids"]), s)
    out["total"].backward()
    assert torch.allclose(teacher.w.grad, expected, atol=1e-5, rtol=1e-4)
    assert student.w.grad is None and out["influence"] != 0


@pytest.mark.parametrize("influence_loss", ["teacher", "student"])
def test_the_influence_is_the_alignment_of_each_examples_kd_gradient_with_the_quiz_gradient(influence_loss):
    """I_i = grad_{theta_S} l_i . v, with v the quiz gradient at the unrolled student: the finite difference the
    method logs is the batch mean of the exact dot products (autograd, one example at a time), to O(R^2)."""
    student, teacher, opt = setup()
    batch, quiz = data(B, D, C, 1), data(BQ, D, C, 2)
    m = method(student, opt, quiz, alpha=0.8, teacher_alpha=0.4, temperature=2.0, influence_loss=influence_loss)
    t = teacher(batch["input_ids"]).logits.detach()
    v, _ = m.quiz_direction(batch, t)
    exact = []
    for i in range(B):
        s_i = batch["input_ids"][i:i + 1] @ student.w
        if influence_loss == "teacher":  # 0.4 T^2 KL(p_S || p_T)
            l_i = 0.4 * 4 * cal_loss(t[i:i + 1], s_i, 2.0)
        else:  # the student's 0.8 T^2 KL(p_T || p_S)
            l_i = 0.8 * 4 * cal_loss(s_i, t[i:i + 1], 2.0)
        (g,) = torch.autograd.grad(l_i, student.w)
        exact.append((g * v["w"]).sum())
    logged = m.teacher_loss(batch, teacher(batch["input_ids"]), student(batch["input_ids"]))["influence"]
    assert torch.allclose(logged, torch.stack(exact).mean(), rtol=1e-3, atol=1e-6)


def test_the_teacher_gets_its_auxiliary_loss_and_the_influence_and_nothing_else():
    """grad_T L_T = grad_T L_aux - eta grad_T mean_i I_i: with the influence's weight at zero (epsilon has no such
    switch, so the student's rate is set to 0 through its optimizer), the teacher's gradient is its ProKT-style
    auxiliary loss's alone."""
    student, teacher, opt = setup()
    for group in opt.param_groups:
        group["lr"] = 0.0
    batch, quiz = data(B, D, C, 1), data(BQ, D, C, 2)
    m = method(student, opt, quiz, teacher_alpha=0.4)
    s = student(batch["input_ids"])
    m.teacher_loss(batch, teacher(batch["input_ids"]), s)["total"].backward()
    t_logits = teacher(batch["input_ids"]).logits
    aux = 0.4 * cal_loss(t_logits, s.logits.detach(), 1.0) + 0.6 * F.cross_entropy(t_logits, batch["labels"])
    (expected,) = torch.autograd.grad(aux, teacher.w)
    assert torch.allclose(teacher.w.grad, expected, atol=1e-7)


def test_defaults_are_the_authors_and_both_heads_start_at_zero():
    p = LGTMParams()
    assert (p.alpha, p.teacher_alpha, p.temperature, p.epsilon, p.teacher_init) == (1.0, 0.4, 1.0, 0.01, "pretrained")
    from kdfd import synthetic
    from kdfd.models import build_classifier
    from tests.kdfd.helpers import STUDENT, TEACHER

    student = build_classifier(STUDENT, 2, len(synthetic.VOCAB))
    teacher = build_classifier(TEACHER, 2, len(synthetic.VOCAB))
    LGTM(p, get_task("synth-pair"), ModelInfo.of(student), ModelInfo.of(teacher)).init_models(student, teacher)
    for model in (student, teacher):
        assert model.head.weight.abs().sum() == 0 and model.head.bias.abs().sum() == 0
    assert LGTM.needs(p).quiz_fraction == 0.1
