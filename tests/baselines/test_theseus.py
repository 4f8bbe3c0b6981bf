"""BERT-of-Theseus: the curriculum, the hybrid forward and what trains, against the authors' code's rules written out
here (JetRunner/BERT-of-Theseus: replacement_scheduler.py, modeling_bert_of_theseus.py, run_glue.py), on tiny real
BERTs."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
import torch.nn.functional as F

from baselines.theseus import Theseus, TheseusParams
from kdfd.distiller import ModelInfo
from kdfd.engine import stage_ends
from kdfd.errors import ConfigError
from kdfd.tasks import get_task
from tests.kdfd.helpers import STUDENT, TEACHER, batch, params_of, same, setup

TASK = get_task("synth-pair")
# the successor: the teacher's architecture (4 layers of width 32) with 2 layers, so 2 modules of 2 layers each
SUCCESSOR = dataclasses.replace(STUDENT, hidden=TEACHER.hidden, heads=TEACHER.heads, intermediate=TEACHER.intermediate)


def inputs(b: dict) -> dict:
    return {k: b[k] for k in ("input_ids", "attention_mask", "token_type_ids")}


def test_the_linear_curriculum_is_the_authors():
    """LinearReplacementScheduler: the rate starts at b and, after the t-th update, is min(k t + b, 1)."""
    m = Theseus(TheseusParams(base_rate=0.3, k=6e-4), TASK, ModelInfo(32, 2), ModelInfo(32, 4))
    m.stage, m.stage_span = m.stages()[0], (0, 1725)
    for t in (0, 1, 500, 1166, 1167, 1600):
        assert m.replacing_rate(t) == pytest.approx(min(6e-4 * t + 0.3, 1.0))
    # unset k: fitted so that p reaches 1 where the replacing stage ends (here 68 of 100 steps)
    fitted = Theseus(TheseusParams(), TASK, ModelInfo(32, 2), ModelInfo(32, 4))
    assert stage_ends(fitted.stages(), 100) == [68, 100]
    fitted.stage_span = (0, 68)
    for t in (0, 34, 67):
        assert fitted.replacing_rate(t) == pytest.approx(0.3 + 0.7 * t / 68)
    assert [s.train for s in fitted.stages()] == [("layer.1", "layer.2")] * 2  # the successor's layers alone
    assert [s.name for s in Theseus(TheseusParams(replacing_share=1.0), TASK, ModelInfo(32, 2),
                                    ModelInfo(32, 4)).stages()] == ["replacing"]


def test_the_successor_starts_as_the_predecessors_first_layers_embeddings_and_classifier():
    engine, m, student, teacher = setup(Theseus, student_spec=SUCCESSOR)
    s, t = student.backbone, teacher.backbone
    for mine, theirs in [(s.embeddings, t.embeddings), (s.encoder.layer[0], t.encoder.layer[0]),
                         (s.encoder.layer[1], t.encoder.layer[1]), (student.head, teacher.head)]:
        assert same(params_of(mine), params_of(theirs))
    assert not same(params_of(s.encoder.layer[1]), params_of(t.encoder.layer[3]))


@pytest.mark.parametrize("replaced", [[True, False], [False, True], [False, False]])
def test_the_hybrid_runs_the_sampled_modules_and_its_loss_is_ce(replaced):
    """Module i is student layer i when replaced, else teacher layers 2i-1, 2i: the expected logits come from a copy of
    the teacher whose replaced modules are swapped for the student's layers, run as an ordinary model (eval mode on
    both sides: the authors' dropout is the only thing train mode adds)."""
    engine, m, student, teacher = setup(Theseus, student_spec=SUCCESSOR)
    with torch.no_grad():  # a student that differs from the teacher's first layers, so that a swap shows
        for p in student.backbone.encoder.parameters():
            p.add_(0.05 * torch.randn_like(p))
    b = batch()
    m.stage, m.stage_span = m.stages()[0], (0, 10)
    m.sample = lambda p: replaced
    student.eval()
    out = m.student_forward(b, student, teacher, step=0)
    expected_model = copy.deepcopy(teacher).eval()
    layers = []
    for i, r in enumerate(replaced):
        layers += [copy.deepcopy(student.backbone.encoder.layer[i])] if r else \
            [copy.deepcopy(teacher.backbone.encoder.layer[j]) for j in (2 * i, 2 * i + 1)]
    expected_model.backbone.encoder.layer = torch.nn.ModuleList(layers)
    expected = expected_model(**inputs(b)).logits
    torch.testing.assert_close(out.logits, expected, rtol=1e-5, atol=1e-5)
    assert len(student.backbone.encoder.layer) == 2  # the student's own layers are back
    assert not teacher.training  # and the frozen teacher is left as the engine set it
    ce = F.cross_entropy(expected, b["labels"])
    assert torch.allclose(m.student_loss(b, out, None)["total"], ce, atol=1e-6)


def test_every_module_replaced_or_the_successor_stage_is_the_student_alone():
    engine, m, student, teacher = setup(Theseus, student_spec=SUCCESSOR)
    m.stage, m.stage_span = m.stages()[0], (0, 10)
    m.sample = lambda p: [True, True]
    assert m.student_forward(batch(), student, teacher, step=3) is None  # the engine then runs the student itself
    m.sample = lambda p: pytest.fail("the successor stage samples nothing")
    m.stage = m.stages()[1]
    assert m.student_forward(batch(), student, teacher, step=9) is None


