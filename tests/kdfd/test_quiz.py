"""The quiz split of meta-learning methods (Needs.quiz_fraction): carved out of the training set by the data seed,
drawn batch by batch by the engine, and taken up where it was after a resume."""

from __future__ import annotations

import pytest
import torch

from baselines.metadistil import MetaDistil, MetaDistilParams
from baselines.vanilla_kd import VanillaKD
from kdfd import synthetic
from kdfd.checkpoint import rng_state, set_rng_state
from kdfd.config import RunConfig, TrainConfig
from kdfd.data import quiz_split
from kdfd.errors import ConfigError
from kdfd.job import resolve, run
from kdfd.models import ModelSpec

from .helpers import batch, params_of, same, setup


def test_the_quiz_split_is_held_out_of_the_training_set_by_the_data_seed():
    examples = list(synthetic.generate("synth-pair", "train"))[:50]
    train, quiz = quiz_split(examples, 0.1)
    assert len(quiz) == 5 and len(train) == 45
    assert sorted(train + quiz, key=examples.index) == examples and not set(map(id, train)) & set(map(id, quiz))
    assert train == sorted(train, key=examples.index) and quiz == sorted(quiz, key=examples.index)  # file order
    assert quiz_split(examples, 0.1) == (train, quiz)  # the data seed fixes it: every run seed gets the same split
    assert quiz_split(examples, 0.1, seed=1)[1] != quiz
    assert len(quiz_split(examples[:3], 0.01)[1]) == 1  # at least one quiz example
    with pytest.raises(ConfigError, match="leaves no training examples out of 1"):
        quiz_split(examples[:1], 0.5)


def test_quiz_batches_go_through_the_quiz_set_epoch_by_epoch():
    engine, *_ = setup(MetaDistil, MetaDistilParams(inner_lr=1e-2))  # a quiz of 24 examples in batches of 8
    seen = [engine.next_quiz()["index"].tolist() for _ in range(6)]
    first, second = sum(seen[:3], []), sum(seen[3:], [])
    assert sorted(first) == sorted(second) == list(range(24)) and first != second
    assert engine.quiz_drawn == 6


def test_a_method_that_draws_quiz_batches_without_a_quiz_split_is_told_so():
    engine, distiller, *_ = setup(VanillaKD)
    with pytest.raises(ValueError, match="method 'vanilla-kd' draws quiz batches and none were given"):
        distiller.next_quiz()


def test_a_methods_own_teacher_rate_sets_the_online_teachers_optimizer():
    engine, *_ = setup(MetaDistil, MetaDistilParams(teacher_lr=2e-5))  # train.teacher_lr is 1e-2 here
    assert {g["lr"] for g in engine.opt_t.param_groups} == {2e-5}
    engine, *_ = setup(MetaDistil, MetaDistilParams(teacher_lr=None))
    assert {g["lr"] for g in engine.opt_t.param_groups} == {1e-2}


def test_a_resumed_engine_draws_the_quiz_batches_an_uninterrupted_one_draws():
    """5 MetaDistil steps straight, against 2 steps, the engine's state and RNG saved, a fresh engine loading them,
    and 3 more steps: the same weights, bit for bit (the quiz position crosses an epoch of the quiz loader)."""
    params = MetaDistilParams(inner_lr=1e-2)
    b = batch()
    engine, _, student, teacher = setup(MetaDistil, params)
    for _ in range(5):
        engine.train_step(b)
    straight = params_of(student) + params_of(teacher)

    engine, *_ = setup(MetaDistil, params)
    for _ in range(2):
        engine.train_step(b)
    state, rng = engine.state_dict(), rng_state()
    assert state["quiz_drawn"] == 2
    torch.manual_seed(1234)  # the resumed process starts elsewhere
    engine, _, student, teacher = setup(MetaDistil, params)
    engine.load_state_dict(state)
    set_rng_state(rng)
    for _ in range(3):
        engine.train_step(b)
    assert engine.quiz_drawn == 5
    assert same(straight, params_of(student) + params_of(teacher))


def test_a_job_trains_on_the_training_set_less_its_quiz_split():
    tiny = ModelSpec("tiny", layers=1, hidden=16, heads=2, intermediate=32)
    cfg = RunConfig(task="synth-pair", method="lgtm", seed=1, student=tiny, teacher=tiny,
                    params={"quiz_fraction": 0.25}, data_source="synthetic",
                    train=TrainConfig(epochs=1, batch_size=8, max_length=32, max_train_examples=40,
                                      max_eval_examples=16, device="cpu"))
    out = run(resolve(cfg), progress=False)
    assert out.data["train_examples"] == 30 and out.data["quiz_examples"] == 10
    assert out.timing["steps"] == 4  # 30 examples in batches of 8
