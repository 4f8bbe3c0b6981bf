"""PESF-KD: the teacher's and the student's losses on fixed tensors against the formulas written out here (the
authors' output adapter, nlp/utils_glue.py, and the KL of their CV loop), and where the teacher's gradient goes: to
its adapter alone, from its CE and its KL toward the student, never from the student's phase."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from baselines.pesf_kd import PESFKD, PESFKDParams
from kdfd.distiller import ModelInfo, Needs
from kdfd.engine import detach
from kdfd.errors import ConfigError
from kdfd.models import Forward
from kdfd.tasks import get_task
from tests.kdfd.helpers import batch, params_of, same, setup

TASK = get_task("synth-pair")
B, T, H, C = 3, 4, 8, 2
Y = torch.tensor([0, 1, 1])


def fwd(seed: int, classes: int = C) -> Forward:
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(B, T, H, generator=g)
    return Forward(logits=torch.randn(B, classes, generator=g), last_hidden=h, pooler=None,
                   attention_mask=torch.ones(B, T, dtype=torch.long), features=h[:, 0])


def kl(p_logits, q_logits, tau):
    """tau^2 KL(softmax(p / tau) || softmax(q / tau)), summed over classes, averaged over the batch."""
    p, q = F.softmax(p_logits / tau, -1), F.softmax(q_logits / tau, -1)
    return (p * (p.log() - q.log())).sum(-1).mean() * tau**2


def adapted(m: PESFKD, t: Forward) -> torch.Tensor:
    """z_T = head logits + l1(h) + up(relu(down(h))) (the authors' Adapter, its dropout off)."""
    a = m.teacher_modules["adapter"]
    h = t.features
    return (t.logits + h @ a.linear.weight.T + a.linear.bias
            + torch.relu(h @ a.down.weight.T + a.down.bias) @ a.up.weight.T + a.up.bias)


def test_defaults_are_the_authors_nlp_run():
    p = PESFKDParams()
    assert (p.alpha, p.temperature, p.placement, p.adapter_size, p.adapter_dropout) == (0.7, 5.0, "head", 64, 0.1)
    assert PESFKD.needs(p) == Needs(teacher="online", teacher_trains="modules")


def test_losses_golden():
    m = PESFKD(PESFKDParams(), TASK, ModelInfo(H, 3), ModelInfo(H, 6)).eval()  # eval: the adapter's dropout off
    s, t = fwd(1), fwd(2)
    z_t = adapted(m, t)
    teacher = m.teacher_loss({"labels": Y}, t, detach(s))
    expected_t = 0.3 * F.cross_entropy(z_t, Y) + 0.7 * kl(z_t, s.logits, 5.0)
    assert torch.allclose(teacher["total"], expected_t, atol=1e-6)
    student = m.student_loss({"labels": Y}, s, t)
    expected_s = 0.3 * F.cross_entropy(s.logits, Y) + 0.7 * kl(z_t, s.logits, 5.0)
    assert torch.allclose(student["total"], expected_s, atol=1e-6)
    assert torch.allclose(m.predict("teacher", t), z_t, atol=1e-6) and torch.equal(m.predict("student", s), s.logits)
    # the teacher's own weights, set apart from the student's
    w = PESFKD(PESFKDParams(alpha=0.5, teacher_ce_weight=1.0, teacher_kl_weight=2.0, temperature=2.0), TASK,
               ModelInfo(H, 3), ModelInfo(H, 6)).eval()
    z_t = adapted(w, t)
    expected_w = F.cross_entropy(z_t, Y) + 2.0 * kl(z_t, s.logits, 2.0)
    assert torch.allclose(w.teacher_loss({"labels": Y}, t, detach(s))["total"], expected_w, atol=1e-6)


def test_regression_matches_scores():
    stsb = get_task("stsb")
    m = PESFKD(PESFKDParams(), stsb, ModelInfo(H, 3), ModelInfo(H, 6)).eval()
    s, t = fwd(1, 1), fwd(2, 1)
    y = torch.tensor([0.5, 3.0, 4.5])
    z_t = adapted(m, t)
    expected_t = 0.3 * ((z_t[:, 0] - y) ** 2).mean() + 0.7 * ((z_t - s.logits) ** 2).mean()
    assert torch.allclose(m.teacher_loss({"labels": y}, t, s)["total"], expected_t, atol=1e-6)
    expected_s = 0.3 * ((s.logits[:, 0] - y) ** 2).mean() + 0.7 * ((s.logits - z_t) ** 2).mean()
    assert torch.allclose(m.student_loss({"labels": y}, s, t)["total"], expected_s, atol=1e-6)


def test_the_teacher_learns_in_its_adapter_only_and_from_its_own_terms_only():
    """On real tiny models as the engine runs them: the teacher's own weights are frozen (no gradient, unchanged after
    steps), the adapter's gradient is that of w_ce CE + w_kl KL(p_T || p_S) written out here (each term checked on
    its own), the student's phase gives the adapter nothing (its targets are detached) and the teacher's phase gives
    the student nothing."""
    engine, m, student, teacher = setup(PESFKD, PESFKDParams(adapter_dropout=0.0), total_steps=20)
    assert all(not p.requires_grad for p in teacher.parameters())
    trained = {id(p) for g in engine.opt_t.param_groups for p in g["params"]}
    assert trained == {id(p) for p in m.teacher_modules.parameters()}
    b = batch()
    s = engine.forward(student, b)
    teacher.train()
    t = engine.forward(teacher, b)
    adapter = list(m.teacher_modules.parameters())

    def grads(loss):
        return torch.autograd.grad(loss, adapter, retain_graph=True, allow_unused=True)

    z_t = adapted(m, t)
    ce, kl_term = F.cross_entropy(z_t, b["labels"]), kl(z_t, s.logits.detach(), 5.0)
    for w_ce, w_kl in ((0.3, 0.7), (1.0, 0.0), (0.0, 1.0)):
        m.params = PESFKDParams(adapter_dropout=0.0, teacher_ce_weight=w_ce, teacher_kl_weight=w_kl)
        got = grads(m.teacher_loss(b, t, detach(s))["total"])
        want = grads(w_ce * ce + w_kl * kl_term)
        for g, e in zip(got, want):
            torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-7)
    m.params = PESFKDParams(adapter_dropout=0.0)
    student_loss = m.student_loss(b, s, t)["total"]
    assert all(g is None for g in torch.autograd.grad(student_loss, adapter, retain_graph=True, allow_unused=True))
    assert all(g is None for g in torch.autograd.grad(m.teacher_loss(b, t, detach(s))["total"],
                                                      list(student.parameters()), allow_unused=True))
    own, mods = params_of(teacher), params_of(m.teacher_modules)
    for _ in range(2):
        engine.train_step(b)
    assert same(own, params_of(teacher)) and not same(mods, params_of(m.teacher_modules))


