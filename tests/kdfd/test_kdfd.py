import pytest
import torch

from kdfd.distiller import ModelInfo, parse_params
from kdfd.errors import ConfigError
from kdfd.kdfd import KDFD, KDFDParams, span_pairs
from kdfd.models import pool
from kdfd.tasks import get_task

from .helpers import batch, setup


@pytest.mark.parametrize("raw,message", [
    ({"vae_lambda": -0.1}, "vae_lambda = -0.1"),
    ({"alpha_s": 1.5}, "alpha_s = 1.5"),
    ({"temperature": 0.0}, "temperature = 0.0"),
    ({"vae_on": "nowhere"}, "vae_on = 'nowhere'"),
    ({"latent": 3}, "unknown key 'latent'"),
    ({"latent_dim": "64"}, "expected int"),
])
def test_bad_parameters_name_the_value_and_what_is_allowed(raw, message):
    with pytest.raises(ConfigError, match="allowed|expected") as e:
        parse_params(KDFD, raw)
    assert message in str(e.value)


def test_latent_dim_larger_than_hidden_size_is_refused():
    with pytest.raises(ConfigError, match="larger than the student's hidden size 16"):
        KDFD(KDFDParams(latent_dim=32), get_task("rte"), ModelInfo(16, 2), ModelInfo(64, 4))


@pytest.mark.parametrize("place,teacher_has,student_has", [("both", True, True), ("teacher", True, False),
                                                            ("student", False, True)])
def test_vae_placement(place, teacher_has, student_has):
    d = KDFD(KDFDParams(latent_dim=8, vae_on=place), get_task("rte"), ModelInfo(16, 2), ModelInfo(32, 4))
    assert ("bottleneck" in d.teacher_modules) == teacher_has
    assert ("bottleneck" in d.student_modules) == student_has


def test_student_predicts_from_the_head_on_z_mu():
    engine, distiller, student, _ = setup(KDFD, KDFDParams(latent_dim=8, features="mean"))
    b = batch()
    student.eval()
    out = student(b["input_ids"], b["attention_mask"], b["token_type_ids"])
    bn = distiller.student_modules["bottleneck"]
    z_mu = bn.enc_mu(pool("mean", out.last_hidden, out.attention_mask, None))
    assert torch.allclose(distiller.predict("student", out), bn.head(z_mu))
    assert not torch.allclose(distiller.predict("student", out), out.logits)


def test_ae_variant_has_no_kl_term():
    engine, *_ = setup(KDFD, KDFDParams(latent_dim=8, bottleneck="ae"))
    logs = engine.train_step(batch())
    assert "student/recon" in logs and "student/kl" not in logs


def test_span_constraint_maps_layers_and_adds_a_term():
    assert span_pairs(2, 4, "uniform") == [(1, 2), (2, 4)]
    assert span_pairs(3, 12, "last") == [(3, 12)]
    engine, distiller, *_ = setup(KDFD, KDFDParams(latent_dim=8, span="uniform"))
    assert KDFD.needs(distiller.params).hidden_states
    assert "student/span" in engine.train_step(batch())


def test_regression_uses_mse_kd_or_none():
    engine, *_ = setup(KDFD, KDFDParams(latent_dim=8), task_name="synth-reg")
    assert engine.train_step(batch("synth-reg"))["student/kd"] > 0
    engine, *_ = setup(KDFD, KDFDParams(latent_dim=8, regression_kd="none"), task_name="synth-reg")
    assert engine.train_step(batch("synth-reg"))["student/kd"] == 0


def test_features_auto_is_what_the_models_own_head_reads():
    engine, distiller, student, _ = setup(KDFD, KDFDParams(latent_dim=8))
    assert distiller.params.features == "auto"
    b = engine.to_device(batch())
    out = engine.forward(student, b)
    assert torch.equal(distiller._feature(out), out.features)
    cls = KDFD(KDFDParams(latent_dim=8, features="cls"), get_task("synth-pair"), ModelInfo(16, 2), ModelInfo(32, 4))
    assert torch.equal(cls._feature(out), out.last_hidden[:, 0])


def test_ablation_switches_remove_one_part_each():
    """bottleneck = none: both models predict from their own heads (online KD with KDFD's losses); teacher_mode =
    frozen: no teacher phase, the student's VAE alone; each changes no committed job's id (fields added later)."""
    from kdfd.distiller import FROZEN, ONLINE, params_dict

    assert "teacher_mode" not in params_dict(KDFDParams()) and params_dict(KDFDParams())["bottleneck"] == "vae"
    engine, distiller, student, teacher = setup(KDFD, KDFDParams(latent_dim=8, bottleneck="none"))
    assert not distiller.student_modules and not distiller.teacher_modules
    logs = engine.train_step(batch())
    assert "student/vae" not in logs and "teacher/kd" in logs
    b = batch()
    student.eval()
    out = student(b["input_ids"], b["attention_mask"], b["token_type_ids"])
    assert torch.equal(distiller.predict("student", out), out.logits)

    frozen = KDFDParams(latent_dim=8, teacher_mode="frozen")
    assert KDFD.needs(frozen).teacher == FROZEN and KDFD.needs(KDFDParams()).teacher == ONLINE
    engine, distiller, _, teacher = setup(KDFD, frozen)
    assert "bottleneck" in distiller.student_modules and "bottleneck" not in distiller.teacher_modules
    before = [p.detach().clone() for p in teacher.parameters()]
    logs = engine.train_step(batch())
    assert "student/vae" in logs and not any(k.startswith("teacher/") for k in logs)
    assert all(torch.equal(a, p) for a, p in zip(before, teacher.parameters()))
    with pytest.raises(ConfigError, match="teacher_init must be 'finetuned'"):
        KDFDParams(teacher_mode="frozen", teacher_init="pretrained")
