"""Every registered method at the paper's shapes, with random weights (no download): a BERT-base-shaped teacher
(12 layers, hidden 768, 12 heads, intermediate 3072) and a TinyBERT-6L-768D-shaped student, one training step per
stage on a short batch. Catches what tiny models hide: a projection or bottleneck sized for the wrong width, a layer
map past the student's depth, a tensor that only breaks at 768 x 12.

On CPU (CI) in fp32, one step per stage. scripts/gpu-smoke.sh runs the same file on a GPU with
KDFD_SHAPES_DEVICE=cuda, KDFD_SHAPES_PRECISION (fp32, bf16, fp16) and KDFD_SHAPES_STEPS (steps per stage)."""

from __future__ import annotations

import copy
import functools
import math
import os

import pytest
import torch

from kdfd import synthetic
from kdfd.config import TrainConfig
from kdfd.distiller import ModelInfo, needs_of
from kdfd.engine import Engine, set_seed
from kdfd.models import ModelSpec, build_classifier
from kdfd.registry import load_methods
from kdfd.tasks import get_task
from tests.kdfd.helpers import batch, quiz_loader

TEACHER = ModelSpec("tiny", layers=12, hidden=768, heads=12, intermediate=3072)  # bert-base-uncased
STUDENT = ModelSpec("tiny", layers=6, hidden=768, heads=12, intermediate=3072)  # TinyBERT_General_6L_768D
DEVICE = torch.device(os.environ.get("KDFD_SHAPES_DEVICE", "cpu"))
PRECISION = os.environ.get("KDFD_SHAPES_PRECISION", "fp32")
STEPS = int(os.environ.get("KDFD_SHAPES_STEPS", "1"))  # per stage
METHODS = load_methods()
TASK = get_task("synth-pair")


@functools.lru_cache(maxsize=2)
def models(attn: str):
    """(student, teacher), built once per attention implementation (random initialisation of 130M parameters is
    most of a step's cost here); each test trains copies."""
    set_seed(0)
    vocab = len(synthetic.VOCAB)
    return (build_classifier(STUDENT, TASK.num_labels, vocab, attn),
            build_classifier(TEACHER, TASK.num_labels, vocab, attn))


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_steps_at_the_papers_shapes(name):
    cls = METHODS[name]
    task = TASK
    set_seed(0)
    params = cls.Params()  # the method's defaults: the paper's settings
    needs = needs_of(cls, params)
    student, teacher = copy.deepcopy(models("eager" if needs.attentions else "sdpa"))
    distiller = cls(params, task, ModelInfo.of(student), ModelInfo.of(teacher))
    distiller.init_models(student, teacher)
    train = TrainConfig(warmup_ratio=0.0, device=DEVICE.type, precision=PRECISION)
    stages = len(distiller.stages())
    engine = Engine(distiller, student, teacher, task, train, total_steps=stages * STEPS, device=DEVICE,
                    progress=False, needs=needs)
    if needs.quiz_fraction:
        engine.use_quiz(quiz_loader(n=4, batch_size=2))
    b = batch("synth-pair", n=2)
    for start in [0] + engine.stage_ends[:-1]:  # every stage: each may use other modules or layer maps
        engine.step = start
        for _ in range(STEPS):
            logs = engine.train_step(b)
        assert logs and all(math.isfinite(v) for v in logs.values()), (name, logs)
    assert engine.precision == PRECISION
