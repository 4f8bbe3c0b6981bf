import math

import pytest
import torch

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


def test_module_lr_trains_a_methods_own_modules_at_their_own_rate():
    from kdfd.config import TrainConfig
    from kdfd.engine import make_optimizer

    engine, distiller, student, _ = setup(KDFD, KDFDParams(latent_dim=8))
    own = {id(p) for p in distiller.student_modules.parameters()}
    assert all(g["lr"] == engine.cfg.lr for g in engine.opt_s.param_groups)  # unset: one rate for all
    opt = make_optimizer([student], 1e-4, 0.01, False, distiller.student_modules, module_lr=1e-3)
    rates = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    assert {rates[i] for i in own} == {1e-3}
    assert {r for i, r in rates.items() if i not in own} == {1e-4}
    assert len(rates) == sum(1 for _ in student.parameters()) + len(own)
    assert TrainConfig(module_lr=1e-3).module_lr == 1e-3


def test_vae_grad_stop_keeps_the_vae_terms_off_the_backbone():
    for mode, reaches in (("stop", False), ("flow", True)):
        engine, distiller, student, teacher = setup(KDFD, KDFDParams(latent_dim=8, vae_grad=mode))
        b = engine.to_device(batch())
        s = engine.forward(student, b)
        _, terms = distiller._own("student", s, b)
        terms["vae"].backward()
        grads = [p.grad for p in student.backbone.parameters() if p.grad is not None]
        assert (len(grads) > 0 and any(g.abs().sum() > 0 for g in grads)) == reaches, mode
        assert any(p.grad is not None for p in distiller.student_modules["bottleneck"].dec.parameters())


def test_eval_every_records_dev_scores_within_epochs_and_leaves_training_unchanged():
    from dataclasses import replace

    from kdfd import synthetic
    from kdfd.data import EncodedDataset, make_loader
    from kdfd.tasks import get_task

    task, tok = get_task("synth-pair"), synthetic.build_tokenizer()
    ds = EncodedDataset(list(synthetic.generate("synth-pair", "train"))[:32], task, tok, max_length=64)
    loader = make_loader(ds, 8, shuffle=True, seed=1)
    dev = {"dev": [batch(n=8)]}
    finals = []
    for every in (0, 2):
        engine, _, student, _ = setup(VanillaKD, total_steps=8)
        engine.cfg = replace(engine.cfg, eval_every=every)
        history = engine.fit(loader, dev, epochs=2)
        finals.append((params_of(student), history[-1]["dev"]))
        if every:
            assert [c["step"] for c in engine.step_curve] == [2, 4, 6, 8]
            assert set(engine.step_curve[0]["loss"]) >= {"student/total", "student/kd"}
            assert set(engine.step_curve[0]["dev"]["student"]["dev"]) == {"f1", "accuracy"}
        else:
            assert engine.step_curve == []
    assert same(finals[0][0], finals[1][0]) and finals[0][1] == finals[1][1]  # evaluating changes nothing


def test_a_stage_scales_the_students_learning_rate_for_its_steps_only():
    from baselines.internal_kd import InternalKD, InternalKDParams

    engine, *_ = setup(InternalKD, InternalKDParams(classifier_lr_scale=10.0), total_steps=8)
    lr = engine.cfg.lr  # no warmup in these tests: the linear decay alone
    for step in range(8):
        engine.train_step(batch())
        stage = engine.distiller.stage
        expected = lr * (10.0 if stage.name == "classifier" else 1.0) * (8 - step - 1) / 8
        assert abs(engine.opt_s.param_groups[0]["lr"] - expected) < 1e-12, (step, stage.name)
    assert engine.distiller.stage.name == "classifier"