def test_layer_adapters_start_as_the_identity_and_alone_train():
    engine, m, student, teacher = setup(PESFKD, PESFKDParams(placement="layers"), total_steps=20)
    b = batch()
    teacher.eval()
    with torch.no_grad():
        start = engine.forward(teacher, b).logits
        m._hooks[0].remove()  # the teacher without its adapters: the fine-tuned model itself
        for h in m._hooks[1:]:
            h.remove()
        plain = engine.forward(teacher, b).logits
    torch.testing.assert_close(start, plain)  # zero-initialised up-projections
    m.init_models(student, teacher)
    m.init_models(student, teacher)  # twice: still one adapter per layer
    assert sum(len(layer._forward_hooks) for layer in teacher.backbone.encoder.layer) == 4
    own, mods = params_of(teacher), params_of(m.teacher_modules)
    engine.train_step(b)
    engine.train_step(b)
    assert same(own, params_of(teacher)) and not same(mods, params_of(m.teacher_modules))
    with torch.no_grad():
        moved = engine.forward(teacher, b).logits
    assert not torch.allclose(moved, plain)  # the adapters now change what the teacher predicts


@pytest.mark.parametrize("bad, words", [({"placement": "input"}, r"placement = 'input' is not allowed"),
                                        ({"adapter_size": 0}, r"adapter_size = 0"),
                                        ({"teacher_kl_weight": -1.0}, r"teacher_kl_weight = -1.0"),
                                        ({"adapter_dropout": 1.0}, r"adapter_dropout = 1.0")])
def test_bad_parameters_name_themselves(bad, words):
    with pytest.raises(ConfigError, match=words):
        PESFKDParams(**bad)


def test_only_an_online_teacher_trains_in_part():
    with pytest.raises(ConfigError, match="'modules' applies to an online teacher, not a 'frozen' one"):
        Needs(teacher="frozen", teacher_trains="modules")
    with pytest.raises(ConfigError, match="teacher_trains"):
        Needs(teacher="online", teacher_trains="some")
