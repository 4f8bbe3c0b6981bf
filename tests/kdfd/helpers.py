"""Tiny real models and batches for engine and method tests."""

from __future__ import annotations

import torch

from kdfd import synthetic
from kdfd.config import TrainConfig
from kdfd.data import Collator, EncodedDataset, make_loader
from kdfd.distiller import ModelInfo, needs_of
from kdfd.engine import Engine, set_seed
from kdfd.models import ModelSpec, build_classifier
from kdfd.tasks import get_task

TEACHER = ModelSpec("tiny", layers=4, hidden=32, heads=2, intermediate=64, dropout=0.0)
STUDENT = ModelSpec("tiny", layers=2, hidden=16, heads=2, intermediate=32, dropout=0.0)


def batch(task_name: str = "synth-pair", n: int = 8) -> dict:
    task = get_task(task_name)
    tok = synthetic.build_tokenizer()
    ds = EncodedDataset(list(synthetic.generate(task_name, "train"))[:n], task, tok, max_length=64)
    return Collator(tok.pad_token_id, task.is_regression)([ds[i] for i in range(n)])


def quiz_loader(task_name: str = "synth-pair", n: int = 24, batch_size: int = 8):
    """A loader over n synthetic examples that training batches (`batch`) do not hold: a method's quiz split."""
    task = get_task(task_name)
    tok = synthetic.build_tokenizer()
    ds = EncodedDataset(list(synthetic.generate(task_name, "train"))[100:100 + n], task, tok, max_length=64)
    return make_loader(ds, batch_size, shuffle=True, seed=0)


def setup(method_cls, params=None, task_name="synth-pair", lr=1e-2, seed=0, total_steps=10, student_spec=STUDENT,
          precision="auto"):
    """(engine, distiller, student, teacher) on tiny random BERTs, put together as kdfd.job.run does (the method's
    init_models, a quiz split where it asks for one)."""
    set_seed(seed)
    task = get_task(task_name)
    vocab = len(synthetic.VOCAB)
    params = params if params is not None else method_cls.Params()
    needs = needs_of(method_cls, params)
    attn = "eager" if needs.attentions else "sdpa"
    student = build_classifier(student_spec, task.num_labels, vocab, attn)
    teacher = build_classifier(TEACHER, task.num_labels, vocab, attn)
    distiller = method_cls(params, task, ModelInfo.of(student), ModelInfo.of(teacher))
    distiller.init_models(student, teacher)
    train = TrainConfig(lr=lr, teacher_lr=lr, warmup_ratio=0.0, device="cpu", precision=precision)
    engine = Engine(distiller, student, teacher, task, train, total_steps=total_steps, progress=False, needs=needs)
    if needs.quiz_fraction:
        engine.use_quiz(quiz_loader(task_name))
    return engine, distiller, student, teacher


def params_of(module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def same(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b))