def test_a_stage_may_start_the_students_optimizer_afresh_and_only_when_training_enters_it():
    """TinyBERT's prediction stage (its authors' separate run): the AdamW moments and step count of the intermediate
    stage are gone at its first step, so that step is the size of a first AdamW step (lr, per coordinate, up to
    epsilon) whatever the earlier gradients were; version 2 of the method kept them (fresh_optimizer = False)."""
    from baselines.tinybert import TinyBERT, TinyBERTParams

    for fresh in (True, False):
        engine, *_ = setup(TinyBERT, TinyBERTParams(fresh_optimizer=fresh), total_steps=4)
        for _ in range(2):
            engine.train_step(batch())
        assert engine.distiller.stage.name == "intermediate"
        steps_before = {id(p): int(st["step"]) for p, st in engine.opt_s.state.items()}
        engine.train_step(batch())  # enters the prediction stage
        assert engine.distiller.stage.name == "prediction"
        counts = {int(st["step"]) for p, st in engine.opt_s.state.items() if id(p) in steps_before}
        # kept: the moments go on counting (3 for what trained in both stages; the projection stops at 2)
        assert counts == {1} if fresh else (3 in counts and 1 not in counts), (fresh, counts)


def test_a_stage_may_run_its_own_learning_rate_schedule():
    """TinyBERT's stages as its authors run them (two runs of task_distill.py, each with its own warmup and linear
    decay): with stage_schedule = own the prediction stage starts again at the peak rate; with `run` (version 3) it
    goes on down the run's one decay."""
    from baselines.tinybert import TinyBERT, TinyBERTParams

    for schedule in ("own", "run"):
        engine, *_ = setup(TinyBERT, TinyBERTParams(stage_schedule=schedule), total_steps=8)
        lr = engine.cfg.lr  # no warmup in these tests: the linear decay alone
        assert engine.opt_s.param_groups[0]["lr"] == pytest.approx(lr)
        for step in range(8):
            engine.train_step(batch())
            nxt = step + 1  # the group's rate is now the next step's
            if schedule == "own":
                expected = (4 - nxt) / 4 if nxt < 4 else (4 - (nxt - 4)) / 4 if nxt < 8 else 0.0
            else:
                expected = (8 - nxt) / 8
            assert engine.opt_s.param_groups[0]["lr"] == pytest.approx(lr * expected), (schedule, step)


def test_linear_schedule_restarts_warm_up_and_decay_within_their_span():
    from kdfd.engine import linear_schedule

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    factor = linear_schedule(opt, 10, 0.2, restarts=((4, 10),)).lr_lambdas[0]
    # the run's own: 2 warmup steps of 10; the restart: int(6 * 0.2) = 1 warmup step of 6, then down to 1/5 at its last
    assert [factor(s) for s in (0, 1, 2, 3)] == pytest.approx([1 / 3, 2 / 3, 1.0, 7 / 8])
    assert [factor(s) for s in (4, 5, 6, 9)] == pytest.approx([1 / 2, 1.0, 4 / 5, 1 / 5])
    assert factor(10) == 0.0


def _tf32_switches() -> tuple[bool, bool]:
    return torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32


@pytest.fixture
def tf32_off():
    """Both TF32 switches off for the test (a caller's own choice), put back as they were after it."""
    before = _tf32_switches()
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def test_tf32_is_on_while_a_cuda_engine_computes_and_restored_after_even_on_error(tf32_off):
    from kdfd.engine import tf32

    with tf32(torch.device("cuda")):
        assert _tf32_switches() == (True, True)
    assert _tf32_switches() == (False, False)
    with pytest.raises(NonFiniteLossError), tf32(torch.device("cuda")):
        raise NonFiniteLossError(3, "kd", math.nan, "student")
    assert _tf32_switches() == (False, False)
    with tf32(torch.device("cpu")):
        assert _tf32_switches() == (False, False)  # CPU: nothing to switch
    torch.use_deterministic_algorithms(True)
    try:
        with tf32(torch.device("cuda")):
            assert _tf32_switches() == (False, False)  # deterministic runs keep full fp32
    finally:
        torch.use_deterministic_algorithms(False)