def test_a_step_trains_the_replaced_successor_layers_only():
    """run_glue.py's optimizer holds the successor layers alone: the teacher, the (shared) embeddings and classifier
    and the layers of modules the step did not replace keep their weights; a step that replaced nothing moves
    nothing (the engine's no-update step) and the schedule still advances."""
    engine, m, student, teacher = setup(Theseus, student_spec=SUCCESSOR, total_steps=20)
    b = batch()
    groups = lambda: {g: [p.detach().clone() for p in ps] for g, ps in student.param_groups().items()}  # noqa: E731
    t_before, before = params_of(teacher), groups()
    m.sample = lambda p: [False, True]
    engine.train_step(b)
    after = groups()
    assert {g for g in after if not same(before[g], after[g])} == {"layer.2"}
    assert same(t_before, params_of(teacher))
    m.sample = lambda p: [False, False]
    lr = engine.opt_s.param_groups[0]["lr"]
    logs = engine.train_step(b)
    assert same(after["layer.1"] + after["layer.2"], params_of(student.backbone.encoder.layer))
    assert logs["student/total"] > 0 and engine.opt_s.param_groups[0]["lr"] != lr and engine.step == 2


def test_the_curriculum_reads_the_engines_steps_and_stages():
    engine, m, student, teacher = setup(Theseus, student_spec=SUCCESSOR, total_steps=50)
    seen = []
    m.sample = lambda p: seen.append(p) or [True, False]
    for _ in range(3):
        engine.train_step(batch())
    assert m.stage_span == (0, 34)  # round(0.68 * 50)
    assert seen == pytest.approx([0.3 + 0.7 * t / 34 for t in range(3)])
    engine.step = 34
    engine.train_step(batch())
    assert m.stage.name == "successor" and m.stage_span == (34, 50) and len(seen) == 3


def test_models_theseus_cannot_mix_are_refused():
    with pytest.raises(ConfigError, match="same shapes: the student's hidden size 16 differs from the teacher's 32"):
        Theseus(TheseusParams(), TASK, ModelInfo(16, 2), ModelInfo(32, 4))
    with pytest.raises(ConfigError, match="4 is not a multiple of the student's 3"):
        Theseus(TheseusParams(), TASK, ModelInfo(32, 3), ModelInfo(32, 4))
    narrow = dataclasses.replace(SUCCESSOR, intermediate=48)  # same width, other feed-forward size
    with pytest.raises(ConfigError, match=r"teacher's layer 1 .* differ at 'intermediate.dense.weight' "
                                          r"\(student \(48, 32\), teacher \(64, 32\)\)"):
        setup(Theseus, student_spec=narrow)


@pytest.mark.parametrize("bad, words", [({"base_rate": 0.0}, r"base_rate = 0.0 .* \(0.0, 1.0\]"),
                                        ({"k": -1e-3}, r"k = -0.001"),
                                        ({"replacing_share": 1.5}, r"replacing_share = 1.5")])
def test_bad_parameters_name_themselves(bad, words):
    with pytest.raises(ConfigError, match=words):
        TheseusParams(**bad)


def test_a_resumed_run_draws_the_same_hybrids_and_ends_with_the_same_weights(tmp_path):
    """The draws come from torch's CPU generator, which the checkpoint saves, and the curriculum from the engine's
    step and stage: a run stopped after its step-3 checkpoint and taken up again equals an uninterrupted one."""
    from kdfd import synthetic
    from kdfd.checkpoint import Checkpointer
    from kdfd.data import EncodedDataset, make_loader

    ds = EncodedDataset(list(synthetic.generate("synth-pair", "train"))[:48], TASK, synthetic.build_tokenizer(), 64)

    def run(path, stop_after=None):
        engine, m, student, teacher = setup(Theseus, student_spec=SUCCESSOR, total_steps=12)  # 6 steps x 2 epochs
        draws, sample = [], m.sample
        m.sample = lambda p: draws.append((engine.step, p, tuple(sample(p)))) or list(draws[-1][2])
        if stop_after is not None:
            step = engine.train_step

            def stopping(b):
                if engine.step == stop_after:
                    raise KeyboardInterrupt
                return step(b)

            engine.train_step = stopping
        try:
            engine.fit(make_loader(ds, 8, shuffle=True, seed=0), {}, 2, checkpointer=Checkpointer(path, every=3))
        except KeyboardInterrupt:
            pass
        return params_of(student), draws

    whole, whole_draws = run(tmp_path / "whole.ckpt")
    run(tmp_path / "cut.ckpt", stop_after=5)
    resumed, resumed_draws = run(tmp_path / "cut.ckpt")
    assert resumed_draws[0][0] == 3 and resumed_draws == [d for d in whole_draws if d[0] >= 3]
    assert any(not all(d[2]) for d in whole_draws)  # the hybrid ran teacher modules on some steps
    assert same(whole, resumed)


def test_finetune_can_start_from_the_teachers_first_layers():
    """finetune's `start = teacher` control: the student starts as Theseus's successor does (the teacher's
    embeddings, head and first layers), and the default start changes no job id."""
    import torch

    from baselines.finetune import Finetune, FinetuneParams
    from kdfd.distiller import FROZEN, params_dict
    from kdfd.models import ModelSpec
    from tests.kdfd.helpers import setup

    assert params_dict(FinetuneParams()) == {}
    assert Finetune.needs(FinetuneParams(start="teacher")).teacher == FROZEN
    spec = ModelSpec("tiny", layers=2, hidden=32, heads=2, intermediate=64, dropout=0.0)
    _, _, student, teacher = setup(Finetune, FinetuneParams(start="teacher"), student_spec=spec)
    for a, b in zip(student.backbone.encoder.layer[1].parameters(), teacher.backbone.encoder.layer[1].parameters()):
        assert torch.equal(a, b)
    assert torch.equal(student.backbone.embeddings.word_embeddings.weight,
                       teacher.backbone.embeddings.word_embeddings.weight)
