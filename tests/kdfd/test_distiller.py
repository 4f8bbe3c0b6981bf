"""kdfd.distiller's StudentFunction (the student as a function of its parameters) against the real thing: the
model's own forward, a real AdamW step, torch's gradient clipping."""

from __future__ import annotations

import copy

import pytest
import torch

from kdfd import synthetic
from kdfd.distiller import Needs, StudentFunction
from kdfd.engine import INPUT_KEYS, make_optimizer
from kdfd.errors import ConfigError
from kdfd.models import build_classifier

from .helpers import STUDENT, batch

VOCAB = len(synthetic.VOCAB)


def model_and_optimizer(lr=1e-2, weight_decay=0.01):
    torch.manual_seed(0)
    model = build_classifier(STUDENT, 2, VOCAB)
    return model, make_optimizer([model], lr, weight_decay, fused=False)


def inputs(b):
    return {k: b[k] for k in INPUT_KEYS if k in b}


def loss_of(model, b):
    return torch.nn.functional.cross_entropy(model(**inputs(b)).logits, b["labels"])


def test_the_functional_forward_at_the_live_parameters_is_the_models_forward():
    model, _ = model_and_optimizer()
    f, b = StudentFunction(model), batch()
    assert torch.equal(f(f.params(), b).logits, model(**inputs(b)).logits)
    other = {n: p.detach() + 0.1 for n, p in f.params().items()}
    moved = copy.deepcopy(model)
    with torch.no_grad():
        for n, p in moved.named_parameters():
            p.copy_(other[n])
    assert torch.allclose(f(other, b).logits, moved(**inputs(b)).logits, atol=1e-6)


def test_dropout_false_is_an_eval_mode_forward_and_leaves_the_model_training():
    torch.manual_seed(0)
    model = build_classifier(STUDENT.__class__(**{**STUDENT.__dict__, "dropout": 0.5}), 2, VOCAB).train()
    f, b = StudentFunction(model), batch()
    out = f(f.params(), b, dropout=False).logits
    assert model.training
    model.eval()
    assert torch.equal(out, model(**inputs(b)).logits)


def test_second_order_forwards_can_be_differentiated_twice():
    """A pilot step's gradient taken with create_graph, then differentiated again: the fused SDPA kernel has no
    double backward on CPU, the math kernel that second_order selects has."""
    model, _ = model_and_optimizer()
    f, b = StudentFunction(model), batch()
    theta = {n: p.detach().requires_grad_() for n, p in f.params().items()}
    scale = torch.tensor(1.0, requires_grad=True)
    loss = torch.nn.functional.cross_entropy(f(theta, b, second_order=True).logits * scale, b["labels"])
    grads = torch.autograd.grad(loss, list(theta.values()), create_graph=True, allow_unused=True)
    meta = sum((g * g).sum() for g in grads if g is not None)
    (d_scale,) = torch.autograd.grad(meta, scale)
    assert torch.isfinite(d_scale) and d_scale != 0


@pytest.mark.parametrize("fresh", [False, True])
def test_adamw_step_is_the_optimizers_next_step(fresh):
    """The step a real torch.optim.AdamW takes (after two real steps, so its moments are not zero), or a fresh
    AdamW's first step, computed out of place; the optimizer and the model are left as they were."""
    model, opt = model_and_optimizer()
    b = batch()
    for _ in range(2):
        opt.zero_grad()
        loss_of(model, b).backward()
        opt.step()
    f = StudentFunction(model, optimizer=opt)
    grads = dict(zip(f.params(), torch.autograd.grad(loss_of(model, b), list(f.params().values()))))
    before = {n: p.detach().clone() for n, p in f.params().items()}
    state_before = copy.deepcopy(opt.state_dict())
    lr = 3e-3 if fresh else None
    stepped = f.adamw_step(grads, fresh=fresh, lr=lr)

    ref_model = copy.deepcopy(model)
    ref_opt = make_optimizer([ref_model], 1e-2 if lr is None else lr, 0.01, fused=False)
    if not fresh:
        ref_opt.load_state_dict(copy.deepcopy(opt.state_dict()))
    for n, p in ref_model.named_parameters():
        p.grad = grads[n].clone()
    ref_opt.step()
    for n, p in ref_model.named_parameters():
        assert torch.allclose(stepped[n], p, atol=1e-7, rtol=1e-6), n
        assert torch.equal(f.params()[n], before[n])  # the live parameters did not move
    assert opt.state_dict()["state"][0]["step"] == state_before["state"][0]["step"]


def test_clip_is_torchs_clip_grad_norm():
    model, opt = model_and_optimizer()
    f = StudentFunction(model, optimizer=opt, max_grad_norm=0.05)
    loss_of(model, batch()).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    clipped = f.clip(grads)
    torch.nn.utils.clip_grad_norm_(model.parameters(), 0.05)
    for n, p in model.named_parameters():
        assert torch.allclose(clipped[n], p.grad, atol=1e-9), n


def test_learning_rates_read_the_optimizer():
    model, opt = model_and_optimizer(lr=2e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5)
    f = StudentFunction(model, optimizer=opt)
    assert f.lr == pytest.approx(1e-3) and f.base_lr == pytest.approx(2e-3)
    del sched


def test_needs_check_the_quiz_fraction_and_the_teacher_rate():
    assert Needs(quiz_fraction=0.1, teacher_lr=1e-5).quiz_fraction == 0.1
    with pytest.raises(ConfigError, match="quiz_fraction = 0.7"):
        Needs(quiz_fraction=0.7)
    with pytest.raises(ConfigError, match="teacher_lr = 0"):
        Needs(teacher_lr=0.0)