def test_building_and_stepping_an_engine_leaves_the_tf32_switches_as_they_were(tf32_off):
    engine, *_ = setup(VanillaKD)
    engine.train_step(batch())
    assert _tf32_switches() == (False, False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (the TF32 switches act on CUDA only)")
def test_a_cuda_engine_trains_with_tf32_and_leaves_the_switches_as_it_found_them(tf32_off):
    from kdfd.config import TrainConfig
    from kdfd.engine import Engine

    _, distiller, student, teacher = setup(VanillaKD)
    seen = []
    step = distiller.student_loss

    def probe(*args):
        seen.append(_tf32_switches())
        return step(*args)

    distiller.student_loss = probe
    engine = Engine(distiller, student, teacher, distiller.task, TrainConfig(lr=1e-2, device="cuda"), 10,
                    progress=False, needs=VanillaKD.needs(distiller.params))
    assert _tf32_switches() == (False, False)
    engine.train_step(batch())
    assert seen == [(True, True)] and _tf32_switches() == (False, False)


def test_a_checkpoint_carries_the_seconds_spent_before_it_across_every_resumption(tmp_path):
    """Each process's seconds since its job began (setup included: `started`) add up over checkpoints, so a job
    spread over three processes reports what the first two spent up to the checkpoint the last one took up."""
    import time

    from kdfd import synthetic
    from kdfd.checkpoint import Checkpointer
    from kdfd.data import EncodedDataset, make_loader
    from kdfd.tasks import get_task

    task, tok = get_task("synth-pair"), synthetic.build_tokenizer()
    ds = EncodedDataset(list(synthetic.generate("synth-pair", "train"))[:32], task, tok, max_length=64)
    path, carried = tmp_path / "job.ckpt", []

    def process(setup_seconds, stop_at=None):  # one process of the job: `setup_seconds` spent before training
        engine, *_ = setup(VanillaKD, total_steps=8)
        if stop_at is not None:
            step = engine.train_step

            def stopping(b):  # the process is killed as it reaches `stop_at`
                if engine.step == stop_at:
                    raise KeyboardInterrupt
                return step(b)

            engine.train_step = stopping
        try:
            engine.fit(make_loader(ds, 8, shuffle=True, seed=1), {}, 2, checkpointer=Checkpointer(path, every=2),
                       started=time.perf_counter() - setup_seconds)
        except KeyboardInterrupt:
            pass
        carried.append((engine.resumed_from, engine.carried_seconds))

    process(100.0, stop_at=3)  # its checkpoint at step 2
    process(50.0, stop_at=5)  # takes up step 2, checkpoints at 4
    process(20.0)
    (first, none), (second, after_one), (third, after_two) = carried
    assert first is None and none is None and second == 2 and third == 4
    assert 100.0 <= after_one < 130.0  # the first process's setup and its two steps, not its lost third
    assert after_one + 50.0 <= after_two < after_one + 80.0


def test_precision_auto_on_cpu_is_fp32_without_autocast_scaler_or_a_new_checkpoint_key():
    """The default CPU path as before: no autocast, no scaler, the checkpoint's keys unchanged."""
    engine, *_ = setup(KDFD, KDFDParams(latent_dim=8))
    assert (engine.amp, engine.precision, engine.scalers) == (None, "fp32", {})
    engine.train_step(batch())
    assert "scalers" not in engine.state_dict()
    bf16, *_ = setup(KDFD, KDFDParams(latent_dim=8), precision="bf16")
    assert (bf16.amp, bf16.precision, bf16.scalers) == (torch.bfloat16, "bf16", {})  # bf16 needs no scaler


def test_fp16_trains_each_model_through_its_own_loss_scaler_and_a_checkpoint_keeps_their_scales():
    """fp16 autocast (what `auto` picks on a GPU without bf16) runs here on CPU: KDFD's online teacher and its
    student each step through a GradScaler, and a resumed engine takes up the loss scales it had reached."""
    engine, _, student, teacher = setup(KDFD, KDFDParams(latent_dim=8), precision="fp16")
    assert (engine.amp, engine.precision, len(engine.scalers)) == (torch.float16, "fp16", 2)
    s_before, t_before = params_of(student), params_of(teacher)
    for _ in range(4):
        logs = engine.train_step(batch())
    assert all(math.isfinite(v) for v in logs.values())
    assert not same(params_of(student), s_before) and not same(params_of(teacher), t_before)
    scales = [s.get_scale() for s in engine.scalers.values()]
    resumed, *_ = setup(KDFD, KDFDParams(latent_dim=8), precision="fp16")
    resumed.load_state_dict(engine.state_dict())
    assert [s.get_scale() for s in resumed.scalers.values()] == scales
