"""ReptileDistil's teacher update against the authors' procedure done with real modules: a deep copy of the student,
a new AdamW, one clipped step, and theta_T - theta_S' as the teacher's gradient on the paired parameters."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
import torch.nn.functional as F

from baselines.reptile_distil import ReptileDistil, ReptileDistilParams, teacher_name
from kdfd import synthetic
from kdfd.distiller import ModelInfo
from kdfd.engine import INPUT_KEYS
from kdfd.errors import ConfigError
from kdfd.models import build_classifier
from kdfd.tasks import get_task
from tests.kdfd.helpers import STUDENT, TEACHER, batch, setup

WIDE = dataclasses.replace(STUDENT, hidden=TEACHER.hidden, heads=TEACHER.heads, intermediate=TEACHER.intermediate)


def test_layer_maps_are_the_scripts():
    """run_glue_with_reptile.py, 6 -> 12 layers: skip 0->1, 1->3, .., 5->11; last 0->6 .. 5->11; first 0->0."""
    from kdfd.models import layer_map

    skip = {s - 1: t - 1 for s, t in layer_map(6, 12, "skip")}
    last = {s - 1: t - 1 for s, t in layer_map(6, 12, "last")}
    assert skip == {0: 1, 1: 3, 2: 5, 3: 7, 4: 9, 5: 11} and last == {0: 6, 1: 7, 2: 8, 3: 9, 4: 10, 5: 11}
    assert teacher_name("backbone.encoder.layer.1.output.dense.weight", skip) == \
        "backbone.encoder.layer.3.output.dense.weight"
    assert teacher_name("head.weight", skip) == "head.weight"


@pytest.mark.parametrize("layer_map,paired", [("skip", {0: 1, 1: 3}), ("last", {0: 2, 1: 3}), ("first", {0: 0, 1: 1})])
def test_the_teachers_gradient_is_theta_t_minus_the_adapted_student(layer_map, paired):
    params = ReptileDistilParams(alpha=0.3, temperature=2.0, layer_map=layer_map)
    engine, m, student, teacher = setup(ReptileDistil, params, student_spec=WIDE)
    b = batch()
    inputs = {k: b[k] for k in INPUT_KEYS if k in b}
    t = teacher(**inputs)  # with its graph: the teacher must get nothing through its outputs

    # the authors' step 1: a deep copy of the student, a new AdamW (the engine's groups: no decay on biases and
    # LayerNorm), L = (1 - alpha) CE + alpha T^2 KL(p_T || p_S), its gradient clipped at 1, one step
    fast = copy.deepcopy(student)
    named = list(fast.named_parameters())
    no_decay = [p for n, p in named if p.ndim < 2 or "LayerNorm" in n]
    decay = [p for n, p in named if not (p.ndim < 2 or "LayerNorm" in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-2)
    logits = fast(**inputs).logits
    kd = F.kl_div(F.log_softmax(logits / 2.0, -1), F.softmax(t.logits.detach() / 2.0, -1), reduction="batchmean") * 4
    ((1 - 0.3) * F.cross_entropy(logits, b["labels"]) + 0.3 * kd).backward()
    torch.nn.utils.clip_grad_norm_(fast.parameters(), 1.0)
    opt.step()
    adapted = dict(fast.named_parameters())

    m.teacher_loss(b, t, None)["total"].backward()
    theirs = dict(teacher.named_parameters())
    expected = {teacher_name(n, paired): theirs[teacher_name(n, paired)].detach() - p.detach()
                for n, p in adapted.items()}
    for name, p in theirs.items():
        if name in expected:
            # AdamW's first step is lr g / (|g| + eps): it turns float noise in near-zero gradients (a key bias's are
            # zero up to rounding) into parts of lr; 1e-5 is 0.1% of this step (lr 1e-2)
            assert torch.allclose(p.grad, expected[name], atol=1e-5), name
        else:  # a teacher layer no student layer maps to
            assert p.grad is None, name
    assert all(p.grad is None for p in student.parameters())  # the copy's step leaves the real student alone


def test_the_student_loss_is_the_scripts():
    engine, m, student, teacher = setup(ReptileDistil, student_spec=WIDE)
    b = batch()
    s, t = student(b["input_ids"], b["attention_mask"]), teacher(b["input_ids"], b["attention_mask"])
    kd = F.kl_div(F.log_softmax(s.logits / 5.0, -1), F.softmax(t.logits / 5.0, -1), reduction="batchmean") * 25
    expected = 0.5 * F.cross_entropy(s.logits, b["labels"]) + 0.5 * kd
    assert torch.allclose(m.student_loss(b, s, t)["total"], expected, atol=1e-6)


def test_models_of_different_widths_are_refused():
    with pytest.raises(ConfigError, match="same shapes: the student's hidden size is 16, the teacher's 32"):
        setup(ReptileDistil)
    task = get_task("synth-pair")
    student = build_classifier(dataclasses.replace(WIDE, intermediate=48), 2, len(synthetic.VOCAB))
    teacher = build_classifier(TEACHER, 2, len(synthetic.VOCAB))
    m = ReptileDistil(ReptileDistilParams(), task, ModelInfo.of(student), ModelInfo.of(teacher))
    with pytest.raises(ConfigError, match=r"intermediate.dense.weight \(48, 32\) .* \(64, 32\): they must match"):
        m.init_models(student, teacher)
