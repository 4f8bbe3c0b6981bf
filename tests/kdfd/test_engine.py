import math

import pytest
import torch

import baselines  # noqa: F401
from baselines.vanilla_kd import VanillaKD
from kdfd.errors import NonFiniteLossError
from kdfd.kdfd import KDFD, KDFDParams

from .helpers import batch, params_of, same, setup


def test_online_step_updates_the_teacher_before_the_students_loss():
    """Eqs. 4-5 / 9-10: the student phase sees theta_t^{m+1}, by a fresh forward of the updated teacher."""
    seen = {}

    class Probe(KDFD):
        def student_loss(self, b, s, t):
            seen["teacher_params"] = params_of(teacher)
            seen["student_params"] = params_of(student)
            seen["targets"] = self.predict("teacher", t).detach().clone()
            return super().student_loss(b, s, t)

    engine, distiller, student, teacher = setup(Probe, KDFDParams(latent_dim=8))
    b = batch()
    t_before, s_before = params_of(teacher), params_of(student)
    logs = engine.train_step(b)

    assert not same(seen["teacher_params"], t_before), "the teacher was not updated before the student phase"
    assert same(seen["teacher_params"], params_of(teacher)), "the teacher changed after the student phase"
    assert same(seen["student_params"], s_before), "the student changed before its own phase"
    assert not same(params_of(student), s_before), "the student was not updated"
    with torch.no_grad():
        teacher.eval()
        fresh = distiller.predict("teacher", teacher(b["input_ids"], b["attention_mask"], b["token_type_ids"]))
    assert torch.allclose(seen["targets"], fresh, atol=1e-6), "student targets are not the updated teacher's"
    assert {"teacher/total", "teacher/ce", "teacher/kd", "teacher/recon", "teacher/kl", "teacher/vae",
            "student/total", "student/ce", "student/kd", "student/recon", "student/kl"} <= set(logs)


def test_kdfd_teacher_loss_never_reaches_the_student():
    engine, distiller, student, teacher = setup(KDFD, KDFDParams(latent_dim=8))
    b = engine.to_device(batch())
    s = engine.forward(student, b)
    from kdfd.engine import detach

    loss = distiller.teacher_loss(b, engine.forward(teacher, b), detach(s))["total"]
    loss.backward()
    assert all(p.grad is None for p in student.parameters())
    assert any(p.grad is not None for p in teacher.parameters())


def test_frozen_teacher_stays_untouched():
    engine, _, student, teacher = setup(VanillaKD)
    before = params_of(teacher)
    for _ in range(3):
        engine.train_step(batch())
    assert same(before, params_of(teacher))
    assert all(not p.requires_grad for p in teacher.parameters())


def test_nan_loss_stops_the_job_with_step_and_term():
    class Broken(VanillaKD):
        def student_loss(self, b, s, t):
            out = super().student_loss(b, s, t)
            if engine.step == 1:
                out["kd"] = out["kd"] * float("nan")
            return out

    engine, *_ = setup(Broken)
    engine.train_step(batch())
    with pytest.raises(NonFiniteLossError) as e:
        engine.train_step(batch())
    assert (e.value.step, e.value.term, e.value.role) == (1, "kd", "student") and math.isnan(e.value.value)


def test_evaluate_reports_the_tasks_metrics_per_split():
    engine, *_ = setup(VanillaKD)
    loader = [batch(n=8), batch(n=4)]
    metrics = engine.evaluate("student", {"dev": loader})
    assert set(metrics["dev"]) == {"f1", "accuracy"}
