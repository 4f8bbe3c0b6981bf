"""TensorBoard events (kdfd.events): what the engine logs, read back by TensorBoard's own reader."""

import sys

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard import SummaryWriter

from kdfd import synthetic
from kdfd.config import TrainConfig
from kdfd.data import EncodedDataset, make_loader
from kdfd.distiller import ModelInfo
from kdfd.engine import Engine, linear_schedule, set_seed
from kdfd.errors import ConfigError
from kdfd.events import Events, require
from kdfd.kdfd import KDFD, KDFDParams
from kdfd.models import build_classifier
from kdfd.tasks import get_task

from .helpers import STUDENT, TEACHER


def read(directory) -> EventAccumulator:
    acc = EventAccumulator(str(directory))
    acc.Reload()
    return acc


def scalars(acc: EventAccumulator, tag: str) -> list[tuple[int, float]]:
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def test_the_engine_writes_every_loss_term_the_rates_each_step_used_and_every_evaluation(tmp_path):
    """KDFD (an online teacher: both roles' terms), module_lr (the method's modules at their own rate), warmup,
    eval_every 4 over two epochs of 5 steps."""
    set_seed(0)
    task = get_task("synth-pair")
    tok = synthetic.build_tokenizer()
    train_ds = EncodedDataset(list(synthetic.generate(task.name, "train"))[:80], task, tok, 64)
    dev_ds = EncodedDataset(list(synthetic.generate(task.name, "dev"))[:32], task, tok, 64)
    student = build_classifier(STUDENT, task.num_labels, len(synthetic.VOCAB), "sdpa")
    teacher = build_classifier(TEACHER, task.num_labels, len(synthetic.VOCAB), "sdpa")
    distiller = KDFD(KDFDParams(latent_dim=8), task, ModelInfo(16, 2, 2), ModelInfo(32, 4, 2))
    train = TrainConfig(lr=1e-3, teacher_lr=2e-3, module_lr=5e-3, warmup_ratio=0.3, eval_every=4, batch_size=16,
                        device="cpu")
    loader = make_loader(train_ds, 16, shuffle=True, seed=1)
    engine = Engine(distiller, student, teacher, task, train, total_steps=10, progress=False,
                    needs=KDFD.needs(distiller.params))
    history = engine.fit(loader, {"dev": make_loader(dev_ds, 32, shuffle=False)}, 2, events_to=tmp_path / "ev")
    acc = read(tmp_path / "ev")
    tags = set(acc.Tags()["scalars"])

    terms = {k for epoch in history for k in epoch["loss"]}
    assert {"student/total", "student/kd", "teacher/total", "teacher/kd"} <= terms
    assert {t for t in tags if "/loss/" in t} == {"{}/loss/{}".format(*k.split("/", 1)) for k in terms}
    for k in terms:  # the events are the values the record's curves average, step by step
        points = scalars(acc, "{}/loss/{}".format(*k.split("/", 1)))
        assert [s for s, _ in points] == list(range(1, 11))
        for epoch, steps in zip(history, (range(0, 5), range(5, 10))):
            assert sum(points[i][1] for i in steps) / 5 == pytest.approx(epoch["loss"][k], rel=1e-5)

    factor = linear_schedule(engine.opt_s, 10, 0.3).lr_lambdas[0]  # the engine's schedule: 3 warmup steps
    for tag, base in (("student/lr", 1e-3), ("student/lr-modules", 5e-3), ("teacher/lr", 2e-3),
                      ("teacher/lr-modules", 5e-3)):
        assert scalars(acc, tag) == [(k, pytest.approx(base * factor(k - 1), rel=1e-6)) for k in range(1, 11)]

    dev_tags = {t for t in tags if "/dev/" in t}
    assert dev_tags == {"student/dev/accuracy", "student/dev/f1", "teacher/dev/accuracy", "teacher/dev/f1"}
    expected = [(p["step"], p["dev"]) for p in engine.step_curve] + [(e["steps"], e["dev"]) for e in history]
    expected.sort(key=lambda x: x[0])
    assert [s for s, _ in expected] == [4, 5, 8, 10]
    for role in ("student", "teacher"):
        got = scalars(acc, f"{role}/dev/accuracy")
        assert got == [(s, pytest.approx(dev[role]["dev"]["accuracy"], abs=1e-6)) for s, dev in expected]
    assert engine.events is None  # closed when training ended


def test_a_fresh_start_drops_an_earlier_attempts_events_and_a_resume_purges_after_its_checkpoint(tmp_path):
    with SummaryWriter(str(tmp_path)) as old:  # an attempt that got to step 9
        for step in range(1, 10):
            old.add_scalar("student/loss/total", 1.0, step)

    resumed = Events(tmp_path, resumed_from=6)  # its checkpoint was at step 6: steps 7-9 are taken again
    for step in range(7, 12):
        resumed.scalars("loss", step, {"student/total": 2.0})
    resumed.close()
    assert scalars(read(tmp_path), "student/loss/total") == [(s, 1.0) for s in range(1, 7)] + [(s, 2.0) for s in
                                                                                              range(7, 12)]

    fresh = Events(tmp_path)  # no checkpoint to take up: nothing earlier is kept
    fresh.scalars("loss", 1, {"student/total": 3.0})
    fresh.close()
    assert len(list(tmp_path.glob("events.out.tfevents.*"))) == 1
    assert scalars(read(tmp_path), "student/loss/total") == [(1, 3.0)]


def test_without_the_tensorboard_package_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if tensorboard were not installed
    with pytest.raises(ConfigError, match=r"needs the tensorboard package: pip install 'kdfd-bench\[tensorboard\]'"):
        require()
