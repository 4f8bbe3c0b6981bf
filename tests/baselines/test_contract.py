"""The contract every registered method keeps; a new method is picked up with no edit here.

For each method and each of its stages, one real training step on tiny random BERTs: every logged loss is finite,
the teacher changes exactly when it trains online, the student's frozen groups keep their weights while the groups
the stage trains move, and forward passes carry hidden states / attentions / scores only when the method asked."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from kdfd.distiller import NONE, ONLINE
from kdfd.errors import ConfigError
from kdfd.registry import load_methods
from tests.kdfd.helpers import STUDENT, TEACHER, batch, params_of, same, setup

TASKS = ("synth-pair", "synth-reg")
METHODS = load_methods()  # baselines/, kdfd's own and installed packages' (entry points): every one is checked


def tiny_params(cls):
    """The method's defaults, with dimensions that fit the tiny models (hidden sizes 16 and 32)."""
    fields = {f.name for f in dataclasses.fields(cls.Params)}
    return cls.Params(**({"latent_dim": 8} if "latent_dim" in fields else {}))


# the student at the teacher's widths: for methods that map the student's parameters onto the teacher's (Reptile)
WIDE_STUDENT = dataclasses.replace(STUDENT, hidden=TEACHER.hidden, heads=TEACHER.heads,
                                   intermediate=TEACHER.intermediate)


def setup_for(cls, task_name):
    try:
        return setup(cls, tiny_params(cls), task_name=task_name, total_steps=40)
    except ConfigError as e:  # a method whose models must have the same shapes says so, naming them
        assert "same shapes" in str(e), e
        return setup(cls, tiny_params(cls), task_name=task_name, total_steps=40, student_spec=WIDE_STUDENT)


def stage_starts(engine) -> list[int]:
    return [0] + engine.stage_ends[:-1]


@pytest.mark.parametrize("task_name", TASKS)
@pytest.mark.parametrize("name", sorted(METHODS))
def test_one_step_per_stage_keeps_the_contract(name, task_name):
    cls = METHODS[name]
    engine, distiller, student, teacher = setup_for(cls, task_name)
    needs = cls.needs(distiller.params)
    seen = []
    original = distiller.student_loss

    def spy(b, s, t):
        seen.append((s, t))
        return original(b, s, t)

    distiller.student_loss = spy
    b = batch(task_name)
    for index, start in enumerate(stage_starts(engine)):
        engine.step = start
        own_before = params_of(teacher)
        t_before = own_before + params_of(distiller.teacher_modules)  # the teacher: its model and the method's modules
        s_before = {g: params_of_list(ps) for g, ps in student.param_groups().items()}
        # a method may sample which modules a step runs (theseus's early steps may run frozen teacher modules alone
        # and move nothing): a few more steps of the same stage, until the student moves
        for _ in range(8):
            logs = engine.train_step(b)
            after = {g: params_of_list(ps) for g, ps in student.param_groups().items()}
            moved = {g for g in after if not same(s_before[g], after[g])}
            if moved:
                break
        assert engine.stage_index == index
        stage = distiller.stage

        assert logs and all(math.isfinite(v) for v in logs.values()), logs
        assert "student/total" in logs
        assert ("teacher/total" in logs) == (needs.teacher == ONLINE)

        teacher_moved = not same(t_before, params_of(teacher) + params_of(distiller.teacher_modules))
        assert teacher_moved == (needs.teacher == ONLINE), f"{name}: the teacher moved = {teacher_moved}"
        if needs.teacher_trains == "modules":
            assert same(own_before, params_of(teacher)), f"{name}: the teacher's own weights moved"
        trained = set(after) if stage.train is None else set(stage.train)
        assert moved <= trained, f"{name} stage {stage.name!r}: frozen groups {sorted(moved - trained)} moved"
        assert moved, f"{name} stage {stage.name!r}: no student parameter moved"

        s, t = seen[-1]
        for out in (s, t):
            if out is None:
                continue
            assert (out.hidden_states is not None) == needs.hidden_states
            assert (out.attentions is not None) == needs.attentions
            assert (out.attention_scores is not None) == needs.attention_scores
        assert (t is None) == (needs.teacher == NONE)


def params_of_list(params) -> list[torch.Tensor]:
    return [p.detach().clone() for p in params]


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_describes_itself(name):
    cls = METHODS[name]
    assert cls.description and len(cls.description) < 120 and "\n" not in cls.description
    assert cls.__doc__ or cls.__module__ and __import__(cls.__module__, fromlist=["_"]).__doc__
    cls.Params()  # the defaults are valid
